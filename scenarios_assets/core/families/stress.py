"""Stress tests: shock profiles applied over time from the last available market state.

Each definition of ``reference/stress_tests.yaml`` (four parametric scenarios of the seed, twelve named
stress tests) is a set of factor shocks with a time profile. A path is built in log space, so prices
stay finite and positive whatever the shock:

    log P_i(t) = log P_i(anchor) + f(t) S_i + N_i(t)

* ``S_i`` is symbol i's full log shock: beta_i log(1 + market) + the sector shocks reaching it
  (``reference/sectors.yaml``: a stock's own sector, an index's sector exposures) + a sector rotation;
* ``f(t)`` is the profile: knots [session, fraction] interpolated linearly (log-linear in price);
* ``N_i(t)`` is optional seeded noise: daily log returns with each symbol's long-run volatility times the
  volatility multiplier path ``1 + (m - 1) w(t)``, correlated as the historical correlation blended
  towards the stress correlation with weight ``w(t) = |f(t)|`` (the intensity). The noise is a bridge
  pinned to zero at the profile's full-shock session and at the horizon, so the calibrated trough and
  end state are exactly the documented figures, and it is kept inside the band of the calibrated path
  (:func:`~scenarios_assets.core.engines.stress_noise.bounded_noise`): a symbol never goes below its
  calibrated lowest level (the trough: noise never deepens it) nor more than NOISE_TOLERANCE (1 % in log)
  above its highest level (the anchor for a falling symbol), so its deepest point is the calibrated one and
  its max drawdown within 1 pp of it (a path without a calibrated fall stays within +-0.5 %). The
  equal-weight portfolio is then pinned and banded the same way
  (:func:`~scenarios_assets.core.engines.stress_noise.pin_portfolio`) by a common daily factor on the
  symbols other than the reference index, which moves them off their banded paths (Credit Spread
  Widening: up to 8 % in log at severe, 11 % at extreme); the index keeps its band exactly.
  The noise room shrinks smoothly (``room * tanh(noise / room)``) toward the band's edges.

The numerics are engines: the severity scaling, the profiles and the flash crashes' minute path in
:mod:`scenarios_assets.core.engines.shocks`, the noise in :mod:`scenarios_assets.core.engines.stress_noise`.
This module holds the definitions, the start state, the exposures and the assembly of a scenario.

The flash crashes' intraday low is in the daily data: session 1 carries ``high`` and ``low`` columns (the
minute path of ``metadata.intraday`` scaled to each symbol's close), and the scenario's max drawdown
counts the low (:func:`scenarios_assets.core.models.scenario.path_statistics`). Other sessions have no bar range
(null).

Severity: the numbers of reference/stress_tests.yaml are the ``severe`` calibration; moderate and extreme follow the scale
k = 0.5 / 1.0 / 1.5 of ``severity.REPLAY_SCALE`` with the per-quantity rules documented in that file
header, unless a number is given per severity. With ``common_noise`` (default) the noise draws are the
same at every severity (common random numbers, seeded with the ``severe`` key), so severities differ only
by the calibrated shocks; without it each severity has its own seed.

Start state (the anchor): the last session on which at least ``anchor_min_share`` of the universe's
symbols have a close, or ``anchor_date`` when configured. Symbols without a close that day are left out
and listed. For the bundled data (20 large caps and 5 factor ETFs end 2022-12-28, IXIC 2018-12-31, SPX
2025-01-31, NVDA 2025-02-14) the anchor is 2022-12-28 with 27 of 28 symbols (all but IXIC); SPX and NVDA
start from their 2022-12-28 closes so the cross-section is consistent. The paths run over the sessions of
the exchange calendar ``data.trading_calendar`` (XNYS) after the anchor, laid out on each symbol's own
calendar where they differ (:mod:`scenarios_assets.core.data.session_layout`).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scenarios_assets.core.data.exchange_calendar import configured_calendar, sessions_after
from scenarios_assets.core.data.market import constant_columns
from scenarios_assets.core.data.session_layout import CONVENTION, SessionLayout, calendars_of
from scenarios_assets.core.engines.replay import portfolio_volatility
from scenarios_assets.core.engines.shocks import (
    estimate_beta,
    intraday_bar,
    intraday_depth,
    intraday_path,
    liquidity_path,
    profile_path,
    scaled,
)
from scenarios_assets.core.engines.stress_noise import (
    MAX_CORRELATION,
    NOISE_TOLERANCE,
    average_correlation,
    baseline_correlation,
    bounded_noise,
    correlated_noise,
    pin_bridge,
    pin_portfolio,
)
from scenarios_assets.core.families.context import GenerationContext
from scenarios_assets.core.models.config import StressConfig
from scenarios_assets.core.models.errors import ScenarioInputError
from scenarios_assets.core.models.scenario import Scenario, ScenarioSet, jsonable, scenario_id
from scenarios_assets.core.models.severity import REPLAY_SCALE, scenario_rng, scenario_seed
from scenarios_assets.core.models.units import TRADING_DAYS_PER_YEAR as ANNUALISATION
from scenarios_assets.reference import load_reference

FAMILY = "stress"
SCENARIO_TYPE = "STRESS"
NOISE_SEVERITY = "severe"  # the seed key of the common random numbers


# --- definitions ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class StressDefinition:
    """One stress test of ``reference/stress_tests.yaml`` (fields and scaling rules in its header)."""

    key: str
    name: str
    kind: str  # parametric | named
    description: str
    horizon_days: int
    profile: tuple[tuple[float, float], ...]
    equity: dict
    sources: dict
    intraday: dict | None = None
    rotation: dict | None = None
    volatility_multiplier: float | dict = 1.0
    correlation: float | dict | None = None
    correlation_breakdown: dict | None = None
    vix_peak: float | dict | None = None
    rates_bp: dict = field(default_factory=dict)
    credit_spread_bp: float | dict | None = None
    usd_index_change: float | dict | None = None
    liquidity: dict | None = None

    @property
    def intraday_spec(self) -> dict:
        """The ``intraday`` block of a flash crash (``equity.market: intraday``); an error names a test without it."""
        if self.intraday is None:
            raise ScenarioInputError(f"stress test {self.key}: equity.market is intraday but it has no `intraday` block")
        return self.intraday

    @classmethod
    def from_record(cls, rec: dict) -> "StressDefinition":
        """The definition of one record of ``reference/stress_tests.yaml``.

        Parameters
        ----------
        rec : dict
            The record as the YAML file holds it.

        Returns
        -------
        StressDefinition
            The typed definition.

        Raises
        ------
        ScenarioInputError
            An unknown field, or a profile that does not start at [0, 0] and rise in days within the horizon.
        """
        known = set(cls.__dataclass_fields__)
        unknown = set(rec) - known
        if unknown:
            raise ScenarioInputError(f"stress test '{rec.get('key')}': unknown field(s) {', '.join(sorted(unknown))}")
        profile = tuple((float(d), float(f)) for d, f in rec["profile"])
        days = [d for d, _ in profile]
        if profile[0] != (0.0, 0.0) or days != sorted(days) or days[-1] > rec["horizon_days"]:
            raise ScenarioInputError(f"stress test '{rec['key']}': profile must start at [0, 0] and rise in days within the horizon")
        return cls(**{**rec, "profile": profile, "rates_bp": rec.get("rates_bp") or {}})

    @property
    def full_shock_day(self) -> int:
        """The session at which the profile reaches its largest absolute fraction (first one)."""
        fractions = [abs(f) for _, f in self.profile]
        return int(self.profile[int(np.argmax(fractions))][0])


def load_stress_tests() -> list[StressDefinition]:
    """Every stress test of ``reference/stress_tests.yaml``, in file order.

    Returns
    -------
    list of StressDefinition

    Raises
    ------
    ScenarioInputError
        An invalid record (:meth:`StressDefinition.from_record`).
    """
    return [StressDefinition.from_record(r) for r in load_reference("stress_tests")["stress_tests"]]


# --- universe, anchor, exposures ------------------------------------------------------------------

@dataclass(frozen=True)
class Anchor:
    """The start state of every stress path: the anchor session, its symbols and their closes."""

    date: pd.Timestamp
    symbols: list[str]
    prices: np.ndarray  # (N,) closes at the anchor
    excluded: dict[str, str]  # symbol -> last date with data
    rule: str


def anchor_state(close: pd.DataFrame, anchor_date: str | None, min_share: float) -> Anchor:
    """The start state of every stress path (module docstring).

    Parameters
    ----------
    close : DataFrame of float, sessions x symbols
        Closing prices (NaN where a symbol has none).
    anchor_date : str or None
        ``generation.stress.anchor_date`` (YYYY-MM-DD): the last session on or before it; None: the last
        session on which at least ``min_share`` of the symbols have a close.
    min_share : float
        Fraction of the symbols (``generation.stress.anchor_min_share``).

    Returns
    -------
    Anchor
        The symbols with a close on the anchor session and those closes; the others with their last date.

    Raises
    ------
    ScenarioInputError
        ``anchor_date`` is not a date or precedes the data, no session reaches ``min_share``, or no symbol
        has a close on the anchor session.
    """
    present = close.notna()
    if anchor_date:
        try:
            wanted = pd.Timestamp(anchor_date).normalize()
        except (ValueError, TypeError):
            raise ScenarioInputError(f"generation.stress.anchor_date '{anchor_date}' is not a date (use YYYY-MM-DD)") from None
        on_or_before = close.index[close.index <= wanted]
        if on_or_before.empty:
            raise ScenarioInputError(
                f"generation.stress.anchor_date {wanted.date()} is before the market data ({close.index[0].date()})"
            )
        date = on_or_before[-1]
        rule = f"configured anchor_date {wanted.date()} (last session on or before it)"
    else:
        share = present.mean(axis=1)
        ok = share.index[share >= min_share]
        if ok.empty:
            raise ScenarioInputError(
                f"no session has data for at least {min_share:.0%} of the {close.shape[1]} symbols "
                f"(best: {share.max():.0%}); lower generation.stress.anchor_min_share or set anchor_date"
            )
        date = ok[-1]
        rule = f"last session on which at least {min_share:.0%} of the {close.shape[1]} symbols have a close"
    row = close.loc[date]
    symbols = [s for s in close.columns if np.isfinite(row[s])]
    if not symbols:
        raise ScenarioInputError(f"no symbol has a close on the stress anchor date {date.date()}")
    last = close.apply(pd.Series.last_valid_index)
    excluded = {s: str(last[s].date()) for s in close.columns if s not in symbols}
    return Anchor(date, symbols, row[symbols].to_numpy(np.float64), excluded, rule)


@dataclass(frozen=True)
class Exposures:
    """How each symbol of the anchor takes the shocks: its beta to the market shock and its sector weights."""

    betas: np.ndarray  # (N,)
    sectors: list[str]
    weights: dict[str, np.ndarray]  # sector -> (N,) exposure of each symbol to the sector
    defaults: list[str]  # symbols that used the documented default
    constant: np.ndarray | None = None  # (N,) bool: price never moved up to the anchor; no shock reaches it


def symbol_exposures(
    symbols: list[str], log_returns: pd.DataFrame, reference: pd.Series, constant: np.ndarray | None = None
) -> Exposures:
    """Betas and sector exposures from ``reference/sectors.yaml``; unknown symbols take the documented default.

    A symbol without a beta in reference/sectors.yaml gets :func:`~scenarios_assets.core.engines.shocks.estimate_beta`
    on the reference index over ``beta_window_days`` (the file's default ``fallback_beta`` with fewer than
    ``min_beta_days`` common returns).

    Parameters
    ----------
    symbols : list of str
        N symbols, in order.
    log_returns : DataFrame of float64, sessions x symbols
        Daily log returns.
    reference : Series of float
        Closes of the reference index.
    constant : ndarray of shape (N,), bool, optional
        Symbols whose price never moved up to the anchor (``market.constant_columns``): beta 0 and no sector
        exposure, so no shock reaches them (a cash-like instrument, whatever its entry).

    Returns
    -------
    Exposures
    """
    table = load_reference("sectors")
    known, default = table["symbols"], table["default"]
    ref = np.log(reference).diff()
    betas, sectors, defaults = [], [], []
    weights: dict[str, np.ndarray] = {}
    for i, sym in enumerate(symbols):
        entry = known.get(sym)
        if entry is None:
            defaults.append(sym)
            entry = {"sector": default["sector"], "beta": default["beta"]}
        beta = entry.get("beta")
        if beta is None:
            beta = estimate_beta(log_returns[sym], ref, int(default["beta_window_days"]), int(default["min_beta_days"]))
            beta = float(default["fallback_beta"]) if beta is None else beta
        betas.append(float(beta))
        sectors.append(entry["sector"])
        exposures = entry.get("exposures") or ({entry["sector"]: 1.0} if entry["sector"] not in ("index", "factor_etf") else {})
        for sector, w in exposures.items():
            weights.setdefault(sector, np.zeros(len(symbols)))[i] = float(w)
    beta = np.array(betas)
    if constant is not None and constant.any():
        beta = np.where(constant, 0.0, beta)
        for sector in weights:
            weights[sector] = np.where(constant, 0.0, weights[sector])
    return Exposures(beta, sectors, weights, defaults, constant)


# --- one scenario ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class StressInputs:
    """Everything the paths need that does not depend on the definition (computed once per family run)."""

    anchor: Anchor
    exposures: Exposures
    daily_vol: np.ndarray  # (N,) long-run daily volatility of log returns
    hist_corr: np.ndarray
    hist_chol: np.ndarray
    baseline_corr: float
    defensive: np.ndarray  # (N,) 1 for the defensive block of the correlation breakdown
    vix0: float
    rates0: dict[str, float | None]
    dates: pd.DatetimeIndex  # sessions after the anchor (trading calendar), long enough for every definition
    # (N,) bool: symbols the portfolio pin leaves exact: the reference index, and constant prices
    unshifted: np.ndarray | None = None
    constant_price_symbols: tuple[str, ...] = ()  # price never moved up to the anchor: no shock, no noise
    calendars: dict[str, str] | None = None  # symbol -> trading calendar (core.data.session_layout)
    primary_calendar: str = "XNYS"  # data.trading_calendar: one step per session of it


def symbol_shocks(defn: StressDefinition, severity: str, ex: Exposures) -> tuple[np.ndarray, dict]:
    """Full log shock of each symbol at ``severity``, and the applied figures.

    ``beta log(1 + market)`` (unscaled with ``beta_scaled: false``; for a flash crash the log close of its
    minute path), plus each sector's ``log(1 + shock)`` times the symbol's weight in it, plus a rotation out
    of the ``from`` sectors into the ``to`` ones (else ``proxy_to``); zero for constant prices.

    Parameters
    ----------
    defn : StressDefinition
    severity : str
    ex : Exposures
        N symbols.

    Returns
    -------
    shocks : ndarray of shape (N,), float64
        Log shock at full intensity.
    applied : dict
        The scaled figures (``equity_market``, ``equity_sectors``, ``rotation``), for the metadata.

    Raises
    ------
    ScenarioInputError
        A flash crash without an ``intraday`` block.
    """
    equity = defn.equity
    applied: dict = {}
    if equity.get("market") == "intraday":
        intra = defn.intraday_spec
        depth = intraday_depth(intra, severity)
        market_log = (1.0 - float(intra["recovery_by_close"])) * np.log1p(-depth)
    else:
        market_log = float(np.log1p(scaled(equity.get("market", 0.0), severity, "log_return")))
    applied["equity_market"] = float(np.expm1(market_log))
    shocks = (ex.betas if equity.get("beta_scaled", True) else np.ones_like(ex.betas)) * market_log
    sector_applied = {}
    for sector, value in (equity.get("sectors") or {}).items():
        shock = scaled(value, severity, "log_return")
        sector_applied[sector] = shock
        if sector in ex.weights:
            shocks = shocks + ex.weights[sector] * np.log1p(shock)
    if sector_applied:
        applied["equity_sectors"] = sector_applied
    if defn.rotation:
        rot = defn.rotation
        magnitude = rot["magnitude"]
        if isinstance(magnitude, dict):  # given per severity: used as it is
            out_log, in_log = np.log1p(-float(magnitude[severity])), np.log1p(float(magnitude[severity]))
        else:
            out_log = np.log1p(scaled(-float(magnitude), severity, "log_return"))
            in_log = np.log1p(scaled(float(magnitude), severity, "log_return"))
        receivers = [s for s in rot["to"] if s in ex.weights]
        if not receivers:
            receivers = [s for s in rot.get("proxy_to", []) if s in ex.weights]
        for sector in rot["from"]:
            if sector in ex.weights:
                shocks = shocks + ex.weights[sector] * out_log
        for sector in receivers:
            shocks = shocks + ex.weights[sector] * in_log
        applied["rotation"] = {
            "from": list(rot["from"]),
            "to": receivers,
            "from_return": float(np.expm1(out_log)),
            "to_return": float(np.expm1(in_log)),
        }
    if ex.constant is not None:
        shocks = np.where(ex.constant, 0.0, shocks)  # also the shocks that are not beta-scaled
    return shocks, applied


def _noise_correlation(defn: StressDefinition, severity: str, inputs: StressInputs, intensity: np.ndarray,
                       applied: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The correlation target of the noise per session (uniform, or the two-block breakdown): ``within`` and
    ``across`` (T,) target correlations, ``corr_weight`` (T,) how far the noise moves to them, ``groups``
    (N,) int the block of each symbol; the applied figures go into ``applied["correlation"]``."""
    horizon = int(defn.horizon_days)
    groups = np.zeros(len(inputs.anchor.symbols), dtype=np.int64)
    if defn.correlation_breakdown:
        cb = defn.correlation_breakdown
        within_level = float(cb["within"])
        across_level = scaled(cb["across"], severity, "toward", base=within_level)
        t = np.arange(1, horizon + 1)
        window = (t >= int(cb["start_day"])) & (t < int(cb["start_day"]) + int(cb["days"]))
        if not window.any():
            raise ScenarioInputError(f"stress test '{defn.key}': the correlation breakdown lies outside its horizon")
        within = np.full(horizon, within_level)
        across = np.where(window, across_level, within_level)
        corr_weight = np.ones(horizon)
        groups = inputs.defensive.astype(np.int64)
        applied["correlation"] = {"within": within_level, "across_during_breakdown": across_level,
                                  "breakdown_sessions": [int(t[window][0]), int(t[window][-1])]}
    elif defn.correlation is not None:
        target = float(np.clip(scaled(defn.correlation, severity, "toward", base=inputs.baseline_corr), 0.0, MAX_CORRELATION))
        within = across = np.full(horizon, target)
        corr_weight = intensity
        applied["correlation"] = {"baseline": inputs.baseline_corr, "target": target}
    else:
        within = across = np.zeros(horizon)
        corr_weight = np.zeros(horizon)
        applied["correlation"] = {"baseline": inputs.baseline_corr, "target": None}
    return within, across, corr_weight, groups


