"""Replay of a recorded window of closes (and bars) at a severity scale: the engine of the historical
and regime families and of the observed part of projected events.

Severity scales each symbol's daily log returns around a centre c:
    r' = c + k (r - c) - (k^2 - 1) v / 2,   k = 0.5 (moderate), 1.0 (severe: as it happened), 1.5 (extreme)
with c = max(mu, m): mu the symbol's long-run drift (mean daily log return over its whole history), m its
mean daily log return over the replayed window, and v the variance of its daily log returns over the
window. A severe replay reproduces recorded closes exactly. Where the window fell short of the long-run
drift (a crisis), c = mu and moderate / extreme halve / amplify the excess moves, so the loss shrinks /
deepens. Where the window beat it (a bull market, a recovery), c = m: the replay keeps the window's own
trend at every severity, and severity scales the fluctuations around it (volatility, pullbacks,
drawdowns). The last term charges the volatility drag of the scaled moves, so each symbol's arithmetic
mean daily return (about c + v / 2 at k = 1) is kept rather than raised by the larger swings, and the
equal-weight daily rebalanced portfolio, whose return follows the symbols' arithmetic returns, earns no
more at a higher severity. Severity therefore never means a bigger gain: a bull event's extreme replay has
its recorded trend with 1.5x the swings and their drag.

Recorded bars: where the market data holds a session's high and low (``MarketData.high`` / ``low``; the
bundled S&P 500 from 2005-01-31, NVDA, the NASDAQ Composite), the replay carries them as the ``high`` and
``low`` columns of its time series, transformed like the close of the same session (the same affine map of
the log price), so a severe replay shows the recorded bar exactly (S&P 500 2020-03-23: low 2,191.86) and
its intraday lows enter the symbols' drawdowns; at other severities the bar's log distance from the close
is scaled by k with the moves. A symbol's first session in the replay (no previous close inside it) and
sessions without a recorded bar have none (null).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from scenarios_assets.core.models.scenario import ANNUALISATION, Skipped, portfolio_returns


@dataclass(frozen=True)
class Replay:
    """A replayed window: dates, symbols, scaled returns and prices, per-symbol coverage; for a projected
    event also the per-date flag of simulated dates and the projection's metadata.

    Attributes
    ----------
    dates : ndarray of shape (n_sessions,), datetime64[D]
    symbols : list of str
        The n_symbols replayed.
    returns : ndarray of shape (n_sessions, n_symbols), float64
        Simple daily returns; NaN where a symbol has no close.
    prices : ndarray of shape (n_sessions, n_symbols), float64
    coverage : dict
        Symbol -> fraction of the event's sessions with a close, rounded to 4 digits.
    projected : ndarray of shape (n_sessions,), bool, or None
        For a projected event, True on the simulated dates.
    metadata : dict
        The projection's metadata (empty for a plain replay).
    high, low : ndarray of shape (n_sessions, n_symbols), float32, or None
        The recorded bar, scaled like the closes; NaN without one; None when no symbol has a bar.
    """

    dates: np.ndarray
    symbols: list[str]
    returns: np.ndarray
    prices: np.ndarray
    coverage: dict[str, float]
    projected: np.ndarray | None = None
    metadata: dict = field(default_factory=dict)
    high: np.ndarray | None = None  # float32 (T, N) recorded bar, scaled; NaN without one; None: no bar at all
    low: np.ndarray | None = None

    @property
    def bars(self) -> dict[str, np.ndarray]:
        """The ``high`` / ``low`` series for ``Scenario.extra`` (empty without a recorded bar)."""
        return {} if self.high is None or self.low is None else {"high": self.high, "low": self.low}

    def scenario_paths(self) -> dict[str, Any]:
        """The path fields of a ``Scenario`` made from this replay (its recorded bars as ``extra``; the
        portfolio's intraday low is not derived from symbols' bars of different sessions).

        Returns
        -------
        dict
            ``dates``, ``symbols``, ``returns``, ``prices``, ``projected``, ``extra`` and ``portfolio_intraday``.
        """
        return {"dates": self.dates, "symbols": self.symbols, "returns": self.returns, "prices": self.prices,
                "projected": self.projected, "extra": self.bars, "portfolio_intraday": False}


def _coverage(window: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, first: pd.Timestamp,
              last: pd.Timestamp) -> pd.Series:
    """Per symbol, the share (fraction) of the event's sessions [start, end] with a close in ``window``. The
    event's business days beyond either end of the data (``first``..``last``) count as missing, so an event
    that runs past the data is not mistaken for a covered one."""
    known = window.index[(window.index >= start) & (window.index <= end)]
    one_day = pd.Timedelta(days=1)
    outside = len(pd.bdate_range(start, min(end, first - one_day))) + len(pd.bdate_range(max(start, last + one_day), end))
    return window.loc[known].notna().sum() / max(len(known) + outside, 1)


def replay_window(
    close: pd.DataFrame,
    start: pd.Timestamp,
    end: pd.Timestamp,
    scale: float,
    drift: pd.Series,
    *,
    context_days: int = 0,
    min_coverage: float = 0.95,
    symbols: list[str] | None = None,
    bars: tuple[pd.DataFrame, pd.DataFrame] | None = None,
) -> Replay | Skipped:
    """Replay the window [start, end] of recorded closes at a severity scale (module docstring).

    Log prices map to ``trend + k (log P - trend) - (k^2 - 1) v / 2 * s``: s sessions since a symbol's first
    close, trend the line through it at slope c = max(drift, the window's mean daily log return), v the
    variance of its daily log returns. Symbols need a close on ``min_coverage`` of the event's sessions
    (business days beyond the data count as missing); context stops where a kept symbol's data does.

    Parameters
    ----------
    close : DataFrame of float, sessions x symbols
        Recorded closes (NaN where a symbol has none), indexed by session.
    start, end : Timestamp
        The event's first and last day.
    scale : float
        k, the severity scale (0.5 moderate, 1.0 severe: the recorded closes, 1.5 extreme).
    drift : Series of float
        Each symbol's long-run drift, mean daily log return (missing: 0).
    context_days : int, default 0
        Sessions of context added each side of the window.
    min_coverage : float, default 0.95
        Fraction of the event's sessions a symbol needs a close on.
    symbols : list of str, optional
        Candidates (default: every column of ``close``).
    bars : tuple of (DataFrame, DataFrame), optional
        (high, low) panels aligned with ``close``, carried for the window's sessions, mapped like the closes.

    Returns
    -------
    Replay or Skipped
        ``prices`` and ``returns`` (simple daily; 0 on a symbol's first close in the block, NaN without
        one) of shape (n_sessions, n_kept), float64; or why not: the window is outside the data or holds
        under two of its sessions, no symbol of ``symbols`` is in the data or reaches ``min_coverage``.
    """
    selected = _select_window(close, start, end, context_days, min_coverage, symbols)
    if isinstance(selected, Skipped):
        return selected
    i0, i1, candidates, chosen, coverage = selected
    calendar = close.index
    window = close.iloc[i0 : i1 + 1][candidates]
    block = close.iloc[max(i0 - 1, 0) : i1 + 1][chosen].to_numpy(np.float64)
    has_anchor_row = i0 > 0
    log_p = np.log(block)
    steps = np.arange(len(block), dtype=np.float64)[:, None]
    valid = np.isfinite(log_p)
    anchor = np.argmax(valid, axis=0)  # first row with data, per symbol
    cols = np.arange(len(chosen))
    log_anchor = log_p[anchor, cols]
    mu = drift.reindex(chosen).fillna(0.0).to_numpy()
    last_valid = len(valid) - 1 - np.argmax(valid[::-1], axis=0)
    span = np.maximum(last_valid - anchor, 1)
    window_mean = (log_p[last_valid, cols] - log_anchor) / span  # the window's mean daily log return
    centre = np.maximum(mu, np.where(last_valid > anchor, window_mean, mu))  # see the module docstring
    trend = log_anchor + centre * (steps - anchor)
    with np.errstate(invalid="ignore"):
        variance = np.nan_to_num(np.nanvar(np.diff(log_p, axis=0), axis=0, ddof=1)) if len(log_p) > 2 else np.zeros(len(chosen))
    drag = (scale**2 - 1.0) * variance / 2.0  # keeps each symbol's arithmetic mean return (module docstring)

    def scaled_map(log_x: np.ndarray) -> np.ndarray:
        """The severity map of log prices of the block's rows (closes, and the bars of the same sessions)."""
        return trend + scale * (log_x - trend) - drag * (steps - anchor)

    prices = np.exp(scaled_map(log_p))
    returns = _simple_returns(prices, anchor, valid)
    high, low = _replay_bars(bars, calendar[max(i0 - 1, 0)], calendar[i1], chosen, scaled_map, anchor, has_anchor_row)
    if has_anchor_row:  # the session before the window only anchors the first day's return
        prices, returns = prices[1:], returns[1:]
    dates = window.index.to_numpy().astype("datetime64[D]")
    return Replay(dates, chosen, returns, prices, {s: round(float(coverage[s]), 4) for s in chosen}, high=high, low=low)


def _simple_returns(prices: np.ndarray, anchor: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Simple returns (T, N) of the block's ``prices``: 0 on each symbol's first close (row ``anchor``), NaN
    where it has none (``valid`` False)."""
    returns = np.full_like(prices, np.nan)
    returns[1:] = prices[1:] / prices[:-1] - 1.0
    returns[anchor, np.arange(prices.shape[1])] = 0.0
    returns[~valid] = np.nan
    return returns


def _select_window(close: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, context_days: int,
                   min_coverage: float, symbols: list[str] | None
                   ) -> tuple[int, int, list[str], list[str], pd.Series] | Skipped:
    """The rows [i0, i1] of ``close`` to replay, the candidate and chosen symbols and the candidates'
    coverage (:func:`replay_window`), or why there are none."""
    calendar = close.index
    first, last = calendar[0], calendar[-1]
    if end < first or start > last:
        return Skipped(f"window {start.date()}..{end.date()} lies outside the market data ({first.date()}..{last.date()})")
    i0 = max(int(calendar.searchsorted(start, "left")) - context_days, 0)
    i1 = min(int(calendar.searchsorted(end, "right")) - 1 + context_days, len(calendar) - 1)
    if i1 <= i0:
        return Skipped(f"window {start.date()}..{end.date()} holds fewer than two trading days of the market data")
    candidates = [s for s in (symbols or close.columns) if s in close.columns]
    if not candidates:
        return Skipped(f"none of its symbols ({', '.join(symbols or [])}) is in the market data")
    coverage = _coverage(close.iloc[i0 : i1 + 1][candidates], start, end, first, last)
    chosen = [s for s in candidates if coverage[s] >= min_coverage]
    if not chosen:
        best = coverage.idxmax()
        return Skipped(
            f"no symbol covers at least {min_coverage:.0%} of the window {start.date()}..{end.date()} "
            f"(best: {best} with {coverage[best]:.0%}; data {first.date()}..{last.date()})"
        )
    # Context sessions extend the window only as far as every chosen symbol has data.
    seen = close[chosen].notna().to_numpy()
    first_rows = np.argmax(seen, axis=0)
    last_rows = len(seen) - 1 - np.argmax(seen[::-1], axis=0)
    e0 = int(calendar.searchsorted(start, "left"))
    e1 = int(calendar.searchsorted(end, "right")) - 1
    i0 = max(i0, min(int(first_rows.max()), e0))
    i1 = min(i1, max(int(last_rows.min()), e1))
    return i0, i1, candidates, chosen, coverage


def _replay_bars(bars, first, last, chosen: list[str], scaled_map, anchor: np.ndarray, has_anchor_row: bool):
    """(high, low) float32 (T, N) of the replayed sessions [first, last] of the (high, low) panels ``bars``
    through the closes' ``scaled_map``; NaN on a symbol's first row (``anchor``: no previous close in the
    replay) and where there is no bar; (None, None) without any bar."""
    if bars is None or bars[1] is None:
        return None, None
    out = []
    for panel in bars:
        rows = panel.loc[first:last, chosen].to_numpy(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            values = np.exp(scaled_map(np.log(rows)))
        values[anchor, np.arange(len(chosen))] = np.nan
        out.append((values[1:] if has_anchor_row else values).astype(np.float32))
    return (out[0], out[1]) if np.isfinite(out[1]).any() else (None, None)


def market_bars(market) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The market data's bar panels for :func:`replay_window`.

    Parameters
    ----------
    market : MarketData
        Read for its ``high`` and ``low`` attributes (DataFrames aligned with ``close``).

    Returns
    -------
    tuple of (DataFrame, DataFrame) or None
        (high, low); None when the market data has no ``low``.
    """
    low = getattr(market, "low", None)
    return None if low is None else (market.high, low)


def bar_metadata(replay: Replay) -> dict:
    """The replay's ``bar_symbols`` metadata.

    Parameters
    ----------
    replay : Replay

    Returns
    -------
    dict
        ``{"bar_symbols": [...]}``: the symbols with a recorded low on at least one session of the replay
        (their ``high`` / ``low`` columns; the others have closes only).
    """
    if replay.low is None:
        return {"bar_symbols": []}
    has = np.isfinite(replay.low).any(axis=0)
    return {"bar_symbols": [s for s, h in zip(replay.symbols, has) if h]}


def portfolio_volatility(history_returns: pd.DataFrame, symbols: list[str]) -> float:
    """Long-run annualised volatility of the equal-weight, daily rebalanced portfolio of ``symbols`` (those
    with a return on each day, :func:`~scenarios_assets.core.models.scenario.portfolio_returns`).

    Parameters
    ----------
    history_returns : DataFrame of float, sessions x symbols
        Simple daily returns over the whole history (its first row, the NaN of the first difference, is
        dropped).
    symbols : list of str
        The portfolio's symbols.

    Returns
    -------
    float
        Sample standard deviation (ddof=1) of the portfolio's daily returns times ``sqrt(252)``, a fraction.
    """
    port = portfolio_returns(history_returns[symbols].to_numpy(np.float64)[1:])
    return float(np.std(port, ddof=1) * np.sqrt(ANNUALISATION))
