"""Trading calendars of the symbols in one market-data source, and the one calendar of the panel.

Every scenario family works on one dates x symbols panel whose sessions are business days (Monday to
Friday): returns are annualised with 252 sessions a year, and simulated paths step over business days
(laid out afterwards on each symbol's own calendar: ``core.data.session_layout``).
Symbols of one file may keep different calendars, and each is read on its own:

* **Exchange calendars** (Monday to Friday with their own holidays): the panel's sessions are the union of
  their weekday sessions; a holiday of one exchange on which another traded is a missing session of the
  first, forward-filled (at most ``core.data.market.MAX_FILLED_SESSIONS`` in a row) and counted.
* **Seven-day calendars** (crypto and other markets open every day; a symbol with rows on Saturdays and on
  Sundays in at least half of the weeks it spans): their rows do not add sessions. A row on a day that is
  not a session of the panel (a weekend, an exchange holiday) is folded into the next session: that
  session's close is the symbol's last close up to it and its volume the sum since the previous session,
  so the weekend's move enters the Monday return in full and no equity is forward-filled over a weekend.
  Before the first and after the last session of the exchange-calendar symbols, their weekdays are
  sessions (a crypto history that starts earlier is not cut). A file of seven-day symbols only has their
  weekdays as sessions.
* **Regular weekend sessions without a seven-day week** (rows on Saturdays or on Sundays in at least half
  of the weeks, but not on both): the dates of such a symbol are almost always shifted by a time-zone
  conversion (an Asian session at local midnight written in UTC falls on the previous day, so Monday
  becomes Sunday). ``check_weekend_sessions`` refuses them at the input check, naming the symbol and
  its first weekend date.

Stray weekend rows of an exchange-calendar symbol (a special Saturday session) are folded like a
seven-day symbol's. Weekdays are numbered 0 (Monday) to 6 (Sunday).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scenarios_assets.core.models.errors import ScenarioInputError

# A weekday belongs to a symbol's regular week when it has rows on it in at least this share of the
# weeks the symbol's history spans.
REGULAR_WEEKDAY_SHARE = 0.5
SATURDAY, SUNDAY = 5, 6
_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _days(dates) -> np.ndarray:
    """int64 days since 1970-01-01 of datetime-like values."""
    return np.asarray(dates, dtype="datetime64[D]").view("int64")


def weekday(dates) -> np.ndarray:
    """0 (Monday) .. 6 (Sunday) of each date (1970-01-01 was a Thursday).

    Parameters
    ----------
    dates : array_like of datetime-like
        The dates (converted to ``datetime64[D]``).

    Returns
    -------
    ndarray of int64
        The weekday numbers, same shape.
    """
    return (_days(dates) + 3) % 7


def weekday_shares(symbols: pd.Series, dates: pd.Series) -> pd.DataFrame:
    """(symbols x 7) share of the weeks each symbol's history spans (first to last row, Monday-based
    weeks) that have a row on each weekday.

    Parameters
    ----------
    symbols : pandas.Series
        The rows' symbols.
    dates : pandas.Series
        The rows' dates (datetime64), one per (symbol, date).

    Returns
    -------
    pandas.DataFrame of shape (n_symbols, 7)
        Fractions in [0, 1], indexed by symbol (sorted), columns 0 (Monday) .. 6 (Sunday).
    """
    codes, names = pd.factorize(symbols, sort=True)
    days = _days(dates)
    counts = np.bincount(codes * 7 + (days + 3) % 7, minlength=len(names) * 7).reshape(len(names), 7)
    week = (days + 3) // 7
    first = np.full(len(names), np.iinfo(np.int64).max)
    last = np.full(len(names), np.iinfo(np.int64).min)
    np.minimum.at(first, codes, week)
    np.maximum.at(last, codes, week)
    weeks = (last - first + 1).astype(np.float64)
    return pd.DataFrame(counts / weeks[:, None], index=pd.Index(names, name="symbol"), columns=list(range(7)))


def seven_day_symbols(shares: pd.DataFrame) -> list[str]:
    """Symbols with rows on Saturdays and on Sundays in at least REGULAR_WEEKDAY_SHARE of their weeks.

    Parameters
    ----------
    shares : pandas.DataFrame
        :func:`weekday_shares`.

    Returns
    -------
    list of str
        The seven-day symbols, in ``shares`` order.
    """
    regular = shares >= REGULAR_WEEKDAY_SHARE
    return list(shares.index[regular[SATURDAY] & regular[SUNDAY]])


def check_weekend_sessions(ohlcv: pd.DataFrame, source: str) -> list[str]:
    """Refuse a symbol with regular Saturday or Sunday sessions but no seven-day week; return the
    seven-day symbols.

    Parameters
    ----------
    ohlcv : pandas.DataFrame
        Validated rows (``symbol``, ``date`` as datetime64).
    source : str
        The source's name, for the message.

    Returns
    -------
    list of str
        The seven-day symbols (:func:`seven_day_symbols`), sorted.

    Raises
    ------
    ScenarioInputError
        Naming the first symbol with regular Saturday or Sunday rows but not both (dates likely shifted by a
        time-zone conversion) and its first such date.
    """
    shares = weekday_shares(ohlcv["symbol"], ohlcv["date"])
    regular = shares >= REGULAR_WEEKDAY_SHARE
    seven = regular[SATURDAY] & regular[SUNDAY]
    shifted = (regular[SATURDAY] | regular[SUNDAY]) & ~seven
    if shifted.any():
        symbol = shifted.index[shifted.to_numpy()][0]
        day = SATURDAY if regular.loc[symbol, SATURDAY] else SUNDAY
        rows = ohlcv.loc[ohlcv["symbol"].to_numpy() == symbol, "date"]
        first = rows[weekday(rows) == day].min()
        missing = [_DAY_NAMES[d] for d in range(7) if not regular.loc[symbol, d]]
        raise ScenarioInputError(
            f"market data '{source}': symbol {symbol} has sessions on {_DAY_NAMES[day]}s "
            f"({shares.loc[symbol, day]:.0%} of its weeks, first {first.date()}) but none on "
            f"{'/'.join(missing)}: its dates look shifted by a time-zone conversion; write each session's "
            "local exchange date (a market open every day, like crypto, is accepted)"
        )
    return list(shares.index[seven.to_numpy()])


def market_calendar(ohlcv: pd.DataFrame, seven_day: list[str]) -> pd.DatetimeIndex:
    """The panel's sessions (see the module docstring): weekday dates of the exchange-calendar symbols,
    plus the seven-day symbols' weekdays outside their span.

    Parameters
    ----------
    ohlcv : pandas.DataFrame
        Validated rows (``symbol``, ``date``).
    seven_day : list of str
        The seven-day symbols (:func:`check_weekend_sessions`); when every row is theirs, their weekdays
        are the sessions.

    Returns
    -------
    pandas.DatetimeIndex
        The sessions (datetime64[s], named ``date``), ascending.

    Raises
    ------
    ScenarioInputError
        When no row falls on a weekday.
    """
    dates = ohlcv["date"].to_numpy(dtype="datetime64[D]")
    on_weekday = weekday(dates) < 5
    if not on_weekday.any():
        raise ScenarioInputError("market data has no row on a weekday (Monday to Friday)")
    defining = ~ohlcv["symbol"].isin(seven_day).to_numpy()
    if not (defining & on_weekday).any():
        defining = np.ones(len(dates), dtype=bool)
    core = np.unique(dates[defining & on_weekday])
    outside = on_weekday & ~defining & ((dates < core[0]) | (dates > core[-1]))
    sessions = np.union1d(core, dates[outside])
    return pd.DatetimeIndex(sessions.astype("datetime64[s]"), name="date")


def fold_to_calendar(ohlcv: pd.DataFrame, sessions: pd.DatetimeIndex) -> tuple[pd.DataFrame, dict]:
    """Rows of ``ohlcv`` (sorted by symbol, date) on the panel's ``sessions``: a row on another day is
    folded into the next session (close: the last close up to it; volume: the sum since the previous
    session, null when every folded volume is null); rows after the last session are dropped.

    Returns the ``symbol``, ``date``, ``close``, ``volume``, ``high``, ``low`` rows (a folded session's
    high and low: the highest high and lowest low of its rows, null when none has one) and a report:
    ``off_calendar_rows`` (folded) and ``rows_after_last_session`` (dropped).

    Parameters
    ----------
    ohlcv : pandas.DataFrame
        Validated rows sorted by (symbol, date).
    sessions : pandas.DatetimeIndex
        The panel's sessions (:func:`market_calendar`).

    Returns
    -------
    rows : pandas.DataFrame
        ``symbol``, ``date``, ``close``, ``volume``, ``high``, ``low`` on the sessions.
    report : dict
        ``off_calendar_rows`` and ``rows_after_last_session`` (int).
    """
    dates = ohlcv["date"].to_numpy(dtype="datetime64[s]")
    cal = sessions.to_numpy(dtype="datetime64[s]")
    slot = np.searchsorted(cal, dates, side="left")
    beyond = slot >= len(cal)
    on = ~beyond & (cal[np.minimum(slot, len(cal) - 1)] == dates)
    columns = ["symbol", "date", "close", "volume", "high", "low"]
    if on.all():
        return ohlcv.loc[:, columns], {"off_calendar_rows": 0, "rows_after_last_session": 0}
    kept = ohlcv.loc[~beyond, ["symbol", "close", "volume", "high", "low"]].assign(date=cal[slot[~beyond]])
    grouped = kept.groupby(["symbol", "date"], sort=True)
    folded = pd.DataFrame({
        "close": grouped["close"].last(), "volume": grouped["volume"].sum(min_count=1),
        "high": grouped["high"].max(), "low": grouped["low"].min(),
    }).reset_index()
    report = {"off_calendar_rows": int((~on & ~beyond).sum()), "rows_after_last_session": int(beyond.sum())}
    return folded.loc[:, columns], report
