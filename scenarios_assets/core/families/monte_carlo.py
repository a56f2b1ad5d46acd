"""Monte Carlo scenarios: GJR-GARCH-t (or GARCH-t), GBM and filtered historical simulation with correlated
innovations.

Calibration window and universe
    The window ends on the last session on which at least ``min_symbols_share`` of the panel's symbols
    have a close (or on ``calibration_end`` when given), so a few long-running series (an index, one
    stock) do not pull the window past the end of most of the universe. On the bundled data (most
    symbols end 2022-12-28, SPX 2025-01-31, NVDA 2025-02-14) this is 2022-12-28. The window covers the
    ``fit_window_years`` before that end; the universe is every symbol with a daily log return on at
    least ``min_coverage`` of the window's sessions. The rule, the end date and the excluded symbols
    are reported in the set metadata.

Paths: start state and dates
    Every path starts at the window's end with each symbol's close on that date (its last close on or
    before it when it has none that day), and its days are the ``time_horizon_days`` sessions of the
    exchange calendar ``data.trading_calendar`` (XNYS) after it (:mod:`scenarios_assets.core.data.exchange_calendar`);
    a symbol on another calendar (``data.symbol_calendars``, a seven-day symbol: '24/7') has rows on its own
    sessions (:mod:`scenarios_assets.core.data.session_layout`).
    The cross-section is the one the model was calibrated on: SPX and NVDA, which run to 2025 in the
    bundled data, start from their 2022-12-28 closes like the other 20 symbols, and the paths are dated
    2022-12-29 .. 2023-12-29 (``start_state`` in the set metadata says so). The starting variance is the
    window's long-run variance at moderate (the calibration window's regime rather than one day's state:
    NVDA's forecast after 2022-12-28 is 70 % a year against 44 % on average, and with persistence up to 0.99
    a one-year path would inherit it for months), and max(one-step forecast after the window's last return,
    stressed long-run variance) at severe and extreme.

Volatility (``volatility_model``; return models garch and historical_distribution)
    gjr_garch (default)  per-symbol GJR-GARCH(1,1,1) with Student-t innovations, fitted with ``arch``
        (``arch_model(vol="GARCH", p=1, o=1, q=1, dist="t")``) on daily log returns in percent:
        h_t+1 = omega + (alpha + gamma 1[e_t < 0]) e_t^2 + beta h_t. The asymmetric term makes volatility
        rise more after falls than after rises (Glosten, Jagannathan & Runkle 1993), so the leverage effect
        corr(r_t, |r_t+1|) < 0 of equity returns shows in the paths (S&P 500 2012-2022: -0.13).
    garch  the symmetric GARCH(1,1) (gamma = 0): no leverage effect.
    EGARCH is not offered: with Student-t innovations its unconditional variance is infinite (E[exp(c|z|)]
    diverges for every c > 0 under a t distribution), so long simulations are not stationary in variance.

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
    below its window volatility).

Innovations
    garch: each symbol's innovation is Student-t with its own fitted degrees of freedom, bounded to
    [MIN_DOF, MAX_DOF] = [5, 50] so the fourth moment exists (excess kurtosis 6 / (nu - 4) <= 6), built as
    correlated normals ``L e`` times an independent ``sqrt((nu_i - 2) / chi2_nu_i)`` per symbol and day.
    Independent mixing variables keep every marginal exactly Student-t without one common draw that
    moves every symbol together (a shared draw made market-wide -50 % days); the Gaussian correlation is
    divided by c_i c_j, c = E[sqrt((nu - 2) / chi2_nu)] = sqrt((nu - 2) / 2) Gamma((nu - 1) / 2) / Gamma(nu / 2),
    so the innovations' correlation is the target one.
    gbm: geometric Brownian motion, constant drift and volatility of each symbol's daily log returns over
    the window, Gaussian innovations.
    historical_distribution: filtered historical simulation: innovations are whole dates (rows) of the
    GARCH standardised residuals drawn with replacement (fat tails and cross-sectional dependence as
    observed); the volatility follows the recursion above (``volatility_scaling: GARCH``) or stays constant
    (``none``).

Guards (documented limits of a simulated day)
    The reference index's daily return is never below -20 %: the market-wide circuit breaker (NYSE Rule
    7.12, Level 3 since 2013) halts trading for the rest of the day when the S&P 500 falls 20 % from the
    previous close, so no close can be lower; the worst recorded day is -20.5 % (1987-10-19, before the
    rule). Every simulated daily log return is clipped to [-0.7, +0.7] (about -50 % / +101 %) as a
    numerical guard. The set metadata counts the index days at the circuit breaker.

Correlation (``correlation_matrix``; garch and gbm)
    ``rolling_<N>d`` (default ``rolling_60d``): the correlation of the window's last N sessions of daily log
    returns, blended with the whole window's with weight ``correlation_shrinkage``; ``full_window``: the
    whole window's. Log returns, not standardised residuals: independently simulated GARCH processes do not
    share volatility regimes, so residual correlations (0.30 on average on the bundled window against 0.39
    for returns) would understate the portfolio's volatility. A matrix whose Cholesky factorisation fails
    is projected to the nearest correlation matrix with eigenvalues >= 1e-6.

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

Severity (``MC_SEVERITY``, the one table of calibration numbers)
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
import os
import pickle
import re
import subprocess
import sys
import zlib
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import gammaln
from threadpoolctl import threadpool_limits

from scenarios_assets.core.data.exchange_calendar import calendar_name, sessions_after, sessions_between
from scenarios_assets.core.data.session_layout import SessionLayout, symbol_calendars
from scenarios_assets.core.models.errors import ScenarioInputError
from scenarios_assets.core.data.market import constant_columns
from scenarios_assets.core.models.scenario import (
    ANNUALISATION,
    ChunkPlan,
    Scenario,
    ScenarioSet,
    ScenarioStream,
    Skipped,
    max_drawdown,
    portfolio_returns,
    scenario_id,
)
from scenarios_assets.core.models.severity import SEVERITIES, scenario_rng, scenario_seed
from scenarios_assets.core.library.validation import tail_reference
from scenarios_assets.core.engines.replay import Replay, market_bars, replay_window

FAMILY = "monte_carlo"
SCENARIO_TYPE = "MONTE_CARLO"
MODELS = ("garch", "gbm", "historical_distribution")
MODEL_KEYS = {"garch": "garch", "gbm": "gbm", "historical_distribution": "fhs"}
VOLATILITY_MODELS = ("gjr_garch", "garch")
VOLATILITY_LABELS = {"gjr_garch": "GJR-GARCH(1,1,1)", "garch": "GARCH(1,1)"}


def model_label(model: str, volatility_model: str) -> str:
    """Human-readable name of a return model with its volatility model (e.g. ``GJR-GARCH(1,1,1)-t``)."""
    if model == "garch":
        return f"{VOLATILITY_LABELS[volatility_model]}-t"
    if model == "gbm":
        return "GBM"
    return f"filtered historical simulation ({VOLATILITY_LABELS[volatility_model]})"


# Guards of the simulation (module docstring, "Guards"): a simulated daily log return is clipped to
# [-0.7, +0.7]; the reference index's daily simple return is at least -20 % (the Level 3 market-wide
# circuit breaker, NYSE Rule 7.12).
LOG_RETURN_CLIP = 0.7
CIRCUIT_BREAKER = -0.20
MIN_DOF = 5.0  # Student-t degrees of freedom: above 4, so the fourth moment (kurtosis) exists
MAX_DOF = 50.0
MAX_PERSISTENCE = 0.99  # alpha + gamma/2 + beta of a simulated GARCH (half-life <= 69 sessions)
REALISED_VARIANCE_DAYS = 21  # the variance ceiling: highest 21-session realised variance of the window
MIN_FIT_OBSERVATIONS = 250  # a GARCH fit needs about a year of daily returns
FIT_SYMBOLS_PER_PROCESS = 16  # a fit process is only worth starting for at least this many symbols
CHUNK_ELEMENTS = 8_000_000  # scenarios are simulated in chunks of about this many (day, symbol) cells
PROJECTION_PATHS = 101  # paths simulated for a projected event; the median-drawdown one is kept


@dataclass(frozen=True)
class StressProfile:
    """Calibration shift of one severity (see the module docstring for the formulas).

    variance_quantile: quantile of each symbol's historical conditional variance taken as the stressed
        long-run variance (None: the calibrated long-run variance as is).
    variance_floor: minimum ratio of stressed to average historical variance (keeps severities ordered
        even when a symbol's variance distribution is narrow).
    correlation_quantile: the stressed correlation is the window's mean correlation on the days the
        equal-weight portfolio's 21-session volatility is at or above this quantile (None: as estimated).
    drift_scale: multiplier of the (shrunk) drift.

    Tails are not a severity lever: the Student-t degrees of freedom are the fitted ones at every severity.
    Persistence is the fitted one (capped) at every severity; a stressed level is the long-run level, so
    the stress persists over the whole horizon.
    """

    variance_quantile: float | None
    variance_floor: float
    correlation_quantile: float | None
    drift_scale: float

    def as_dict(self) -> dict:
        return {
            "variance_quantile": self.variance_quantile,
            "variance_floor": self.variance_floor,
            "volatility_floor": round(math.sqrt(self.variance_floor), 6),
            "correlation_quantile": self.correlation_quantile,
            "drift_scale": self.drift_scale,
        }


MC_SEVERITY: dict[str, StressProfile] = {
    # the calibrated model: last conditional variance, window's long-run variance and correlation, shrunk drift
    "moderate": StressProfile(None, 1.0, None, 1.0),
    # upper-quartile volatility (>= 1.2x average), the correlation of the window's upper-quartile volatility
    # days (0.53 on the bundled window against 0.39 overall), half the drift
    "severe": StressProfile(0.75, 1.2**2, 0.75, 0.5),
    # crisis: volatility near its 95th percentile (>= 1.5x average), the correlation of the window's top 5 %
    # volatility days (0.67, the level of the 2020 sell-off), no drift
    "extreme": StressProfile(0.95, 1.5**2, 0.95, 0.0),
}


class CalibrationError(ValueError):
    """The data cannot calibrate the model (reported as a skipped family, not raised to the user)."""


# --- calibration window -----------------------------------------------------------------------------

@dataclass(frozen=True)
class CalibrationWindow:
    """The window and universe a stochastic family is calibrated on, and the start state of its paths."""

    start: pd.Timestamp  # first session of the window
    end: pd.Timestamp  # last session of the window: the paths' start date
    symbols: list[str]
    log_returns: pd.DataFrame  # window sessions x universe, daily log returns (NaN where missing)
    last_close: np.ndarray  # (N,) float64, each symbol's close at the window's end (last one on or before it)
    last_close_date: dict[str, str]
    coverage: dict[str, float]
    excluded: dict[str, float]  # symbol -> coverage for symbols left out
    end_rule: str

    @property
    def sessions(self) -> int:
        return len(self.log_returns)

    def describe(self) -> dict:
        return {
            "start": str(self.start.date()),
            "end": str(self.end.date()),
            "sessions": self.sessions,
            "symbols": len(self.symbols),
            "end_rule": self.end_rule,
            "excluded_symbols": self.excluded,
        }

    def start_state(self, data_end: pd.Timestamp, first_date) -> dict:
        """How the paths start (set metadata ``start_state``): date, rule and the shift from the data's end."""
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


def _years_offset(years: float):
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

    ``close``: (dates x symbols) float closes, NaN where a symbol has none. Raises CalibrationError when
    no session or symbol qualifies or the window holds fewer than ``min_sessions`` sessions.
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
    lo = end_date - _years_offset(years) if years else dates[0] - pd.Timedelta(days=1)
    window_rows = np.flatnonzero(np.asarray((dates > lo) & (dates <= end_date)))
    if years is None:
        window_rows = window_rows[1:]  # the first session has no return
    if window_rows.size < min_sessions:
        since = f"; the market data starts {dates[0].date()}" if dates[0] > lo else ""
        raise CalibrationError(
            f"the calibration window {lo.date()}..{end_date.date()} holds {window_rows.size} sessions "
            f"(at least {min_sessions} needed){since}"
        )
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


def simulated_dates(start_date: pd.Timestamp, horizon: int, calendar: str) -> np.ndarray:
    """The ``horizon`` sessions of exchange calendar ``calendar`` after ``start_date`` (datetime64[D])."""
    return sessions_after(start_date, horizon, calendar)


def session_layout(ctx, start_date: pd.Timestamp, dates: np.ndarray, symbols: list[str]) -> SessionLayout:
    """The layout of paths stepping on ``dates`` (the primary calendar's sessions after ``start_date``) on
    each symbol's calendar (``data.symbol_calendars``; seven-day symbols of the data: '24/7')."""
    calendars = symbol_calendars(symbols, ctx.config, ctx.market.report.get("seven_day_symbols"))
    return SessionLayout.build(start_date, dates, symbols, calendars, calendar_name(ctx.config))


# --- GARCH fits ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GarchFit:
    """Per-symbol GARCH(1,1)-t or GJR-GARCH(1,1,1)-t fits on daily log returns in percent (arrays (N,)
    over the universe; ``gamma`` is 0 for the symmetric model)."""

    symbols: list[str]
    volatility_model: str
    mu: np.ndarray
    omega: np.ndarray
    alpha: np.ndarray
    gamma: np.ndarray
    beta: np.ndarray
    nu: np.ndarray
    variance: np.ndarray  # (T, N) conditional variance over the window (NaN where no return)
    residuals: np.ndarray  # (T, N) standardised residuals (NaN where no return)
    forecast: np.ndarray  # (N,) one-step variance forecast after each symbol's last return in the window
    converged: np.ndarray  # (N,) bool; False: fit failed, moment-based fallback parameters used

    @property
    def persistence(self) -> np.ndarray:
        """alpha + gamma / 2 + beta (the GJR term is active on half of the days for symmetric innovations)."""
        return self.alpha + self.gamma / 2.0 + self.beta

    def summary(self) -> dict:
        return {
            "volatility_model": self.volatility_model,
            "alpha_median": float(np.median(self.alpha)),
            "gamma_median": float(np.median(self.gamma)),
            "beta_median": float(np.median(self.beta)),
            "persistence_median": float(np.median(self.persistence)),
            "nu_median": float(np.median(self.nu)),
            "nu_min": float(np.min(self.nu)),
            "fits_not_converged": int((~self.converged).sum()),
            "persistence_above_cap": int((self.persistence > MAX_PERSISTENCE).sum()),
            "nu_below_min_dof": int((self.nu < MIN_DOF).sum()),
        }

    def by_symbol(self) -> dict:
        return {
            s: {
                "mu": float(self.mu[i]),
                "omega": float(self.omega[i]),
                "alpha": float(self.alpha[i]),
                "gamma": float(self.gamma[i]),
                "beta": float(self.beta[i]),
                "nu": float(self.nu[i]),
                "persistence": float(self.persistence[i]),
                "converged": bool(self.converged[i]),
            }
            for i, s in enumerate(self.symbols)
        }


def _garch_filter(y: np.ndarray, mu: float, omega: float, alpha: float, gamma: float, beta: float, h0: float) -> np.ndarray:
    """Conditional variances of ``y`` under fixed (GJR-)GARCH parameters, starting from ``h0``."""
    h = np.empty(len(y))
    h_t = h0
    for t in range(len(y)):
        h[t] = h_t
        e = y[t] - mu
        h_t = omega + (alpha + gamma * (e < 0)) * e * e + beta * h_t
    return h


def _fit_one(y: np.ndarray, volatility_model: str) -> tuple:
    """Fit one symbol (percent log returns, (T,)); returns
    (mu, omega, alpha, gamma, beta, nu, h (T,), one-step forecast, converged)."""
    from arch import arch_model

    o = 1 if volatility_model == "gjr_garch" else 0
    converged = False
    try:
        res = arch_model(y, mean="Constant", vol="GARCH", p=1, o=o, q=1, dist="t", rescale=False).fit(
            disp="off", show_warning=False
        )
        p = res.params
        mu, omega, alpha, beta, nu = (float(p["mu"]), float(p["omega"]), float(p["alpha[1]"]), float(p["beta[1]"]), float(p["nu"]))
        gamma = float(p["gamma[1]"]) if o else 0.0
        h = np.asarray(res.conditional_volatility, dtype=np.float64) ** 2
        converged = (
            res.convergence_flag == 0
            and all(np.isfinite([mu, omega, alpha, gamma, beta, nu]))
            and omega > 0
            and bool(np.all(np.isfinite(h)))
        )
    except Exception:  # noqa: BLE001 - any numerical failure falls back to moment parameters
        converged = False
    if not converged:
        # Moment-based fallback: a typical equity (GJR-)GARCH (persistence 0.95) matched to the sample
        # mean and variance, Student-t with 8 degrees of freedom.
        mu, var = float(np.mean(y)), float(np.var(y)) or 1e-4
        alpha, gamma, beta, nu = (0.02, 0.06, 0.90, 8.0) if o else (0.05, 0.0, 0.90, 8.0)
        omega = var * (1.0 - alpha - gamma / 2.0 - beta)
        h = _garch_filter(y, mu, omega, alpha, gamma, beta, var)
    e_last = y[-1] - mu
    forecast = omega + (alpha + gamma * (e_last < 0)) * e_last**2 + beta * h[-1]
    return mu, omega, alpha, gamma, beta, nu, h, float(forecast), bool(converged)


def _fit_chunk(payload: list[tuple[np.ndarray, str]]) -> list[tuple]:
    return [_fit_one(y, model) for y, model in payload]


BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_WORKER_CODE = "from scenarios_assets.core.families.monte_carlo import _fit_worker_main; _fit_worker_main()"
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[3])


