"""Monte Carlo scenarios: GARCH(1,1)-t, GBM and filtered historical simulation with correlated innovations.

Calibration window and universe
    The window ends on the last session on which at least ``min_symbols_share`` of the panel's symbols
    have a close (or on ``calibration_end`` when given), so a few long-running series (an index, one
    stock) do not pull the window past the end of most of the universe. On the bundled data (most
    symbols end 2022-12-28, SPX 2025-01-31, NVDA 2025-02-14) this is 2022-12-28. The window covers the
    ``fit_window_years`` before that end; the universe is every symbol with a daily log return on at
    least ``min_coverage`` of the window's sessions. The rule, the end date and the excluded symbols
    are reported in the set metadata.

Paths
    Scenario dates are the ``time_horizon_days`` business days after the last date of the market data;
    each symbol's path starts from its last observed close (prices are that close compounded by the
    simulated returns). The GARCH state is filtered with the fitted parameters through every return a
    symbol has after the window's end, so each path starts from the symbol's last conditional variance.

Models (``return_model``)
    garch   per-symbol GARCH(1,1), constant mean, Student-t innovations, fitted with ``arch`` on daily log
            returns in percent; simulated forward from the one-step variance forecast, with the window's
            mean daily log return as drift (arch's Student-t location sits above the mean when returns
            are negatively skewed, so it would overstate the drift). Innovations are
            multivariate Student-t: correlated normals ``L e`` (``L`` the Cholesky factor of the chosen
            correlation of standardised residuals) times one ``sqrt((nu - 2) / chi2_nu)`` per day, with
            ``nu`` the median of the fitted degrees of freedom. The common mixing variable keeps the
            correlation exactly and makes large moves arrive together, as in market sell-offs.
    gbm     geometric Brownian motion: constant drift and volatility of each symbol's daily log returns
            over the window, Gaussian innovations correlated through the chosen correlation matrix.
    historical_distribution
            filtered historical simulation: innovations are whole dates (rows) of the GARCH standardised
            residuals drawn with replacement, so fat tails and the cross-sectional dependence of the data
            are kept as observed; the volatility follows the GARCH recursion (``volatility_scaling:
            GARCH``) or stays constant (``none``: plain historical simulation of standardised returns).

Correlation (``correlation_matrix``; garch and gbm)
    ``rolling_<N>d`` (default ``rolling_60d``): the correlation of the last N sessions of the window
    (standardised residuals for garch, log returns for gbm), blended with the whole window's
    correlation with weight ``correlation_shrinkage`` (so it stays positive definite when there are
    more symbols than sessions); only if its Cholesky factorisation fails is it projected to the
    nearest correlation matrix with eigenvalues >= 1e-6. ``full_window``: the whole window's correlation.

Severity (``MC_SEVERITY``, the one table of calibration numbers)
    See :class:`StressProfile`. Moderate is the fitted model as is. Severe and extreme scale each
    symbol's whole variance process by k = max(Q_q(h) / mean(h), floor), with h the symbol's historical
    conditional variance (21-session rolling variance for constant-volatility models): q = 0.75 / floor
    1.2^2 (severe: upper-quartile volatility, at least 1.2x average), q = 0.95 / floor 1.5^2 (extreme:
    volatility near its historical 95th percentile, at least 1.5x average). The path starts from
    max(last variance, k mean(h)) (constant-volatility models: sigma' = sqrt(k) sigma). Student-t
    tails get heavier (garch: nu' = 2 + (nu - 2) tail_scale; gbm stays Gaussian and filtered historical
    simulation keeps the empirical residuals), correlations are pushed toward 1 (rho' = rho + push
    (1 - rho); for filtered historical simulation the resampled residual rows are recoloured to the
    pushed correlation), and the historical drift is scaled (1, 0.5, 0).

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
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from scenarios_assets.core.errors import ScenarioInputError
from scenarios_assets.core.market import constant_columns
from scenarios_assets.core.scenario import (
    ANNUALISATION,
    Scenario,
    ScenarioSet,
    ScenarioStream,
    max_drawdown,
    portfolio_returns,
    scenario_id,
)
from scenarios_assets.core.severity import SEVERITIES, scenario_rng, scenario_seed
from scenarios_assets.core.validation import tail_reference

if TYPE_CHECKING:  # historical imports this module lazily; only the annotation needs it here
    from scenarios_assets.core.historical import Replay

FAMILY = "monte_carlo"
SCENARIO_TYPE = "MONTE_CARLO"
MODELS = ("garch", "gbm", "historical_distribution")
MODEL_KEYS = {"garch": "garch", "gbm": "gbm", "historical_distribution": "fhs"}
MODEL_LABELS = {
    "garch": "GARCH(1,1)-t",
    "gbm": "GBM",
    "historical_distribution": "filtered historical simulation",
}

# Guards of the simulation (documented limits, hit only in the far tails):
# a simulated daily log return is clipped to [-0.7, +0.7] (about -50 % / +101 %), and the conditional
# variance is capped at 16x max(start variance, stressed long-run variance) (volatility at most 4x).
LOG_RETURN_CLIP = 0.7
VARIANCE_CAP = 16.0
MIN_DOF = 3.0  # Student-t degrees of freedom after the severity shift (variance must exist)
MAX_DOF = 50.0
MAX_PERSISTENCE = 0.998  # alpha + beta of a simulated GARCH (an integrated fit is scaled down to it)
MIN_FIT_OBSERVATIONS = 250  # a GARCH fit needs about a year of daily returns
FIT_SYMBOLS_PER_PROCESS = 16  # a fit process is only worth starting for at least this many symbols
CHUNK_ELEMENTS = 8_000_000  # scenarios are simulated in chunks of about this many (day, symbol) cells
PROJECTION_PATHS = 101  # paths simulated for a projected event; the median-drawdown one is kept


@dataclass(frozen=True)
class StressProfile:
    """Calibration shift of one severity (see the module docstring for the formulas).

    variance_quantile: quantile of each symbol's historical conditional variance taken as the stressed
        long-run variance (None: the fitted model as is).
    variance_floor: minimum ratio of stressed to average historical variance (keeps severities ordered
        even when a symbol's variance distribution is narrow).
    tail_scale: nu' = 2 + (nu - 2) * tail_scale for Student-t innovations (< 1: heavier tails).
    correlation_push: rho' = rho + push * (1 - rho) for every off-diagonal correlation.
    drift_scale: multiplier of the historical mean daily return.
    """

    variance_quantile: float | None
    variance_floor: float
    tail_scale: float
    correlation_push: float
    drift_scale: float

    def as_dict(self) -> dict:
        return {
            "variance_quantile": self.variance_quantile,
            "variance_floor": self.variance_floor,
            "volatility_floor": round(math.sqrt(self.variance_floor), 6),
            "tail_scale": self.tail_scale,
            "correlation_push": self.correlation_push,
            "drift_scale": self.drift_scale,
        }


MC_SEVERITY: dict[str, StressProfile] = {
    # the fitted model: last conditional variance, fitted tails, estimated correlation, historical drift
    "moderate": StressProfile(None, 1.0, 1.0, 0.0, 1.0),
    # upper-quartile volatility (>= 1.2x average), somewhat heavier tails, correlations 15 % of the way
    # to 1 (e.g. 0.35 -> 0.45), half the historical drift
    "severe": StressProfile(0.75, 1.2**2, 0.75, 0.15, 0.5),
    # crisis: volatility near its 95th percentile (>= 1.5x average), much heavier tails, correlations
    # 35 % of the way to 1 (0.35 -> 0.58, the level of 2008/2020 sell-offs), no drift
    "extreme": StressProfile(0.95, 1.5**2, 0.5, 0.35, 0.0),
}


class CalibrationError(ValueError):
    """The data cannot calibrate the model (reported as a skipped family, not raised to the user)."""


# --- calibration window -----------------------------------------------------------------------------

@dataclass(frozen=True)
class CalibrationWindow:
    """The window and universe a stochastic family is calibrated on."""

    start: pd.Timestamp  # first session of the window
    end: pd.Timestamp  # last session of the window
    symbols: list[str]
    log_returns: pd.DataFrame  # window sessions x universe, daily log returns (NaN where missing)
    after: pd.DataFrame  # log returns of the universe after the window's end (state filtering)
    last_close: np.ndarray  # (N,) float64, each symbol's last observed close
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
    """The calibration window and universe of ``close`` (see the module docstring for the rule)."""
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
    sub = values[:, cols]
    seen = np.isfinite(sub)
    last_row = len(sub) - 1 - np.argmax(seen[::-1], axis=0)
    last_close = sub[last_row, np.arange(len(cols))]
    return CalibrationWindow(
        start=dates[window_rows[0]],
        end=end_date,
        symbols=chosen,
        log_returns=pd.DataFrame(window[:, cols], index=dates[window_rows], columns=chosen),
        after=pd.DataFrame(log_ret[end_row + 1 :, cols], index=dates[end_row + 1 :], columns=chosen),
        last_close=last_close,
        last_close_date={s: str(dates[r].date()) for s, r in zip(chosen, last_row)},
        coverage={s: round(float(c), 4) for s, c in zip(chosen, coverage[cols])},
        excluded=excluded,
        end_rule=rule,
    )


def future_business_days(last_date: pd.Timestamp, horizon: int) -> np.ndarray:
    """The ``horizon`` business days after ``last_date`` (datetime64[D])."""
    days = pd.bdate_range(pd.Timestamp(last_date) + pd.Timedelta(days=1), periods=int(horizon))
    return days.to_numpy().astype("datetime64[D]")


# --- GARCH fits ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GarchFit:
    """Per-symbol GARCH(1,1)-t fits on daily log returns in percent (arrays over the universe)."""

    symbols: list[str]
    mu: np.ndarray
    omega: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    nu: np.ndarray
    variance: np.ndarray  # (T, N) conditional variance over the window (NaN where no return)
    residuals: np.ndarray  # (T, N) standardised residuals (NaN where no return)
    forecast: np.ndarray  # (N,) one-step variance forecast after each symbol's last observation
    converged: np.ndarray  # (N,) bool; False: fit failed, moment-based fallback parameters used
    capped: np.ndarray  # (N,) bool; True: integrated fit, persistence scaled down to MAX_PERSISTENCE
    # (N,) bool; True: constant price in the window (every return 0): not fitted, zero variance throughout
    flat: np.ndarray | None = None

    def summary(self) -> dict:
        """Medians over the fitted symbols (constant-price ones have no parameters to speak of)."""
        moving = ~self.flat if self.flat is not None else np.ones(len(self.symbols), dtype=bool)
        if not moving.any():
            moving = np.ones(len(self.symbols), dtype=bool)
        persistence = self.alpha + self.beta
        return {
            "alpha_median": float(np.median(self.alpha[moving])),
            "beta_median": float(np.median(self.beta[moving])),
            "persistence_median": float(np.median(persistence[moving])),
            "nu_median": float(np.median(self.nu[moving])),
            "fits_not_converged": int((~self.converged).sum()),
            "persistence_capped": int(self.capped.sum()),
            "constant_price_symbols": int((~moving).sum()) if self.flat is not None and self.flat.any() else 0,
        }

    def by_symbol(self) -> dict:
        return {
            s: {
                "mu": float(self.mu[i]),
                "omega": float(self.omega[i]),
                "alpha": float(self.alpha[i]),
                "beta": float(self.beta[i]),
                "nu": float(self.nu[i]),
                "converged": bool(self.converged[i]),
                "persistence_capped": bool(self.capped[i]),
            }
            for i, s in enumerate(self.symbols)
        }


def _garch_filter(y: np.ndarray, mu: float, omega: float, alpha: float, beta: float, h0: float) -> np.ndarray:
    """Conditional variances of ``y`` under fixed GARCH(1,1) parameters, starting from ``h0``."""
    h = np.empty(len(y))
    h_t = h0
    for t in range(len(y)):
        h[t] = h_t
        h_t = omega + alpha * (y[t] - mu) ** 2 + beta * h_t
    return h


def _fit_one(y: np.ndarray, y_after: np.ndarray) -> tuple:
    """Fit one symbol (percent log returns); returns (mu, omega, alpha, beta, nu, h, forecast, converged)."""
    from arch import arch_model

    converged = False
    try:
        res = arch_model(y, mean="Constant", vol="GARCH", p=1, q=1, dist="t", rescale=False).fit(
            disp="off", show_warning=False
        )
        p = res.params
        mu, omega, alpha, beta, nu = (float(p["mu"]), float(p["omega"]), float(p["alpha[1]"]), float(p["beta[1]"]), float(p["nu"]))
        h = np.asarray(res.conditional_volatility, dtype=np.float64) ** 2
        converged = (
            res.convergence_flag == 0
            and all(np.isfinite([mu, omega, alpha, beta, nu]))
            and omega > 0
            and bool(np.all(np.isfinite(h)))
        )
    except Exception:  # noqa: BLE001 - any numerical failure falls back to moment parameters
        converged = False
    capped = False
    if converged and alpha + beta > MAX_PERSISTENCE:
        # An integrated fit (alpha + beta at the boundary 1) would let the simulated variance drift up
        # without bound: scale alpha and beta down to MAX_PERSISTENCE and set omega so the long-run
        # variance is the sample variance.
        scale = MAX_PERSISTENCE / (alpha + beta)
        alpha, beta = alpha * scale, beta * scale
        omega = float(np.var(y)) * (1.0 - MAX_PERSISTENCE)
        capped = True
    if not converged:
        # Moment-based fallback: a typical equity GARCH (alpha 0.05, beta 0.90) matched to the sample
        # mean and variance, Student-t with 8 degrees of freedom.
        mu, var = float(np.mean(y)), float(np.var(y)) or 1e-4
        alpha, beta, nu = 0.05, 0.90, 8.0
        omega = var * (1.0 - alpha - beta)
        h = _garch_filter(y, mu, omega, alpha, beta, var)
    h_last, eps_last = h[-1], y[-1] - mu
    for x in y_after:  # filter through the observations after the window (fixed parameters)
        h_last = omega + alpha * eps_last**2 + beta * h_last
        eps_last = x - mu
    forecast = omega + alpha * eps_last**2 + beta * h_last
    return mu, omega, alpha, beta, nu, h, float(forecast), bool(converged), capped


def _fit_chunk(payload: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple]:
    return [_fit_one(y, y_after) for y, y_after in payload]


BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_WORKER_CODE = "from scenarios_assets.core.monte_carlo import _fit_worker_main; _fit_worker_main()"
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


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
    window: CalibrationWindow, *, workers: int = 1, extend: bool = True, cache_key: tuple | None = None
) -> GarchFit:
    """Fit GARCH(1,1)-t to every symbol of the window; the fits of many symbols run on ``workers`` processes.

    ``extend``: filter the variance through each symbol's returns after the window, so the forecast
    starts from its last observation. Fits are cached per (cache_key, window, universe) in the process.
    """
    key = None
    if cache_key is not None:
        key = (*cache_key, str(window.start), str(window.end), tuple(window.symbols), extend)
        if key in _FIT_CACHE:
            _FIT_CACHE.move_to_end(key)
            return _FIT_CACHE[key]
    values = window.log_returns.to_numpy(np.float64) * 100.0
    after = window.after.to_numpy(np.float64) * 100.0
    n = values.shape[1]
    flat = constant_columns(values)
    payload = []
    for j in range(n):
        col = values[:, j]
        y = col[np.isfinite(col)]
        if len(y) < MIN_FIT_OBSERVATIONS:
            raise CalibrationError(
                f"{window.symbols[j]} has {len(y)} returns in the fit window (at least {MIN_FIT_OBSERVATIONS} needed)"
            )
        if flat[j]:
            continue  # a constant price: nothing to fit (FLAT_FIT below)
        tail = after[:, j] if extend else np.empty(0)
        payload.append((y, tail[np.isfinite(tail)]))
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
        observed = int(np.isfinite(values[:, j]).sum())
        results[j] = (0.0, 0.0, 0.0, 0.0, MAX_DOF, np.zeros(observed), 0.0, True, False)
    variance = np.full_like(values, np.nan)
    residuals = np.full_like(values, np.nan)
    mu, omega, alpha, beta, nu, forecast, conv, capped = (np.empty(n) for _ in range(8))
    for j, (m, o, a, b, v, h, f, c, k) in enumerate(results):
        ok = np.isfinite(values[:, j])
        variance[ok, j] = h
        # A constant price has no standardised residual; 0 keeps it out of the correlation (core.correlation).
        residuals[ok, j] = 0.0 if flat[j] else (values[ok, j] - m) / np.sqrt(h)
        mu[j], omega[j], alpha[j], beta[j], nu[j], forecast[j], conv[j], capped[j] = m, o, a, b, v, f, c, k
    fit = GarchFit(
        list(window.symbols), mu, omega, alpha, beta, nu, variance, residuals, forecast, conv.astype(bool),
        capped.astype(bool), flat,
    )
    if key is not None:
        _FIT_CACHE[key] = fit
        while len(_FIT_CACHE) > _FIT_CACHE_SIZE:
            _FIT_CACHE.popitem(last=False)
    return fit


# --- correlation ---------------------------------------------------------------------------------------

def correlation(x: np.ndarray) -> np.ndarray:
    """Correlation of the columns of ``x`` over its complete rows (zero-filled when too few are complete)."""
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
    """(correlation used for the innovations, whole-window correlation) of the rows of ``x``."""
    full = correlation(x)
    if rolling is None:
        return full, full
    complete = x[np.isfinite(x).all(axis=1)]
    recent = complete[-rolling:] if len(complete) >= rolling // 2 else x[-rolling:]
    return (1.0 - shrinkage) * correlation(recent) + shrinkage * full, full


# --- the simulation model --------------------------------------------------------------------------------

@dataclass
class PathModel:
    """Everything needed to draw the paths of one severity (decimal daily log-return units)."""

    model: str
    symbols: list[str]
    mu: np.ndarray  # (N,) mean daily log return
    last_close: np.ndarray  # (N,)
    garch: bool  # GARCH variance recursion (else constant volatility ``sigma``)
    omega: np.ndarray | None = None
    alpha: np.ndarray | None = None
    beta: np.ndarray | None = None
    h1: np.ndarray | None = None  # (N,) first-day variance
    h_cap: np.ndarray | None = None
    sigma: np.ndarray | None = None  # (N,) constant daily volatility
    nu: float | None = None  # Student-t degrees of freedom of the innovations (None: Gaussian / resampled)
    chol: np.ndarray | None = None  # (N, N) float32 lower Cholesky factor of the innovation correlation
    pool: np.ndarray | None = None  # (R, N) float32 standardised residual rows (filtered historical simulation)
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


def calibrate(
    window: CalibrationWindow,
    cfg: dict,
    severity: str,
    *,
    model: str | None = None,
    workers: int = 1,
    extend: bool = True,
    cache_key: tuple | None = None,
    last_close: np.ndarray | None = None,
) -> PathModel:
    """Fit the configured model on ``window`` and apply the severity profile."""
    model = model or cfg["return_model"]
    if model not in MODELS:
        raise ScenarioInputError(f"monte_carlo.return_model '{model}' is not supported (use {', '.join(MODELS)})")
    scaling = str(cfg["volatility_scaling"])
    if scaling.lower() not in ("garch", "none"):
        raise ScenarioInputError(f"monte_carlo.volatility_scaling '{scaling}' is not supported (use GARCH or none)")
    use_garch = model == "garch" or (model == "historical_distribution" and scaling.lower() == "garch")
    if model == "garch" and scaling.lower() != "garch":
        raise ScenarioInputError("monte_carlo.return_model garch needs volatility_scaling GARCH")
    rolling = parse_correlation_window(cfg["correlation_matrix"])
    shrinkage = float(cfg["correlation_shrinkage"])
    if not 0.0 <= shrinkage <= 1.0:
        raise ScenarioInputError(f"monte_carlo.correlation_shrinkage must lie in [0, 1], got {shrinkage}")
    profile = MC_SEVERITY[severity]
    x = window.log_returns.to_numpy(np.float64)
    flat = constant_columns(x)
    moving = ~flat if not flat.all() else np.ones(len(flat), dtype=bool)  # medians of the description
    close0 = window.last_close if last_close is None else np.asarray(last_close, dtype=np.float64)
    pm = PathModel(model=model, symbols=list(window.symbols), mu=np.zeros(len(window.symbols)), last_close=close0, garch=use_garch)
    desc: dict = {"model": MODEL_LABELS[model], "return_model": model, "volatility_scaling": "GARCH" if use_garch else "none"}

    if use_garch:
        fit = fit_garch(window, workers=workers, extend=extend, cache_key=cache_key)
        k = _stress_factor(fit.variance, profile)
        mean_h = np.nanmean(fit.variance, axis=0)
        pm.mu = np.nanmean(x, axis=0) * profile.drift_scale  # the window's mean log return (see docstring)
        pm.omega = fit.omega * k / 1e4
        pm.alpha, pm.beta = fit.alpha.copy(), fit.beta.copy()
        h1 = np.maximum(fit.forecast, k * mean_h) if profile.variance_quantile is not None else fit.forecast
        pm.h1 = h1 / 1e4
        pm.h_cap = VARIANCE_CAP * np.maximum(pm.h1, k * mean_h / 1e4)
        residuals = fit.residuals
        desc["fitted_parameters"] = fit.summary()
        desc["fitted_parameters_by_symbol"] = fit.by_symbol()
        desc["annualised_volatility_start_median"] = float(np.median(np.sqrt(pm.h1 * ANNUALISATION)[moving]))
        desc["annualised_volatility_long_run_median"] = float(np.median(np.sqrt(k * mean_h / 1e4 * ANNUALISATION)[moving]))
        if model == "garch":
            nu = float(np.clip(np.median(fit.nu[moving]), MIN_DOF, MAX_DOF))
            pm.nu = float(np.clip(2.0 + (nu - 2.0) * profile.tail_scale, MIN_DOF, MAX_DOF))
            desc["innovation_dof"] = pm.nu
    else:
        m = np.nanmean(x, axis=0)
        s = np.nanstd(x, axis=0, ddof=1)
        rolling_var = pd.DataFrame(x).rolling(21, min_periods=15).var().to_numpy()
        k = _stress_factor(rolling_var, profile)
        sigma = np.where(flat, 0.0, s * np.sqrt(k))
        if model == "gbm":  # log drift = (mu_arith * drift_scale) - sigma'^2 / 2 with mu_arith = m + s^2 / 2
            pm.mu = (m + s**2 / 2.0) * profile.drift_scale - sigma**2 / 2.0
        else:
            pm.mu = m * profile.drift_scale
        pm.sigma = sigma
        with np.errstate(divide="ignore", invalid="ignore"):
            residuals = np.where(flat, np.where(np.isfinite(x), 0.0, np.nan), (x - m) / s)
        desc["annualised_volatility_median"] = float(np.median((sigma * np.sqrt(ANNUALISATION))[moving]))
    desc["annualised_drift_median"] = float(np.median((pm.mu * ANNUALISATION)[moving]))
    desc["volatility_stress_factor_median"] = float(np.median(np.sqrt(k)[moving]))
    if flat.any():
        desc["constant_price_symbols"] = [sym for sym, f in zip(window.symbols, flat) if f]
        desc["constant_price_rule"] = (
            "every return in the calibration window is 0: simulated with zero volatility and drift (the path "
            "stays at the last close)"
        )

    if model == "historical_distribution":
        pool = residuals[np.isfinite(residuals).all(axis=1)]
        pool = pool - pool.mean(axis=0)  # the drift is the window's mean; residual rows carry none
        if len(pool) < 20:
            raise CalibrationError("fewer than 20 sessions have a residual for every symbol (filtered historical simulation)")
        if profile.correlation_push > 0:  # recolour the resampled rows toward the stressed correlation
            emp = nearest_correlation(correlation(pool))
            a = cholesky(push_correlation(emp, profile.correlation_push)) @ np.linalg.inv(cholesky(emp))
            pool = pool @ a.T
        pm.pool = np.ascontiguousarray(pool, dtype=np.float32)
        desc["correlation"] = f"empirical (whole dates of standardised residuals, {len(pool)} sessions)"
    else:
        corr, _ = target_correlation(residuals, rolling, shrinkage)
        corr = push_correlation(corr, profile.correlation_push)
        pm.chol = np.ascontiguousarray(cholesky(corr), dtype=np.float32)
        off = corr[~np.eye(len(corr), dtype=bool)]
        desc["correlation"] = (
            f"{cfg['correlation_matrix']} of {'standardised residuals' if use_garch else 'log returns'}"
            + (f", blended with the window's (weight {shrinkage:g})" if rolling is not None else "")
            + (f", pushed {profile.correlation_push:.0%} toward 1" if profile.correlation_push else "")
        )
        desc["innovation_correlation_mean"] = float(off.mean()) if off.size else 1.0
    desc["severity_profile"] = profile.as_dict()
    pm.description = desc
    return pm


def _innovations(pm: PathModel, rng: np.random.Generator, horizon: int) -> np.ndarray:
    """One scenario's (T, N) float32 standardised innovations, all drawn from its own generator."""
    if pm.pool is not None:
        return pm.pool[rng.integers(0, len(pm.pool), size=horizon)]
    eps = rng.standard_normal((horizon, pm.n), dtype=np.float32)
    if pm.nu is not None:  # multivariate t: one chi-square mixing variable per day, unit variance
        mix = np.sqrt((pm.nu - 2.0) / rng.chisquare(pm.nu, size=horizon)).astype(np.float32)
        eps *= mix[:, None]
    return eps  # correlated in simulate_log_returns (the mixing factor is per day, so it commutes)


def simulate_log_returns(pm: PathModel, seeds: list[int], horizon: int) -> np.ndarray:
    """(S, T, N) float32 daily log returns of the scenarios with these seeds."""
    z = np.empty((len(seeds), horizon, pm.n), dtype=np.float32)
    for i, seed in enumerate(seeds):
        z[i] = _innovations(pm, scenario_rng(seed), horizon)
    if pm.chol is not None and pm.n > 1:
        # One product for the chunk (a product per scenario is several times slower with threaded BLAS on
        # a busy machine). Each row's result does not depend on how many rows are multiplied at once, so
        # paths stay bit-identical for any chunking (test_monte_carlo checks it).
        z = (z.reshape(-1, pm.n) @ pm.chol.T).reshape(z.shape)
    mu = pm.mu.astype(np.float32)
    if not pm.garch:
        out = z * pm.sigma.astype(np.float32) + mu
        return np.clip(out, -LOG_RETURN_CLIP, LOG_RETURN_CLIP, out=out)
    omega, alpha, beta = (v.astype(np.float32) for v in (pm.omega, pm.alpha, pm.beta))
    cap = pm.h_cap.astype(np.float32)
    h = np.broadcast_to(pm.h1.astype(np.float32), (len(seeds), pm.n)).copy()
    for t in range(horizon):  # the GARCH recursion, on whole (scenarios x symbols) arrays
        r = np.sqrt(h) * z[:, t] + mu
        np.clip(r, -LOG_RETURN_CLIP, LOG_RETURN_CLIP, out=r)
        z[:, t] = r
        eps = r - mu
        h = omega + alpha * (eps * eps) + beta * h
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
) -> list[Scenario]:
    """Scenario objects of a chunk of equal-shaped (S, T, N) paths (each keeps a view of the chunk arrays)."""
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
    from scenarios_assets.core.validation import collect

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
    try:
        window = calibration_window(
            ctx.market.close,
            years=cfg["fit_window_years"],
            min_coverage=float(cfg["min_coverage"]),
            min_symbols_share=float(cfg["min_symbols_share"]),
            end=cfg["calibration_end"],
            min_sessions=MIN_FIT_OBSERVATIONS,
        )
        pm = calibrate(window, cfg, severity, workers=workers_of(ctx), cache_key=(ctx.market.data_version,))
    except CalibrationError as exc:
        return empty_set(FAMILY, ctx, f"cannot calibrate the Monte Carlo model: {exc}").stream()

    dates = future_business_days(ctx.market.dates[-1], horizon)
    history_simple = np.expm1(window.log_returns.to_numpy(np.float64))
    baseline = baseline_volatility(history_simple)
    calibration = {
        "data_version": ctx.market.data_version,
        "window": f"{window.start.date()}..{window.end.date()}",
        "window_sessions": window.sessions,
        "model": pm.description["model"],
        "parameters": {k: v for k, v in pm.description.items() if k not in ("fitted_parameters_by_symbol", "severity_profile", "model")},
    }
    key_prefix = MODEL_KEYS[model]
    name_prefix = f"Monte Carlo {MODEL_LABELS[model]} ({severity})"

    def chunks():
        for part in chunks_of(idx, chunk_size(horizon, pm.n, paths_per_chunk_of(ctx))):
            seeds = [scenario_seed(ctx.seed, FAMILY, severity, i) for i in part]
            log_r = simulate_log_returns(pm, seeds, horizon)
            simple, prices = returns_and_prices(log_r, pm.last_close)
            del log_r
            meta = [{"model": pm.description["model"], "scenario_index": i, "calibration_source": calibration} for i in part]
            yield make_scenarios(
                simple, prices, family=FAMILY, scenario_type=SCENARIO_TYPE, severity=severity, indices=part,
                seeds=seeds, key_prefix=key_prefix, name_prefix=name_prefix, dates=dates, symbols=pm.symbols,
                metadata=meta, baseline_vol=baseline,
            )

    metadata = {
        "model": pm.description["model"],
        "num_scenarios": len(idx),
        "time_horizon_days": horizon,
        "start_date": str(dates[0]),
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
        FAMILY, severity, ctx.market.data_version, ctx.config_hash, chunks(), metadata=metadata,
        finish=lambda stats: {**risk_metadata(stats, levels), **stability_metadata(history_simple, stats)},
        correlation_paths=len(idx), size=len(idx),
    )


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
) -> Replay | str:
    """Replay the observed start of an event and extend it to ``end`` with GARCH(1,1)-t paths.

    Symbols: those with data on the event's first session (restricted to ``symbols`` when given). The
    observed part ends on the last date every one of them has data (``observed_until``; SPX's
    2025-01-31 on the bundled data for the 2025 tariff cycle) and is replayed as any event at this
    severity. The GARCH model is fitted on the ``fit_window_years`` before ``observed_until``, starts
    from the conditional variance then and takes the Monte Carlo severity profile; the path starts
    from the last replayed price. The seed is scenario_seed(base, "historical", severity,
    crc32(key)), so the projection does not depend on the catalog's order; it seeds PROJECTION_PATHS
    paths and the scenario takes the one whose equal-weight max drawdown is their median, a
    representative path rather than an arbitrary draw.
    """
    from scenarios_assets.core.historical import Replay, replay_window  # historical imports this module lazily

    close = market.close
    candidates = [s for s in (symbols or close.columns) if s in close.columns]
    first_row = int(close.index.searchsorted(start, "left"))
    if first_row >= len(close.index):
        return f"the event starts {start.date()}, after the market data ends ({close.index[-1].date()})"
    present = close.iloc[first_row][candidates].notna()
    chosen = [s for s in candidates if present[s]]
    if not chosen:
        return f"no symbol has data on the event's first session {close.index[first_row].date()}"
    last_dates = {s: close[s].last_valid_index() for s in chosen}
    observed_until = min(last_dates.values())
    if observed_until >= end:
        return "the event lies within the market data (nothing to project)"
    replay = replay_window(
        close.loc[:observed_until], start, observed_until, scale, drift,
        context_days=context_days, min_coverage=min_coverage, symbols=chosen,
    )
    if isinstance(replay, str):
        return f"its observed part cannot be replayed: {replay}"
    try:
        window = calibration_window(
            close.loc[:observed_until], years=mc_cfg["fit_window_years"], min_coverage=float(mc_cfg["min_coverage"]),
            min_symbols_share=1.0, end=observed_until, symbols=replay.symbols, min_sessions=MIN_FIT_OBSERVATIONS,
        )
        cols = [replay.symbols.index(s) for s in window.symbols]
        pm = calibrate(
            window, {**mc_cfg, "return_model": "garch", "volatility_scaling": "GARCH"}, severity, model="garch",
            workers=workers, extend=False, cache_key=(market.data_version, "projection"),
            last_close=replay.prices[-1, cols].astype(np.float64),
        )
    except CalibrationError as exc:
        # Say why its window ends before the market data does: the event's first symbol to run out of data.
        lagging = min(chosen, key=lambda s: last_dates[s])
        return (f"the projection model cannot be calibrated: {exc}; the observed part ends {observed_until.date()}, "
                f"the last date every symbol of the event has data ({lagging}'s last; the market data runs to "
                f"{close.index[-1].date()})")
    proj_dates = pd.bdate_range(observed_until + pd.Timedelta(days=1), end).to_numpy().astype("datetime64[D]")
    if len(proj_dates) == 0:
        return "no business day to project"
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
    return Replay(
        dates=dates,
        symbols=list(window.symbols),
        returns=np.concatenate([obs_returns, simple[pick]]),
        prices=np.concatenate([obs_prices, prices[pick]]),
        coverage={s: replay.coverage[s] for s in window.symbols},
        projected=projected,
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
