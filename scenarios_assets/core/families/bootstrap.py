"""Block-bootstrap scenarios: paths built from blocks of whole historical dates.

Every symbol takes the same block indices, so a simulated day is a historical day of the whole universe
and the cross-sectional correlation is kept exactly; blocks keep the short-range dependence
(volatility clustering) of the history.

History and universe
    The history window is the ``history_years`` (default 2) before the window end; the end follows the
    Monte Carlo rule (the last session on which at least ``min_symbols_share`` of the symbols have data;
    2022-12-28 on the bundled data). The universe is the symbols with a return on at least
    ``min_coverage`` (default 1.0: complete data) of the window's sessions; if a lower coverage is
    configured, a missing return is resampled as 0. Paths start at the window's end from each symbol's
    close on that date (``start_state`` in the set metadata), and their dates are the ``time_horizon_days``
    sessions of the exchange calendar ``data.trading_calendar`` (XNYS) after it, laid out on each symbol's
    own calendar where they differ (:mod:`scenarios_assets.core.data.session_layout`).

Sampling (``sampling_method``)
    circular_block  blocks of exactly ``block_size_days`` sessions (the last one cut at the horizon),
                    starting anywhere in the pool and wrapping from its last session to its first
                    (Politis-Romano circular block bootstrap).
    stationary      block lengths drawn from a geometric distribution with mean ``block_size_days``
                    (Politis-Romano stationary bootstrap), wrapping the same way.
    ``block_size_days: null`` takes the block length from ``arch.bootstrap.optimal_block_length`` (the
    estimate for the chosen method) of the absolute daily returns of the equal-weight portfolio over the
    history window: volatility clustering is the dependence the blocks must keep (raw returns are nearly
    uncorrelated and would give blocks of one or two days).
    ``preserve_seasonality``: a block may only start on a session whose day of the year lies within
    ``seasonality_tolerance_days`` (circular distance) of the calendar date of the path position it
    fills; if no allowed start is that close, it starts at one of the 10 allowed starts nearest in phase.

Severity (``BOOTSTRAP_SEVERITY``, the one table of calibration numbers)
    moderate  blocks start anywhere in the history window: the recent past as it was.
    severe    blocks start only where the equal-weight portfolio's volatility over the block is at
              least the 75th percentile of all blocks of the stress pool (and at least the median block
              of the history window, so severe is never calmer than moderate).
    extreme   the same at the 95th percentile of the stress pool (and at least the severe threshold):
              crisis periods only (on the bundled data, 2015-08, late 2018, March-April 2020, 2022).
    The stress pool is the longest span ending at the window end over which every universe symbol has
    data, at most ``stress_history_years``, and never shorter than the history window.

``correlation_stability`` is computed as in :mod:`monte_carlo`, against the correlation of the
history window's daily simple returns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scenarios_assets.core.data.exchange_calendar import calendar_name
from scenarios_assets.core.models.errors import ScenarioInputError
from scenarios_assets.core.families.monte_carlo import (
    CalibrationError,
    baseline_volatility,
    calibration_window,
    chunk_size,
    chunks_of,
    compound_prices,
    empty_set,
    SessionLayout,
    session_layout,
    simulated_dates,
    make_scenarios,
    metadata_window,
    paths_per_chunk_of,
    risk_metadata,
    scenario_indices,
    stability_metadata,
    stochastic_settings,
    _years_offset,
)
from scenarios_assets.core.models.scenario import ANNUALISATION, ChunkPlan, ScenarioSet, ScenarioStream, portfolio_returns
from scenarios_assets.core.models.severity import scenario_rng, scenario_seed
from scenarios_assets.core.library.validation import tail_reference

FAMILY = "bootstrap"
SCENARIO_TYPE = "BOOTSTRAP"
METHODS = ("circular_block", "stationary")
METHOD_LABELS = {"circular_block": "circular block bootstrap", "stationary": "stationary bootstrap"}
NEAREST_PHASE_STARTS = 10  # fallback candidates when no allowed start lies within the seasonal tolerance
DAYS_PER_YEAR = 365.25


@dataclass(frozen=True)
class BootstrapProfile:
    """Which blocks a severity may draw.

    pool: ``history`` (the history window) or ``stress`` (the stress pool, see the module docstring).
    block_vol_quantile: blocks qualify when their portfolio volatility is at least this quantile of all
        blocks of the pool (None: every block qualifies).
    """

    pool: str
    block_vol_quantile: float | None

    def as_dict(self) -> dict:
        return {"pool": self.pool, "block_vol_quantile": self.block_vol_quantile}


BOOTSTRAP_SEVERITY: dict[str, BootstrapProfile] = {
    "moderate": BootstrapProfile("history", None),  # the recent history window, every block
    "severe": BootstrapProfile("stress", 0.75),  # upper-quartile volatility blocks of the long history
    "extreme": BootstrapProfile("stress", 0.95),  # top 5 % volatility blocks: crisis periods only
}


# --- block indices ------------------------------------------------------------------------------------

def block_layout(
    rng: np.random.Generator,
    horizon: int,
    block_size: int,
    method: str = "circular_block",
) -> tuple[np.ndarray, np.ndarray]:
    """(positions, lengths) of the blocks filling ``horizon`` days; the last block is cut at the horizon."""
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
    starts=None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """History row of every path day, for all symbols at once: (indices, block starts, block lengths).

    ``starts``: allowed block starts -- None (any row of the history), one array for every block, or a
    callable ``position -> array`` (seasonal or volatility-screened starts). A block starting at row
    ``s`` of length ``L`` takes rows ``s, s+1, ..., s+L-1`` modulo ``n_history`` (wrapping around).
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
    """Annualised volatility of the block of ``block_size`` sessions starting at each row (circular)."""
    n = len(portfolio)
    ext = np.concatenate([portfolio, portfolio[: block_size - 1]]) if block_size > 1 else portfolio
    c1 = np.concatenate([[0.0], np.cumsum(ext)])
    c2 = np.concatenate([[0.0], np.cumsum(ext**2)])
    s1 = c1[block_size : block_size + n] - c1[:n]
    s2 = c2[block_size : block_size + n] - c2[:n]
    var = np.maximum(s2 / block_size - (s1 / block_size) ** 2, 0.0)
    return np.sqrt(var * ANNUALISATION)