def _noise_metadata(cfg: StressConfig, noise_severity: str, pinned: tuple[int, int], correction: float) -> dict:
    """How the noise of a stress path was drawn and bounded (``pinned``: the sessions it is pinned to zero)."""
    return {
        "enabled": bool(cfg.noise),
        "common_across_severities": bool(cfg.common_noise),
        "seed_severity_key": noise_severity,
        "pinned_sessions": list(pinned),
        "portfolio_correction_max": round(correction, 6),
        "band": (
            f"each symbol stays between its calibrated lowest level and {NOISE_TOLERANCE:.0%} (log) above its "
            "highest (the anchor for a falling symbol): the noise never deepens the calibrated trough"
        ),
    }


def build_scenario(defn: StressDefinition, severity: str, inputs: StressInputs, cfg: StressConfig,
                   base_seed: int) -> Scenario:
    """One stress test at one severity, from the anchor state (module docstring).

    Parameters
    ----------
    defn : StressDefinition
        The test; its figures are the ``severe`` calibration.
    severity : str
        ``moderate``, ``severe`` or ``extreme`` (k = 0.5 / 1.0 / 1.5, :func:`~scenarios_assets.core.engines.shocks.scaled`).
    inputs : StressInputs
        :func:`prepare_inputs`.
    cfg : StressConfig
        ``noise``, ``common_noise`` and ``intraday_minutes``.
    base_seed : int
        The config's seed; the noise is seeded per test (CRC-32 of its key) and per severity (the ``severe``
        key for every severity with ``common_noise``).

    Returns
    -------
    Scenario
        ``horizon_days`` sessions after the anchor (simple returns, prices), on each symbol's calendar;
        ``extra``: liquidity multipliers, a flash crash's session-1 ``high`` / ``low``; ``metadata``: the
        applied shocks, the factor paths (VIX, rates, credit, USD, liquidity, volatility), noise, sources.

    Raises
    ------
    ScenarioInputError
        A correlation breakdown outside the horizon; a flash crash without an ``intraday`` block or with an
        impossible timing.

    References
    ----------
    Each test's figures and their public sources: ``reference/stress_tests.yaml`` (``sources``, carried into
    ``metadata["sources"]``); betas and sector exposures: ``reference/sectors.yaml``.
    """
    anchor = inputs.anchor
    horizon = int(defn.horizon_days)
    n = len(anchor.symbols)
    frac = profile_path(defn.profile, horizon)
    intensity = np.clip(np.abs(frac), 0.0, 1.0)
    shocks, applied = symbol_shocks(defn, severity, inputs.exposures)
    vol_mult = scaled(defn.volatility_multiplier, severity, "multiplier")
    vol_path = 1.0 + (vol_mult - 1.0) * intensity
    applied["volatility_multiplier"] = vol_mult
    noise_severity = NOISE_SEVERITY if cfg.common_noise else severity
    seed = scenario_seed(base_seed, FAMILY, noise_severity, zlib.crc32(defn.key.encode()) & 0x7FFFFFFF)
    log_path, correction = _log_path(defn, severity, inputs, frac[:, None] * shocks[None, :], (intensity, vol_path),
                                     applied, seed if cfg.noise else None)
    log_prices = np.log(anchor.prices)[None, :] + log_path
    prices = np.exp(log_prices)
    steps = np.diff(np.vstack([np.log(anchor.prices)[None, :], log_prices]), axis=0)
    returns = np.expm1(steps)
    dates = inputs.dates[:horizon]
    factor_paths, extra = _factor_paths(defn, severity, inputs, frac, intensity, vol_path, applied, n)
    metadata = _scenario_metadata(defn, severity, inputs, shocks, applied, factor_paths,
                                  _noise_metadata(cfg, noise_severity, (defn.full_shock_day, horizon), correction))
    if defn.intraday:
        extra.update(intraday_bar(_intraday_path_of(defn, severity, int(cfg.intraday_minutes)), log_path, anchor.prices))
        metadata["intraday"] = _intraday_metadata(defn, severity, int(cfg.intraday_minutes))
    dates, returns, prices, extra, calendars = _on_symbol_calendars(
        inputs, dates.to_numpy().astype("datetime64[D]"), returns, prices, extra, seed,
        inputs.daily_vol if cfg.noise else np.zeros(n))
    return Scenario(
        id=scenario_id(FAMILY, defn.key, severity),
        name=defn.name,
        family=FAMILY,
        scenario_type=SCENARIO_TYPE,
        severity=severity,
        dates=dates,
        symbols=list(anchor.symbols),
        returns=returns,
        prices=prices,
        seed=seed if cfg.noise else None,
        metadata=metadata,
        extra=extra,
        calendars=calendars,
    )


