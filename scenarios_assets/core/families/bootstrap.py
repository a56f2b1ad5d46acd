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

Sampling (``sampling_method``; the block engine is :mod:`scenarios_assets.core.engines.blocks`)
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

``correlation_stability`` is computed as for Monte Carlo (:mod:`scenarios_assets.core.engines.risk`), against the
correlation of the history window's daily simple returns.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scenarios_assets.core.data.exchange_calendar import calendar_name
from scenarios_assets.core.data.session_layout import SessionLayout
from scenarios_assets.core.engines.blocks import (
    METHODS,
    BlockStarts,
    Pool,
    SeasonalStarts,
    build_pool,
    draw_block_indices,
    resolve_block_size,
    simple_returns,
)
from scenarios_assets.core.engines.calibration import CalibrationWindow, calibration_window
from scenarios_assets.core.engines.risk import baseline_volatility
from scenarios_assets.core.engines.simulation import compound_prices
from scenarios_assets.core.engines.tails import tail_reference
from scenarios_assets.core.families.context import GenerationContext
from scenarios_assets.core.families.stochastic import (
    chunk_size,
    chunks_of,
    disabled_set,
    empty_set,
    make_scenarios,
    metadata_window,
    paths_per_chunk_of,
    risk_metadata,
    scenario_indices,
    session_layout,
    simulated_dates,
    stability_metadata,
)
from scenarios_assets.core.models.config import BootstrapConfig
from scenarios_assets.core.models.errors import CalibrationError, ScenarioInputError
from scenarios_assets.core.models.scenario import ChunkPlan, Scenario, ScenarioStream
from scenarios_assets.core.models.severity import scenario_rng, scenario_seed

FAMILY = "bootstrap"
SCENARIO_TYPE = "BOOTSTRAP"
METHOD_LABELS = {"circular_block": "circular block bootstrap", "stationary": "stationary bootstrap"}
HISTORY_MIN_SESSIONS = 20


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
        """The profile as recorded in the set metadata (``severity_profile``).

        Returns
        -------
        dict
            ``pool`` and ``block_vol_quantile``.
        """
        return {"pool": self.pool, "block_vol_quantile": self.block_vol_quantile}


BOOTSTRAP_SEVERITY: dict[str, BootstrapProfile] = {
    "moderate": BootstrapProfile("history", None),  # the recent history window, every block
    "severe": BootstrapProfile("stress", 0.75),  # upper-quartile volatility blocks of the long history
    "extreme": BootstrapProfile("stress", 0.95),  # top 5 % volatility blocks: crisis periods only
}


def severity_pool(close: pd.DataFrame, window: CalibrationWindow, cfg: BootstrapConfig, severity: str,
                  block_size: int) -> Pool:
    """The pool of ``severity`` (``BOOTSTRAP_SEVERITY``): the history window, or the stress pool's blocks at or
    above the profile's volatility quantile (extreme: never below the severe threshold).

    Parameters
    ----------
    close : DataFrame of shape (n_dates, n_symbols), float
        Daily closes of the market data, dates x symbols (the stress pool reaches before the window).
    window : CalibrationWindow
        The history window and universe.
    cfg : BootstrapConfig
        Reads ``stress_history_years`` (the stress pool's longest span, years).
    severity : {"moderate", "severe", "extreme"}
        Selects the :class:`BootstrapProfile` of ``BOOTSTRAP_SEVERITY``.
    block_size : int
        Sessions per block (the span of the block volatility).

    Returns
    -------
    Pool
        The pool's rows (daily simple returns, (H, N) float32), their dates and the allowed block starts
        (:func:`~scenarios_assets.core.engines.blocks.build_pool`).
    """
    profile = BOOTSTRAP_SEVERITY[severity]
    if profile.pool == "history":
        return build_pool(close, window, block_size, vol_quantile=None, stress_history_years=cfg.stress_history_years)
    floor = float(BOOTSTRAP_SEVERITY["severe"].block_vol_quantile or 0.0) if severity == "extreme" else None
    return build_pool(close, window, block_size, vol_quantile=float(profile.block_vol_quantile or 0.0),
                      stress_history_years=cfg.stress_history_years, min_quantile=floor)