def _phase(dates) -> np.ndarray:
    return pd.DatetimeIndex(dates).dayofyear.to_numpy().astype(np.float64)


class SeasonalStarts:
    """Allowed starts per path position: within the seasonal tolerance of the position's calendar date."""

    def __init__(self, pool_dates, allowed: np.ndarray, path_dates, tolerance: float):
        self.allowed = allowed
        self.allowed_phase = _phase(pool_dates)[allowed]
        self.target_phase = _phase(path_dates)
        self.tolerance = float(tolerance)
        self.fallback_positions: set[int] = set()  # positions with no start within the tolerance
        self._cache: dict[int, np.ndarray] = {}

    def __call__(self, position: int) -> np.ndarray:
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
    dates: pd.DatetimeIndex
    returns: np.ndarray  # (H, N) float32 simple returns (missing -> 0)
    starts: np.ndarray  # allowed block starts (rows)
    description: dict


def _simple(log_returns: pd.DataFrame) -> np.ndarray:
    return np.nan_to_num(np.expm1(log_returns.to_numpy(np.float64)), nan=0.0)


def build_pool(close: pd.DataFrame, window, cfg: dict, severity: str, block_size: int) -> Pool:
    """The rows a severity's blocks are drawn from, and the allowed block starts among them."""
    profile = BOOTSTRAP_SEVERITY[severity]
    hist = _simple(window.log_returns)
    hist_vol = block_volatility(portfolio_returns(hist), block_size)
    if profile.pool == "history":
        return Pool(
            window.log_returns.index, hist.astype(np.float32), np.arange(len(hist)),
            {"pool": "history window", "pool_start": str(window.start.date()), "pool_end": str(window.end.date()),
             "pool_sessions": len(hist), "eligible_starts": len(hist)},
        )
    sub = close.loc[: window.end, window.symbols]
    with np.errstate(divide="ignore", invalid="ignore"):
        log_all = np.log(sub).diff()
    lo = sub.apply(pd.Series.first_valid_index).max()  # every symbol has a return after this session
    if cfg["stress_history_years"]:
        lo = max(lo, window.end - _years_offset(cfg["stress_history_years"]))
    keep = ((log_all.index > lo) | (log_all.index >= window.start)) & (log_all.index <= window.end)
    log_ret = log_all.loc[keep]
    pool_returns = _simple(log_ret)
    vol = block_volatility(portfolio_returns(pool_returns), block_size)
    base_q = float(profile.block_vol_quantile or 0.0)  # set for every pool but "history" (returned above)
    threshold = max(float(np.quantile(vol, base_q)), float(np.median(hist_vol)))
    if severity == "extreme":  # never below the severe threshold
        severe_q = float(BOOTSTRAP_SEVERITY["severe"].block_vol_quantile or 0.0)
        threshold = max(threshold, float(np.quantile(vol, severe_q)))
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
            "block_volatility_quantile": base_q,
            "eligible_starts": int(starts.size),
            "eligible_start_share": round(float(starts.size / len(vol)), 4),
        },
    )


