"""Monte Carlo scenarios: GJR-GARCH-t (or GARCH-t), GBM and filtered historical simulation with correlated
innovations.

The numerics are engines: the calibration window, severity profiles, variance targeting and drift
(:mod:`scenarios_assets.core.engines.calibration`), the GARCH fits (:mod:`~scenarios_assets.core.engines.garch`),
correlation (:mod:`~scenarios_assets.core.engines.correlation`), the simulation and its guards
(:mod:`~scenarios_assets.core.engines.simulation`) and the risk figures (:mod:`~scenarios_assets.core.engines.risk`).
This module turns ``generation.stochastic.monte_carlo`` into a stream of scenario chunks.

Paths: start state and dates
    Every path starts at the calibration window's end with each symbol's close on that date (its last close
    on or before it when it has none that day), and its days are the ``time_horizon_days`` sessions of the
    exchange calendar ``data.trading_calendar`` (XNYS) after it (:mod:`scenarios_assets.core.data.exchange_calendar`);
    a symbol on another calendar (``data.symbol_calendars``, a seven-day symbol: '24/7') has rows on its own
    sessions (:mod:`scenarios_assets.core.data.session_layout`).
    The cross-section is the one the model was calibrated on: SPX and NVDA, which run to 2025 in the
    bundled data, start from their 2022-12-28 closes like the other 20 symbols, and the paths are dated
    2022-12-29 .. 2023-12-29 (``start_state`` in the set metadata says so). The window's rule, end date and
    excluded symbols are reported in the set metadata; the set metadata also counts the reference index's
    days at the circuit breaker.

``correlation_stability`` (set metadata)
    1 - mean |C_sim - C_hist| over the off-diagonal pairs, where C_hist is the correlation of the
    universe's daily simple returns over the calibration window and C_sim the correlation of the
    simulated daily simple returns pooled over all scenarios and days (a deterministic stride subsample
    of at most 10,000 scenario-days). 1 = identical structure; 0.9 = correlations off by 0.1 on average.

Reproducibility
    Scenario ``i`` draws everything from ``scenario_rng(scenario_seed(seed, family, severity, i))``; all
    computation across scenarios is elementwise or per scenario, so any subset, order or chunking of
    indices gives bit-identical paths.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from scenarios_assets.core.data.exchange_calendar import calendar_name
from scenarios_assets.core.data.session_layout import SessionLayout
from scenarios_assets.core.engines.calibration import (
    STRESS_PROFILES,
    CalibrationWindow,
    calibrate,
    calibration_window,
)
from scenarios_assets.core.engines.garch import MIN_FIT_OBSERVATIONS
from scenarios_assets.core.engines.risk import baseline_volatility
from scenarios_assets.core.engines.simulation import PathModel, returns_and_prices, simulate_log_returns
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
    workers_of,
)
from scenarios_assets.core.models.config import MonteCarloConfig
from scenarios_assets.core.models.errors import CalibrationError, ScenarioInputError
from scenarios_assets.core.models.scenario import ChunkPlan, Scenario, ScenarioStream
from scenarios_assets.core.models.severity import scenario_seed

FAMILY = "monte_carlo"
SCENARIO_TYPE = "MONTE_CARLO"
MODEL_KEYS = {"garch": "garch", "gbm": "gbm", "historical_distribution": "fhs"}  # scenario id prefixes


class IndexDays:
    """The reference index's worst simulated day and its days at the circuit breaker, accumulated over the
    streamed chunks (order-independent, so any chunking gives the same figures).

    Parameters
    ----------
    pm : PathModel
        The calibrated model: ``pm.reference`` (the reference index's column, or None) and ``pm.floor`` (each
        symbol's lowest daily log return; the index's is the circuit breaker, log(1 - 0.20)).
    """

    def __init__(self, pm: PathModel):
        self.column = pm.reference
        self.floor = None if pm.reference is None or pm.floor is None else float(pm.floor[pm.reference])
        self.worst = math.inf
        self.at_floor = 0
        self.paths_at_floor = 0

    def add(self, log_returns: np.ndarray) -> None:
        """Count one chunk of (S, T, N) simulated daily log returns.

        A day counts as at the circuit breaker when the index's daily log return is at most the floor plus
        1e-6. Nothing is counted without a reference index or for an empty chunk.

        Parameters
        ----------
        log_returns : ndarray of shape (S, T, N), float32
            Daily log returns of the chunk's paths (:func:`~scenarios_assets.core.engines.simulation.simulate_log_returns`).
        """
        if self.column is None or self.floor is None or log_returns.size == 0:
            return
        index = log_returns[:, :, self.column].astype(np.float64)
        self.worst = min(self.worst, float(index.min()))
        hits = (index <= self.floor + 1e-6).sum(axis=1)
        self.at_floor += int(hits.sum())
        self.paths_at_floor += int((hits > 0).sum())

    def merge(self, other: IndexDays) -> None:
        """Fold in the figures of another chunk (min of the worst day, sums of the counts: exact in any order).

        Parameters
        ----------
        other : IndexDays
            One chunk's figures (:func:`monte_carlo_chunk`).
        """
        self.worst = min(self.worst, other.worst)
        self.at_floor += other.at_floor
        self.paths_at_floor += other.paths_at_floor

    def metadata(self) -> dict:
        """``index_worst_day`` (daily simple return) and the counts at the circuit breaker (empty without an index).

        Returns
        -------
        dict
            ``index_worst_day`` (the lowest simulated daily simple return of the index, fraction),
            ``index_days_at_circuit_breaker`` (path-days) and ``index_paths_at_circuit_breaker`` (paths with
            at least one such day); empty without a reference index or before any day was counted.
        """
        if self.column is None or not math.isfinite(self.worst):
            return {}
        return {
            "index_worst_day": float(np.expm1(self.worst)),
            "index_days_at_circuit_breaker": self.at_floor,
            "index_paths_at_circuit_breaker": self.paths_at_floor,
        }


@dataclass(frozen=True)
class MonteCarloChunks:
    """What every chunk of one Monte Carlo set reads, calibrated once (the model a cluster broadcasts to its
    workers): the path model, the base seed and severity, the horizon and its dates (datetime64[D], (T,)),
    the scenarios' calibration record, their id and name prefixes, the baseline volatility and the session
    layout of the symbols' calendars."""

    pm: PathModel
    seed: int
    severity: str
    horizon: int
    dates: np.ndarray
    calibration: dict
    key_prefix: str
    name_prefix: str
    baseline: float
    layout: SessionLayout | None = None  # core.data.session_layout: each symbol's rows on its own calendar