def _fit_worker_main() -> None:
    """Entry of a fit worker process: a pickled payload on stdin, the pickled fits on stdout."""
    payload = pickle.load(sys.stdin.buffer)
    pickle.dump(_fit_chunk(payload), sys.stdout.buffer, protocol=pickle.HIGHEST_PROTOCOL)
    sys.stdout.buffer.flush()


def _fit_in_workers(chunks: list[list[tuple]]) -> list[list[tuple]]:
    """Fit the chunks in parallel worker interpreters (``python -c``), each with one BLAS thread.

    Fresh interpreters rather than multiprocessing: they do not re-import the caller's main module (an
    unguarded user script would run again in every worker), are safe under a multi-threaded parent (a
    Dagster run), and read the BLAS thread limit at start-up; one BLAS thread each also keeps two
    workers on two cores from spinning against each other.
    """
    env = {**os.environ, **{k: "1" for k in BLAS_THREAD_VARIABLES}}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH", "")) if p)
    workers = [
        subprocess.Popen([sys.executable, "-c", _WORKER_CODE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
        for _ in chunks
    ]
    with ThreadPoolExecutor(len(workers)) as pool:
        outputs = list(pool.map(lambda wc: wc[0].communicate(pickle.dumps(wc[1], pickle.HIGHEST_PROTOCOL)), zip(workers, chunks)))
    results = []
    for worker, (out, err) in zip(workers, outputs):
        if worker.returncode != 0:
            raise RuntimeError(f"GARCH fit worker failed: {err.decode(errors='replace')[-800:]}")
        results.append(pickle.loads(out))
    return results


_FIT_CACHE: OrderedDict = OrderedDict()
_FIT_CACHE_SIZE = 4


def fit_garch(
    window: CalibrationWindow, *, volatility_model: str = "gjr_garch", workers: int = 1, cache_key: tuple | None = None
) -> GarchFit:
    """Fit ``volatility_model`` (gjr_garch | garch) with Student-t innovations to every symbol of the window;
    the fits of many symbols run on ``workers`` processes. Fits are cached per (cache_key, model, window,
    universe) in the process. Raises CalibrationError when a symbol has fewer than MIN_FIT_OBSERVATIONS
    returns, ScenarioInputError for an unknown volatility model."""
    if volatility_model not in VOLATILITY_MODELS:
        raise ScenarioInputError(
            f"monte_carlo.volatility_model '{volatility_model}' is not supported (use {', '.join(VOLATILITY_MODELS)})"
        )
    key = None
    if cache_key is not None:
        key = (*cache_key, volatility_model, str(window.start), str(window.end), tuple(window.symbols))
        if key in _FIT_CACHE:
            _FIT_CACHE.move_to_end(key)
            return _FIT_CACHE[key]
    values = window.log_returns.to_numpy(np.float64) * 100.0
    n = values.shape[1]
    flat = constant_columns(values)  # a price that never moved: nothing to fit, zero variance throughout
    payload = []
    for j in range(n):
        col = values[:, j]
        y = col[np.isfinite(col)]
        if len(y) < MIN_FIT_OBSERVATIONS:
            raise CalibrationError(
                f"{window.symbols[j]} has {len(y)} returns in the fit window (at least {MIN_FIT_OBSERVATIONS} needed)"
            )
        if not flat[j]:
            payload.append((y, volatility_model))
    fitted = np.flatnonzero(~flat)
    # Fits always run in fresh worker processes with one BLAS thread: the optimiser's results depend in
    # their last digits on the BLAS thread count, so this keeps them identical for any worker count.
    # (In-process fallback where no worker interpreter can start.)
    procs = max(1, min(int(workers), len(payload) // FIT_SYMBOLS_PER_PROCESS))
    chunks = [payload[i::procs] for i in range(procs)]  # interleaved: similar work per chunk
    try:
        parts = _fit_in_workers(chunks) if payload else []
        done = [None] * len(payload)
        for i, part in enumerate(parts):
            done[i::procs] = part
    except (OSError, RuntimeError, pickle.UnpicklingError, EOFError, ValueError):
        done = _fit_chunk(payload)
    results = [None] * n
    for j, res in zip(fitted, done):
        results[j] = res
    for j in np.flatnonzero(flat):
        results[j] = (0.0, 0.0, 0.0, 0.0, 0.0, MAX_DOF, np.zeros(int(np.isfinite(values[:, j]).sum())), 0.0, True)
    variance = np.full_like(values, np.nan)
    residuals = np.full_like(values, np.nan)
    mu, omega, alpha, gamma, beta, nu, forecast, conv = (np.empty(n) for _ in range(8))
    for j, (m, o, a, g, b, v, h, f, c) in enumerate(results):
        ok = np.isfinite(values[:, j])
        variance[ok, j] = h
        # A constant price has no standardised residual; 0 keeps it out of the correlation (see correlation()).
        residuals[ok, j] = 0.0 if flat[j] else (values[ok, j] - m) / np.sqrt(h)
        mu[j], omega[j], alpha[j], gamma[j], beta[j], nu[j], forecast[j], conv[j] = m, o, a, g, b, v, f, c
    fit = GarchFit(
        list(window.symbols), volatility_model, mu, omega, alpha, gamma, beta, nu, variance, residuals, forecast,
        conv.astype(bool),
    )
    if key is not None:
        _FIT_CACHE[key] = fit
        while len(_FIT_CACHE) > _FIT_CACHE_SIZE:
            _FIT_CACHE.popitem(last=False)
    return fit


# --- correlation ---------------------------------------------------------------------------------------

def correlation(x: np.ndarray) -> np.ndarray:
    """Correlation (N, N) of the columns of ``x`` (T, N) over its complete rows (zero-filled when too few are
    complete)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[1]
    if n == 1:
        return np.ones((1, 1))
    complete = np.isfinite(x).all(axis=1)
    rows = x[complete] if complete.sum() >= max(30, n // 4) else np.nan_to_num(x, nan=0.0)
    rows = rows - rows.mean(axis=0)
    std = np.sqrt((rows**2).sum(axis=0))
    std[std == 0] = 1.0
    c = (rows.T @ rows) / np.outer(std, std)
    np.fill_diagonal(c, 1.0)
    return np.clip(c, -1.0, 1.0)


def mean_off_diagonal(c: np.ndarray) -> float:
    """Mean of the off-diagonal entries of a square matrix (1.0 for a 1 x 1 one)."""
    n = c.shape[0]
    return float((c.sum() - np.trace(c)) / (n * n - n)) if n > 1 else 1.0


def nearest_correlation(c: np.ndarray, floor: float = 1e-6) -> np.ndarray:
    """Eigenvalues clipped at ``floor``, rescaled to a unit diagonal: a positive definite correlation."""
    c = (c + c.T) / 2.0
    w, v = np.linalg.eigh(c)
    if w.min() >= floor:
        return c
    c = (v * np.maximum(w, floor)) @ v.T
    d = np.sqrt(np.diag(c))
    c = c / np.outer(d, d)
    np.fill_diagonal(c, 1.0)
    return c


def cholesky(c: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a correlation matrix, projected to the nearest positive definite one first
    when it is not (e.g. a rolling window with fewer sessions than symbols and no shrinkage)."""
    try:
        return np.linalg.cholesky(c)
    except np.linalg.LinAlgError:
        return np.linalg.cholesky(nearest_correlation(c))


def push_correlation(c: np.ndarray, push: float) -> np.ndarray:
    """rho' = rho + push * (1 - rho) off the diagonal (a convex blend with the all-ones matrix)."""
    return c if push == 0 else (1.0 - push) * c + push


def parse_correlation_window(spec: str) -> int | None:
    """``rolling_<N>d`` -> N; ``full_window`` -> None."""
    if spec == "full_window":
        return None
    match = re.fullmatch(r"rolling_(\d+)d", str(spec))
    if not match or int(match.group(1)) < 2:
        raise ScenarioInputError(
            f"monte_carlo.correlation_matrix '{spec}' is not supported (use rolling_<N>d, e.g. rolling_60d, or full_window)"
        )
    return int(match.group(1))


def target_correlation(x: np.ndarray, rolling: int | None, shrinkage: float) -> tuple[np.ndarray, np.ndarray]:
    """(correlation used for the innovations, whole-window correlation) of the rows of ``x`` (T, N)."""
    full = correlation(x)
    if rolling is None:
        return full, full
    complete = x[np.isfinite(x).all(axis=1)]
    recent = complete[-rolling:] if len(complete) >= rolling // 2 else x[-rolling:]
    return (1.0 - shrinkage) * correlation(recent) + shrinkage * full, full


def state_correlation(x: np.ndarray, simple_returns: np.ndarray, quantile: float) -> tuple[float, int]:
    """Mean pairwise correlation of the rows of ``x`` (T, N) on the sessions when the equal-weight
    portfolio's 21-session volatility (of ``simple_returns`` (T, N)) is at or above its ``quantile``:
    the correlation of stressed markets as the window recorded it. Returns (mean correlation, sessions)."""
    port = pd.Series(portfolio_returns(np.asarray(simple_returns, dtype=np.float64)))
    vol = port.rolling(REALISED_VARIANCE_DAYS, min_periods=REALISED_VARIANCE_DAYS // 2 + 1).std().to_numpy()
    ok = np.isfinite(vol)
    rows = ok & (vol >= np.nanquantile(vol, quantile))
    return mean_off_diagonal(correlation(x[rows])), int(rows.sum())


def t_mixing_mean(nu: np.ndarray) -> np.ndarray:
    """c = E[sqrt((nu - 2) / chi2_nu)] per symbol: a unit-variance Student-t innovation is z * s with z
    standard normal and s = sqrt((nu - 2) / chi2_nu), so two with independent mixing variables and
    Gaussian correlation r are correlated r c_i c_j."""
    nu = np.asarray(nu, dtype=np.float64)
    return np.exp(0.5 * np.log((nu - 2.0) / 2.0) + gammaln((nu - 1.0) / 2.0) - gammaln(nu / 2.0))


# --- drift ---------------------------------------------------------------------------------------------

def shrunk_drift(x: np.ndarray, prior_annual: float, prior_sd_annual: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-symbol daily log drift (N,) shrunk toward a prior, and the weight (N,) of the window's mean.

    ``x``: (T, N) daily log returns (NaN where missing). mu = w m + (1 - w) m0 with m the window's mean,
    m0 = prior_annual / 252, w = tau^2 / (tau^2 + se^2), tau = prior_sd_annual / 252 and se = s / sqrt(n)
    the standard error of m (normal-normal precision weighting; see the module docstring).
    """
    m = np.nanmean(x, axis=0)
    n = np.isfinite(x).sum(axis=0)
    se2 = np.nanvar(x, axis=0, ddof=1) / np.maximum(n, 1)
    tau2 = (float(prior_sd_annual) / ANNUALISATION) ** 2
    w = tau2 / (tau2 + se2) if tau2 > 0 else np.zeros_like(m)
    return w * m + (1.0 - w) * float(prior_annual) / ANNUALISATION, w


# --- the simulation model --------------------------------------------------------------------------------

@dataclass
class PathModel:
    """Everything needed to draw the paths of one severity (decimal daily log-return units; arrays (N,))."""

    model: str
    symbols: list[str]
    mu: np.ndarray  # (N,) mean daily log return
    last_close: np.ndarray  # (N,)
    garch: bool  # GARCH variance recursion (else constant volatility ``sigma``)
    omega: np.ndarray | None = None
    alpha: np.ndarray | None = None
    gamma: np.ndarray | None = None  # asymmetric (leverage) term; zeros for the symmetric model
    beta: np.ndarray | None = None
    h1: np.ndarray | None = None  # (N,) first-day variance
    h_cap: np.ndarray | None = None  # (N,) ceiling of the conditional variance
    sigma: np.ndarray | None = None  # (N,) constant daily volatility
    nu: np.ndarray | None = None  # (N,) Student-t degrees of freedom (None: Gaussian / resampled)
    chol: np.ndarray | None = None  # (N, N) float32 lower Cholesky factor of the innovation correlation
    pool: np.ndarray | None = None  # (R, N) float32 standardised residual rows (filtered historical simulation)
    floor: np.ndarray | None = None  # (N,) lowest daily log return (the index's circuit breaker; -clip elsewhere)
    frozen: np.ndarray | None = None  # (N,) bool: constant price in the window: every simulated return is 0
    reference: int | None = None  # column of the reference index, if in the universe
    description: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.symbols)


def _stress_factor(history_variance: np.ndarray, profile: StressProfile) -> np.ndarray:
    """k = max(Q_q(h) / mean(h), floor) per symbol (1 when the profile does not stress variance)."""
    if profile.variance_quantile is None:
        return np.ones(history_variance.shape[1])
    mean = np.nanmean(history_variance, axis=0)
    q = np.nanquantile(history_variance, profile.variance_quantile, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(mean > 0, q / mean, 1.0)  # zero variance (constant price): k stays finite, 0 * k = 0
    return np.maximum(ratio, profile.variance_floor)


def _variance_ceiling(x: np.ndarray) -> np.ndarray:
    """Highest 21-session realised variance (N,) of each symbol's daily log returns ``x`` (T, N) in the window."""
    rolling = pd.DataFrame(x).rolling(REALISED_VARIANCE_DAYS, min_periods=REALISED_VARIANCE_DAYS // 2 + 1).var()
    return rolling.max().to_numpy(np.float64)


TARGETING_SESSIONS = 20_000  # sessions of the variance-targeting simulation (about 80 years)
TARGETING_BURN_IN = 500
TARGETING_ITERATIONS = 4
TARGETING_SEED = 20_101_987  # fixed: the calibration does not depend on the scenarios' seeds


def _targeting_innovations(nu: np.ndarray | None, residuals: np.ndarray) -> np.ndarray:
    """(TARGETING_SESSIONS, N) unit-variance innovations of the targeting simulation, from a fixed seed:
    Student-t with ``nu`` (N,) per symbol, or (``nu`` None) rows of the standardised ``residuals`` (T, N)."""
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
    """omega (N,) of h' = omega + (alpha + gamma 1[z < 0]) z^2 h + beta h, h capped at ``cap``, whose stationary
    mean is ``long_run`` (N,), and the mean it reaches relative to ``long_run`` (N,).

    Variance targeting (Engle & Mezrich 1996) sets omega = long_run (1 - P) with P = alpha + gamma / 2 + beta;
    the ceiling then removes the rare spikes that carry much of a heavy-tailed variance process's mean (the
    S&P 500's GJR-t fit has gamma 0.32), so omega is raised by fixed-point iteration omega <- omega long_run /
    mean(h) on a simulation of ``draws`` (T, N) unit-variance innovations (common to every iteration).
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


def _correlation_push(base: np.ndarray, x: np.ndarray, simple: np.ndarray, profile: StressProfile) -> tuple[float, dict]:
    """The push p toward 1 that takes the mean correlation of ``base`` to the window's stressed-state mean."""
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


def calibrate(
    window: CalibrationWindow,
    cfg: dict,
    severity: str,
    *,
    model: str | None = None,
    workers: int = 1,
    cache_key: tuple | None = None,
    last_close: np.ndarray | None = None,
    reference: str | None = None,
) -> PathModel:
    """Fit the configured model on ``window`` and apply the severity profile (module docstring).

    ``cfg``: the ``monte_carlo`` config section; ``reference``: the reference index symbol (its daily
    return gets the circuit-breaker floor). Raises ScenarioInputError for unsupported settings,
    CalibrationError when the data cannot calibrate the model.
    """
    model = model or cfg["return_model"]
    if model not in MODELS:
        raise ScenarioInputError(f"monte_carlo.return_model '{model}' is not supported (use {', '.join(MODELS)})")
    scaling = str(cfg["volatility_scaling"])
    if scaling.lower() not in ("garch", "none"):
        raise ScenarioInputError(f"monte_carlo.volatility_scaling '{scaling}' is not supported (use GARCH or none)")
    use_garch = model == "garch" or (model == "historical_distribution" and scaling.lower() == "garch")
    if model == "garch" and scaling.lower() != "garch":
        raise ScenarioInputError("monte_carlo.return_model garch needs volatility_scaling GARCH")
    vol_model = str(cfg.get("volatility_model", "gjr_garch"))
    if vol_model not in VOLATILITY_MODELS:
        raise ScenarioInputError(
            f"monte_carlo.volatility_model '{vol_model}' is not supported (use {', '.join(VOLATILITY_MODELS)})"
        )
    rolling = parse_correlation_window(cfg["correlation_matrix"])
    shrinkage = float(cfg["correlation_shrinkage"])
    if not 0.0 <= shrinkage <= 1.0:
        raise ScenarioInputError(f"monte_carlo.correlation_shrinkage must lie in [0, 1], got {shrinkage}")
    profile = MC_SEVERITY[severity]
    x = window.log_returns.to_numpy(np.float64)
    simple = np.expm1(x)
    close0 = window.last_close if last_close is None else np.asarray(last_close, dtype=np.float64)
    n = len(window.symbols)
    drift, drift_weight = shrunk_drift(x, float(cfg["drift_prior_annual"]), float(cfg["drift_prior_sd_annual"]))
    pm = PathModel(model=model, symbols=list(window.symbols), mu=np.zeros(n), last_close=close0, garch=use_garch)
    flat = constant_columns(x)
    if flat.any():  # a price that never moved in the window (e.g. a money-market fund at 1.00)
        pm.frozen = flat
    desc: dict = {
        "model": model_label(model, vol_model),
        "return_model": model,
        "volatility_model": vol_model if use_garch else None,
        "volatility_scaling": "GARCH" if use_garch else "none",
        "drift_rule": (
            f"window mean shrunk toward {float(cfg['drift_prior_annual']):.1%} a year (prior sd "
            f"{float(cfg['drift_prior_sd_annual']):.1%}) with precision weights; the expected simple return "
            f"(log drift + variance / 2) times {profile.drift_scale:g}, less half the stressed variance"
        ),
        "drift_weight_of_window_mean_median": float(np.median(drift_weight)),
        "window_drift_annual_median": float(np.median(np.nanmean(x, axis=0) * ANNUALISATION)),
    }
    variance = np.nanvar(x, axis=0, ddof=1)  # the window's sample variance: the long-run target

    if use_garch:
        fit = fit_garch(window, volatility_model=vol_model, workers=workers, cache_key=cache_key)
        k = _stress_factor(fit.variance, profile)
        persistence = fit.persistence
        scale = np.minimum(1.0, MAX_PERSISTENCE / persistence)
        pm.alpha, pm.gamma, pm.beta = fit.alpha * scale, fit.gamma * scale, fit.beta * scale
        long_run = k * variance
        forecast = fit.forecast / 1e4
        # moderate starts at the window's long-run variance (the calibration window's regime, not one day's
        # state: end-2022 NVDA 70 % against 44 % on average); stressed severities at least at the forecast
        pm.h1 = np.maximum(forecast, long_run) if profile.variance_quantile is not None else long_run.copy()
        pm.h_cap = np.maximum.reduce([_variance_ceiling(x), pm.h1, long_run])
        draws = _targeting_innovations(np.clip(fit.nu, MIN_DOF, MAX_DOF) if model == "garch" else None, fit.residuals)
        pm.omega, achieved = targeted_omega(pm.alpha, pm.gamma, pm.beta, long_run, pm.h_cap, draws)
        # drift_scale scales the expected simple return (log drift + variance / 2), as for GBM below; the log
        # drift is what remains after half the stressed long-run variance
        pm.mu = (drift + variance / 2.0) * profile.drift_scale - long_run / 2.0
        residuals = fit.residuals
        desc["fitted_parameters"] = fit.summary()
        desc["fitted_parameters_by_symbol"] = fit.by_symbol()
        desc["persistence_cap"] = MAX_PERSISTENCE
        desc["persistence_capped_symbols"] = [s for s, c in zip(window.symbols, scale < 1.0) if c]
        desc["starting_variance_rule"] = (
            "the window's long-run variance" if profile.variance_quantile is None
            else "max(one-step forecast after the window's last return, stressed long-run variance)"
        )
        desc["annualised_volatility_forecast_median"] = float(np.median(np.sqrt(forecast * ANNUALISATION)))
        desc["annualised_volatility_start_median"] = float(np.median(np.sqrt(pm.h1 * ANNUALISATION)))
        desc["annualised_volatility_long_run_median"] = float(np.median(np.sqrt(long_run * ANNUALISATION)))
        desc["annualised_volatility_ceiling_median"] = float(np.median(np.sqrt(pm.h_cap * ANNUALISATION)))
        desc["variance_targeting"] = {
            "rule": (
                f"omega set so the stationary mean of the capped variance recursion is the window's variance "
                f"(x the severity factor), on a {TARGETING_SESSIONS:,}-session simulation with a fixed seed"
            ),
            "achieved_ratio_min": float(achieved.min()),
            "achieved_ratio_median": float(np.median(achieved)),
        }
        if model == "garch":
            pm.nu = np.clip(fit.nu, MIN_DOF, MAX_DOF)
            desc["innovation_dof_median"] = float(np.median(pm.nu))
            desc["innovation_dof_bounds"] = [MIN_DOF, MAX_DOF]
    else:
        m = np.nanmean(x, axis=0)
        s = np.nanstd(x, axis=0, ddof=1)
        rolling_var = pd.DataFrame(x).rolling(21, min_periods=15).var().to_numpy()
        k = _stress_factor(rolling_var, profile)
        sigma = s * np.sqrt(k)
        # log drift = (arithmetic drift x drift_scale) - sigma'^2 / 2, arithmetic = mu + s^2 / 2
        pm.mu = (drift + s**2 / 2.0) * profile.drift_scale - sigma**2 / 2.0
        pm.sigma = sigma
        residuals = (x - m) / s
        desc["annualised_volatility_median"] = float(np.median(sigma * np.sqrt(ANNUALISATION)))
    desc["annualised_drift_median"] = float(np.median(pm.mu * ANNUALISATION))
    desc["volatility_stress_factor_median"] = float(np.median(np.sqrt(k)))

    if model == "historical_distribution":
        pool = residuals[np.isfinite(residuals).all(axis=1)]
        pool = pool - pool.mean(axis=0)  # the drift is the model's; residual rows carry none
        if len(pool) < 20:
            raise CalibrationError("fewer than 20 sessions have a residual for every symbol (filtered historical simulation)")
        emp = nearest_correlation(correlation(pool))
        push, info = _correlation_push(emp, residuals, simple, profile)
        if push > 0:  # recolour the resampled rows toward the stressed correlation
            a = cholesky(push_correlation(emp, push)) @ np.linalg.inv(cholesky(emp))
            pool = pool @ a.T
        pm.pool = np.ascontiguousarray(pool, dtype=np.float32)
        desc["correlation"] = f"empirical (whole dates of standardised residuals, {len(pool)} sessions)"
        desc.update(info)
    else:
        corr, _ = target_correlation(x, rolling, shrinkage)
        push, info = _correlation_push(corr, x, simple, profile)
        corr = push_correlation(corr, push)
        gaussian = corr
        if pm.nu is not None:  # independent mixing shrinks correlations by c_i c_j: divide it out
            c = t_mixing_mean(pm.nu)
            gaussian = np.clip(corr / np.outer(c, c), -0.999, 0.999)
            np.fill_diagonal(gaussian, 1.0)
        pm.chol = np.ascontiguousarray(cholesky(gaussian), dtype=np.float32)
        desc["correlation"] = (
            f"{cfg['correlation_matrix']} of daily log returns"
            + (f", blended with the window's (weight {shrinkage:g})" if rolling is not None else "")
            + (f", pushed {push:.0%} toward 1 (stressed-state correlation of the window)" if push else "")
        )
        desc["innovation_correlation_mean"] = mean_off_diagonal(corr)
        desc.update(info)
    floor = np.full(n, -LOG_RETURN_CLIP)
    if reference is not None and reference in window.symbols:
        pm.reference = window.symbols.index(reference)
        floor[pm.reference] = math.log1p(CIRCUIT_BREAKER)
        desc["circuit_breaker"] = {
            "symbol": reference,
            "daily_return_floor": CIRCUIT_BREAKER,
            "source": "NYSE Rule 7.12 market-wide circuit breaker, Level 3 (20 % decline of the S&P 500 halts trading for the day)",
        }
    pm.floor = floor
    desc["severity_profile"] = profile.as_dict()
    if flat.any():
        desc["constant_price_symbols"] = [sym for sym, f in zip(window.symbols, flat) if f]
        desc["constant_price_rule"] = ("every return in the calibration window is 0: simulated with zero volatility "
                                       "and drift (the path stays at the last close)")
    pm.description = desc
    return pm


def _innovations(pm: PathModel, rng: np.random.Generator, horizon: int) -> tuple[np.ndarray, np.ndarray | None]:
    """One scenario's (T, N) float32 standard normal draws (or resampled residual rows) and, for Student-t
    innovations, its (T, N) float32 mixing factors sqrt((nu - 2) / chi2_nu); all from its own generator."""
    if pm.pool is not None:
        return pm.pool[rng.integers(0, len(pm.pool), size=horizon)], None
    eps = rng.standard_normal((horizon, pm.n), dtype=np.float32)
    if pm.nu is None:
        return eps, None
    shape = np.broadcast_to((pm.nu / 2.0).astype(np.float32), (horizon, pm.n))
    chi2 = 2.0 * rng.standard_gamma(shape, dtype=np.float32)
    mix = np.sqrt((pm.nu.astype(np.float32) - 2.0) / np.maximum(chi2, np.float32(1e-30)))
    return eps, mix


def simulate_log_returns(pm: PathModel, seeds: list[int], horizon: int) -> np.ndarray:
    """(S, T, N) float32 daily log returns of the scenarios with these seeds; a constant-price symbol
    (``pm.frozen``) gets 0 every day, whatever drift or borrowed volatility the model has."""
    out = _simulate(pm, seeds, horizon)
    if pm.frozen is not None and pm.frozen.any():
        out[:, :, pm.frozen] = 0.0
    return out


def _simulate(pm: PathModel, seeds: list[int], horizon: int) -> np.ndarray:
    s = len(seeds)
    z = np.empty((s, horizon, pm.n), dtype=np.float32)
    mix = np.empty_like(z) if pm.nu is not None and pm.pool is None else None
    for i, seed in enumerate(seeds):
        z[i], m = _innovations(pm, scenario_rng(seed), horizon)
        if mix is not None:
            mix[i] = m
    if pm.chol is not None and pm.n > 1:
        # One BLAS product per scenario, on one BLAS thread: a product's rounding depends on its shape and on the
        # number of BLAS threads (how the rows are split among them), so a product of the whole chunk would change
        # the last bits of a path with the chunk size, and a cluster worker (dask runs one BLAS thread) would not
        # reproduce this process. Same shape, one thread: bit-identical paths for any chunking, anywhere
        # (test_builds, test_chunk_tasks check it); one thread is as fast as two on this 2-core machine.
        correlated = np.empty_like(z)
        chol_t = np.ascontiguousarray(pm.chol.T)
        with threadpool_limits(1, user_api="blas"):
            for i in range(s):
                np.matmul(z[i], chol_t, out=correlated[i])
        z = correlated
        del correlated
    if mix is not None:  # each symbol's own mixing variable, after the correlation (see the module docstring)
        z *= mix
        del mix
    mu = pm.mu.astype(np.float32)
    lower = (pm.floor if pm.floor is not None else np.full(pm.n, -LOG_RETURN_CLIP)).astype(np.float32)
    upper = np.float32(LOG_RETURN_CLIP)
    if not pm.garch:
        out = z * pm.sigma.astype(np.float32) + mu
        return np.clip(out, lower, upper, out=out)
    omega, alpha, gamma, beta = (v.astype(np.float32) for v in (pm.omega, pm.alpha, pm.gamma, pm.beta))
    cap = pm.h_cap.astype(np.float32)
    h = np.broadcast_to(pm.h1.astype(np.float32), (s, pm.n)).copy()
    for t in range(horizon):  # the GJR-GARCH recursion, on whole (scenarios x symbols) arrays
        r = np.sqrt(h) * z[:, t] + mu
        np.clip(r, lower, upper, out=r)
        z[:, t] = r
        eps = r - mu
        h = omega + (alpha + gamma * (eps < 0)) * (eps * eps) + beta * h
        np.minimum(h, cap, out=h)
    return z



def returns_and_prices(log_returns: np.ndarray, last_close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Simple returns and prices (float32) of (S, T, N) log-return paths starting from ``last_close``.

    A loop over days on whole (scenarios x symbols) arrays, accumulating in float64: an accumulate along
    the middle axis of the 3-D block is several times slower, and no (S, T, N) float64 copy is made.
    """
    s, t_days, n = log_returns.shape
    simple = np.empty_like(log_returns, dtype=np.float32)
    prices = np.empty_like(log_returns, dtype=np.float32)
    cum = np.zeros((s, n))
    close = np.asarray(last_close, dtype=np.float64)
    for t in range(t_days):
        x = log_returns[:, t].astype(np.float64)
        cum += x
        simple[:, t] = np.expm1(x)
        prices[:, t] = close * np.exp(cum)
    return simple, prices


def compound_prices(simple: np.ndarray, last_close: np.ndarray) -> np.ndarray:
    """Prices (float32) of (S, T, N) simple-return paths starting from ``last_close`` (float64 levels)."""
    prices = np.empty_like(simple, dtype=np.float32)
    level = np.broadcast_to(np.asarray(last_close, dtype=np.float64), (simple.shape[0], simple.shape[2])).copy()
    for t in range(simple.shape[1]):
        level *= 1.0 + simple[:, t].astype(np.float64)
        prices[:, t] = level
    return prices


# --- scenario sets -----------------------------------------------------------------------------------------

def chunk_size(horizon: int, n_symbols: int, paths_per_chunk: int | None = None) -> int:
    """Paths simulated (and written) together: ``paths_per_chunk`` when configured
    (``performance.paths_per_chunk``), else about CHUNK_ELEMENTS (day, symbol) cells per chunk. Results do
    not depend on it (each path draws from its own seed)."""
    if paths_per_chunk:
        return max(1, int(paths_per_chunk))
    return max(1, CHUNK_ELEMENTS // max(1, horizon * n_symbols))


def chunks_of(indices: list[int], size: int):
    """Consecutive runs of at most ``size`` scenario indices."""
    for c0 in range(0, len(indices), size):
        yield indices[c0 : c0 + size]


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
    """Scenario objects of a chunk of equal-shaped (S, T, N) paths (each keeps a view of the chunk arrays).
    With a ``layout`` that is not the identity, the paths (over ``dates``, its steps) are laid out on the
    symbols' own sessions first (:mod:`scenarios_assets.core.data.session_layout`), from ``last_close`` (N,)."""
    calendars = None
    if layout is not None and not layout.identity:
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


def baseline_volatility(simple_returns: np.ndarray) -> float:
    """Annualised volatility of the equal-weight portfolio of the history's daily simple returns."""
    port = portfolio_returns(simple_returns)
    return float(np.std(port, ddof=1) * np.sqrt(ANNUALISATION)) if len(port) > 1 else float("nan")


def var_cvar(total_returns: np.ndarray, levels: list[float]) -> tuple[dict, dict]:
    """Value at risk and conditional value at risk of the scenarios' total returns, as positive losses.

    VaR_c = -quantile(R, 1 - c) (linear interpolation); CVaR_c = -mean(R | R <= quantile(R, 1 - c)).
    """
    r = np.asarray(total_returns, dtype=np.float64)
    var, cvar = {}, {}
    for c in levels:
        c = float(c)
        if not 0.0 < c < 1.0:
            raise ScenarioInputError(f"confidence level {c} must lie strictly between 0 and 1")
        if r.size == 0:
            var[f"{c:g}"] = cvar[f"{c:g}"] = None
            continue
        q = float(np.quantile(r, 1.0 - c))
        var[f"{c:g}"] = -q
        cvar[f"{c:g}"] = -float(r[r <= q].mean())
    return var, cvar


def correlation_stability(historical: np.ndarray, simulated: np.ndarray) -> float:
    """1 - mean |C_sim - C_hist| over the off-diagonal pairs (1.0 for a single symbol)."""
    n = historical.shape[0]
    if n < 2:
        return 1.0
    off = ~np.eye(n, dtype=bool)
    return float(1.0 - np.abs(simulated[off] - historical[off]).mean())


def pooled_correlation(sample: np.ndarray) -> np.ndarray:
    """Correlation (N, N) of a (rows, N) sample of daily simple returns pooled over scenarios and days
    (``SetStats.correlation_sample``: a stride subsample of at most 10,000 scenario-days)."""
    sample = np.nan_to_num(np.asarray(sample, dtype=np.float32), nan=0.0)
    sample = sample - sample.mean(axis=0)
    std = np.sqrt((sample.astype(np.float64) ** 2).sum(axis=0)).astype(np.float32)
    std[std == 0] = 1.0
    sample /= std
    c = (sample.T @ sample).astype(np.float64)
    np.fill_diagonal(c, 1.0)
    return np.clip(c, -1.0, 1.0)


def stability_metadata(historical_simple: np.ndarray, stats) -> dict:
    """correlation_stability of the streamed set ``stats`` (validation.SetStats) against the history."""
    hist = correlation(historical_simple)
    sample = stats.correlation_sample()
    sim = pooled_correlation(sample) if sample is not None else hist
    n = hist.shape[0]
    off = ~np.eye(n, dtype=bool)
    return {
        "correlation_stability": correlation_stability(hist, sim),
        "correlation_stability_measure": (
            "1 - mean absolute difference between the off-diagonal correlations of the calibration window's "
            "daily simple returns and of the simulated daily simple returns pooled over scenarios and days"
        ),
        "historical_mean_correlation": float(hist[off].mean()) if n > 1 else 1.0,
        "simulated_mean_correlation": float(sim[off].mean()) if n > 1 else 1.0,
    }


def risk_metadata(stats, levels: list[float]) -> dict:
    """VaR/CVaR and medians across the paths of the streamed set ``stats`` (validation.SetStats)."""
    totals = np.array(stats.total_returns)
    var, cvar = var_cvar(totals, levels)
    return {
        "num_scenarios": len(stats),
        "value_at_risk": var,
        "conditional_value_at_risk": cvar,
        "risk_measure": "equal-weight portfolio total return over the horizon, across scenarios; losses positive",
        "total_return_median": float(np.median(totals)) if totals.size else None,
        "annualised_volatility_median": float(np.median(stats.volatilities)) if totals.size else None,
        "max_drawdown_median": float(np.median(stats.max_drawdowns)) if totals.size else None,
    }


def metadata_window(window: CalibrationWindow) -> str:
    return f"{window.start.date()}..{window.end.date()} ({len(window.symbols)} symbols)"


def empty_set(family: str, ctx, reason: str, **metadata) -> ScenarioSet:
    return ScenarioSet(
        family=family,
        severity=ctx.severity,
        scenarios=[],
        data_version=ctx.market.data_version,
        config_hash=ctx.config_hash,
        skipped=[{"name": family, "reason": reason}],
        metadata=metadata,
    )


def paths_per_chunk_of(ctx) -> int | None:
    perf = ctx.config.get("performance", {}) or {}
    return perf.get("paths_per_chunk") or None


def workers_of(ctx) -> int:
    perf = ctx.config.get("performance", {}) or {}
    return max(1, int(perf.get("workers", 1) or 1))


def stochastic_settings(ctx, family: str) -> tuple[dict, ScenarioSet | None]:
    """The family's config section, and the empty disabled set when the family (or `stochastic`) is off."""
    stochastic = ctx.config["generation"]["stochastic"]
    cfg = stochastic[family]
    if ctx.severity not in SEVERITIES:
        raise ScenarioInputError(f"unknown severity '{ctx.severity}'")
    if not (stochastic.get("enabled", True) and cfg.get("enabled", True)):
        disabled = ScenarioSet(family, ctx.severity, [], ctx.market.data_version, ctx.config_hash, metadata={"disabled": True})
        return cfg, disabled
    return cfg, None


def scenario_indices(cfg: dict, indices) -> list[int]:
    if indices is None:
        n = int(cfg["num_scenarios"])
        if n < 0:
            raise ScenarioInputError(f"num_scenarios must be >= 0, got {n}")
        return list(range(n))
    return [int(i) for i in indices]


def generate_monte_carlo(ctx, indices: list[int] | None = None) -> ScenarioSet:
    """Monte Carlo paths of ``ctx.severity`` materialised and validated (see :func:`stream_monte_carlo`)."""
    from scenarios_assets.core.library.validation import collect

    return collect(stream_monte_carlo(ctx, indices))


def stream_monte_carlo(ctx, indices: list[int] | None = None) -> ScenarioStream:
    """Monte Carlo paths of ``ctx.severity``: scenarios ``indices`` (default 0..num_scenarios-1), calibrated
    once and simulated lazily, one chunk of paths at a time."""
    cfg, disabled = stochastic_settings(ctx, FAMILY)
    if disabled is not None:
        return disabled.stream()
    severity = ctx.severity
    idx = scenario_indices(cfg, indices)
    horizon = int(cfg["time_horizon_days"])
    if horizon < 2:
        raise ScenarioInputError(f"monte_carlo.time_horizon_days must be >= 2, got {horizon}")
    levels = [float(c) for c in cfg["confidence_levels"]]
    model = cfg["return_model"]
    reference = ctx.config["data"]["reference_symbol"]
    try:
        window = calibration_window(
            ctx.market.close,
            years=cfg["fit_window_years"],
            min_coverage=float(cfg["min_coverage"]),
            min_symbols_share=float(cfg["min_symbols_share"]),
            end=cfg["calibration_end"],
            min_sessions=MIN_FIT_OBSERVATIONS,
        )
        pm = calibrate(window, cfg, severity, workers=workers_of(ctx), cache_key=(ctx.market.data_version,), reference=reference)
    except CalibrationError as exc:
        return empty_set(FAMILY, ctx, f"cannot calibrate the Monte Carlo model: {exc}").stream()

    calendar = calendar_name(ctx.config)
    dates = simulated_dates(window.end, horizon, calendar)
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
        MonteCarloChunks(pm, ctx.seed, severity, horizon, dates, calibration, MODEL_KEYS[model],
                         f"Monte Carlo {pm.description['model']} ({severity})", baseline, layout),
        monte_carlo_chunk, chunks_of(idx, chunk_size(horizon, pm.n, paths_per_chunk_of(ctx))), index_days.merge,
    )

    metadata = {
        "model": pm.description["model"],
        "num_scenarios": len(idx),
        "time_horizon_days": horizon,
        "start_date": str(layout.dates[0]),
        **layout.describe(),
        "start_state": window.start_state(ctx.market.dates[-1], dates[0]),
        "confidence_levels": levels,
        "calibration": (
            f"{pm.description['model']} fitted on {window.sessions} sessions {window.start.date()}..{window.end.date()} "
            f"of {pm.n} symbols (data {ctx.market.data_version}); {pm.description.get('correlation', '')}; "
            f"severity {severity}: {MC_SEVERITY[severity].as_dict()}"
        ),
        "calibration_window": window.describe(),
        "last_close_date_by_symbol": window.last_close_date,
        "model_parameters": pm.description,
        "baseline_annualised_volatility": baseline,
        "tail_reference": tail_reference(
            history_simple, window=horizon, source=f"daily simple returns of the fit window {metadata_window(window)}"
        ),
    }
    return ScenarioStream(
        FAMILY, severity, ctx.market.data_version, ctx.config_hash, plan.chunks(), metadata=metadata,
        finish=lambda stats: {**risk_metadata(stats, levels), **stability_metadata(history_simple, stats), **index_days.metadata()},
        correlation_paths=len(idx), size=len(idx), plan=plan,
    )


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
    ``scenario_seed(seed, family, severity, i)`` alone, so any chunking gives the same paths."""
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


class IndexDays:
    """The reference index's worst simulated day and its days at the circuit breaker, accumulated over the
    streamed chunks (order-independent, so any chunking gives the same figures)."""

    def __init__(self, pm: PathModel):
        self.column = pm.reference
        self.floor = None if pm.reference is None else float(pm.floor[pm.reference])
        self.worst = math.inf
        self.at_floor = 0
        self.paths_at_floor = 0

    def add(self, log_returns: np.ndarray) -> None:
        """Count one chunk of (S, T, N) simulated daily log returns."""
        if self.column is None or log_returns.size == 0:
            return
        index = log_returns[:, :, self.column].astype(np.float64)
        self.worst = min(self.worst, float(index.min()))
        hits = (index <= self.floor + 1e-6).sum(axis=1)
        self.at_floor += int(hits.sum())
        self.paths_at_floor += int((hits > 0).sum())

    def merge(self, other: IndexDays) -> None:
        """Fold in the figures of another chunk (min of the worst day, sums of the counts: exact in any order)."""
        self.worst = min(self.worst, other.worst)
        self.at_floor += other.at_floor
        self.paths_at_floor += other.paths_at_floor

    def metadata(self) -> dict:
        if self.column is None or not math.isfinite(self.worst):
            return {}
        return {
            "index_worst_day": float(np.expm1(self.worst)),
            "index_days_at_circuit_breaker": self.at_floor,
            "index_paths_at_circuit_breaker": self.paths_at_floor,
        }


# --- projection of events beyond the data (historical full cycles) -------------------------------------------

def project_event(
    market,
    *,
    key: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    severity: str,
    base_seed: int,
    scale: float,
    drift: pd.Series,
    context_days: int,
    min_coverage: float,
    mc_cfg: dict,
    symbols: list[str] | None = None,
    workers: int = 1,
    calendar: str = "XNYS",
    reference: str | None = None,
) -> Replay | Skipped:
    """Replay the observed start of an event and extend it to ``end`` with GJR-GARCH-t paths.

    Symbols: those with data on the event's first session (restricted to ``symbols`` when given). The
    observed part ends on the last date every one of them has data (``observed_until``; SPX's
    2025-01-31 on the bundled data for the 2025 tariff cycle) and is replayed as any event at this
    severity. The GARCH model (``mc_cfg``'s volatility model) is fitted on the ``fit_window_years`` before
    ``observed_until``, starts from the conditional variance then and takes the Monte Carlo severity
    profile; the path starts from the last replayed price and runs over the sessions of ``calendar`` up
    to ``end``. The seed is scenario_seed(base, "historical", severity, crc32(key)), so the projection does
    not depend on the catalog's order; it seeds PROJECTION_PATHS paths and the scenario takes the one whose
    equal-weight max drawdown is their median, a representative path rather than an arbitrary draw.
    """
    close = market.close
    candidates = [s for s in (symbols or close.columns) if s in close.columns]
    first_row = int(close.index.searchsorted(start, "left"))
    if first_row >= len(close.index):
        return Skipped(f"the event starts {start.date()}, after the market data ends ({close.index[-1].date()})")
    present = close.iloc[first_row][candidates].notna()
    chosen = [s for s in candidates if present[s]]
    if not chosen:
        return Skipped(f"no symbol has data on the event's first session {close.index[first_row].date()}")
    last_dates = {s: close[s].last_valid_index() for s in chosen}
    observed_until = min(last_dates.values())
    if observed_until >= end:
        return Skipped("the event lies within the market data (nothing to project)")
    replay = replay_window(
        close.loc[:observed_until], start, observed_until, scale, drift,
        context_days=context_days, min_coverage=min_coverage, symbols=chosen, bars=market_bars(market),
    )
    if isinstance(replay, Skipped):
        return Skipped(f"its observed part cannot be replayed: {replay}")
    try:
        window = calibration_window(
            close.loc[:observed_until], years=mc_cfg["fit_window_years"], min_coverage=float(mc_cfg["min_coverage"]),
            min_symbols_share=1.0, end=observed_until, symbols=replay.symbols, min_sessions=MIN_FIT_OBSERVATIONS,
        )
        cols = [replay.symbols.index(s) for s in window.symbols]
        pm = calibrate(
            window, {**mc_cfg, "return_model": "garch", "volatility_scaling": "GARCH"}, severity, model="garch",
            workers=workers, cache_key=(market.data_version, "projection"),
            last_close=replay.prices[-1, cols].astype(np.float64), reference=reference,
        )
    except CalibrationError as exc:
        # Say why its window ends before the market data does: the event's first symbol to run out of data.
        lagging = min(chosen, key=lambda s: last_dates[s])
        return Skipped(f"the projection model cannot be calibrated: {exc}; the observed part ends {observed_until.date()}, "
                f"the last date every symbol of the event has data ({lagging}'s last; the market data runs to "
                f"{close.index[-1].date()})")
    proj_dates = sessions_between(observed_until + pd.Timedelta(days=1), end, calendar)
    if len(proj_dates) == 0:
        return Skipped(f"no {calendar} session to project")
    seed = scenario_seed(base_seed, "historical", severity, zlib.crc32(key.encode()))
    path_seeds = [int(v >> np.uint64(1)) for v in np.random.SeedSequence(seed).generate_state(PROJECTION_PATHS, np.uint64)]
    log_r = simulate_log_returns(pm, path_seeds, len(proj_dates))
    simple, prices = returns_and_prices(log_r, pm.last_close)
    wealth = np.cumprod(1.0 + portfolio_returns(simple), axis=1)  # (paths, T) equal-weight portfolio
    drawdowns = max_drawdown(np.concatenate([np.ones((1, len(path_seeds))), wealth.T]))
    pick = int(np.argsort(drawdowns, kind="stable")[len(path_seeds) // 2])  # the median-drawdown path
    obs_returns = replay.returns[:, cols]
    obs_prices = replay.prices[:, cols]
    dates = np.concatenate([replay.dates, proj_dates])
    projected = np.concatenate([np.zeros(len(replay.dates), bool), np.ones(len(proj_dates), bool)])
    no_bar = np.full((len(proj_dates), len(cols)), np.nan, dtype=np.float32)  # simulated sessions have no bar
    return Replay(
        dates=dates,
        symbols=list(window.symbols),
        returns=np.concatenate([obs_returns, simple[pick]]),
        prices=np.concatenate([obs_prices, prices[pick]]),
        coverage={s: replay.coverage[s] for s in window.symbols},
        projected=projected,
        high=None if replay.high is None else np.concatenate([replay.high[:, cols], no_bar]),
        low=None if replay.low is None else np.concatenate([replay.low[:, cols], no_bar]),
        metadata={
            "observed_until": str(observed_until.date()),
            "projected_days": int(len(proj_dates)),
            "projection_model": pm.description["model"],
            "projection_seed": int(seed),
            "projection_paths": PROJECTION_PATHS,
            "projection_path_chosen": pick,
            "projection_path_rule": "median equal-weight max drawdown of the simulated paths",
            "projection_drawdown_range": [float(drawdowns.min()), float(np.median(drawdowns)), float(drawdowns.max())],
            "projection_calibration": {
                "data_version": market.data_version,
                "window": f"{window.start.date()}..{window.end.date()}",
                "parameters": {k: v for k, v in pm.description.items() if k != "fitted_parameters_by_symbol"},
                "fitted_parameters_by_symbol": pm.description.get("fitted_parameters_by_symbol"),
            },
        },
    )