def resolve_block_size(cfg: dict, method: str, window) -> tuple[int, str]:
    value = cfg["block_size_days"]
    if value is not None:
        if int(value) < 1:
            raise ScenarioInputError(f"bootstrap.block_size_days must be >= 1 or null, got {value}")
        return int(value), "configured"
    from arch.bootstrap import optimal_block_length

    port = portfolio_returns(_simple(window.log_returns))
    est = optimal_block_length(np.abs(port))
    column = "circular" if method == "circular_block" else "stationary"
    size = int(np.clip(round(float(est[column].iloc[0])), 2, int(cfg["time_horizon_days"])))
    return size, f"auto (arch optimal_block_length, {column}, of |equal-weight portfolio returns|)"


def generate_bootstrap(ctx, indices: list[int] | None = None) -> ScenarioSet:
    """Block-bootstrap paths of ``ctx.severity`` materialised and validated (see :func:`stream_bootstrap`)."""
    from scenarios_assets.core.library.validation import collect

    return collect(stream_bootstrap(ctx, indices))


def _bootstrap_metadata(ctx, cfg: dict, window, pool: Pool, layout, block: tuple[int, str], n_scenarios: int,
                        baseline, history_simple: np.ndarray) -> dict:
    """The family metadata of a bootstrap set: model, block rule, pool, window, severity profile and the
    history's tail reference (``block``: the block size in sessions and the rule that chose it)."""
    block_size, block_rule = block
    severity, method = ctx.severity, cfg["sampling_method"]
    label, horizon = METHOD_LABELS[method], int(cfg["time_horizon_days"])
    profile = BOOTSTRAP_SEVERITY[severity]
    return {
        "model": label,
        "num_scenarios": n_scenarios,
        "time_horizon_days": horizon,
        "start_date": str(layout.dates[0]),
        **layout.describe(),
        "start_state": window.start_state(ctx.market.dates[-1], layout.dates[0]),
        "confidence_levels": [float(c) for c in cfg["confidence_levels"]],
        "sampling_method": method,
        "block_size_days": block_size,
        "block_size_rule": block_rule,
        "preserve_seasonality": bool(cfg["preserve_seasonality"]),
        "seasonality_tolerance_days": cfg["seasonality_tolerance_days"],
        "calibration": (
            f"{label} of whole dates, blocks of {block_size} sessions ({block_rule}) from "
            f"{pool.description['pool']} {pool.description['pool_start']}..{pool.description['pool_end']} "
            f"of {len(window.symbols)} symbols (data {ctx.market.data_version}); severity {severity}: {profile.as_dict()}"
        ),
        "calibration_window": window.describe(),
        "last_close_date_by_symbol": window.last_close_date,
        "pool": pool.description,
        "severity_profile": profile.as_dict(),
        "baseline_annualised_volatility": baseline,
        "tail_reference": tail_reference(
            history_simple, window=horizon, source=f"daily simple returns of the history window {metadata_window(window)}"
        ),
    }


