"""Stress shocks: the deterministic part of a stress path (the engine of ``core.families.stress``).

A stress path is built in log space from the anchor close, ``log P_i(t) = log P_i(anchor) + f(t) S_i``
(plus the noise of :mod:`scenarios_assets.core.engines.stress_noise`): ``f(t)`` is a time profile of knots
[session, fraction] interpolated linearly (:func:`profile_path`), ``S_i`` the symbol's full log shock, a
beta times the market's log shock plus sector shocks. This module holds the severity scaling of the
reference figures (:func:`scaled`), the profiles (daily, liquidity, the intraday minute path of a flash
crash and its daily bar) and the beta estimate of a symbol reference/sectors.yaml has no beta for.

The figures themselves and their sources are in ``reference/stress_tests.yaml``; the per-quantity scaling
rules are in its header.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from scenarios_assets.core.models.errors import ScenarioInputError
from scenarios_assets.core.models.severity import REPLAY_SCALE


def scaled(value: float | Mapping[str, Any], severity: str, rule: str, base: float = 0.0) -> float:
    """The value of a ``severe``-anchored reference figure at ``severity``.

    With k = ``REPLAY_SCALE[severity]`` (0.5, 1.0, 1.5), by ``rule``:

    * ``log_return`` (a simple return x): ``exp(k log(1 + x)) - 1``;
    * ``multiplier`` (m): ``1 + k (m - 1)``;
    * ``log_multiplier`` (m): ``exp(k log m)``;
    * ``toward`` (a level v measured from ``base``): ``base + k (v - base)``;
    * ``linear`` (a change x): ``k x``.

    Parameters
    ----------
    value : float or mapping
        The figure at ``severe``, or a mapping severity -> figure, used as it is.
    severity : str
        ``moderate``, ``severe`` or ``extreme``.
    rule : str
        One of the rules above (the file's header says which quantity takes which).
    base : float, default 0.0
        The level the ``toward`` rule scales from (e.g. the VIX or the baseline correlation at the anchor).

    Returns
    -------
    float

    Raises
    ------
    ValueError
        Unknown ``rule``.
    """
    if isinstance(value, Mapping):
        return float(value[severity])
    k = REPLAY_SCALE[severity]
    value = float(value)
    if rule == "log_return":  # simple return: scale its log
        return float(np.expm1(k * np.log1p(value)))
    if rule == "multiplier":  # 1 + k (m - 1)
        return 1.0 + k * (value - 1.0)
    if rule == "log_multiplier":  # exp(k log m)
        return float(np.exp(k * np.log(value)))
    if rule == "toward":  # from a base level measured in the data
        return base + k * (value - base)
    if rule == "linear":
        return k * value
    raise ValueError(f"unknown scaling rule {rule}")


def intraday_depth(intraday: Mapping[str, Any], severity: str) -> float:
    """The intraday fall of a flash crash at ``severity``, a positive fraction; its log scales like an equity
    shock (:func:`scaled`, ``log_return``) unless ``intraday["depth"]`` is given per severity.

    Parameters
    ----------
    intraday : mapping
        The definition's ``intraday`` block (``depth``: fraction at ``severe``, or per severity).
    severity : str

    Returns
    -------
    float
    """
    depth = intraday["depth"]
    if isinstance(depth, Mapping):
        return float(depth[severity])
    return -scaled(-float(depth), severity, "log_return")


# --- time profiles --------------------------------------------------------------------------------

def profile_path(knots: tuple[tuple[float, float], ...], horizon: int) -> np.ndarray:
    """The fraction of the full shock reached at each session.

    Parameters
    ----------
    knots : tuple of (session, fraction)
        Increasing sessions, from ``(0, 0)``.
    horizon : int
        Sessions of the path.

    Returns
    -------
    ndarray of shape (horizon,), float64
        The fraction at sessions 1..``horizon``: linear between knots, flat after the last.
    """
    days, fractions = zip(*knots)
    return np.interp(np.arange(1, horizon + 1, dtype=np.float64), days, fractions)


def liquidity_path(multiplier: float, days: int, recovery_days: int, horizon: int) -> np.ndarray:
    """A volume or bid-ask spread multiplier held for ``days`` sessions, then back to 1.

    Parameters
    ----------
    multiplier : float
        The multiplier held (e.g. 0.4 for volume, 3.0 for spreads).
    days : int
        Sessions it is held, from session 1.
    recovery_days : int
        Sessions over which it returns to 1, log-linearly.
    horizon : int

    Returns
    -------
    ndarray of shape (horizon,), float64
        The multiplier at sessions 1..``horizon``.
    """
    t = np.arange(1, horizon + 1, dtype=np.float64)
    weight = np.clip(1.0 - (t - days) / max(recovery_days, 1), 0.0, 1.0)
    return np.exp(np.log(multiplier) * weight)


def intraday_path(
    depth: float,
    start_minute: int,
    trough_minute: int,
    recovery_by_close: float,
    half_life: float,
    minutes: int = 390,
) -> np.ndarray:
    """Level of a beta-1 symbol relative to the previous close at minutes 0..``minutes`` of the crash session.

    Open at the previous close, flat until ``start_minute``, log-linear fall of ``depth`` to
    ``trough_minute``, then an exponential rebound (half-life ``half_life`` minutes) normalised to reach
    the close, which keeps ``1 - recovery_by_close`` of the log fall.

    Parameters
    ----------
    depth : float
        The fall to the trough, a positive fraction (:func:`intraday_depth`).
    start_minute, trough_minute : int
        Minutes after the open (09:30 ET = minute 0).
    recovery_by_close : float
        Fraction of the log fall recovered by the close.
    half_life : float
        Half-life of the rebound, in minutes.
    minutes : int, default 390
        Minutes of the session.

    Returns
    -------
    ndarray of shape (minutes + 1,), float64
        Price relative to the previous close.

    Raises
    ------
    ScenarioInputError
        Unless ``0 <= start_minute < trough_minute < minutes``.
    """
    if not 0 <= start_minute < trough_minute < minutes:
        raise ScenarioInputError(f"intraday path: need 0 <= start_minute < trough_minute < {minutes}")
    m = np.arange(minutes + 1, dtype=np.float64)
    trough = np.log1p(-depth)
    close = (1.0 - recovery_by_close) * trough
    falling = np.clip((m - start_minute) / (trough_minute - start_minute), 0.0, 1.0) * trough
    rate = np.log(2.0) / half_life
    span = minutes - trough_minute
    decay = (np.exp(-rate * (m - trough_minute)) - np.exp(-rate * span)) / (1.0 - np.exp(-rate * span))
    rebound = close + (trough - close) * decay
    return np.exp(np.where(m <= trough_minute, falling, rebound))


def intraday_bar(path: np.ndarray, log_path: np.ndarray, anchor_prices: np.ndarray) -> dict[str, np.ndarray]:
    """The ``high`` and ``low`` prices of a flash crash: session 1 from the minute path, scaled per symbol.

    Each symbol's log scale is its session-1 log move divided by the path's close log move; its low is the
    lower of its session-1 close and the scaled path's minimum, its high the higher of the open (the
    previous close), its session-1 close and the scaled path's maximum.

    Parameters
    ----------
    path : ndarray of shape (n_minutes + 1,), float64
        :func:`intraday_path` (a beta-1 symbol's level relative to the previous close).
    log_path : ndarray of shape (n_sessions, n_symbols), float64
        Cumulative log move of each symbol from its anchor close.
    anchor_prices : ndarray of shape (n_symbols,), float64
        Closes at the anchor.

    Returns
    -------
    dict
        ``high`` and ``low``: ndarray of shape (n_sessions, n_symbols), float32 prices; NaN after session 1
        (no bar range is modelled there).
    """
    close_move = float(np.log(path[-1]))
    day1 = log_path[0]  # (N,) session-1 log move of each symbol from its anchor close
    scale = day1 / close_move if close_move != 0 else np.zeros_like(day1)
    low1 = np.minimum(day1, scale * np.log(path.min()))
    high1 = np.maximum(np.maximum(day1, 0.0), scale * np.log(path.max()))  # the open is the previous close
    high = np.full(log_path.shape, np.nan, dtype=np.float32)
    low = np.full(log_path.shape, np.nan, dtype=np.float32)
    high[0] = anchor_prices * np.exp(high1)
    low[0] = anchor_prices * np.exp(low1)
    return {"high": high, "low": low}


def estimate_beta(returns: pd.Series, reference: pd.Series, window: int, min_days: int) -> float | None:
    """OLS beta of a symbol's daily log returns on the reference index's, over their last common sessions.

    Parameters
    ----------
    returns : Series of float
        The symbol's daily log returns, indexed by session.
    reference : Series of float
        The reference index's daily log returns, indexed by session.
    window : int
        Sessions used (the last ``window`` with both returns).
    min_days : int
        Fewest common sessions for an estimate.

    Returns
    -------
    float or None
        ``cov(symbol, reference) / var(reference)`` rounded to 2 decimals; None with fewer than
        ``min_days`` common sessions.
    """
    both = pd.concat([returns, reference], axis=1, join="inner").dropna().iloc[-window:]
    if len(both) < min_days:
        return None
    x, y = both.iloc[:, 1].to_numpy(), both.iloc[:, 0].to_numpy()
    return round(float(np.cov(y, x)[0, 1] / np.var(x, ddof=1)), 2)
