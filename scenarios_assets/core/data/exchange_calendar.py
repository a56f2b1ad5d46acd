"""Exchange trading calendars for simulated dates (``exchange_calendars``, the maintained calendar library
behind zipline-reloaded: holiday rules, early closes and ad-hoc closures of 50+ exchanges).

Every family that dates days beyond the market data (Monte Carlo, bootstrap, stress, projected events)
takes its sessions from here, so no simulated path trades on an exchange holiday (the NYSE is closed
2025-07-04, 2025-12-25 and 2026-01-01; a business-day calendar is not). The calendar is
``data.trading_calendar`` of the config (default ``XNYS``, the New York Stock Exchange, whose sessions
the bundled S&P 500 history 1990-2025 matches one for one). The bundled universe trades on the NYSE and
Nasdaq, which keep the same sessions, so one calendar dates every symbol; a symbol on another calendar
(``data.symbol_calendars``, or ``SEVEN_DAY`` for a seven-day symbol) gets its own sessions through
:mod:`scenarios_assets.core.data.session_layout`.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from scenarios_assets.core.models.errors import ScenarioInputError

DEFAULT_CALENDAR = "XNYS"
SEVEN_DAY = "24/7"  # a market open every calendar day (crypto): not an exchange_calendars name


@lru_cache(maxsize=16)
def _calendar(name: str, first_year: int, last_year: int):
    import exchange_calendars as xcals

    try:
        return xcals.get_calendar(name, start=f"{first_year}-01-01", end=f"{last_year}-12-31")
    except xcals.errors.InvalidCalendarName:
        raise ScenarioInputError(
            f"data.trading_calendar '{name}' is not an exchange_calendars calendar (e.g. XNYS, XNAS, XLON, XTKS)"
        ) from None


def check_calendar(name: str, key: str = "data.trading_calendar", seven_day: bool = False) -> None:
    """Check that ``name`` is a calendar of the ``exchange_calendars`` package (names and aliases).

    Parameters
    ----------
    name : str
        A calendar name (e.g. ``XNYS``, ``XNAS``, ``XLON``, ``XTKS``).
    key : str, default "data.trading_calendar"
        The config key the name comes from, for the message.
    seven_day : bool, default False
        Accept :data:`SEVEN_DAY` (``'24/7'``, every calendar day) too.

    Raises
    ------
    ScenarioInputError
        One line naming ``key``, when ``name`` is not a string or not a known calendar.

    References
    ----------
    .. [1] exchange_calendars, https://github.com/gerrymanoim/exchange_calendars
    """
    import exchange_calendars as xcals

    if seven_day and name == SEVEN_DAY:
        return
    if not isinstance(name, str) or name not in xcals.get_calendar_names(include_aliases=True):
        also = f" or '{SEVEN_DAY}' (every calendar day)" if seven_day else ""
        raise ScenarioInputError(
            f"{key} {name!r} is not an exchange_calendars calendar (e.g. XNYS, XNAS, XLON, XTKS){also}"
        )


def sessions_after(last_date, count: int, name: str = DEFAULT_CALENDAR) -> np.ndarray:
    """The first ``count`` sessions of calendar ``name`` strictly after ``last_date``.

    Sessions (trading days of the exchange, holidays and ad-hoc closures excluded), not calendar days.

    Parameters
    ----------
    last_date : date-like
        Anything ``pandas.Timestamp`` takes; the sessions start the calendar day after it.
    count : int
        The number of sessions; 0 or less gives an empty array.
    name : str, default "XNYS"
        An ``exchange_calendars`` calendar name (not ``'24/7'``).

    Returns
    -------
    ndarray of shape (count,), datetime64[D]
        The session dates, ascending.

    Raises
    ------
    ScenarioInputError
        For an unknown calendar name.

    References
    ----------
    .. [1] exchange_calendars, https://github.com/gerrymanoim/exchange_calendars
    """
    count = int(count)
    if count <= 0:
        return np.empty(0, dtype="datetime64[D]")
    start = pd.Timestamp(last_date).normalize() + pd.Timedelta(days=1)
    # 252 sessions span about 365 days; twice the count in calendar days plus a margin always suffices
    end = start + pd.Timedelta(days=2 * count + 30)
    cal = _calendar(name, start.year, end.year)
    sessions = cal.sessions_in_range(start, end)[:count]
    return sessions.to_numpy().astype("datetime64[D]")


def sessions_between(first, last, name: str = DEFAULT_CALENDAR) -> np.ndarray:
    """The sessions of calendar ``name`` in [``first``, ``last``]; '24/7': every day.

    Parameters
    ----------
    first, last : date-like
        Inclusive bounds (anything ``pandas.Timestamp`` takes), normalised to midnight.
    name : str, default "XNYS"
        An ``exchange_calendars`` calendar name, or :data:`SEVEN_DAY` (every calendar day).

    Returns
    -------
    ndarray of shape (n_sessions,), datetime64[D]
        The session dates, ascending; empty when ``last`` is before ``first``.

    Raises
    ------
    ScenarioInputError
        For an unknown calendar name.

    References
    ----------
    .. [1] exchange_calendars, https://github.com/gerrymanoim/exchange_calendars
    """
    first, last = pd.Timestamp(first).normalize(), pd.Timestamp(last).normalize()
    if last < first:
        return np.empty(0, dtype="datetime64[D]")
    if name == SEVEN_DAY:
        return np.arange(np.datetime64(first.date(), "D"), np.datetime64(last.date(), "D") + 1)
    cal = _calendar(name, first.year, last.year)
    return cal.sessions_in_range(first, last).to_numpy().astype("datetime64[D]")


def calendar_name(config: dict) -> str:
    """The configured trading calendar (``data.trading_calendar``) of a config mapping.

    Parameters
    ----------
    config : dict
        The ``scenarios_pipeline`` mapping (a missing ``data`` section counts as empty).

    Returns
    -------
    str
        ``data.trading_calendar``, or :data:`DEFAULT_CALENDAR` (``XNYS``) when it is not set.
    """
    return configured_calendar((config.get("data") or {}).get("trading_calendar"))


def configured_calendar(name: str | None) -> str:
    """The trading calendar named ``name``, :data:`DEFAULT_CALENDAR` (``XNYS``) when unset.

    Parameters
    ----------
    name : str or None
        ``data.trading_calendar`` of the typed config.

    Returns
    -------
    str
        The calendar name.
    """
    return str(name or DEFAULT_CALENDAR)