def stream_bootstrap(ctx, indices: list[int] | None = None) -> ScenarioStream:
    """Block-bootstrap paths of ``ctx.severity``: scenarios ``indices`` (default 0..num_scenarios-1), drawn
    lazily one chunk of paths at a time from a pool built once."""
    cfg, disabled = stochastic_settings(ctx, FAMILY)
    if disabled is not None:
        return disabled.stream()
    severity = ctx.severity
    method = cfg["sampling_method"]
    if method not in METHODS:
        raise ScenarioInputError(f"bootstrap.sampling_method '{method}' is not supported (use {', '.join(METHODS)})")
    idx = scenario_indices(cfg, indices)
    horizon = int(cfg["time_horizon_days"])
    if horizon < 2:
        raise ScenarioInputError(f"bootstrap.time_horizon_days must be >= 2, got {horizon}")
    levels = [float(c) for c in cfg["confidence_levels"]]
    try:
        window = calibration_window(
            ctx.market.close,
            years=cfg["history_years"],
            min_coverage=float(cfg["min_coverage"]),
            min_symbols_share=float(cfg["min_symbols_share"]),
            end=cfg["calibration_end"],
            min_sessions=20,
        )
    except CalibrationError as exc:
        return empty_set(FAMILY, ctx, f"no history to bootstrap from: {exc}").stream()
    block_size, block_rule = resolve_block_size(cfg, method, window)
    pool = build_pool(ctx.market.close, window, cfg, severity, block_size)
    calendar = calendar_name(ctx.config)
    dates = simulated_dates(window.end, horizon, calendar)
    layout = session_layout(ctx, window.end, dates, list(window.symbols))
    seasonal = None
    starts: np.ndarray | SeasonalStarts | None = None if len(pool.starts) == len(pool.returns) else pool.starts
    if cfg["preserve_seasonality"]:
        seasonal = SeasonalStarts(pool.dates, pool.starts, dates, cfg["seasonality_tolerance_days"])
        starts = seasonal
    history_simple = _simple(window.log_returns)
    baseline = baseline_volatility(history_simple)
    label = METHOD_LABELS[method]
    calibration = {
        "data_version": ctx.market.data_version,
        "window": f"{window.start.date()}..{window.end.date()}",
        "pool": f"{pool.description['pool_start']}..{pool.description['pool_end']}",
        "block_size_days": block_size,
        "sampling_method": method,
    }
    fallback_positions: set[int] = set()
    plan = ChunkPlan(
        BootstrapChunks(pool.returns, pool.dates, window.last_close, ctx.seed, severity, horizon, block_size, method,
                        starts, dates, list(window.symbols), calibration, label, baseline, layout),
        bootstrap_chunk, chunks_of(idx, chunk_size(horizon, len(window.symbols), paths_per_chunk_of(ctx))),
        fallback_positions.update,
    )

    metadata = _bootstrap_metadata(ctx, cfg, window, pool, layout, (block_size, block_rule), len(idx), baseline,
                                   history_simple)

    def finish(stats) -> dict:
        return {
            "seasonal_fallback_positions": len(fallback_positions),  # counted while drawing, over every chunk
            **risk_metadata(stats, levels),
            **stability_metadata(history_simple, stats),
        }

    return ScenarioStream(FAMILY, severity, ctx.market.data_version, ctx.config_hash, plan.chunks(), metadata=metadata,
                          finish=finish, correlation_paths=len(idx), size=len(idx), plan=plan)


@dataclass(frozen=True)
class BootstrapChunks:
    """What every chunk of one bootstrap set reads, built once (the model a cluster broadcasts to its workers):
    the pool of whole historical dates (``returns`` (H, N) float32 simple returns, ``pool_dates`` (H,)), the
    last closes (N,), base seed and severity, horizon, block size and method, the allowed block starts (array,
    :class:`SeasonalStarts` or None), the path dates (T,), symbols, calibration record, label, baseline and
    the session layout of the symbols' calendars."""

    returns: np.ndarray
    pool_dates: pd.DatetimeIndex
    last_close: np.ndarray
    seed: int
    severity: str
    horizon: int
    block_size: int
    method: str
    starts: object
    dates: np.ndarray
    symbols: list[str]
    calibration: dict
    label: str
    baseline: float
    layout: SessionLayout | None = None  # core.data.session_layout: each symbol's rows on its own calendar


def bootstrap_chunk(model: BootstrapChunks, part: list[int]) -> tuple[list, set[int]]:
    """The scenarios ``part`` of a bootstrap set, and the path positions whose seasonal starts fell back to
    the nearest phases (their union over the chunks is the set's count). Path i's blocks come from
    ``scenario_seed(seed, family, severity, i)`` alone, so any chunking gives the same paths."""
    seeds = [scenario_seed(model.seed, FAMILY, model.severity, i) for i in part]
    rows = np.empty((len(part), model.horizon), dtype=np.int64)
    meta = []
    for j, (i, seed) in enumerate(zip(part, seeds)):
        rows[j], chosen, lengths = draw_block_indices(scenario_rng(seed), len(model.returns), model.horizon,
                                                      model.block_size, model.method, model.starts)
        meta.append({
            "model": model.label,
            "scenario_index": i,
            "calibration_source": model.calibration,
            "block_starts": [str(d.date()) for d in model.pool_dates[chosen]],
            **({"block_lengths": lengths.tolist()} if model.method == "stationary" else {}),
        })
    simple = model.returns[rows]  # (S, T, N): the same rows for every symbol
    prices = compound_prices(simple, model.last_close)
    scenarios = make_scenarios(
        simple, prices, family=FAMILY, scenario_type=SCENARIO_TYPE, severity=model.severity, indices=part,
        seeds=seeds, key_prefix=model.method, name_prefix=f"Block bootstrap {model.method} ({model.severity})",
        dates=model.dates, symbols=model.symbols, metadata=meta, baseline_vol=model.baseline,
        layout=model.layout, last_close=model.last_close,
    )
    fallbacks = set(model.starts.fallback_positions) if isinstance(model.starts, SeasonalStarts) else set()
    return scenarios, fallbacks