def monte_carlo_chunk(model: MonteCarloChunks, part: list[int]) -> tuple[list[Scenario], IndexDays]:
    """The scenarios ``part`` (indices into the set) of a Monte Carlo set, and the reference index's figures
    over them (merged in chunk order by :meth:`IndexDays.merge`). Path i's draws come from
    ``scenario_seed(seed, family, severity, i)`` alone, so any chunking gives the same paths.

    Parameters
    ----------
    model : MonteCarloChunks
        What every chunk of the set reads (the calibrated path model, seed, severity, horizon and dates).
    part : list of int
        The scenario indices of this chunk (S of them).

    Returns
    -------
    scenarios : list of Scenario
        One per index of ``part``, in order: daily simple returns (fractions) and prices, (T, N) float32 views
        of the chunk's (S, T, N) arrays (laid out on the symbols' own sessions with a non-identity layout).
    index_days : IndexDays
        The reference index's worst day and days at the circuit breaker over the chunk.
    """
    pm = model.pm
    seeds = [scenario_seed(model.seed, FAMILY, model.severity, i) for i in part]
    log_r = simulate_log_returns(pm, seeds, model.horizon)
    index_days = IndexDays(pm)
    index_days.add(log_r)
    simple, prices = returns_and_prices(log_r, pm.last_close)
    del log_r
    meta = [{"model": pm.description["model"], "scenario_index": i, "calibration_source": model.calibration} for i in part]
    scenarios = make_scenarios(
        simple, prices, family=FAMILY, scenario_type=SCENARIO_TYPE, severity=model.severity, indices=part,
        seeds=seeds, key_prefix=model.key_prefix, name_prefix=model.name_prefix, dates=model.dates,
        symbols=pm.symbols, metadata=meta, baseline_vol=model.baseline, layout=model.layout, last_close=pm.last_close,
    )
    return scenarios, index_days


def _set_metadata(ctx: GenerationContext, cfg: MonteCarloConfig, window: CalibrationWindow, pm: PathModel,
                  layout: SessionLayout, dates: np.ndarray, n_scenarios: int, baseline: float,
                  history_simple: np.ndarray) -> dict:
    """The family metadata of a Monte Carlo set: model, horizon, start state, calibration and the history's
    tail reference."""
    severity, horizon = ctx.severity, int(cfg.time_horizon_days)
    return {
        "model": pm.description["model"],
        "num_scenarios": n_scenarios,
        "time_horizon_days": horizon,
        "start_date": str(layout.dates[0]),
        **layout.describe(),
        "start_state": window.start_state(ctx.market.dates[-1], dates[0]),
        "confidence_levels": [float(c) for c in cfg.confidence_levels],
        "calibration": (
            f"{pm.description['model']} fitted on {window.sessions} sessions {window.start.date()}..{window.end.date()} "
            f"of {pm.n} symbols (data {ctx.market.data_version}); {pm.description.get('correlation', '')}; "
            f"severity {severity}: {STRESS_PROFILES[severity].as_dict()}"
        ),
        "calibration_window": window.describe(),
        "last_close_date_by_symbol": window.last_close_date,
        "model_parameters": pm.description,
        "baseline_annualised_volatility": baseline,
        "tail_reference": tail_reference(
            history_simple, window=horizon, source=f"daily simple returns of the fit window {metadata_window(window)}"
        ),
    }


