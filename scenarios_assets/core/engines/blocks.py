"""Block bootstrap of whole historical dates: block layouts and indices, block volatility, seasonal starts,
the pool of rows a severity draws from, and the block length.

Every symbol takes the same block indices, so a simulated day is a historical day of the whole universe
and the cross-sectional correlation is kept exactly; blocks keep the short-range dependence (volatility
clustering) of the history.

Sampling (``method``)
    circular_block  blocks of exactly ``block_size`` sessions (the last one cut at the horizon), starting
                    anywhere in the pool and wrapping from its last session to its first (circular block
                    bootstrap, Politis & Romano 1992).
    stationary      block lengths drawn from a geometric distribution with mean ``block_size`` (stationary
                    bootstrap, Politis & Romano 1994), wrapping the same way.
    An automatic block length is ``arch.bootstrap.optimal_block_length`` (Politis & White 2004, with the
    correction of Patton, Politis & White 2009) of the absolute daily returns of the equal-weight portfolio:
    volatility clustering is the dependence the blocks must keep (raw returns are nearly uncorrelated and
    would give blocks of one or two days).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import pandas as pd

from scenarios_assets.core.engines.calibration import CalibrationWindow, years_offset
from scenarios_assets.core.models.errors import ScenarioInputError
from scenarios_assets.core.models.scenario import portfolio_returns
from scenarios_assets.core.models.units import TRADING_DAYS_PER_YEAR

METHODS = ("circular_block", "stationary")
NEAREST_PHASE_STARTS = 10  # fallback candidates when no allowed start lies within the seasonal tolerance
DAYS_PER_YEAR = 365.25

BlockStarts: TypeAlias = np.ndarray | Callable[[int], np.ndarray] | None  # allowed starts: any, one set, per position


def block_layout(
    rng: np.random.Generator,
    horizon: int,
    block_size: int,
    method: str = "circular_block",
) -> tuple[np.ndarray, np.ndarray]:
    """Positions and lengths of the blocks filling ``horizon`` days; the last block is cut at the horizon.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws the geometric block lengths (``stationary``; ``circular_block`` draws nothing).
    horizon : int
        Path length T in sessions.
    block_size : int
        Block length (``circular_block``) or mean block length (``stationary``), sessions.
    method : {"circular_block", "stationary"}

    Returns
    -------
    positions : ndarray of shape (n_blocks,), int64
        Path position of each block's first day.
    lengths : ndarray of shape (n_blocks,), int64
        Each block's length; they sum to ``horizon``.

    Raises
    ------
    ScenarioInputError
        ``block_size`` < 1 or an unknown ``method``.

    References
    ----------
    Politis, D. & Romano, J. (1992). A circular block-resampling procedure for stationary data. In LePage, R. &
    Billard, L. (eds.), Exploring the Limits of Bootstrap, Wiley, 263-270.
    Politis, D. & Romano, J. (1994). The stationary bootstrap. Journal of the American Statistical Association
    89:1303-1313.
    """
    if block_size < 1:
        raise ScenarioInputError(f"bootstrap.block_size_days must be >= 1, got {block_size}")
    if method == "circular_block":
        lengths = np.full(math.ceil(horizon / block_size), block_size, dtype=np.int64)
    elif method == "stationary":
        parts, total = [], 0
        while total < horizon:  # one draw almost always suffices
            draw = rng.geometric(1.0 / block_size, size=math.ceil(2 * horizon / block_size) + 8)
            parts.append(draw)
            total += int(draw.sum())
        lengths = np.concatenate(parts)
        lengths = lengths[: int(np.searchsorted(np.cumsum(lengths), horizon)) + 1]
    else:
        raise ScenarioInputError(f"bootstrap.sampling_method '{method}' is not supported (use {', '.join(METHODS)})")
    ends = np.cumsum(lengths)
    lengths[-1] -= int(ends[-1] - horizon)
    positions = np.concatenate([[0], ends[:-1]])
    return positions, lengths


def draw_block_indices(
    rng: np.random.Generator,
    n_history: int,
    horizon: int,
    block_size: int,
    method: str = "circular_block",
    starts: BlockStarts = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The history row of every path day, for all symbols at once.

    A block starting at row ``s`` of length ``L`` takes rows ``s, s+1, ..., s+L-1`` modulo ``n_history``
    (wrapping around).

    Parameters
    ----------
    rng : numpy.random.Generator
        The path's generator (block lengths, then one uniform per block for its start).
    n_history : int
        Rows H of the pool.
    horizon : int
        Path length T in sessions.
    block_size : int
        Block length or mean block length, sessions.
    method : {"circular_block", "stationary"}
    starts : ndarray of int, callable or None
        Allowed block starts: None (any row), one array for every block, or a callable
        ``position -> array`` (seasonal or volatility-screened starts).

    Returns
    -------
    indices : ndarray of shape (T,), int64
        Pool row of each path day.
    chosen : ndarray of shape (n_blocks,), int64
        Each block's start row.
    lengths : ndarray of shape (n_blocks,), int64
        Each block's length.

    Raises
    ------
    ScenarioInputError
        As :func:`block_layout`.

    References
    ----------
    Politis & Romano (1992), circular block bootstrap; Politis & Romano (1994) JASA 89:1303-1313, stationary
    bootstrap (see :func:`block_layout`).
    """
    positions, lengths = block_layout(rng, horizon, block_size, method)
    u = rng.random(len(positions))
    if starts is None:
        chosen = np.minimum((u * n_history).astype(np.int64), n_history - 1)
    else:
        chosen = np.empty(len(positions), dtype=np.int64)
        for k, pos in enumerate(positions):
            allowed = starts(int(pos)) if callable(starts) else starts
            chosen[k] = allowed[min(int(u[k] * len(allowed)), len(allowed) - 1)]
    offsets = np.arange(horizon) - np.repeat(positions, lengths)
    indices = (np.repeat(chosen, lengths) + offsets) % n_history
    return indices, chosen, lengths