def _log_path(defn: StressDefinition, severity: str, inputs: StressInputs, calibrated: np.ndarray,
              intensity_and_volatility: tuple[np.ndarray, np.ndarray], applied: dict,
              seed: int | None) -> tuple[np.ndarray, float]:
    """The (T, N) cumulative log path from the anchor: ``calibrated`` (profile x full shocks) plus, with a
    ``seed``, the correlated noise pinned and banded around it, the portfolio pinned too; and the largest
    portfolio correction (log). ``intensity_and_volatility``: |f(t)| and the volatility multiplier path (T,)."""
    intensity, vol_path = intensity_and_volatility
    within, across, corr_weight, groups = _noise_correlation(defn, severity, inputs, intensity, applied)
    if seed is None:
        return calibrated, 0.0
    z = correlated_noise(scenario_rng(seed), int(defn.horizon_days), inputs.hist_chol, corr_weight, within, across,
                         groups)
    daily = z * inputs.daily_vol[None, :] * vol_path[:, None]
    log_path = calibrated + bounded_noise(calibrated, pin_bridge(np.cumsum(daily, axis=0), defn.full_shock_day))
    return pin_portfolio(log_path, calibrated, defn.full_shock_day, inputs.unshifted)


def _scenario_metadata(defn: StressDefinition, severity: str, inputs: StressInputs, shocks: np.ndarray,
                       applied: dict, factor_paths: dict, noise: dict) -> dict:
    """A stress scenario's metadata (without the flash crashes' ``intraday`` block)."""
    anchor = inputs.anchor
    return {
        "stress_key": defn.key,
        "kind": defn.kind,
        "description": defn.description,
        "anchor_date": str(anchor.date.date()),
        "anchor_rule": anchor.rule,
        "anchor_prices": dict(zip(anchor.symbols, np.round(anchor.prices, 6).tolist())),
        "excluded_symbols": anchor.excluded,
        "horizon_days": int(defn.horizon_days),
        "full_shock_day": defn.full_shock_day,
        "severity_scale": REPLAY_SCALE[severity],
        "shocks": applied,
        "symbol_full_shock": {s: float(np.expm1(v)) for s, v in zip(anchor.symbols, shocks)},
        "profile": [list(k) for k in defn.profile],
        "factor_paths": factor_paths,
        "noise": noise,
        "sources": defn.sources,
        "source": f"reference/stress_tests.yaml:{defn.key} - " + _headline_source(defn),
        "calibration_source": "volatility and baseline correlation from market data up to the anchor date",
    }


