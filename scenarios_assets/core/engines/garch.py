"""Per-symbol GARCH(1,1)-t and GJR-GARCH(1,1,1)-t fits of daily log returns, with ``arch``.

Model (``volatility_model``)
    gjr_garch (default)  ``arch_model(y, mean="Constant", vol="GARCH", p=1, o=1, q=1, dist="t")`` on daily log
        returns in percent: h_t+1 = omega + (alpha + gamma 1[e_t < 0]) e_t^2 + beta h_t, e_t = y_t - mu,
        Student-t innovations. The asymmetric term makes volatility rise more after falls than after rises
        (Glosten, Jagannathan & Runkle 1993), so the leverage effect corr(r_t, |r_t+1|) < 0 of equity returns
        shows in the paths (S&P 500 2012-2022: -0.13).
    garch  the symmetric GARCH(1,1) (gamma = 0; Bollerslev 1986) with Student-t innovations (Bollerslev 1987):
        no leverage effect.
    EGARCH is not offered: with Student-t innovations its unconditional variance is infinite (E[exp(c|z|)]
    diverges for every c > 0 under a t distribution), so long simulations are not stationary in variance.

A fit that does not converge (or gives non-finite parameters) falls back to moment parameters: a typical
equity (GJR-)GARCH with persistence 0.95 matched to the sample mean and variance, Student-t with 8 degrees
of freedom. A symbol whose price never moved gets zero variance throughout and nothing is fitted.

Fits run in fresh worker interpreters with one BLAS thread each (the optimiser's last digits depend on the
BLAS thread count, so this keeps them identical for any worker count), and are cached in the process.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from scenarios_assets.core.data.market import constant_columns
from scenarios_assets.core.models.errors import CalibrationError, ScenarioInputError

VOLATILITY_MODELS = ("gjr_garch", "garch")
VOLATILITY_LABELS = {"gjr_garch": "GJR-GARCH(1,1,1)", "garch": "GARCH(1,1)"}
MIN_DOF = 5.0  # Student-t degrees of freedom: above 4, so the fourth moment (kurtosis) exists
MAX_DOF = 50.0
MAX_PERSISTENCE = 0.99  # alpha + gamma/2 + beta of a simulated GARCH (half-life <= 69 sessions)
MIN_FIT_OBSERVATIONS = 250  # a GARCH fit needs about a year of daily returns
FIT_SYMBOLS_PER_PROCESS = 16  # a fit process is only worth starting for at least this many symbols


@dataclass(frozen=True)
class GarchFit:
    """Per-symbol GARCH(1,1)-t or GJR-GARCH(1,1,1)-t fits of daily log returns in percent.

    Attributes
    ----------
    symbols : list of str
        The universe, in column order (N symbols).
    volatility_model : str
        ``gjr_garch`` or ``garch``.
    mu, omega, alpha, gamma, beta, nu : ndarray of shape (N,), float64
        Mean (percent daily log return), constant (percent squared), ARCH, asymmetric (0 for the symmetric
        model) and GARCH coefficients, and the Student-t degrees of freedom.
    variance : ndarray of shape (T, N), float64
        Conditional variance over the window (percent squared); NaN where a symbol has no return.
    residuals : ndarray of shape (T, N), float64
        Standardised residuals (y - mu) / sqrt(h); NaN where no return, 0 for a constant price.
    forecast : ndarray of shape (N,), float64
        One-step variance forecast after each symbol's last return in the window (percent squared).
    converged : ndarray of shape (N,), bool
        False where the fit failed and the moment-based fallback parameters are used.

    References
    ----------
    Bollerslev, T. (1986). Generalized autoregressive conditional heteroskedasticity. Journal of
    Econometrics 31:307-327.
    Bollerslev, T. (1987). A conditionally heteroskedastic time series model for speculative prices and rates
    of return. Review of Economics and Statistics 69:542-547.
    Glosten, L., Jagannathan, R. & Runkle, D. (1993). On the relation between the expected value and the
    volatility of the nominal excess return on stocks. Journal of Finance 48:1779-1801.
    """

    symbols: list[str]
    volatility_model: str
    mu: np.ndarray
    omega: np.ndarray
    alpha: np.ndarray
    gamma: np.ndarray
    beta: np.ndarray
    nu: np.ndarray
    variance: np.ndarray
    residuals: np.ndarray
    forecast: np.ndarray
    converged: np.ndarray

    @property
    def persistence(self) -> np.ndarray:
        """alpha + gamma / 2 + beta (N,): the GJR term is active on half of the days for symmetric innovations."""
        return self.alpha + self.gamma / 2.0 + self.beta

    def summary(self) -> dict:
        """Medians of the parameters and counts of failed, over-persistent and heavy-tailed fits.

        Returns
        -------
        dict
            ``volatility_model``; the medians of alpha, gamma, beta, the persistence and nu, and the least
            nu; ``fits_not_converged``, ``persistence_above_cap`` (persistence above ``MAX_PERSISTENCE``)
            and ``nu_below_min_dof`` (nu below ``MIN_DOF``) as symbol counts. Unitless coefficients (no
            percent scale); floats and ints.
        """
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
        """The parameters of each symbol (symbol -> mu, omega, alpha, gamma, beta, nu, persistence, converged).

        Returns
        -------
        dict
            Symbol -> dict of floats ``mu`` (percent daily log return), ``omega`` (percent squared),
            ``alpha``, ``gamma``, ``beta``, ``nu``, ``persistence``, and the bool ``converged``.
        """
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


def garch_filter(y: np.ndarray, mu: float, omega: float, alpha: float, gamma: float, beta: float, h0: float) -> np.ndarray:
    """Conditional variances of ``y`` under fixed GJR-GARCH(1,1,1) parameters (GARCH(1,1) with ``gamma`` 0).

    h_0 = ``h0``; h_t+1 = omega + (alpha + gamma 1[e_t < 0]) e_t^2 + beta h_t with e_t = y_t - mu.

    Parameters
    ----------
    y : ndarray of shape (T,), float64
        Daily returns (the fits use log returns in percent).
    mu, omega, alpha, gamma, beta : float
        Mean, constant, ARCH, asymmetric and GARCH coefficients (in the units of ``y``).
    h0 : float
        The first day's variance.

    Returns
    -------
    ndarray of shape (T,), float64
        h_t, the variance of day t given the days before it.

    References
    ----------
    Bollerslev (1986) J. Econometrics 31:307-327; Glosten, Jagannathan & Runkle (1993) J. Finance 48:1779-1801.
    """
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
        h = garch_filter(y, mu, omega, alpha, gamma, beta, var)
    e_last = y[-1] - mu
    forecast = omega + (alpha + gamma * (e_last < 0)) * e_last**2 + beta * h[-1]
    return mu, omega, alpha, gamma, beta, nu, h, float(forecast), bool(converged)


def _fit_chunk(payload: list[tuple[np.ndarray, str]]) -> list[tuple]:
    return [_fit_one(y, model) for y, model in payload]


BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_WORKER_CODE = "from scenarios_assets.core.engines.garch import _fit_worker_main; _fit_worker_main()"
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[3])  # core/engines/garch.py -> the repository root


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


def _fit_payload(values: np.ndarray, symbols: list[str], flat: np.ndarray, volatility_model: str) -> list[tuple]:
    """(finite percent returns, model) of every symbol to fit; CalibrationError when one has too few returns."""
    payload = []
    for j in range(values.shape[1]):
        col = values[:, j]
        y = col[np.isfinite(col)]
        if len(y) < MIN_FIT_OBSERVATIONS:
            raise CalibrationError(
                f"{symbols[j]} has {len(y)} returns in the fit window (at least {MIN_FIT_OBSERVATIONS} needed)"
            )
        if not flat[j]:
            payload.append((y, volatility_model))
    return payload


def _run_fits(payload: list[tuple], workers: int) -> list:
    """The fits of ``payload`` in order, on fresh worker processes (in process where none can start)."""
    # Fits always run in fresh worker processes with one BLAS thread: the optimiser's results depend in
    # their last digits on the BLAS thread count, so this keeps them identical for any worker count.
    # (In-process fallback where no worker interpreter can start.)
    procs = max(1, min(int(workers), len(payload) // FIT_SYMBOLS_PER_PROCESS))
    chunks = [payload[i::procs] for i in range(procs)]  # interleaved: similar work per chunk
    done: list = [None] * len(payload)
    try:
        parts = _fit_in_workers(chunks) if payload else []
        for i, part in enumerate(parts):
            done[i::procs] = part
    except (OSError, RuntimeError, pickle.UnpicklingError, EOFError, ValueError):
        done = _fit_chunk(payload)
    return done


def fit_garch(
    log_returns: pd.DataFrame, *, volatility_model: str = "gjr_garch", workers: int = 1, cache_key: tuple | None = None
) -> GarchFit:
    """Fit ``volatility_model`` with Student-t innovations to every column of ``log_returns``.

    Each symbol is fitted on its finite returns, times 100 (percent). The fits of many symbols run on up to
    ``workers`` processes (one per ``FIT_SYMBOLS_PER_PROCESS`` symbols at least); results do not depend on
    the worker count. With ``cache_key``, fits are cached per (cache_key, model, first and last date,
    symbols) in the process (the last ``_FIT_CACHE_SIZE``).

    Parameters
    ----------
    log_returns : DataFrame of shape (T, N), float64
        Daily log returns (decimal) of the calibration window, sessions x symbols; NaN where missing.
    volatility_model : {"gjr_garch", "garch"}
        GJR-GARCH(1,1,1) or GARCH(1,1).
    workers : int
        Fit processes at most.
    cache_key : tuple, optional
        What identifies the data (e.g. its version); None: no caching.

    Returns
    -------
    GarchFit
        Parameters and filtered series in percent units.

    Raises
    ------
    ScenarioInputError
        ``volatility_model`` is not one of ``VOLATILITY_MODELS``.
    CalibrationError
        A symbol has fewer than ``MIN_FIT_OBSERVATIONS`` returns.

    References
    ----------
    Bollerslev, T. (1986). Journal of Econometrics 31:307-327 (GARCH).
    Bollerslev, T. (1987). Review of Economics and Statistics 69:542-547 (Student-t GARCH).
    Glosten, L., Jagannathan, R. & Runkle, D. (1993). Journal of Finance 48:1779-1801 (GJR-GARCH).
    """
    if volatility_model not in VOLATILITY_MODELS:
        raise ScenarioInputError(
            f"monte_carlo.volatility_model '{volatility_model}' is not supported (use {', '.join(VOLATILITY_MODELS)})"
        )
    symbols = list(log_returns.columns)
    key = None
    if cache_key is not None:
        key = (*cache_key, volatility_model, str(log_returns.index[0]), str(log_returns.index[-1]), tuple(symbols))
        if key in _FIT_CACHE:
            _FIT_CACHE.move_to_end(key)
            return _FIT_CACHE[key]
    values = log_returns.to_numpy(np.float64) * 100.0
    n = values.shape[1]
    flat = constant_columns(values)  # a price that never moved: nothing to fit, zero variance throughout
    payload = _fit_payload(values, symbols, flat, volatility_model)
    done = _run_fits(payload, workers)
    results: list = [None] * n
    for col, res in zip(np.flatnonzero(~flat), done):
        results[col] = res
    for col in np.flatnonzero(flat):
        results[col] = (0.0, 0.0, 0.0, 0.0, 0.0, MAX_DOF, np.zeros(int(np.isfinite(values[:, col]).sum())), 0.0, True)
    variance = np.full_like(values, np.nan)
    residuals = np.full_like(values, np.nan)
    mu, omega, alpha, gamma, beta, nu, forecast, conv = (np.empty(n) for _ in range(8))
    for j, (m, o, a, g, b, v, h, f, c) in enumerate(results):
        ok = np.isfinite(values[:, j])
        variance[ok, j] = h
        # A constant price has no standardised residual; 0 keeps it out of the correlation.
        residuals[ok, j] = 0.0 if flat[j] else (values[ok, j] - m) / np.sqrt(h)
        mu[j], omega[j], alpha[j], gamma[j], beta[j], nu[j], forecast[j], conv[j] = m, o, a, g, b, v, f, c
    fit = GarchFit(
        symbols, volatility_model, mu, omega, alpha, gamma, beta, nu, variance, residuals, forecast, conv.astype(bool),
    )
    if key is not None:
        _FIT_CACHE[key] = fit
        while len(_FIT_CACHE) > _FIT_CACHE_SIZE:
            _FIT_CACHE.popitem(last=False)
    return fit
