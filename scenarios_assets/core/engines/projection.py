"""Projection of an event beyond the market data: its observed start replayed, the rest simulated with the
GJR-GARCH-t model of :mod:`scenarios_assets.core.engines.calibration` (historical full cycles that run past the
data, e.g. the 2025-2026 tariff cycle)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from scenarios_assets.core.data.exchange_calendar import sessions_between
from scenarios_assets.core.engines.calibration import CalibrationWindow, calibrate, calibration_window
from scenarios_assets.core.engines.garch import MIN_FIT_OBSERVATIONS
from scenarios_assets.core.engines.replay import Replay, market_bars, replay_window
from scenarios_assets.core.engines.simulation import PathModel, returns_and_prices, simulate_log_returns
from scenarios_assets.core.models.config import MonteCarloConfig
from scenarios_assets.core.models.errors import CalibrationError
from scenarios_assets.core.models.scenario import Skipped, max_drawdown, portfolio_returns

PROJECTION_PATHS = 101  # paths simulated for a projected event; the median-drawdown one is kept


def _observed_symbols(close: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp,
                      symbols: list[str] | None) -> tuple[list[str], dict] | Skipped:
    """The event's symbols (those with a close on its first session) and each one's last date with data."""
    candidates = [s for s in (symbols or close.columns) if s in close.columns]
    first_row = int(close.index.searchsorted(start, "left"))
    if first_row >= len(close.index):
        return Skipped(f"the event starts {start.date()}, after the market data ends ({close.index[-1].date()})")
    present = close.iloc[first_row][candidates].notna()
    chosen = [s for s in candidates if present[s]]
    if not chosen:
        return Skipped(f"no symbol has data on the event's first session {close.index[first_row].date()}")
    last_dates = {s: close[s].last_valid_index() for s in chosen}
    if min(last_dates.values()) >= end:
        return Skipped("the event lies within the market data (nothing to project)")
    return chosen, last_dates


def _median_drawdown_path(pm: PathModel, seed: int, days: int) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """PROJECTION_PATHS paths of ``days`` sessions seeded from ``seed``: (simple returns, prices, index of the
    path whose equal-weight max drawdown is the median, every path's max drawdown)."""
    path_seeds = [int(v >> np.uint64(1)) for v in np.random.SeedSequence(seed).generate_state(PROJECTION_PATHS, np.uint64)]
    log_r = simulate_log_returns(pm, path_seeds, days)
    simple, prices = returns_and_prices(log_r, pm.last_close)
    wealth = np.cumprod(1.0 + portfolio_returns(simple), axis=1)  # (paths, T) equal-weight portfolio
    drawdowns = max_drawdown(np.concatenate([np.ones((1, len(path_seeds))), wealth.T]))
    pick = int(np.argsort(drawdowns, kind="stable")[len(path_seeds) // 2])  # the median-drawdown path
    return simple, prices, pick, drawdowns


def _projection_metadata(data_version: str, observed_until: pd.Timestamp, days: int, pm: PathModel, seed: int,
                         pick: int, drawdowns: np.ndarray, window: CalibrationWindow) -> dict:
    return {
        "observed_until": str(observed_until.date()),
        "projected_days": int(days),
        "projection_model": pm.description["model"],
        "projection_seed": int(seed),
        "projection_paths": PROJECTION_PATHS,
        "projection_path_chosen": pick,
        "projection_path_rule": "median equal-weight max drawdown of the simulated paths",
        "projection_drawdown_range": [float(drawdowns.min()), float(np.median(drawdowns)), float(drawdowns.max())],
        "projection_calibration": {
            "data_version": data_version,
            "window": f"{window.start.date()}..{window.end.date()}",
            "parameters": {k: v for k, v in pm.description.items() if k != "fitted_parameters_by_symbol"},
            "fitted_parameters_by_symbol": pm.description.get("fitted_parameters_by_symbol"),
        },
    }


def _projection_model(market, replay: Replay, observed_until: pd.Timestamp, chosen: list[str], last_dates: dict,
                      severity: str, mc_cfg: MonteCarloConfig, workers: int,
                      reference: str | None) -> tuple[CalibrationWindow, PathModel, list[int]] | Skipped:
    """The GJR-GARCH-t model fitted up to ``observed_until`` and starting from the replay's last prices, with
    its window and the replay columns of its symbols; Skipped (with the lagging symbol) when it cannot be."""
    close = market.close
    try:
        window = calibration_window(
            close.loc[:observed_until], years=mc_cfg.fit_window_years, min_coverage=float(mc_cfg.min_coverage),
            min_symbols_share=1.0, end=observed_until, symbols=replay.symbols, min_sessions=MIN_FIT_OBSERVATIONS,
        )
        cols = [replay.symbols.index(s) for s in window.symbols]
        pm = calibrate(
            window, dataclasses.replace(mc_cfg, return_model="garch", volatility_scaling="GARCH"), severity,
            model="garch", workers=workers, cache_key=(market.data_version, "projection"),
            last_close=replay.prices[-1, cols].astype(np.float64), reference=reference,
        )
    except CalibrationError as exc:
        # Say why its window ends before the market data does: the event's first symbol to run out of data.
        lagging = min(chosen, key=lambda s: last_dates[s])
        return Skipped(f"the projection model cannot be calibrated: {exc}; the observed part ends {observed_until.date()}, "
                       f"the last date every symbol of the event has data ({lagging}'s last; the market data runs to "
                       f"{close.index[-1].date()})")
    return window, pm, cols


def _joined(replay: Replay, symbols: list[str], cols: list[int], proj_dates: np.ndarray, simple: np.ndarray,
            prices: np.ndarray, metadata: dict) -> Replay:
    """The replay's columns ``cols`` (``symbols``) followed by the projected (T, N) ``simple`` returns and ``prices``
    on ``proj_dates``; the projected sessions have no high/low bar."""
    no_bar = np.full((len(proj_dates), len(cols)), np.nan, dtype=np.float32)
    return Replay(
        dates=np.concatenate([replay.dates, proj_dates]),
        symbols=symbols,
        returns=np.concatenate([replay.returns[:, cols], simple]),
        prices=np.concatenate([replay.prices[:, cols], prices]),
        coverage={s: replay.coverage[s] for s in symbols},
        projected=np.concatenate([np.zeros(len(replay.dates), bool), np.ones(len(proj_dates), bool)]),
        high=None if replay.high is None else np.concatenate([replay.high[:, cols], no_bar]),
        low=None if replay.low is None else np.concatenate([replay.low[:, cols], no_bar]),
        metadata=metadata,
    )


def project_event(
    market,
    *,
    start: pd.Timestamp,
    end: pd.Timestamp,
    severity: str,
    seed: int,
    scale: float,
    drift: pd.Series,
    context_days: int,
    min_coverage: float,
    mc_cfg: MonteCarloConfig,
    symbols: list[str] | None = None,
    workers: int = 1,
    calendar: str = "XNYS",
    reference: str | None = None,
) -> Replay | Skipped:
    """Replay the observed start of an event and extend it to ``end`` with GJR-GARCH-t paths.

    Symbols: those with data on the event's first session (restricted to ``symbols`` when given). The
    observed part ends on the last date every one of them has data (``observed_until``; SPX's 2025-01-31 on
    the bundled data for the 2025 tariff cycle) and is replayed as any event at this severity. The GARCH model
    (``mc_cfg.volatility_model``) is fitted on the ``fit_window_years`` before ``observed_until``, starts from
    the conditional variance then and takes the severity's stress profile; the path starts from the last
    replayed price and runs over the sessions of ``calendar`` up to ``end``. ``seed`` seeds PROJECTION_PATHS
    paths and the event takes the one whose equal-weight max drawdown is their median, a representative path
    rather than an arbitrary draw.

    Parameters
    ----------
    market : MarketData
        ``close`` (dates x symbols), ``data_version`` and the high/low bars (``core.data.market``).
    start, end : pandas.Timestamp
        The event's first and last dates.
    severity : {"moderate", "severe", "extreme"}
        The stress profile of the projection model.
    seed : int
        Seed of the projection (the caller's scenario seed of the event).
    scale, drift, context_days, min_coverage
        The replay's settings (``core.engines.replay.replay_window``).
    mc_cfg : MonteCarloConfig
        Window and model settings; the return model is always ``garch`` with GARCH scaling.
    symbols, workers, calendar, reference
        The event's symbols, GARCH fit processes, calendar of the projected sessions, reference index.

    Returns
    -------
    Replay or Skipped
        The observed then simulated path (``projected`` flags the simulated dates, which have no bar), or why not.

    References
    ----------
    Glosten, Jagannathan & Runkle (1993) J. Finance 48:1779-1801; Bollerslev (1987) Rev. Econ. Stat. 69:542-547.
    """
    close = market.close
    observed = _observed_symbols(close, start, end, symbols)
    if isinstance(observed, Skipped):
        return observed
    chosen, last_dates = observed
    observed_until = min(last_dates.values())
    replay = replay_window(
        close.loc[:observed_until], start, observed_until, scale, drift,
        context_days=context_days, min_coverage=min_coverage, symbols=chosen, bars=market_bars(market),
    )
    if isinstance(replay, Skipped):
        return Skipped(f"its observed part cannot be replayed: {replay}")
    model = _projection_model(market, replay, observed_until, chosen, last_dates, severity, mc_cfg, workers, reference)
    if isinstance(model, Skipped):
        return model
    window, pm, cols = model
    proj_dates = sessions_between(observed_until + pd.Timedelta(days=1), end, calendar)
    if len(proj_dates) == 0:
        return Skipped(f"no {calendar} session to project")
    simple, prices, pick, drawdowns = _median_drawdown_path(pm, seed, len(proj_dates))
    metadata = _projection_metadata(market.data_version, observed_until, len(proj_dates), pm, seed, pick, drawdowns, window)
    return _joined(replay, list(window.symbols), cols, proj_dates, simple[pick], prices[pick], metadata)