def _on_symbol_calendars(inputs: StressInputs, dates: np.ndarray, returns: np.ndarray, prices: np.ndarray,
                         extra: dict, seed: int, sigma: np.ndarray) -> tuple:
    """A (T, N) stress path over the primary calendar's sessions laid out on each symbol's calendar
    (:mod:`scenarios_assets.core.data.session_layout`), the days between steps bridged with the daily
    volatility ``sigma`` (N,) (the stress noise's; zero without noise: straight between the closes):
    (dates, returns, prices, extra, calendars or None)."""
    if not inputs.calendars:
        return dates, returns, prices, extra, None
    layout = SessionLayout.build(inputs.anchor.date, dates, list(inputs.anchor.symbols), inputs.calendars,
                                 inputs.primary_calendar)
    if layout.identity:
        return dates, returns, prices, extra, None
    r, p, x = layout.apply(returns[None], prices[None], inputs.anchor.prices, [seed],
                           {k: np.asarray(v)[None] for k, v in extra.items()}, sigma=sigma)
    return layout.dates, r[0], p[0], {k: v[0] for k, v in x.items()}, layout.calendars


def _headline_source(defn: StressDefinition) -> str:
    for key in ("equity.market", "intraday.depth", "rotation.magnitude", "correlation_breakdown.across", "liquidity.volume_multiplier"):
        if key in defn.sources:
            return defn.sources[key]
    return next(iter(defn.sources.values()), "see reference/stress_tests.yaml")