def _bootstrap_metadata(ctx: GenerationContext, cfg: BootstrapConfig, window: CalibrationWindow, pool: Pool,
                        layout: SessionLayout, block: tuple[int, str], n_scenarios: int, baseline: float,
                        history_simple: np.ndarray) -> dict:
    """The family metadata of a bootstrap set: model, block rule, pool, window, severity profile and the
    history's tail reference (``block``: the block size in sessions and the rule that chose it)."""
    block_size, block_rule = block
    severity, method = ctx.severity, cfg.sampling_method
    label, horizon = METHOD_LABELS[method], int(cfg.time_horizon_days)
    profile = BOOTSTRAP_SEVERITY[severity]
    return {
        "model": label,
        "num_scenarios": n_scenarios,
        "time_horizon_days": horizon,
        "start_date": str(layout.dates[0]),
        **layout.describe(),
        "start_state": window.start_state(ctx.market.dates[-1], layout.dates[0]),
        "confidence_levels": [float(c) for c in cfg.confidence_levels],
        "sampling_method": method,
        "block_size_days": block_size,
        "block_size_rule": block_rule,
        "preserve_seasonality": bool(cfg.preserve_seasonality),
        "seasonality_tolerance_days": cfg.seasonality_tolerance_days,
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


def _history_window(ctx: GenerationContext, cfg: BootstrapConfig) -> CalibrationWindow:
    """The history window and universe (the Monte Carlo rule with ``history_years``); CalibrationError if none."""
    return calibration_window(
        ctx.market.close,
        years=cfg.history_years,
        min_coverage=float(cfg.min_coverage),
        min_symbols_share=float(cfg.min_symbols_share),
        end=cfg.calibration_end,
        min_sessions=HISTORY_MIN_SESSIONS,
    )


def stream_bootstrap(ctx: GenerationContext, indices: Iterable[int] | None = None) -> ScenarioStream:
    """Block-bootstrap paths of ``ctx.severity``: scenarios ``indices`` (default 0..num_scenarios-1), drawn
    lazily one chunk of paths at a time from a pool built once.

    A history window the data cannot supply (:class:`~scenarios_assets.core.models.errors.CalibrationError`)
    gives an empty stream whose ``skipped`` entry says why; a disabled family an empty stream with metadata
    ``{"disabled": True}``.

    Parameters
    ----------
    ctx : GenerationContext
        The market data, the config (``generation.stochastic.bootstrap``, ``performance``,
        ``data.trading_calendar``), the seed and the severity.
    indices : iterable of int, optional
        The scenario indices to generate; None: 0 .. ``num_scenarios`` - 1.

    Returns
    -------
    ScenarioStream
        The scenarios in chunks (``plan`` says how they are made); ``finish`` adds
        ``seasonal_fallback_positions``, VaR/CVaR, the medians and ``correlation_stability`` to the metadata.

    Raises
    ------
    ScenarioInputError
        An unknown severity, an unsupported ``sampling_method``, a negative ``num_scenarios``,
        ``time_horizon_days`` below 2, ``block_size_days`` below 1 or an unknown calendar.

    References
    ----------
    Politis, D. & Romano, J. (1992). A circular block-resampling procedure for stationary data. In LePage, R. &
    Billard, L. (eds.), Exploring the Limits of Bootstrap, Wiley, 263-270.
    Politis, D. & Romano, J. (1994). The stationary bootstrap. Journal of the American Statistical Association
    89:1303-1313.
    Politis, D. & White, H. (2004). Econometric Reviews 23:53-70, and Patton, A., Politis, D. & White, H.
    (2009). Econometric Reviews 28:372-375 (the automatic block length, ``block_size_days: null``).
    Rockafellar, R. T. & Uryasev, S. (2000). Journal of Risk 2(3):21-41 (CVaR).
    """
    cfg = ctx.settings.generation.stochastic.bootstrap
    disabled = disabled_set(ctx, FAMILY, cfg.enabled)
    if disabled is not None:
        return disabled.stream()
    severity = ctx.severity
    method = cfg.sampling_method
    if method not in METHODS:
        raise ScenarioInputError(f"bootstrap.sampling_method '{method}' is not supported (use {', '.join(METHODS)})")
    idx = scenario_indices(cfg.num_scenarios, indices)
    horizon = int(cfg.time_horizon_days)
    if horizon < 2:
        raise ScenarioInputError(f"bootstrap.time_horizon_days must be >= 2, got {horizon}")
    levels = [float(c) for c in cfg.confidence_levels]
    try:
        window = _history_window(ctx, cfg)
    except CalibrationError as exc:
        return empty_set(FAMILY, ctx, f"no history to bootstrap from: {exc}").stream()
    block_size, block_rule = resolve_block_size(cfg.block_size_days, method, window.log_returns, horizon)
    pool = severity_pool(ctx.market.close, window, cfg, severity, block_size)
    dates = simulated_dates(window.end, horizon, calendar_name(ctx.config))
    layout = session_layout(ctx, window.end, dates, list(window.symbols))
    starts: BlockStarts = None if len(pool.starts) == len(pool.returns) else pool.starts
    if cfg.preserve_seasonality:
        starts = SeasonalStarts(pool.dates, pool.starts, dates, cfg.seasonality_tolerance_days)
    history_simple = simple_returns(window.log_returns)
    baseline = baseline_volatility(history_simple)
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
                        starts, dates, list(window.symbols), calibration, METHOD_LABELS[method], baseline, layout),
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
    starts: BlockStarts
    dates: np.ndarray
    symbols: list[str]
    calibration: dict
    label: str
    baseline: float
    layout: SessionLayout | None = None  # core.data.session_layout: each symbol's rows on its own calendar


def bootstrap_chunk(model: BootstrapChunks, part: list[int]) -> tuple[list[Scenario], set[int]]:
    """The scenarios ``part`` of a bootstrap set, and the path positions whose seasonal starts fell back to
    the nearest phases (their union over the chunks is the set's count). Path i's blocks come from
    ``scenario_seed(seed, family, severity, i)`` alone, so any chunking gives the same paths.

    Parameters
    ----------
    model : BootstrapChunks
        What every chunk of the set reads (the pool, last closes, seed, severity, horizon, block rule, dates).
    part : list of int
        The scenario indices of this chunk (S of them).

    Returns
    -------
    scenarios : list of Scenario
        One per index of ``part``, in order: daily simple returns (fractions, whole pool dates) and prices,
        (T, N) float32 views of the chunk's (S, T, N) arrays (laid out on the symbols' own sessions with a
        non-identity layout); the metadata records each block's start date (and length, ``stationary``).
    fallback_positions : set of int
        The path positions whose seasonal starts have fallen back to the nearest phases so far (those
        :class:`~scenarios_assets.core.engines.blocks.SeasonalStarts` has recorded in this process); empty
        without ``preserve_seasonality``.

    Raises
    ------
    ScenarioInputError
        ``block_size`` below 1 or an unknown ``method``
        (:func:`~scenarios_assets.core.engines.blocks.draw_block_indices`).
    """
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
