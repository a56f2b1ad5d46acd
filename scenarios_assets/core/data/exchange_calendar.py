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
    """Raise ScenarioInputError (one line naming the config ``key``) when ``name`` is not a known calendar
    (``seven_day``: '24/7' is accepted too)."""
    import exchange_calendars as xcals

    if seven_day and name == SEVEN_DAY:
        return
    if not isinstance(name, str) or name not in xcals.get_calendar_names(include_aliases=True):
        also = f" or '{SEVEN_DAY}' (every calendar day)" if seven_day else ""
        raise ScenarioInputError(
            f"{key} {name!r} is not an exchange_calendars calendar (e.g. XNYS, XNAS, XLON, XTKS){also}"
        )


def sessions_after(last_date, count: int, name: str = DEFAULT_CALENDAR) -> np.ndarray:
    """The first ``count`` sessions of calendar ``name`` strictly after ``last_date`` (datetime64[D], (count,)).

    Raises ScenarioInputError for an unknown calendar name.
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
    """The sessions of calendar ``name`` in [``first``, ``last``] (datetime64[D]); '24/7': every day."""
    first, last = pd.Timestamp(first).normalize(), pd.Timestamp(last).normalize()
    if last < first:
        return np.empty(0, dtype="datetime64[D]")
    if name == SEVEN_DAY:
        return np.arange(np.datetime64(first.date(), "D"), np.datetime64(last.date(), "D") + 1)
    cal = _calendar(name, first.year, last.year)
    return cal.sessions_in_range(first, last).to_numpy().astype("datetime64[D]")


def calendar_name(config: dict) -> str:
    """The configured trading calendar (``data.trading_calendar``) of a config mapping."""
    return configured_calendar((config.get("data") or {}).get("trading_calendar"))


def configured_calendar(name: str | None) -> str:
    """The trading calendar named ``name`` (``data.trading_calendar``), ``DEFAULT_CALENDAR`` when unset."""
    return str(name or DEFAULT_CALENDAR)