def _factor_paths(defn, severity, inputs: StressInputs, frac, intensity, vol_path, applied, n) -> tuple[dict, dict]:
    """Non-equity factor paths (metadata) and the liquidity multipliers (Parquet columns via ``extra``)."""
    paths: dict = {}
    if defn.vix_peak is not None:
        peak = max(scaled(defn.vix_peak, severity, "toward", base=inputs.vix0), inputs.vix0)
        applied["vix_peak"] = peak
        paths["vix"] = inputs.vix0 + (peak - inputs.vix0) * intensity
    else:
        paths["vix"] = inputs.vix0 * vol_path
        applied["vix_peak"] = float(paths["vix"].max())
    for tenor, value in defn.rates_bp.items():
        change = scaled(value, severity, "linear")
        applied.setdefault("rates_bp", {})[tenor] = change
        paths[f"{tenor}_change_bp"] = change * frac
        level = inputs.rates0.get(tenor)
        if level is not None:
            paths[f"{tenor}_level"] = level + change * frac / 1e4
    if defn.credit_spread_bp is not None:
        change = scaled(defn.credit_spread_bp, severity, "linear")
        applied["credit_spread_bp"] = change
        paths["bbb_spread_change_bp"] = change * frac
    if defn.usd_index_change is not None:
        change = scaled(defn.usd_index_change, severity, "log_return")
        applied["usd_index_change"] = change
        paths["usd_index_change"] = np.expm1(np.log1p(change) * frac)
    extra = {}
    if defn.liquidity:
        liq = defn.liquidity
        horizon = len(frac)
        volume = liquidity_path(scaled(liq["volume_multiplier"], severity, "log_multiplier"), int(liq["days"]), int(liq["recovery_days"]), horizon)
        spread = liquidity_path(scaled(liq["spread_multiplier"], severity, "log_multiplier"), int(liq["days"]), int(liq["recovery_days"]), horizon)
        applied["liquidity"] = {"volume_multiplier": float(volume.min()), "spread_multiplier": float(spread.max()),
                                "days": int(liq["days"]), "recovery_days": int(liq["recovery_days"])}
        paths["volume_multiplier"] = volume
        paths["spread_multiplier"] = spread
        extra = {
            "volume_multiplier": np.repeat(volume[:, None], n, axis=1).astype(np.float32),
            "spread_multiplier": np.repeat(spread[:, None], n, axis=1).astype(np.float32),
        }
    paths["volatility_multiplier"] = vol_path
    return {k: np.round(np.asarray(v, dtype=np.float64), 6).tolist() for k, v in paths.items()}, extra


