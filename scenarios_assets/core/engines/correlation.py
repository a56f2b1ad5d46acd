"""Correlation matrices of daily returns: estimation, the rolling target, the stressed-state level, the
projection to a positive definite matrix and the Student-t mixing correction.

``correlation_matrix``: ``rolling_<N>d`` (default ``rolling_60d``) is the correlation of the window's last N
sessions of daily log returns, blended with the whole window's with weight ``correlation_shrinkage``;
``full_window`` the whole window's. Log returns, not standardised residuals: independently simulated GARCH
processes do not share volatility regimes, so residual correlations (0.30 on average on the bundled window
against 0.39 for returns) would understate the portfolio's volatility. A matrix whose Cholesky factorisation
fails is projected to a nearby correlation matrix with eigenvalues >= 1e-6 (:func:`nearest_correlation`).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from scipy.special import gammaln

from scenarios_assets.core.models.errors import ScenarioInputError
from scenarios_assets.core.models.scenario import portfolio_returns

REALISED_VARIANCE_DAYS = 21  # sessions of a realised volatility (the stressed state; the variance ceiling)


def correlation(x: np.ndarray) -> np.ndarray:
    """Pearson correlation of the columns of ``x`` over its complete rows.

    Parameters
    ----------
    x : ndarray of shape (T, N), float
        Observations (e.g. daily log returns), NaN where missing.

    Returns
    -------
    ndarray of shape (N, N), float64
        The correlation over the rows where every column is finite; when fewer than max(30, N // 4) rows are
        complete, over all rows with NaN read as 0. Unit diagonal, entries clipped to [-1, 1]; a constant
        column has zero correlation with the others.
    """
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
    """Mean of the off-diagonal entries of a square matrix.

    Parameters
    ----------
    c : ndarray of shape (N, N), float64
        E.g. a correlation matrix.

    Returns
    -------
    float
        (sum - trace) / (N^2 - N); 1.0 for N = 1.
    """
    n = c.shape[0]
    return float((c.sum() - np.trace(c)) / (n * n - n)) if n > 1 else 1.0


def nearest_correlation(c: np.ndarray, floor: float = 1e-6) -> np.ndarray:
    """A positive definite correlation matrix near ``c``: eigenvalues clipped at ``floor``, rescaled to a unit
    diagonal.

    This is the one-step spectral projection (clip the eigenvalues, restore the unit diagonal), not Higham's
    alternating-projections nearest correlation matrix: the result is positive definite with a unit diagonal
    but not the Frobenius-nearest such matrix.

    Parameters
    ----------
    c : ndarray of shape (N, N), float64
        A symmetric (it is symmetrised first) matrix with a unit diagonal.
    floor : float
        The smallest eigenvalue kept.

    Returns
    -------
    ndarray of shape (N, N), float64
        ``c`` itself (symmetrised) when its smallest eigenvalue is at least ``floor``.
    """
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
    """Lower Cholesky factor of a correlation matrix, projected first when it is not positive definite.

    Parameters
    ----------
    c : ndarray of shape (N, N), float64
        A correlation matrix (e.g. of a rolling window with fewer sessions than symbols and no shrinkage,
        which is not positive definite: :func:`nearest_correlation` is factorised instead).

    Returns
    -------
    ndarray of shape (N, N), float64
        L, lower triangular, with L L' = c (or its projection).
    """
    try:
        return np.linalg.cholesky(c)
    except np.linalg.LinAlgError:
        return np.linalg.cholesky(nearest_correlation(c))


def push_correlation(c: np.ndarray, push: float) -> np.ndarray:
    """Push correlations toward 1: rho' = rho + push (1 - rho) off the diagonal.

    Parameters
    ----------
    c : ndarray of shape (N, N), float64
        A correlation matrix.
    push : float
        Fraction in [0, 1].

    Returns
    -------
    ndarray of shape (N, N), float64
        The convex blend (1 - push) c + push 1 with the all-ones matrix (``c`` itself when ``push`` is 0).
    """
    return c if push == 0 else (1.0 - push) * c + push


def parse_correlation_window(spec: str) -> int | None:
    """The rolling window of a ``correlation_matrix`` setting.

    Parameters
    ----------
    spec : str
        ``rolling_<N>d`` or ``full_window``.

    Returns
    -------
    int or None
        N sessions; None for ``full_window``.

    Raises
    ------
    ScenarioInputError
        Any other value, or N < 2.
    """
    if spec == "full_window":
        return None
    match = re.fullmatch(r"rolling_(\d+)d", str(spec))
    if not match or int(match.group(1)) < 2:
        raise ScenarioInputError(
            f"monte_carlo.correlation_matrix '{spec}' is not supported (use rolling_<N>d, e.g. rolling_60d, or full_window)"
        )
    return int(match.group(1))


def target_correlation(x: np.ndarray, rolling: int | None, shrinkage: float) -> tuple[np.ndarray, np.ndarray]:
    """The correlation the innovations take, and the whole window's.

    Parameters
    ----------
    x : ndarray of shape (T, N), float64
        Daily log returns of the window, NaN where missing.
    rolling : int or None
        Sessions of the recent window (the last ``rolling`` complete rows, or the last ``rolling`` rows when
        fewer than half that many are complete); None: the whole window.
    shrinkage : float
        Weight (fraction) of the whole window's correlation in the blend.

    Returns
    -------
    target : ndarray of shape (N, N), float64
        (1 - shrinkage) C_recent + shrinkage C_full (C_full without ``rolling``).
    full : ndarray of shape (N, N), float64
        C_full, the correlation of the whole window (:func:`correlation`).
    """
    full = correlation(x)
    if rolling is None:
        return full, full
    complete = x[np.isfinite(x).all(axis=1)]
    recent = complete[-rolling:] if len(complete) >= rolling // 2 else x[-rolling:]
    return (1.0 - shrinkage) * correlation(recent) + shrinkage * full, full


def state_correlation(x: np.ndarray, simple_returns: np.ndarray, quantile: float) -> tuple[float, int]:
    """The mean pairwise correlation of stressed markets as the window recorded it.

    Parameters
    ----------
    x : ndarray of shape (T, N), float64
        Daily log returns (the rows whose correlation is taken).
    simple_returns : ndarray of shape (T, N), float64
        Daily simple returns of the same sessions (fractions), for the equal-weight portfolio.
    quantile : float
        The sessions kept are those where the portfolio's 21-session volatility (``REALISED_VARIANCE_DAYS``,
        at least 11 observations) is at or above this quantile of its values.

    Returns
    -------
    mean_correlation : float
        :func:`mean_off_diagonal` of the correlation of ``x`` over the kept sessions.
    sessions : int
        How many sessions were kept.
    """
    port = pd.Series(portfolio_returns(np.asarray(simple_returns, dtype=np.float64)))
    vol = port.rolling(REALISED_VARIANCE_DAYS, min_periods=REALISED_VARIANCE_DAYS // 2 + 1).std().to_numpy()
    ok = np.isfinite(vol)
    rows = ok & (vol >= np.nanquantile(vol, quantile))
    return mean_off_diagonal(correlation(x[rows])), int(rows.sum())


def t_mixing_mean(nu: np.ndarray) -> np.ndarray:
    """c = E[sqrt((nu - 2) / chi2_nu)] = sqrt((nu - 2) / 2) Gamma((nu - 1) / 2) / Gamma(nu / 2) per symbol.

    A unit-variance Student-t innovation is z s with z standard normal and s = sqrt((nu - 2) / chi2_nu), so
    two with independent mixing variables and Gaussian correlation r are correlated r c_i c_j.

    Parameters
    ----------
    nu : ndarray of shape (N,), float
        Degrees of freedom (> 2).

    Returns
    -------
    ndarray of shape (N,), float64
        c, in (0, 1).
    """
    nu = np.asarray(nu, dtype=np.float64)
    return np.exp(0.5 * np.log((nu - 2.0) / 2.0) + gammaln((nu - 1.0) / 2.0) - gammaln(nu / 2.0))