def stream_monte_carlo(ctx: GenerationContext, indices: Iterable[int] | None = None) -> ScenarioStream:
    """Monte Carlo paths of ``ctx.severity``: scenarios ``indices`` (default 0..num_scenarios-1), calibrated
    once and simulated lazily, one chunk of paths at a time.

    A calibration the data cannot support (:class:`~scenarios_assets.core.models.errors.CalibrationError`)
    gives an empty stream whose ``skipped`` entry says why; a disabled family an empty stream with metadata
    ``{"disabled": True}``.

    Parameters
    ----------
    ctx : GenerationContext
        The market data, the config (``generation.stochastic.monte_carlo``, ``performance``,
        ``data.trading_calendar``, ``data.reference_symbol``), the seed and the severity.
    indices : iterable of int, optional
        The scenario indices to generate; None: 0 .. ``num_scenarios`` - 1.

    Returns
    -------
    ScenarioStream
        The scenarios in chunks (``plan`` says how they are made); ``finish`` adds VaR/CVaR, the medians,
        ``correlation_stability`` and the reference index's days at the circuit breaker to the metadata.

    Raises
    ------
    ScenarioInputError
        An unknown severity, a negative ``num_scenarios``, ``time_horizon_days`` below 2, an unsupported
        model setting (:func:`~scenarios_assets.core.engines.calibration.calibrate`) or an unknown calendar.

    References
    ----------
    Bollerslev (1986) J. Econometrics 31:307-327; Bollerslev (1987) Rev. Econ. Stat. 69:542-547 (Student-t
    GARCH); Glosten, Jagannathan & Runkle (1993) J. Finance 48:1779-1801 (GJR-GARCH); Barone-Adesi,
    Giannopoulos & Vosper (1999) J. Futures Markets 19:583-602 (filtered historical simulation); Rockafellar &
    Uryasev (2000) J. Risk 2(3):21-41 (CVaR).
    """
    cfg = ctx.settings.generation.stochastic.monte_carlo
    disabled = disabled_set(ctx, FAMILY, cfg.enabled)
    if disabled is not None:
        return disabled.stream()
    severity = ctx.severity
    idx = scenario_indices(cfg.num_scenarios, indices)
    horizon = int(cfg.time_horizon_days)
    if horizon < 2:
        raise ScenarioInputError(f"monte_carlo.time_horizon_days must be >= 2, got {horizon}")
    levels = [float(c) for c in cfg.confidence_levels]
    try:
        window = calibration_window(
            ctx.market.close, years=cfg.fit_window_years, min_coverage=float(cfg.min_coverage),
            min_symbols_share=float(cfg.min_symbols_share), end=cfg.calibration_end, min_sessions=MIN_FIT_OBSERVATIONS,
        )
        pm = calibrate(window, cfg, severity, workers=workers_of(ctx), cache_key=(ctx.market.data_version,),
                       reference=ctx.settings.data.reference_symbol)
    except CalibrationError as exc:
        return empty_set(FAMILY, ctx, f"cannot calibrate the Monte Carlo model: {exc}").stream()

    dates = simulated_dates(window.end, horizon, calendar_name(ctx.config))
    layout = session_layout(ctx, window.end, dates, pm.symbols)
    history_simple = np.expm1(window.log_returns.to_numpy(np.float64))
    baseline = baseline_volatility(history_simple)
    calibration = {
        "data_version": ctx.market.data_version,
        "window": f"{window.start.date()}..{window.end.date()}",
        "window_sessions": window.sessions,
        "model": pm.description["model"],
        "parameters": {k: v for k, v in pm.description.items() if k not in ("fitted_parameters_by_symbol", "severity_profile", "model")},
    }
    index_days = IndexDays(pm)
    plan = ChunkPlan(
        MonteCarloChunks(pm, ctx.seed, severity, horizon, dates, calibration, MODEL_KEYS[pm.model],
                         f"Monte Carlo {pm.description['model']} ({severity})", baseline, layout),
        monte_carlo_chunk, chunks_of(idx, chunk_size(horizon, pm.n, paths_per_chunk_of(ctx))), index_days.merge,
    )
    metadata = _set_metadata(ctx, cfg, window, pm, layout, dates, len(idx), baseline, history_simple)
    return ScenarioStream(
        FAMILY, severity, ctx.market.data_version, ctx.config_hash, plan.chunks(), metadata=metadata,
        finish=lambda stats: {**risk_metadata(stats, levels), **stability_metadata(history_simple, stats), **index_days.metadata()},
        correlation_paths=len(idx), size=len(idx), plan=plan,
    )
