"""Simulation of correlated daily log-return paths: GJR-GARCH-t, GARCH-t, GBM and filtered historical
simulation, from a calibrated :class:`PathModel` (``core.engines.calibration.calibrate``).

Innovations
    Student-t (GARCH models): each symbol's innovation is Student-t with its own degrees of freedom, built as
    correlated normals ``L e`` times an independent ``sqrt((nu_i - 2) / chi2_nu_i)`` per symbol and day.
    Independent mixing variables keep every marginal exactly Student-t without one common draw that moves
    every symbol together (a shared draw made market-wide -50 % days); the calibration divides the Gaussian
    correlation by c_i c_j (``core.engines.correlation.t_mixing_mean``) so the innovations' correlation is
    the target one.
    Gaussian (GBM): correlated standard normals, constant volatility and drift.
    Resampled rows (filtered historical simulation, Barone-Adesi, Giannopoulos & Vosper 1999): whole dates
    of standardised residuals drawn with replacement, scaled by the GARCH volatility (or a constant one).

Guards (documented limits of a simulated day)
    The reference index's daily return is never below ``CIRCUIT_BREAKER`` = -20 %: the market-wide circuit
    breaker (NYSE Rule 7.12, Level 3 since 2013) halts trading for the rest of the day when the S&P 500 falls
    20 % from the previous close, so no close can be lower; the worst recorded day is -20.5 % (1987-10-19,
    before the rule). Every simulated daily log return is clipped to [-0.7, +0.7] (``LOG_RETURN_CLIP``,
    about -50 % / +101 %) as a numerical guard.

Reproducibility
    A path draws everything from ``scenario_rng(seed)`` of its own seed, and all computation across paths is
    elementwise or per path (one BLAS product per path, on one BLAS thread), so any subset, order or
    chunking of the seeds gives bit-identical paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from scenarios_assets.core.models.severity import scenario_rng

LOG_RETURN_CLIP = 0.7
CIRCUIT_BREAKER = -0.20


@dataclass
class PathModel:
    """Everything needed to draw the paths of one severity (decimal daily log-return units).

    Attributes
    ----------
    model : str
        ``garch``, ``gbm`` or ``historical_distribution``.
    symbols : list of str
        The N symbols, in column order.
    mu : ndarray of shape (N,), float64
        Mean daily log return.
    last_close : ndarray of shape (N,), float64
        The price every path starts from.
    garch : bool
        GARCH variance recursion (else the constant volatility ``sigma``).
    omega, alpha, gamma, beta : ndarray of shape (N,), float64, optional
        Variance recursion h' = omega + (alpha + gamma 1[e < 0]) e^2 + beta h (daily log return squared);
        ``gamma`` zeros for the symmetric model.
    h1 : ndarray of shape (N,), float64, optional
        First-day variance.
    h_cap : ndarray of shape (N,), float64, optional
        Ceiling of the conditional variance.
    sigma : ndarray of shape (N,), float64, optional
        Constant daily volatility (constant-volatility models).
    nu : ndarray of shape (N,), float64, optional
        Student-t degrees of freedom (None: Gaussian or resampled innovations).
    chol : ndarray of shape (N, N), float32, optional
        Lower Cholesky factor of the Gaussian innovation correlation.
    pool : ndarray of shape (R, N), float32, optional
        Standardised residual rows (filtered historical simulation).
    floor : ndarray of shape (N,), float64, optional
        Lowest daily log return (the index's circuit breaker; -``LOG_RETURN_CLIP`` elsewhere).
    frozen : ndarray of shape (N,), bool, optional
        Constant price in the window: every simulated return is 0.
    reference : int, optional
        Column of the reference index, if in the universe.
    description : dict
        The calibration record (set metadata ``model_parameters``).
    """

    model: str
    symbols: list[str]
    mu: np.ndarray
    last_close: np.ndarray
    garch: bool
    omega: np.ndarray | None = None
    alpha: np.ndarray | None = None
    gamma: np.ndarray | None = None
    beta: np.ndarray | None = None
    h1: np.ndarray | None = None
    h_cap: np.ndarray | None = None
    sigma: np.ndarray | None = None
    nu: np.ndarray | None = None
    chol: np.ndarray | None = None
    pool: np.ndarray | None = None
    floor: np.ndarray | None = None
    frozen: np.ndarray | None = None
    reference: int | None = None
    description: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        """The number of symbols N."""
        return len(self.symbols)


def innovations(pm: PathModel, rng: np.random.Generator, horizon: int) -> tuple[np.ndarray, np.ndarray | None]:
    """One path's innovations, all from its own generator.

    Parameters
    ----------
    pm : PathModel
        The calibrated model.
    rng : numpy.random.Generator
        The path's generator.
    horizon : int
        Sessions T.

    Returns
    -------
    draws : ndarray of shape (T, N), float32
        Standard normal draws (uncorrelated), or resampled residual rows of ``pm.pool``.
    mixing : ndarray of shape (T, N), float32, or None
        For Student-t innovations, the mixing factors sqrt((nu - 2) / chi2_nu); else None.
    """
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
    """Daily log returns of the paths with these seeds.

    Parameters
    ----------
    pm : PathModel
        The calibrated model.
    seeds : list of int
        One seed per path (``scenario_rng(seed)`` draws everything of the path).
    horizon : int
        Sessions T.

    Returns
    -------
    ndarray of shape (S, T, N), float32
        Daily log returns, clipped to [``pm.floor``, ``LOG_RETURN_CLIP``]; a constant-price symbol
        (``pm.frozen``) gets 0 every day, whatever drift or borrowed volatility the model has.

    References
    ----------
    Bollerslev (1986) J. Econometrics 31:307-327; Glosten, Jagannathan & Runkle (1993) J. Finance 48:1779-1801
    (the variance recursion); Barone-Adesi, Giannopoulos & Vosper (1999) J. Futures Markets 19:583-602
    (filtered historical simulation).
    """
    out = _simulate(pm, seeds, horizon)
    if pm.frozen is not None and pm.frozen.any():
        out[:, :, pm.frozen] = 0.0
    return out


def _draws(pm: PathModel, seeds: list[int], horizon: int) -> np.ndarray:
    """(S, T, N) float32 correlated unit-variance innovations of the paths (module docstring, Innovations)."""
    s = len(seeds)
    z = np.empty((s, horizon, pm.n), dtype=np.float32)
    mix = np.empty_like(z) if pm.nu is not None and pm.pool is None else None
    for i, seed in enumerate(seeds):
        z[i], m = innovations(pm, scenario_rng(seed), horizon)
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
    return z


def _simulate(pm: PathModel, seeds: list[int], horizon: int) -> np.ndarray:
    z = _draws(pm, seeds, horizon)
    mu = pm.mu.astype(np.float32)
    lower = (pm.floor if pm.floor is not None else np.full(pm.n, -LOG_RETURN_CLIP)).astype(np.float32)
    upper = np.float32(LOG_RETURN_CLIP)
    if not pm.garch:
        assert pm.sigma is not None
        out = z * pm.sigma.astype(np.float32) + mu
        return np.clip(out, lower, upper, out=out)
    assert pm.omega is not None and pm.alpha is not None and pm.gamma is not None and pm.beta is not None
    assert pm.h_cap is not None and pm.h1 is not None
    omega, alpha, gamma, beta = (v.astype(np.float32) for v in (pm.omega, pm.alpha, pm.gamma, pm.beta))
    cap = pm.h_cap.astype(np.float32)
    h = np.broadcast_to(pm.h1.astype(np.float32), (len(seeds), pm.n)).copy()
    for t in range(horizon):  # the GJR-GARCH recursion, on whole (scenarios x symbols) arrays
        r = np.sqrt(h) * z[:, t] + mu
        np.clip(r, lower, upper, out=r)
        z[:, t] = r
        eps = r - mu
        h = omega + (alpha + gamma * (eps < 0)) * (eps * eps) + beta * h
        np.minimum(h, cap, out=h)
    return z


def returns_and_prices(log_returns: np.ndarray, last_close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Simple returns and prices of log-return paths.

    A loop over days on whole (paths x symbols) arrays, accumulating in float64: an accumulate along the
    middle axis of the 3-D block is several times slower, and no (S, T, N) float64 copy is made.

    Parameters
    ----------
    log_returns : ndarray of shape (S, T, N), float32
        Daily log returns.
    last_close : ndarray of shape (N,), float64
        The prices the paths start from.

    Returns
    -------
    simple : ndarray of shape (S, T, N), float32
        Daily simple returns exp(x) - 1 (fractions).
    prices : ndarray of shape (S, T, N), float32
        last_close exp(cumulative log return), the cumulation in float64.
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
    """Prices of simple-return paths: last_close times the cumulative product of (1 + r), in float64.

    Parameters
    ----------
    simple : ndarray of shape (S, T, N), float32
        Daily simple returns (fractions).
    last_close : ndarray of shape (N,), float64
        The prices the paths start from.

    Returns
    -------
    ndarray of shape (S, T, N), float32
        The prices.
    """
    prices = np.empty_like(simple, dtype=np.float32)
    level = np.broadcast_to(np.asarray(last_close, dtype=np.float64), (simple.shape[0], simple.shape[2])).copy()
    for t in range(simple.shape[1]):
        level *= 1.0 + simple[:, t].astype(np.float64)
        prices[:, t] = level
    return prices