def _intraday_path_of(defn: StressDefinition, severity: str, minutes: int) -> np.ndarray:
    intra = defn.intraday_spec
    return intraday_path(
        intraday_depth(intra, severity),
        int(intra["start_minute"]),
        int(intra["trough_minute"]),
        float(intra["recovery_by_close"]),
        float(intra["rebound_half_life_minutes"]),
        minutes,
    )


def _intraday_metadata(defn: StressDefinition, severity: str, minutes: int) -> dict:
    depth = intraday_depth(defn.intraday_spec, severity)
    path = _intraday_path_of(defn, severity, minutes)
    return {
        "session": 1,
        "minutes": minutes,
        "depth": depth,
        "trough_minute": int(np.argmin(path)),
        "path": np.round(path, 6).tolist(),
        "daily_bar": {"open": float(path[0]), "high": float(path.max()), "low": float(path.min()), "close": float(path[-1])},
        "note": (
            "level of a beta-1 symbol relative to the previous close at minutes 0..N of session 1 (09:30 ET = "
            "minute 0); symbol i's log path is its shock scale times this one's; the daily series of session 1 "
            "is this bar's close (before noise), and its high and low columns are the scaled path's extremes"
        ),
    }


# --- the family -----------------------------------------------------------------------------------

def prepare_inputs(ctx: GenerationContext, definitions: list[StressDefinition]) -> StressInputs:
    """What every stress path of a family run needs, measured once from the market data up to the anchor.

    Parameters
    ----------
    ctx : GenerationContext
        The market data, the economic series (``vix``, rate tenors) and ``generation.stress``.
    definitions : list of StressDefinition
        The selected tests (their longest horizon and their rate tenors).

    Returns
    -------
    StressInputs
        The anchor, the exposures, each symbol's daily volatility of log returns (the median of the others
        without two returns, zero for a constant price), the baseline correlation over
        ``correlation_lookback_days`` and its Cholesky factor, the defensive block, the VIX at the anchor
        (else the reference index's realised volatility in VIX points), the rates at the anchor, the
        sessions after it and the symbols' calendars.

    Raises
    ------
    ScenarioInputError
        No usable anchor (:func:`anchor_state`).
    """
    cfg = ctx.settings.generation.stress
    market = ctx.market
    anchor = anchor_state(market.close, cfg.anchor_date, float(cfg.anchor_min_share))
    log_returns = market.log_returns()
    history = log_returns.loc[: anchor.date, anchor.symbols]
    flat = constant_columns(history.to_numpy(np.float64))
    exposures = symbol_exposures(anchor.symbols, log_returns, market.reference, constant=flat)
    daily_vol = history.std().to_numpy(np.float64)
    # A symbol without two returns borrows the median volatility of the others; a constant price (zero
    # volatility, e.g. a money-market fund) keeps zero: no noise.
    measured = np.isfinite(daily_vol) & (daily_vol > 0)
    fallback = float(np.median(daily_vol[measured])) if measured.any() else 0.01
    daily_vol = np.where(flat, 0.0, np.where(measured, daily_vol, fallback))
    hist_corr = baseline_correlation(log_returns, anchor.symbols, anchor.date, int(cfg.correlation_lookback_days))
    groups = load_reference("sectors")["groups"]
    defensive = np.array(
        [(sec in groups["defensive"]) or (sym in groups["defensive_symbols"]) for sym, sec in zip(anchor.symbols, exposures.sectors)],
        dtype=bool,
    )
    economic = ctx.economic
    vix = economic["vix"].loc[: anchor.date].dropna() if "vix" in economic.columns else pd.Series(dtype=float)
    if vix.empty:
        ref = np.log(market.reference).diff()
        vix0 = float(ref.std() * np.sqrt(ANNUALISATION) * 100)
    else:
        vix0 = float(vix.iloc[-1])
    rates0: dict[str, float | None] = {}
    for tenor in {t for d in definitions for t in d.rates_bp}:
        col = economic[tenor].loc[: anchor.date] if tenor in economic.columns else pd.Series(dtype=float)
        recent = col.iloc[-5:].dropna() if len(col) else col
        rates0[tenor] = float(recent.iloc[-1]) if len(recent) else None
    horizon = max((d.horizon_days for d in definitions), default=1)
    primary = configured_calendar(ctx.settings.data.trading_calendar)
    dates = pd.DatetimeIndex(sessions_after(anchor.date, horizon, primary))
    return StressInputs(
        anchor, exposures, daily_vol, hist_corr, np.linalg.cholesky(hist_corr), average_correlation(hist_corr),
        defensive, vix0, rates0, dates, np.array([s == market.reference.name for s in anchor.symbols]) | flat,
        tuple(sym for sym, f in zip(anchor.symbols, flat) if f),
        calendars_of(list(anchor.symbols), primary, ctx.settings.data.symbol_calendars,
                     market.report.get("seven_day_symbols")),
        primary,
    )


