"""What the two path families (``monte_carlo``, ``bootstrap``) share: the disabled and skipped sets, the
scenario indices and chunks, the path dates and session layout, scenario objects of a chunk, and the set's
risk and correlation-stability metadata. Not a family (``test_code_rules.FAMILY_INFRASTRUCTURE``)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from scenarios_assets.core.data.exchange_calendar import calendar_name, sessions_after
from scenarios_assets.core.data.session_layout import SessionLayout, symbol_calendars
from scenarios_assets.core.engines import risk
from scenarios_assets.core.engines.calibration import CalibrationWindow
from scenarios_assets.core.families.context import GenerationContext
from scenarios_assets.core.models.errors import ScenarioInputError
from scenarios_assets.core.models.scenario import Scenario, ScenarioSet, scenario_id
from scenarios_assets.core.models.severity import SEVERITIES

CHUNK_ELEMENTS = 8_000_000  # scenarios are simulated in chunks of about this many (day, symbol) cells


def chunk_size(horizon: int, n_symbols: int, paths_per_chunk: int | None = None) -> int:
    """Paths simulated (and written) together. Results do not depend on it (each path draws from its own seed).

    Parameters
    ----------
    horizon : int
        Sessions per path.
    n_symbols : int
        Symbols per path.
    paths_per_chunk : int, optional
        ``performance.paths_per_chunk``; None or 0: by size.

    Returns
    -------
    int
        ``paths_per_chunk`` when given, else about ``CHUNK_ELEMENTS`` (day, symbol) cells per chunk; at least 1.
    """
    if paths_per_chunk:
        return max(1, int(paths_per_chunk))
    return max(1, CHUNK_ELEMENTS // max(1, horizon * n_symbols))


def chunks_of(indices: list[int], size: int) -> list[list[int]]:
    """Consecutive runs of at most ``size`` scenario indices.

    Parameters
    ----------
    indices : list of int
        The scenario indices of the set, in order.
    size : int
        Most indices per run (:func:`chunk_size`; at least 1).

    Returns
    -------
    list of list of int
        ``indices`` cut into runs in order; every run but the last holds ``size`` indices (none for an
        empty ``indices``).
    """
    return [indices[c0 : c0 + size] for c0 in range(0, len(indices), size)]


def paths_per_chunk_of(ctx: GenerationContext) -> int | None:
    """``performance.paths_per_chunk`` (None: by size, :func:`chunk_size`).

    Parameters
    ----------
    ctx : GenerationContext
        Reads ``ctx.settings.performance.paths_per_chunk``.

    Returns
    -------
    int or None
        The configured paths per chunk; None when it is not set or 0.
    """
    return ctx.settings.performance.paths_per_chunk or None


def workers_of(ctx: GenerationContext) -> int:
    """``performance.workers``, at least 1.

    Parameters
    ----------
    ctx : GenerationContext
        Reads ``ctx.settings.performance.workers``.

    Returns
    -------
    int
        The configured worker count (1 when it is not set or 0), at least 1.
    """
    return max(1, int(ctx.settings.performance.workers or 1))


def disabled_set(ctx: GenerationContext, family: str, enabled: bool) -> ScenarioSet | None:
    """The empty disabled set of ``family`` when it (``enabled``) or ``generation.stochastic`` is off, else None.

    Parameters
    ----------
    ctx : GenerationContext
        Reads ``ctx.severity``, ``generation.stochastic.enabled``, the data version and the config hash.
    family : str
        The family's name (``monte_carlo`` or ``bootstrap``).
    enabled : bool
        The family section's own ``enabled``.

    Returns
    -------
    ScenarioSet or None
        A set without scenarios and with metadata ``{"disabled": True}``, or None when the family is on.

    Raises
    ------
    ScenarioInputError
        ``ctx.severity`` is not a severity.
    """
    if ctx.severity not in SEVERITIES:
        raise ScenarioInputError(f"unknown severity '{ctx.severity}'")
    if not (ctx.settings.generation.stochastic.enabled and enabled):
        return ScenarioSet(family, ctx.severity, [], ctx.market.data_version, ctx.config_hash, metadata={"disabled": True})
    return None


def empty_set(family: str, ctx: GenerationContext, reason: str, **metadata) -> ScenarioSet:
    """A set without scenarios that says why (``skipped``).

    Parameters
    ----------
    family : str
        The family's name (also the skipped entry's ``name``).
    ctx : GenerationContext
        Reads the severity, the data version and the config hash.
    reason : str
        Why the family has no scenarios (e.g. the calibration error).
    **metadata
        The set's metadata.

    Returns
    -------
    ScenarioSet
        No scenarios; ``skipped`` is ``[{"name": family, "reason": reason}]``.
    """
    return ScenarioSet(
        family=family,
        severity=ctx.severity,
        scenarios=[],
        data_version=ctx.market.data_version,
        config_hash=ctx.config_hash,
        skipped=[{"name": family, "reason": reason}],
        metadata=metadata,
    )


def scenario_indices(num_scenarios: int, indices: Iterable[int] | None) -> list[int]:
    """The scenario indices to generate.

    Parameters
    ----------
    num_scenarios : int
        The section's ``num_scenarios``.
    indices : iterable of int, optional
        A subset (a chunk or a test); None: all.

    Returns
    -------
    list of int
        ``indices``, or 0 .. num_scenarios - 1.

    Raises
    ------
    ScenarioInputError
        ``num_scenarios`` is negative (and ``indices`` is None).
    """
    if indices is None:
        n = int(num_scenarios)
        if n < 0:
            raise ScenarioInputError(f"num_scenarios must be >= 0, got {n}")
        return list(range(n))
    return [int(i) for i in indices]


def simulated_dates(start_date: pd.Timestamp, horizon: int, calendar: str) -> np.ndarray:
    """The ``horizon`` sessions of exchange calendar ``calendar`` (e.g. XNYS) after ``start_date``.

    Parameters
    ----------
    start_date : pandas.Timestamp
        The paths' start date (the calibration window's end); the sessions are strictly after it.
    horizon : int
        Sessions per path (0 or less: none).
    calendar : str
        An ``exchange_calendars`` name (``data.trading_calendar``); ``'24/7'`` is not one.

    Returns
    -------
    ndarray of shape (horizon,), datetime64[D]
        The session dates, ascending.

    Raises
    ------
    ScenarioInputError
        ``calendar`` is not an ``exchange_calendars`` name
        (:func:`scenarios_assets.core.data.exchange_calendar.sessions_after`).
    """
    return sessions_after(start_date, horizon, calendar)


def session_layout(ctx: GenerationContext, start_date: pd.Timestamp, dates: np.ndarray, symbols: list[str]) -> SessionLayout:
    """The layout of paths stepping on ``dates`` (the primary calendar's sessions after ``start_date``) on
    each symbol's calendar (``data.symbol_calendars``; seven-day symbols of the data: '24/7').

    Parameters
    ----------
    ctx : GenerationContext
        Reads the config (``data.symbol_calendars``, ``data.trading_calendar``) and the market data report's
        ``seven_day_symbols``.
    start_date : pandas.Timestamp
        The paths' start date; each symbol's sessions are taken from the next calendar day on.
    dates : ndarray of shape (T,), datetime64[D]
        The step dates (:func:`simulated_dates`).
    symbols : list of str
        The universe, in column order.

    Returns
    -------
    SessionLayout
        An identity layout when every symbol's sessions over the horizon are ``dates``.

    Raises
    ------
    ScenarioInputError
        An unknown calendar name (:meth:`SessionLayout.build`).
    """
    calendars = symbol_calendars(symbols, ctx.config, ctx.market.report.get("seven_day_symbols"))
    return SessionLayout.build(start_date, dates, symbols, calendars, calendar_name(ctx.config))


def make_scenarios(
    returns: np.ndarray,
    prices: np.ndarray,
    *,
    family: str,
    scenario_type: str,
    severity: str,
    indices: list[int],
    seeds: list[int],
    key_prefix: str,
    name_prefix: str,
    dates: np.ndarray,
    symbols: list[str],
    metadata: list[dict],
    baseline_vol: float,
    layout: SessionLayout | None = None,
    last_close: np.ndarray | None = None,
) -> list[Scenario]:
    """Scenario objects of a chunk of paths (each keeps a view of the chunk arrays).

    With a ``layout`` that is not the identity, the paths (over ``dates``, its steps) are laid out on the
    symbols' own sessions first (:mod:`scenarios_assets.core.data.session_layout`), from ``last_close``.

    Parameters
    ----------
    returns, prices : ndarray of shape (S, T, N), float32
        Daily simple returns (fractions) and prices of the chunk's paths.
    family, scenario_type, severity : str
        Recorded on every scenario; the id is ``scenario_id(family, f"{key_prefix}_{index:04d}", severity)``.
    indices, seeds : list of int, length S
        Each path's index in the set and its seed.
    key_prefix, name_prefix : str
        Id and name prefixes.
    dates : ndarray of shape (T,), datetime64[D]
    symbols : list of str, length N
    metadata : list of dict, length S
    baseline_vol : float
        Annualised volatility of the history's equal-weight portfolio (the volatility multiplier's base).
    layout : SessionLayout, optional
    last_close : ndarray of shape (N,), float64, optional
        Needed with a non-identity ``layout``.

    Returns
    -------
    list of Scenario
    """
    calendars = None
    if layout is not None and not layout.identity:
        assert last_close is not None, "a session layout lays paths out from their last close"
        returns, prices, _ = layout.apply(returns, prices, last_close, seeds)
        dates, calendars = layout.dates, layout.calendars
    out = []
    for j, idx in enumerate(indices):
        key = f"{key_prefix}_{idx:04d}"
        s = Scenario(
            id=scenario_id(family, key, severity),
            name=f"{name_prefix} {idx:04d}",
            family=family,
            scenario_type=scenario_type,
            severity=severity,
            dates=dates,
            symbols=symbols,
            returns=returns[j],
            prices=prices[j],
            seed=int(seeds[j]),
            metadata=metadata[j],
            calendars=calendars,
        )
        s.set_volatility_multiplier(baseline_vol)
        out.append(s)
    return out


def metadata_window(window: CalibrationWindow) -> str:
    """``start..end (N symbols)`` of a calibration window.

    Parameters
    ----------
    window : CalibrationWindow
        The calibration (or history) window.

    Returns
    -------
    str
        ``YYYY-MM-DD..YYYY-MM-DD (N symbols)``: the ISO start and end dates and the universe's size.
    """
    return f"{window.start.date()}..{window.end.date()} ({len(window.symbols)} symbols)"


def risk_metadata(stats, levels: list[float]) -> dict:
    """VaR/CVaR and medians across the paths of the streamed set ``stats`` (``core.library.validation.SetStats``;
    :func:`scenarios_assets.core.engines.risk.risk_metadata`).

    Parameters
    ----------
    stats : SetStats
        Reads each path's equal-weight portfolio ``total_returns``, annualised ``volatilities`` and
        ``max_drawdowns`` (lists of float, fractions).
    levels : list of float
        Confidence levels in (0, 1) (``confidence_levels``).

    Returns
    -------
    dict
        ``num_scenarios``, ``value_at_risk``, ``conditional_value_at_risk`` (level -> loss, positive fraction),
        ``risk_measure`` and the medians.

    Raises
    ------
    ScenarioInputError
        A level outside (0, 1).

    References
    ----------
    Rockafellar, R. T. & Uryasev, S. (2000). Optimization of conditional value-at-risk. Journal of Risk
    2(3):21-41.
    """
    return risk.risk_metadata(stats.total_returns, stats.volatilities, stats.max_drawdowns, levels)


def stability_metadata(historical_simple: np.ndarray, stats) -> dict:
    """correlation_stability of the streamed set ``stats`` (``SetStats``) against the history's daily simple
    returns (T, N) (:func:`scenarios_assets.core.engines.risk.stability_metadata`).

    Parameters
    ----------
    historical_simple : ndarray of shape (T, N), float64
        Daily simple returns (fractions) of the calibration or history window.
    stats : SetStats
        Reads ``correlation_sample()``: the simulated daily simple returns pooled over scenarios and days,
        ndarray of shape (rows, N), float32, or None without scenarios (the history is then compared with
        itself).

    Returns
    -------
    dict
        ``correlation_stability`` (1 - mean absolute off-diagonal difference), its measure,
        ``historical_mean_correlation`` and ``simulated_mean_correlation``.
    """
    return risk.stability_metadata(historical_simple, stats.correlation_sample())