def block_volatility(portfolio: np.ndarray, block_size: int) -> np.ndarray:
    """Annualised volatility of the block of ``block_size`` sessions starting at each row (circular).

    Parameters
    ----------
    portfolio : ndarray of shape (H,), float64
        Daily simple returns of a portfolio (fractions).
    block_size : int
        Sessions per block.

    Returns
    -------
    ndarray of shape (H,), float64
        sqrt(252 x population variance) of each block's returns (annualised volatility, fraction).
    """
    n = len(portfolio)
    ext = np.concatenate([portfolio, portfolio[: block_size - 1]]) if block_size > 1 else portfolio
    c1 = np.concatenate([[0.0], np.cumsum(ext)])
    c2 = np.concatenate([[0.0], np.cumsum(ext**2)])
    s1 = c1[block_size : block_size + n] - c1[:n]
    s2 = c2[block_size : block_size + n] - c2[:n]
    var = np.maximum(s2 / block_size - (s1 / block_size) ** 2, 0.0)
    return np.sqrt(var * TRADING_DAYS_PER_YEAR)


def _phase(dates) -> np.ndarray:
    return pd.DatetimeIndex(dates).dayofyear.to_numpy().astype(np.float64)


class SeasonalStarts:
    """Allowed block starts per path position: those within the seasonal tolerance of the position's date.

    A start is allowed for a position when its day of the year lies within ``tolerance`` days (circular
    distance over a 365.25-day year) of the position's; where none does, the ``NEAREST_PHASE_STARTS``
    nearest in phase are allowed and the position is recorded in ``fallback_positions``.

    Parameters
    ----------
    pool_dates : DatetimeIndex of shape (H,)
        Dates of the pool rows.
    allowed : ndarray of int
        Allowed start rows (before the seasonal screen).
    path_dates : array of shape (T,), datetime64[D]
        Dates of the path positions.
    tolerance : float
        Calendar days.
    """

    def __init__(self, pool_dates, allowed: np.ndarray, path_dates, tolerance: float):
        self.allowed = allowed
        self.allowed_phase = _phase(pool_dates)[allowed]
        self.target_phase = _phase(path_dates)
        self.tolerance = float(tolerance)
        self.fallback_positions: set[int] = set()  # positions with no start within the tolerance
        self._cache: dict[int, np.ndarray] = {}

    def __call__(self, position: int) -> np.ndarray:
        """The allowed start rows (sorted) for path position ``position``."""
        if position not in self._cache:
            d = np.abs(self.allowed_phase - self.target_phase[position])
            d = np.minimum(d, DAYS_PER_YEAR - d)
            near = self.allowed[d <= self.tolerance]
            if near.size == 0:
                self.fallback_positions.add(int(position))
                near = np.sort(self.allowed[np.argsort(d, kind="stable")[:NEAREST_PHASE_STARTS]])
            self._cache[position] = near
        return self._cache[position]


# --- pools --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pool:
    """The rows a severity's blocks are drawn from.

    Attributes
    ----------
    dates : DatetimeIndex of shape (H,)
    returns : ndarray of shape (H, N), float32
        Daily simple returns (fractions; a missing return is 0).
    starts : ndarray of int
        Allowed block start rows.
    description : dict
        The pool as recorded in the set metadata.
    """

    dates: pd.DatetimeIndex
    returns: np.ndarray
    starts: np.ndarray
    description: dict


def simple_returns(log_returns: pd.DataFrame) -> np.ndarray:
    """Daily simple returns of a frame of daily log returns, a missing one as 0.

    Parameters
    ----------
    log_returns : DataFrame of shape (T, N), float64
        Daily log returns, NaN where missing.

    Returns
    -------
    ndarray of shape (T, N), float64
        exp(x) - 1 (fractions), NaN replaced by 0.
    """
    return np.nan_to_num(np.expm1(log_returns.to_numpy(np.float64)), nan=0.0)


