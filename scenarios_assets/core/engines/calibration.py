"""Calibration of the Monte Carlo path model: the calibration window and universe, the severity profiles,
variance targeting, drift shrinkage, and :func:`calibrate`, which turns a window into a :class:`PathModel`.

Calibration window and universe
    The window ends on the last session on which at least ``min_symbols_share`` of the panel's symbols
    have a close (or on ``calibration_end`` when given), so a few long-running series (an index, one
    stock) do not pull the window past the end of most of the universe. On the bundled data (most
    symbols end 2022-12-28, SPX 2025-01-31, NVDA 2025-02-14) this is 2022-12-28. The window covers the
    ``fit_window_years`` before that end; the universe is every symbol with a daily log return on at
    least ``min_coverage`` of the window's sessions. Paths start at the window's end from each symbol's
    close on that date (its last close on or before it when it has none that day).

Volatility (GARCH models; fits in :mod:`scenarios_assets.core.engines.garch`)
    Persistence P = alpha + gamma / 2 + beta is capped at MAX_PERSISTENCE = 0.99 (half-life of a volatility
    shock at most 69 sessions): near-integrated fits (on the bundled window GE 1.000, RRC 1.000, NVDA 0.999,
    XOM 0.999) leave the long-run variance unidentified, and a near-unit-root variance process has a
    right-skewed distribution whose median path drifts down, which made simulated volatility come out
    low. The conditional variance never exceeds the symbol's highest 21-session realised variance in the
    window (S&P 500: 6.1 % a day, the 21 sessions to 2020-04-06) or its start and stressed levels when
    higher. Variance targeting (Engle & Mezrich 1996): the long-run variance of every symbol is v, the
    window's sample variance of daily log returns; omega starts at v (1 - P) and is raised by fixed-point
    iteration until the capped recursion's stationary mean is v (:func:`targeted_omega`: the ceiling cuts the
    rare spikes that carry much of a heavy-tailed variance's mean; without it the S&P 500 came out 13 %
    below its window volatility). The starting variance is the window's long-run variance at moderate (the
    window's regime rather than one day's state: NVDA's forecast after 2022-12-28 is 70 % a year against
    44 % on average), and max(one-step forecast after the window's last return, stressed long-run variance)
    at severe and extreme. Student-t degrees of freedom are bounded to [MIN_DOF, MAX_DOF] = [5, 50] so the
    fourth moment exists (excess kurtosis 6 / (nu - 4) <= 6).

Drift (``drift_prior_annual``, ``drift_prior_sd_annual``)
    A ten-year window's mean return is a poor forecast (standard error about 8 % a year for a stock with 25 %
    volatility; the bundled window 2012-2022 was a bull market with a median portfolio return near 19 % a
    year). Each symbol's mean daily log return m is shrunk toward the prior m0 (annual 3.5 %: the expected
    equity premium over bills, 3-3.5 % geometric, Dimson, Marsh & Staunton, "The Worldwide Equity Premium:
    A Smaller Puzzle", 2008) with precision weights (normal-normal Bayes, as in Jorion 1986):
    mu = w m + (1 - w) m0, w = tau^2 / (tau^2 + se^2), tau the prior's standard deviation (2 % a year), se the
    standard error of m (w is about 0.06 on the bundled window). The drift is thus an excess-over-cash
    figure, a deliberately conservative one. Severity scales the expected simple return mu + v / 2 (v the
    window's variance) by ``drift_scale`` and the log drift is that less half the stressed variance k v, so
    a stressed path expects less (severe) or nothing (extreme) in simple-return terms.

Severity (``STRESS_PROFILES``, the one table of calibration numbers)
    Severity shifts the calibrated volatility level, correlation and drift; never the tails (the
    degrees of freedom are the fitted ones at every severity). See :class:`StressProfile`. Moderate is the
    model as calibrated. Severe and extreme scale each symbol's long-run variance by
    k = max(Q_q(h) / mean(h), floor), h the symbol's conditional variance over the window (21-session
    rolling variance for constant-volatility models): q = 0.75 / floor 1.2^2 (severe) and q = 0.95 /
    floor 1.5^2 (extreme); the path starts from max(last forecast, k v). The stressed level is the long-run
    level, so the stress persists over the whole horizon at the fitted persistence instead of decaying.
    Correlations are pushed toward 1 (rho' = rho + p (1 - rho)) until their mean is the mean correlation
    the window had on the days its equal-weight portfolio's 21-session volatility was in its top quartile
    (severe; 0.53 on the bundled window) or top 5 % (extreme; 0.67). The drift is scaled by 1 / 0.5 / 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scenarios_assets.core.data.market import constant_columns
from scenarios_assets.core.engines.correlation import (
    REALISED_VARIANCE_DAYS,
    cholesky,
    correlation,
    mean_off_diagonal,
    nearest_correlation,
    parse_correlation_window,
    push_correlation,
    state_correlation,
    t_mixing_mean,
    target_correlation,
)
from scenarios_assets.core.engines.garch import (
    MAX_DOF,
    MAX_PERSISTENCE,
    MIN_DOF,
    VOLATILITY_LABELS,
    VOLATILITY_MODELS,
    GarchFit,
    fit_garch,
)
from scenarios_assets.core.engines.simulation import CIRCUIT_BREAKER, LOG_RETURN_CLIP, PathModel
from scenarios_assets.core.models.config import MonteCarloConfig
from scenarios_assets.core.models.errors import CalibrationError, ScenarioInputError
from scenarios_assets.core.models.units import TRADING_DAYS_PER_YEAR

MODELS = ("garch", "gbm", "historical_distribution")
TARGETING_SESSIONS = 20_000  # sessions of the variance-targeting simulation (about 80 years)
TARGETING_BURN_IN = 500
TARGETING_ITERATIONS = 4
TARGETING_SEED = 20_101_987  # fixed: the calibration does not depend on the scenarios' seeds
MIN_RESIDUAL_SESSIONS = 20  # filtered historical simulation: sessions with a residual for every symbol
CONSTANT_PRICE_RULE = ("every return in the calibration window is 0: simulated with zero volatility and drift (the "
                       "path stays at the last close)")


def model_label(model: str, volatility_model: str) -> str:
    """Human-readable name of a return model with its volatility model.

    Parameters
    ----------
    model : {"garch", "gbm", "historical_distribution"}
    volatility_model : {"gjr_garch", "garch"}

    Returns
    -------
    str
        E.g. ``GJR-GARCH(1,1,1)-t``, ``GBM``, ``filtered historical simulation (GARCH(1,1))``.
    """
    if model == "garch":
        return f"{VOLATILITY_LABELS[volatility_model]}-t"
    if model == "gbm":
        return "GBM"
    return f"filtered historical simulation ({VOLATILITY_LABELS[volatility_model]})"


@dataclass(frozen=True)
class StressProfile:
    """Calibration shift of one severity (see the module docstring for the formulas).

    Tails are not a severity lever: the Student-t degrees of freedom are the fitted ones at every severity.
    Persistence is the fitted one (capped) at every severity; a stressed level is the long-run level, so
    the stress persists over the whole horizon.

    Attributes
    ----------
    variance_quantile : float or None
        Quantile of each symbol's historical conditional variance taken as the stressed long-run variance
        (None: the calibrated long-run variance as is).
    variance_floor : float
        Minimum ratio of stressed to average historical variance (keeps severities ordered even when a
        symbol's variance distribution is narrow).
    correlation_quantile : float or None
        The stressed correlation is the window's mean correlation on the days the equal-weight portfolio's
        21-session volatility is at or above this quantile (None: as estimated).
    drift_scale : float
        Multiplier of the expected simple return (the shrunk drift plus half the variance).
    """

    variance_quantile: float | None
    variance_floor: float
    correlation_quantile: float | None
    drift_scale: float

    def as_dict(self) -> dict:
        """The profile as recorded in the set metadata (with the volatility floor, sqrt of the variance floor).

        Returns
        -------
        dict
            ``variance_quantile``, ``variance_floor``, ``volatility_floor`` (sqrt of the variance floor,
            rounded to 6 decimals: the minimum ratio of stressed to average volatility),
            ``correlation_quantile`` and ``drift_scale``.
        """
        return {
            "variance_quantile": self.variance_quantile,
            "variance_floor": self.variance_floor,
            "volatility_floor": round(math.sqrt(self.variance_floor), 6),
            "correlation_quantile": self.correlation_quantile,
            "drift_scale": self.drift_scale,
        }


STRESS_PROFILES: dict[str, StressProfile] = {
    # the calibrated model: last conditional variance, window's long-run variance and correlation, shrunk drift
    "moderate": StressProfile(None, 1.0, None, 1.0),
    # upper-quartile volatility (>= 1.2x average), the correlation of the window's upper-quartile volatility
    # days (0.53 on the bundled window against 0.39 overall), half the drift
    "severe": StressProfile(0.75, 1.2**2, 0.75, 0.5),
    # crisis: volatility near its 95th percentile (>= 1.5x average), the correlation of the window's top 5 %
    # volatility days (0.67, the level of the 2020 sell-off), no drift
    "extreme": StressProfile(0.95, 1.5**2, 0.95, 0.0),
}


# --- calibration window -----------------------------------------------------------------------------

@dataclass(frozen=True)
class CalibrationWindow:
    """The window and universe a stochastic model is calibrated on, and the start state of its paths.

    Attributes
    ----------
    start, end : pandas.Timestamp
        First and last session of the window (``end``: the paths' start date).
    symbols : list of str
        The universe (N symbols).
    log_returns : DataFrame of shape (T, N), float64
        Daily log returns, window sessions x universe (NaN where missing).
    last_close : ndarray of shape (N,), float64
        Each symbol's close at the window's end (its last one on or before it).
    last_close_date : dict
        Symbol -> ISO date of that close.
    coverage : dict
        Symbol -> fraction of the window's sessions with a return.
    excluded : dict
        Symbol -> coverage, for the symbols left out.
    end_rule : str
        How the end was chosen.
    """

    start: pd.Timestamp
    end: pd.Timestamp
    symbols: list[str]
    log_returns: pd.DataFrame
    last_close: np.ndarray
    last_close_date: dict[str, str]
    coverage: dict[str, float]
    excluded: dict[str, float]
    end_rule: str

    @property
    def sessions(self) -> int:
        """Sessions T of the window."""
        return len(self.log_returns)

    def describe(self) -> dict:
        """The window as recorded in the set metadata (``calibration_window``).

        Returns
        -------
        dict
            ``start`` and ``end`` (ISO dates), ``sessions`` (T), ``symbols`` (N), ``end_rule`` and
            ``excluded_symbols`` (symbol -> coverage, fraction of the window's sessions).
        """
        return {
            "start": str(self.start.date()),
            "end": str(self.end.date()),
            "sessions": self.sessions,
            "symbols": len(self.symbols),
            "end_rule": self.end_rule,
            "excluded_symbols": self.excluded,
        }

    def start_state(self, data_end: pd.Timestamp, first_date) -> dict:
        """How the paths start (set metadata ``start_state``): date, rule and the shift from the data's end.

        Parameters
        ----------
        data_end : pandas.Timestamp
            The market data's last date (anything ``pandas.Timestamp`` takes).
        first_date : date-like
            The first simulated date (recorded as ``str(first_date)``, e.g. a ``numpy.datetime64[D]``).

        Returns
        -------
        dict
            ``date`` (the window's end, ISO), ``first_simulated_date``, ``rule``, ``market_data_end``,
            ``shift_from_market_data_end_days`` (calendar days from the window's end to ``data_end``) and
            ``closes_before_start_date`` (symbol -> ISO date of its last close, for the symbols without a
            close on the window's end).
        """
        stale = {s: d for s, d in self.last_close_date.items() if d != str(self.end.date())}
        return {
            "date": str(self.end.date()),
            "first_simulated_date": str(first_date),
            "rule": (
                "every path starts at the calibration window's end with each symbol's close on that date "
                "(its last close on or before it where it has none), so the start state is the cross-section "
                "the model was calibrated on"
            ),
            "market_data_end": str(pd.Timestamp(data_end).date()),
            "shift_from_market_data_end_days": int((pd.Timestamp(data_end) - self.end).days),
            "closes_before_start_date": stale,
        }


def years_offset(years: float) -> pd.DateOffset | pd.Timedelta:
    """A span of ``years`` before a date.

    Parameters
    ----------
    years : float
        Years (> 0).

    Returns
    -------
    pandas.DateOffset or pandas.Timedelta
        A calendar offset of whole years, else round(years x 365.25) days.
    """
    years = float(years)
    return pd.DateOffset(years=int(years)) if years.is_integer() else pd.Timedelta(days=round(years * 365.25))


def calibration_window(
    close: pd.DataFrame,
    *,
    years: float | None,
    min_coverage: float,
    min_symbols_share: float,
    end: str | pd.Timestamp | None = None,
    symbols: list[str] | None = None,
    min_sessions: int = 60,
) -> CalibrationWindow:
    """The calibration window and universe of ``close`` (see the module docstring for the rule).

    Parameters
    ----------
    close : DataFrame of shape (n_dates, n_symbols), float
        Daily closes, dates x symbols; NaN where a symbol has none.
    years : float or None
        Length of the window before its end; None: the whole history.
    min_coverage : float
        Fraction of the window's sessions a symbol needs a daily log return on to be in the universe.
    min_symbols_share : float
        Fraction of the symbols that must have a close on the window's last session.
    end : str or Timestamp, optional
        Latest allowed end (``calibration_end``).
    symbols : list of str, optional
        Restrict the panel to these symbols first.
    min_sessions : int
        Fewest sessions the window may hold.

    Returns
    -------
    CalibrationWindow

    Raises
    ------
    CalibrationError
        No symbol, no qualifying session or symbol, or fewer than ``min_sessions`` sessions in the window.
    """
    if symbols is not None:
        close = close.loc[:, [s for s in symbols if s in close.columns]]
    if close.shape[1] == 0:
        raise CalibrationError("no symbol to calibrate on")
    dates = close.index
    counts = close.notna().sum(axis=1).to_numpy()
    need = max(1, math.ceil(float(min_symbols_share) * close.shape[1] - 1e-9))
    eligible = counts >= need
    if end is not None:
        end_ts = pd.Timestamp(end).normalize()
        eligible &= np.asarray(dates <= end_ts)
        rule = f"calibration_end {end_ts.date()} (last session on or before it with >= {need} of {close.shape[1]} symbols)"
    else:
        rule = f"last session on which at least {need} of {close.shape[1]} symbols have data (min_symbols_share {min_symbols_share:g})"
    rows = np.flatnonzero(eligible)
    if rows.size == 0:
        raise CalibrationError(f"no session has data for at least {need} of {close.shape[1]} symbols")
    end_row = int(rows[-1])
    end_date = dates[end_row]
    lo = end_date - years_offset(years) if years else dates[0] - pd.Timedelta(days=1)
    window_rows = np.flatnonzero(np.asarray((dates > lo) & (dates <= end_date)))
    if years is None:
        window_rows = window_rows[1:]  # the first session has no return
    if window_rows.size < min_sessions:
        since = f"; the market data starts {dates[0].date()}" if dates[0] > lo else ""
        raise CalibrationError(
            f"the calibration window {lo.date()}..{end_date.date()} holds {window_rows.size} sessions "
            f"(at least {min_sessions} needed){since}"
        )
    return _window(close, window_rows, end_row, min_coverage, rule)


def _window(close: pd.DataFrame, window_rows: np.ndarray, end_row: int, min_coverage: float, rule: str) -> CalibrationWindow:
    """The universe (coverage rule) and start state of the window ``window_rows`` ending at ``end_row``."""
    dates = close.index
    end_date = dates[end_row]
    values = close.to_numpy(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_close = np.log(values)
    log_ret = np.full_like(log_close, np.nan)
    log_ret[1:] = log_close[1:] - log_close[:-1]
    window = log_ret[window_rows]
    coverage = np.isfinite(window).mean(axis=0)
    keep = coverage >= float(min_coverage) - 1e-12
    names = list(close.columns)
    chosen = [s for s, k in zip(names, keep) if k]
    excluded = {s: round(float(c), 4) for s, c, k in zip(names, coverage, keep) if not k}
    if not chosen:
        best = int(np.argmax(coverage))
        raise CalibrationError(
            f"no symbol has data on at least {min_coverage:.0%} of the calibration window "
            f"{dates[window_rows[0]].date()}..{end_date.date()} (best: {names[best]} with {coverage[best]:.0%})"
        )
    cols = np.flatnonzero(keep)
    sub = values[: end_row + 1, cols]  # the start state: closes up to the window's end, never after it
    seen = np.isfinite(sub)
    last_row = len(sub) - 1 - np.argmax(seen[::-1], axis=0)
    last_close = sub[last_row, np.arange(len(cols))]
    return CalibrationWindow(
        start=dates[window_rows[0]],
        end=end_date,
        symbols=chosen,
        log_returns=pd.DataFrame(window[:, cols], index=dates[window_rows], columns=chosen),
        last_close=last_close,
        last_close_date={s: str(dates[r].date()) for s, r in zip(chosen, last_row)},
        coverage={s: round(float(c), 4) for s, c in zip(chosen, coverage[cols])},
        excluded=excluded,
        end_rule=rule,
    )


# --- drift ---------------------------------------------------------------------------------------------

def shrunk_drift(x: np.ndarray, prior_annual: float, prior_sd_annual: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-symbol daily log drift shrunk toward a prior, and the weight of the window's mean.

    mu = w m + (1 - w) m0 with m the window's mean, m0 = prior_annual / 252, w = tau^2 / (tau^2 + se^2),
    tau = prior_sd_annual / 252 and se = s / sqrt(n) the standard error of m (normal-normal precision
    weighting; see the module docstring).

    Parameters
    ----------
    x : ndarray of shape (T, N), float64
        Daily log returns (decimal), NaN where missing.
    prior_annual : float
        The prior mean, annual log return (the equity premium over bills, 0.035).
    prior_sd_annual : float
        The prior's standard deviation, annual log return; 0: the prior alone.

    Returns
    -------
    mu : ndarray of shape (N,), float64
        The shrunk daily log drift.
    weight : ndarray of shape (N,), float64
        w, the weight of the window's mean (fraction).

    References
    ----------
    Dimson, E., Marsh, P. & Staunton, M. (2008). The worldwide equity premium: a smaller puzzle. In Mehra, R.
    (ed.), Handbook of the Equity Risk Premium, Elsevier, 467-514 (the prior).
    Jorion, P. (1986). Bayes-Stein estimation for portfolio analysis. Journal of Financial and Quantitative
    Analysis 21:279-292 (precision-weighted shrinkage of a sample mean).
    """
    m = np.nanmean(x, axis=0)
    n = np.isfinite(x).sum(axis=0)
    se2 = np.nanvar(x, axis=0, ddof=1) / np.maximum(n, 1)
    tau2 = (float(prior_sd_annual) / TRADING_DAYS_PER_YEAR) ** 2
    w = tau2 / (tau2 + se2) if tau2 > 0 else np.zeros_like(m)
    return w * m + (1.0 - w) * float(prior_annual) / TRADING_DAYS_PER_YEAR, w


# --- variance: stress factor, ceiling, targeting -------------------------------------------------------

def stress_factor(history_variance: np.ndarray, profile: StressProfile) -> np.ndarray:
    """The variance stress factor k = max(Q_q(h) / mean(h), floor) per symbol.

    Parameters
    ----------
    history_variance : ndarray of shape (T, N), float64
        Each symbol's conditional (or rolling) variance over the window, NaN where missing.
    profile : StressProfile
        ``variance_quantile`` q and ``variance_floor``.

    Returns
    -------
    ndarray of shape (N,), float64
        k (1 everywhere when the profile does not stress variance; the floor for a zero-variance symbol).
    """
    if profile.variance_quantile is None:
        return np.ones(history_variance.shape[1])
    mean = np.nanmean(history_variance, axis=0)
    q = np.nanquantile(history_variance, profile.variance_quantile, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(mean > 0, q / mean, 1.0)  # zero variance (constant price): k stays finite, 0 * k = 0
    return np.maximum(ratio, profile.variance_floor)


def variance_ceiling(x: np.ndarray) -> np.ndarray:
    """Highest 21-session realised variance of each symbol in the window.

    Parameters
    ----------
    x : ndarray of shape (T, N), float64
        Daily log returns, NaN where missing.

    Returns
    -------
    ndarray of shape (N,), float64
        max over the window of the rolling 21-session sample variance (at least 11 observations), in daily
        log return squared.
    """
    rolling = pd.DataFrame(x).rolling(REALISED_VARIANCE_DAYS, min_periods=REALISED_VARIANCE_DAYS // 2 + 1).var()
    return rolling.max().to_numpy(np.float64)


def targeting_innovations(nu: np.ndarray | None, residuals: np.ndarray) -> np.ndarray:
    """Unit-variance innovations of the variance-targeting simulation, from the fixed ``TARGETING_SEED``.

    Parameters
    ----------
    nu : ndarray of shape (N,), float64, or None
        Student-t degrees of freedom per symbol; None: resample whole rows of ``residuals`` instead.
    residuals : ndarray of shape (T, N), float64
        Standardised residuals of the window (NaN where missing).

    Returns
    -------
    ndarray of shape (TARGETING_SESSIONS, N), float64
    """
    rng = np.random.Generator(np.random.PCG64(TARGETING_SEED))
    n = residuals.shape[1]
    if nu is None:
        pool = residuals[np.isfinite(residuals).all(axis=1)]
        pool = pool / pool.std(axis=0)
        return pool[rng.integers(0, len(pool), size=TARGETING_SESSIONS)]
    z = rng.standard_normal((TARGETING_SESSIONS, n))
    return z * np.sqrt((nu - 2.0) / (2.0 * rng.standard_gamma(np.broadcast_to(nu / 2.0, z.shape))))


def targeted_omega(
    alpha: np.ndarray, gamma: np.ndarray, beta: np.ndarray, long_run: np.ndarray, cap: np.ndarray, draws: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """omega of the capped GJR-GARCH recursion whose stationary mean is ``long_run``.

    Variance targeting sets omega = long_run (1 - P) with P = alpha + gamma / 2 + beta; the ceiling ``cap``
    then removes the rare spikes that carry much of a heavy-tailed variance process's mean (the S&P 500's
    GJR-t fit has gamma 0.32), so omega is raised by fixed-point iteration omega <- omega long_run / mean(h)
    (``TARGETING_ITERATIONS`` steps, each factor in [1, 2]) on a simulation of
    h' = min(omega + (alpha + gamma 1[z < 0]) z^2 h + beta h, cap) over ``draws`` (common to every step,
    the first ``TARGETING_BURN_IN`` sessions left out of the mean).

    Parameters
    ----------
    alpha, gamma, beta : ndarray of shape (N,), float64
        The (persistence-capped) recursion coefficients.
    long_run : ndarray of shape (N,), float64
        Target stationary mean of h (daily log return squared).
    cap : ndarray of shape (N,), float64
        Ceiling of h.
    draws : ndarray of shape (T, N), float64
        Unit-variance innovations (:func:`targeting_innovations`).

    Returns
    -------
    omega : ndarray of shape (N,), float64
    achieved : ndarray of shape (N,), float64
        The simulated mean of h relative to ``long_run`` with the returned omega's predecessor (1 where
        ``long_run`` is 0).

    References
    ----------
    Engle, R. & Mezrich, J. (1996). GARCH for groups. Risk 9(8):36-40 (variance targeting).
    """
    growth = beta + (alpha + gamma * (draws < 0)) * draws**2  # (T, N): h' = omega + growth h
    omega = long_run * (1.0 - alpha - gamma / 2.0 - beta)
    achieved = np.ones_like(omega)
    for iteration in range(TARGETING_ITERATIONS + 1):
        h = long_run.copy()
        total = np.zeros_like(omega)
        for t in range(len(growth)):
            h = np.minimum(omega + growth[t] * h, cap)
            if t >= TARGETING_BURN_IN:
                total += h
        mean = total / (len(growth) - TARGETING_BURN_IN)
        achieved = np.divide(mean, long_run, out=np.ones_like(mean), where=long_run > 0)  # a constant series stays 0
        if iteration < TARGETING_ITERATIONS:
            omega = omega * np.clip(1.0 / achieved, 1.0, 2.0)  # the ceiling only lowers the mean
    return omega, achieved


def correlation_push(base: np.ndarray, x: np.ndarray, simple: np.ndarray, profile: StressProfile) -> tuple[float, dict]:
    """The push p toward 1 that takes the mean correlation of ``base`` to the window's stressed-state mean.

    Parameters
    ----------
    base : ndarray of shape (N, N), float64
        The calibrated correlation.
    x : ndarray of shape (T, N), float64
        The rows whose stressed-state correlation is the target (daily log returns or residuals).
    simple : ndarray of shape (T, N), float64
        Daily simple returns of the window (the equal-weight portfolio's volatility picks the sessions).
    profile : StressProfile
        ``correlation_quantile`` (None: no push).

    Returns
    -------
    push : float
        p in [0, 1] (rho' = rho + p (1 - rho); 0 when the target is below the current mean).
    info : dict
        The target, its sessions and rule, and the push (set metadata; empty without a push).
    """
    if profile.correlation_quantile is None:
        return 0.0, {}
    target, sessions = state_correlation(x, simple, profile.correlation_quantile)
    current = mean_off_diagonal(base)
    push = float(np.clip((target - current) / (1.0 - current), 0.0, 1.0)) if current < 1.0 else 0.0
    return push, {
        "stressed_correlation_target": target,
        "stressed_correlation_sessions": sessions,
        "stressed_correlation_rule": (
            f"mean correlation on the window's sessions with equal-weight portfolio 21-session volatility at or above "
            f"its {profile.correlation_quantile:.0%} quantile"
        ),
        "correlation_push": push,
    }


# --- the path model ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Choice:
    """The checked model settings of one calibration."""

    model: str
    use_garch: bool
    volatility_model: str
    rolling: int | None  # sessions of the rolling correlation window (None: full window)
    shrinkage: float


def _choice(cfg: MonteCarloConfig, model: str | None) -> _Choice:
    """The model settings of ``cfg`` (``model`` overrides ``return_model``); ScenarioInputError if unsupported."""
    model = model or cfg.return_model
    if model not in MODELS:
        raise ScenarioInputError(f"monte_carlo.return_model '{model}' is not supported (use {', '.join(MODELS)})")
    scaling = str(cfg.volatility_scaling)
    if scaling.lower() not in ("garch", "none"):
        raise ScenarioInputError(f"monte_carlo.volatility_scaling '{scaling}' is not supported (use GARCH or none)")
    use_garch = model == "garch" or (model == "historical_distribution" and scaling.lower() == "garch")
    if model == "garch" and scaling.lower() != "garch":
        raise ScenarioInputError("monte_carlo.return_model garch needs volatility_scaling GARCH")
    vol_model = str(cfg.volatility_model)
    if vol_model not in VOLATILITY_MODELS:
        raise ScenarioInputError(
            f"monte_carlo.volatility_model '{vol_model}' is not supported (use {', '.join(VOLATILITY_MODELS)})"
        )
    rolling = parse_correlation_window(cfg.correlation_matrix)
    shrinkage = float(cfg.correlation_shrinkage)
    if not 0.0 <= shrinkage <= 1.0:
        raise ScenarioInputError(f"monte_carlo.correlation_shrinkage must lie in [0, 1], got {shrinkage}")
    return _Choice(model, use_garch, vol_model, rolling, shrinkage)


def _garch_variance(pm: PathModel, fit: GarchFit, x: np.ndarray, variance: np.ndarray, drift: np.ndarray,
                    profile: StressProfile, desc: dict) -> np.ndarray:
    """Fill the variance recursion and drift of ``pm`` from the fits (module docstring); returns k (N,)."""
    k = stress_factor(fit.variance, profile)
    scale = np.minimum(1.0, MAX_PERSISTENCE / fit.persistence)
    pm.alpha, pm.gamma, pm.beta = fit.alpha * scale, fit.gamma * scale, fit.beta * scale
    long_run = k * variance
    forecast = fit.forecast / 1e4
    # moderate starts at the window's long-run variance (the calibration window's regime, not one day's
    # state: end-2022 NVDA 70 % against 44 % on average); stressed severities at least at the forecast
    h1 = np.maximum(forecast, long_run) if profile.variance_quantile is not None else long_run.copy()
    pm.h1 = h1
    pm.h_cap = np.maximum.reduce([variance_ceiling(x), h1, long_run])
    draws = targeting_innovations(np.clip(fit.nu, MIN_DOF, MAX_DOF) if pm.model == "garch" else None, fit.residuals)
    pm.omega, achieved = targeted_omega(pm.alpha, pm.gamma, pm.beta, long_run, pm.h_cap, draws)
    # drift_scale scales the expected simple return (log drift + variance / 2), as for GBM below; the log
    # drift is what remains after half the stressed long-run variance
    pm.mu = (drift + variance / 2.0) * profile.drift_scale - long_run / 2.0
    desc["fitted_parameters"] = fit.summary()
    desc["fitted_parameters_by_symbol"] = fit.by_symbol()
    desc["persistence_cap"] = MAX_PERSISTENCE
    desc["persistence_capped_symbols"] = [s for s, c in zip(pm.symbols, scale < 1.0) if c]
    desc["starting_variance_rule"] = (
        "the window's long-run variance" if profile.variance_quantile is None
        else "max(one-step forecast after the window's last return, stressed long-run variance)"
    )
    desc["annualised_volatility_forecast_median"] = float(np.median(np.sqrt(forecast * TRADING_DAYS_PER_YEAR)))
    desc["annualised_volatility_start_median"] = float(np.median(np.sqrt(h1 * TRADING_DAYS_PER_YEAR)))
    desc["annualised_volatility_long_run_median"] = float(np.median(np.sqrt(long_run * TRADING_DAYS_PER_YEAR)))
    desc["annualised_volatility_ceiling_median"] = float(np.median(np.sqrt(pm.h_cap * TRADING_DAYS_PER_YEAR)))
    desc["variance_targeting"] = {
        "rule": (
            f"omega set so the stationary mean of the capped variance recursion is the window's variance "
            f"(x the severity factor), on a {TARGETING_SESSIONS:,}-session simulation with a fixed seed"
        ),
        "achieved_ratio_min": float(achieved.min()),
        "achieved_ratio_median": float(np.median(achieved)),
    }
    if pm.model == "garch":
        pm.nu = np.clip(fit.nu, MIN_DOF, MAX_DOF)
        desc["innovation_dof_median"] = float(np.median(pm.nu))
        desc["innovation_dof_bounds"] = [MIN_DOF, MAX_DOF]
    return k


def _constant_variance(pm: PathModel, x: np.ndarray, drift: np.ndarray, profile: StressProfile,
                       desc: dict) -> tuple[np.ndarray, np.ndarray]:
    """Fill the constant volatility and drift of ``pm`` (GBM, unscaled FHS); returns (k (N,), residuals (T, N))."""
    m = np.nanmean(x, axis=0)
    s = np.nanstd(x, axis=0, ddof=1)
    rolling_var = pd.DataFrame(x).rolling(21, min_periods=15).var().to_numpy()
    k = stress_factor(rolling_var, profile)
    sigma = s * np.sqrt(k)
    # log drift = (arithmetic drift x drift_scale) - sigma'^2 / 2, arithmetic = mu + s^2 / 2
    pm.mu = (drift + s**2 / 2.0) * profile.drift_scale - sigma**2 / 2.0
    pm.sigma = sigma
    desc["annualised_volatility_median"] = float(np.median(sigma * np.sqrt(TRADING_DAYS_PER_YEAR)))
    return k, (x - m) / s


def _residual_pool(pm: PathModel, residuals: np.ndarray, simple: np.ndarray, profile: StressProfile, desc: dict) -> None:
    """The resampled rows of filtered historical simulation, recoloured toward the stressed correlation."""
    pool = residuals[np.isfinite(residuals).all(axis=1)]
    pool = pool - pool.mean(axis=0)  # the drift is the model's; residual rows carry none
    if len(pool) < MIN_RESIDUAL_SESSIONS:
        raise CalibrationError(f"fewer than {MIN_RESIDUAL_SESSIONS} sessions have a residual for every symbol (filtered historical simulation)")
    emp = nearest_correlation(correlation(pool))
    push, info = correlation_push(emp, residuals, simple, profile)
    if push > 0:  # recolour the resampled rows toward the stressed correlation
        a = cholesky(push_correlation(emp, push)) @ np.linalg.inv(cholesky(emp))
        pool = pool @ a.T
    pm.pool = np.ascontiguousarray(pool, dtype=np.float32)
    desc["correlation"] = f"empirical (whole dates of standardised residuals, {len(pool)} sessions)"
    desc.update(info)


def _innovation_correlation(pm: PathModel, x: np.ndarray, simple: np.ndarray, choice: _Choice, spec: str,
                            profile: StressProfile, desc: dict) -> None:
    """The Cholesky factor of the (pushed, Student-t corrected) innovation correlation of ``pm``."""
    corr, _ = target_correlation(x, choice.rolling, choice.shrinkage)
    push, info = correlation_push(corr, x, simple, profile)
    corr = push_correlation(corr, push)
    gaussian = corr
    if pm.nu is not None:  # independent mixing shrinks correlations by c_i c_j: divide it out
        c = t_mixing_mean(pm.nu)
        gaussian = np.clip(corr / np.outer(c, c), -0.999, 0.999)
        np.fill_diagonal(gaussian, 1.0)
    pm.chol = np.ascontiguousarray(cholesky(gaussian), dtype=np.float32)
    desc["correlation"] = (
        f"{spec} of daily log returns"
        + (f", blended with the window's (weight {choice.shrinkage:g})" if choice.rolling is not None else "")
        + (f", pushed {push:.0%} toward 1 (stressed-state correlation of the window)" if push else "")
    )
    desc["innovation_correlation_mean"] = mean_off_diagonal(corr)
    desc.update(info)


def _return_floor(pm: PathModel, reference: str | None, desc: dict) -> None:
    """The lowest daily log return of each symbol: the circuit breaker for the reference index, -clip elsewhere."""
    floor = np.full(pm.n, -LOG_RETURN_CLIP)
    if reference is not None and reference in pm.symbols:
        pm.reference = pm.symbols.index(reference)
        floor[pm.reference] = math.log1p(CIRCUIT_BREAKER)
        desc["circuit_breaker"] = {
            "symbol": reference,
            "daily_return_floor": CIRCUIT_BREAKER,
            "source": "NYSE Rule 7.12 market-wide circuit breaker, Level 3 (20 % decline of the S&P 500 halts trading for the day)",
        }
    pm.floor = floor


def _record(choice: _Choice, cfg: MonteCarloConfig, profile: StressProfile, drift_weight: np.ndarray,
            x: np.ndarray) -> dict:
    """The first entries of the calibration record: the model and the drift rule."""
    return {
        "model": model_label(choice.model, choice.volatility_model),
        "return_model": choice.model,
        "volatility_model": choice.volatility_model if choice.use_garch else None,
        "volatility_scaling": "GARCH" if choice.use_garch else "none",
        "drift_rule": (
            f"window mean shrunk toward {float(cfg.drift_prior_annual):.1%} a year (prior sd "
            f"{float(cfg.drift_prior_sd_annual):.1%}) with precision weights; the expected simple return "
            f"(log drift + variance / 2) times {profile.drift_scale:g}, less half the stressed variance"
        ),
        "drift_weight_of_window_mean_median": float(np.median(drift_weight)),
        "window_drift_annual_median": float(np.median(np.nanmean(x, axis=0) * TRADING_DAYS_PER_YEAR)),
    }


def calibrate(
    window: CalibrationWindow,
    cfg: MonteCarloConfig,
    severity: str,
    *,
    model: str | None = None,
    workers: int = 1,
    cache_key: tuple | None = None,
    last_close: np.ndarray | None = None,
    reference: str | None = None,
) -> PathModel:
    """Fit the configured model on ``window`` and apply the severity profile (module docstring).

    Parameters
    ----------
    window : CalibrationWindow
        The window and universe (N symbols, T sessions of daily log returns).
    cfg : MonteCarloConfig
        The model settings (``return_model``, ``volatility_model``, ``volatility_scaling``,
        ``correlation_matrix``, ``correlation_shrinkage``, ``drift_prior_annual``, ``drift_prior_sd_annual``).
    severity : {"moderate", "severe", "extreme"}
        Selects the :class:`StressProfile` of ``STRESS_PROFILES``.
    model : str, optional
        Overrides ``cfg.return_model``.
    workers : int
        GARCH fit processes at most.
    cache_key : tuple, optional
        Caches the GARCH fits in the process (``core.engines.garch.fit_garch``).
    last_close : ndarray of shape (N,), float64, optional
        Start prices of the paths (default: the window's last closes).
    reference : str, optional
        The reference index symbol: its daily return gets the circuit-breaker floor.

    Returns
    -------
    PathModel
        Daily log-return units; ``description`` holds the calibration record.

    Raises
    ------
    ScenarioInputError
        An unsupported model, volatility model or scaling, correlation setting or shrinkage.
    CalibrationError
        The data cannot calibrate the model (too few returns for a fit, too few complete residual rows).

    References
    ----------
    See :func:`~scenarios_assets.core.engines.garch.fit_garch`, :func:`targeted_omega` and :func:`shrunk_drift`;
    filtered historical simulation: Barone-Adesi, Giannopoulos & Vosper (1999) J. Futures Markets 19:583-602.
    """
    choice = _choice(cfg, model)
    profile = STRESS_PROFILES[severity]
    x = window.log_returns.to_numpy(np.float64)
    simple = np.expm1(x)
    close0 = window.last_close if last_close is None else np.asarray(last_close, dtype=np.float64)
    drift, drift_weight = shrunk_drift(x, float(cfg.drift_prior_annual), float(cfg.drift_prior_sd_annual))
    n = len(window.symbols)
    pm = PathModel(model=choice.model, symbols=list(window.symbols), mu=np.zeros(n), last_close=close0, garch=choice.use_garch)
    flat = constant_columns(x)  # a price that never moved in the window (e.g. a money-market fund at 1.00)
    pm.frozen = flat if flat.any() else None
    desc = _record(choice, cfg, profile, drift_weight, x)
    variance = np.nanvar(x, axis=0, ddof=1)  # the window's sample variance: the long-run target
    if choice.use_garch:
        fit = fit_garch(window.log_returns, volatility_model=choice.volatility_model, workers=workers, cache_key=cache_key)
        k, residuals = _garch_variance(pm, fit, x, variance, drift, profile, desc), fit.residuals
    else:
        k, residuals = _constant_variance(pm, x, drift, profile, desc)
    desc["annualised_drift_median"] = float(np.median(pm.mu * TRADING_DAYS_PER_YEAR))
    desc["volatility_stress_factor_median"] = float(np.median(np.sqrt(k)))
    if choice.model == "historical_distribution":
        _residual_pool(pm, residuals, simple, profile, desc)
    else:
        _innovation_correlation(pm, x, simple, choice, cfg.correlation_matrix, profile, desc)
    _return_floor(pm, reference, desc)
    desc["severity_profile"] = profile.as_dict()
    if flat.any():
        desc["constant_price_symbols"] = [sym for sym, f in zip(window.symbols, flat) if f]
        desc["constant_price_rule"] = CONSTANT_PRICE_RULE
    pm.description = desc
    return pm