def select_definitions(include: Sequence[str] | None) -> list[StressDefinition]:
    """The stress tests of ``generation.stress.include`` (file order), or all of them when it is empty.

    Parameters
    ----------
    include : sequence of str or None
        Stress-test keys.

    Returns
    -------
    list of StressDefinition

    Raises
    ------
    ScenarioInputError
        An unknown key (the message lists the known ones), or an invalid record.
    """
    definitions = load_stress_tests()
    include = list(include or [])
    if include:
        known = [d.key for d in definitions]
        unknown = [k for k in include if k not in known]
        if unknown:
            raise ScenarioInputError(
                f"generation.stress.include: unknown stress test(s) {', '.join(unknown)} (known: {', '.join(known)})"
            )
        definitions = [d for d in definitions if d.key in include]
    return definitions


def generate_stress(ctx: GenerationContext) -> ScenarioSet:
    """Every selected stress test at ``ctx.severity``, from the last available market state.

    Parameters
    ----------
    ctx : GenerationContext
        The market data, the economic series, ``generation.stress``, the seed and the severity.

    Returns
    -------
    ScenarioSet
        One scenario per selected test (:func:`build_scenario`); ``metadata``: the anchor, the symbols and
        their exposures, the calendars, the baseline correlation, the anchor VIX and the noise settings.

    Raises
    ------
    ScenarioInputError
        An unknown key in ``generation.stress.include``, no usable anchor, or an invalid definition.
    """
    cfg = ctx.settings.generation.stress
    definitions = select_definitions(cfg.include)
    inputs = prepare_inputs(ctx, definitions)
    history = ctx.market.close.pct_change(fill_method=None)
    baseline_vol = portfolio_volatility(history, inputs.anchor.symbols)
    scenarios = []
    for defn in definitions:
        scenario = build_scenario(defn, ctx.severity, inputs, cfg, ctx.seed)
        scenario.set_volatility_multiplier(baseline_vol)
        scenarios.append(scenario)
    metadata = {
        "events_in_catalog": len(definitions),
        "anchor_date": str(inputs.anchor.date.date()),
        "anchor_rule": inputs.anchor.rule,
        "symbols": len(inputs.anchor.symbols),
        "excluded_symbols": inputs.anchor.excluded,
        "baseline_correlation": inputs.baseline_corr,
        "anchor_vix": inputs.vix0,
        "trading_calendar": inputs.primary_calendar,
        "symbol_calendars": (own := {s: c for s, c in (inputs.calendars or {}).items() if c != inputs.primary_calendar}),
        "session_layout": CONVENTION if own else "single calendar",
        "severity_scale": REPLAY_SCALE[ctx.severity],
        "noise": bool(cfg.noise),
        "common_noise": bool(cfg.common_noise),
        "exposures": {
            sym: {"sector": sector, "beta": beta}
            for sym, sector, beta in zip(inputs.anchor.symbols, inputs.exposures.sectors, inputs.exposures.betas.tolist())
        },
        "default_exposure_symbols": inputs.exposures.defaults,
        "constant_price_symbols": {
            sym: "price never moved up to the anchor: beta 0, no sector shock, no noise (the path stays at its close)"
            for sym in inputs.constant_price_symbols
        },
        "exposure_source": "reference/sectors.yaml (unknown symbols: the documented default there)",
    }
    return ScenarioSet(
        family=FAMILY,
        severity=ctx.severity,
        scenarios=scenarios,
        data_version=ctx.market.data_version,
        config_hash=ctx.config_hash,
        metadata=jsonable(metadata),
    )