def build_pool(close: pd.DataFrame, window: CalibrationWindow, block_size: int, *, vol_quantile: float | None,
               stress_history_years: float | None, min_quantile: float | None = None) -> Pool:
    """The rows a severity's blocks are drawn from, and the allowed block starts among them.

    Without ``vol_quantile``: the window's sessions, every row a start. With it: the stress pool, the longest
    span ending at the window's end over which every universe symbol has a return (at most
    ``stress_history_years``, never shorter than the window), where a block may start when the equal-weight
    portfolio's volatility over it (:func:`block_volatility`) is at least the ``vol_quantile`` quantile of
    all the pool's blocks, at least the median block of the window, and at least the ``min_quantile``
    quantile (when given; the next milder severity's, so severities stay ordered).

    Parameters
    ----------
    close : DataFrame of shape (n_dates, n_symbols), float
        Daily closes, dates x symbols.
    window : CalibrationWindow
        The history window and universe.
    block_size : int
        Sessions per block.
    vol_quantile : float or None
        Quantile of the block volatility a start needs (None: the history window, every block).
    stress_history_years : float or None
        Longest span of the stress pool, years (None or 0: all the data).
    min_quantile : float, optional
        A further floor quantile of the block volatility.

    Returns
    -------
    Pool
    """
    hist = simple_returns(window.log_returns)
    hist_vol = block_volatility(portfolio_returns(hist), block_size)
    if vol_quantile is None:
        return Pool(
            window.log_returns.index, hist.astype(np.float32), np.arange(len(hist)),
            {"pool": "history window", "pool_start": str(window.start.date()), "pool_end": str(window.end.date()),
             "pool_sessions": len(hist), "eligible_starts": len(hist)},
        )
    sub = close.loc[: window.end, window.symbols]
    with np.errstate(divide="ignore", invalid="ignore"):
        log_all = np.log(sub).diff()
    lo = sub.apply(pd.Series.first_valid_index).max()  # every symbol has a return after this session
    if stress_history_years:
        lo = max(lo, window.end - years_offset(stress_history_years))
    keep = ((log_all.index > lo) | (log_all.index >= window.start)) & (log_all.index <= window.end)
    log_ret = log_all.loc[keep]
    pool_returns = simple_returns(log_ret)
    vol = block_volatility(portfolio_returns(pool_returns), block_size)
    threshold = max(float(np.quantile(vol, vol_quantile)), float(np.median(hist_vol)))
    if min_quantile is not None:
        threshold = max(threshold, float(np.quantile(vol, min_quantile)))
    starts = np.flatnonzero(vol >= threshold - 1e-12)
    if starts.size == 0:
        starts = np.array([int(np.argmax(vol))])
    return Pool(
        log_ret.index, pool_returns.astype(np.float32), starts,
        {
            "pool": "stress pool (high-volatility blocks)",
            "pool_start": str(log_ret.index[0].date()),
            "pool_end": str(log_ret.index[-1].date()),
            "pool_sessions": len(pool_returns),
            "block_volatility_threshold": threshold,
            "block_volatility_quantile": vol_quantile,
            "eligible_starts": int(starts.size),
            "eligible_start_share": round(float(starts.size / len(vol)), 4),
        },
    )


def resolve_block_size(block_size_days: int | None, method: str, log_returns: pd.DataFrame,
                       horizon: int) -> tuple[int, str]:
    """The block length in sessions and the rule that chose it.

    Parameters
    ----------
    block_size_days : int or None
        The configured length; None: automatic.
    method : {"circular_block", "stationary"}
        Which estimate of the automatic length.
    log_returns : DataFrame of shape (T, N), float64
        Daily log returns of the history window (the automatic length is estimated on the absolute daily
        simple returns of their equal-weight portfolio).
    horizon : int
        Path length; the automatic length is clipped to [2, horizon].

    Returns
    -------
    size : int
    rule : str

    Raises
    ------
    ScenarioInputError
        A configured length below 1.

    References
    ----------
    Politis, D. & White, H. (2004). Automatic block-length selection for the dependent bootstrap. Econometric
    Reviews 23:53-70; Patton, A., Politis, D. & White, H. (2009). Correction. Econometric Reviews 28:372-375
    (as implemented by ``arch.bootstrap.optimal_block_length``).
    """
    if block_size_days is not None:
        if int(block_size_days) < 1:
            raise ScenarioInputError(f"bootstrap.block_size_days must be >= 1 or null, got {block_size_days}")
        return int(block_size_days), "configured"
    from arch.bootstrap import optimal_block_length

    port = portfolio_returns(simple_returns(log_returns))
    est = optimal_block_length(np.abs(port))
    column = "circular" if method == "circular_block" else "stationary"
    size = int(np.clip(round(float(est[column].iloc[0])), 2, int(horizon)))
    return size, f"auto (arch optimal_block_length, {column}, of |equal-weight portfolio returns|)"
