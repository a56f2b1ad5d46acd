"""Stress noise: the seeded day-to-day noise of a stress path, pinned and banded around its calibrated
shock path (the engine of ``core.families.stress``, with :mod:`scenarios_assets.core.engines.shocks`).

The noise ``N_i(t)`` of ``log P_i(t) = log P_i(anchor) + f(t) S_i + N_i(t)`` is the cumulative sum of daily
log returns with each symbol's long-run volatility times a volatility multiplier path, correlated as the
historical correlation blended towards the stress correlation (:func:`correlated_noise`). It is a bridge
pinned to zero at the profile's full-shock session and at the horizon (:func:`pin_bridge`), so the
calibrated trough and end state are the documented figures, and it is kept inside the band of the
calibrated path (:func:`bounded_noise`): a symbol never goes below its calibrated lowest level nor more
than ``NOISE_TOLERANCE`` (1 % in log) above its highest. The equal-weight portfolio is then pinned and
banded the same way (:func:`pin_portfolio`) by a common daily factor on the symbols it may shift.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NOISE_TOLERANCE = 0.01  # log room of the noise above a symbol's highest calibrated level (module docstring)
MAX_CORRELATION = 0.95  # the highest target correlation of the noise


def baseline_correlation(log_returns: pd.DataFrame, symbols: list[str], anchor: pd.Timestamp, lookback: int) -> np.ndarray:
    """Correlation of daily log returns over the last ``lookback`` sessions up to the anchor, made positive
    definite.

    Pairs with fewer than ``max(lookback // 4, 20)`` common returns take the mean of the measured
    off-diagonal correlations; eigenvalues are clipped at 1e-6 and the matrix rescaled to a unit diagonal.

    Parameters
    ----------
    log_returns : DataFrame of float64, sessions x symbols
        Daily log returns.
    symbols : list of str
        The columns used, in order.
    anchor : Timestamp
        The last session used.
    lookback : int
        Sessions of the window.

    Returns
    -------
    ndarray of shape (n_symbols, n_symbols), float64
        A symmetric positive definite correlation matrix.

    References
    ----------
    Rebonato, R. & Jäckel, P. (1999). The most general methodology for creating a valid correlation matrix
    for risk management and option pricing purposes. *Journal of Risk* 2(2) (eigenvalue clipping and
    rescaling to a unit diagonal).
    """
    window = log_returns.loc[:anchor, symbols].iloc[-lookback:]
    corr = window.corr(min_periods=max(lookback // 4, 20)).to_numpy()
    n = len(symbols)
    off = corr[~np.eye(n, dtype=bool)]
    mean_off = float(np.nanmean(off)) if np.isfinite(off).any() else 0.0
    corr = np.where(np.isfinite(corr), corr, mean_off)
    np.fill_diagonal(corr, 1.0)
    values, vectors = np.linalg.eigh(corr)
    corr = (vectors * np.clip(values, 1e-6, None)) @ vectors.T
    d = np.sqrt(np.diag(corr))
    return corr / np.outer(d, d)


def average_correlation(corr: np.ndarray) -> float:
    """Mean off-diagonal entry of a correlation matrix.

    Parameters
    ----------
    corr : ndarray of shape (n, n), float64

    Returns
    -------
    float
        The mean pairwise correlation; 0 for n <= 1.
    """
    n = corr.shape[0]
    return float((corr.sum() - n) / (n * n - n)) if n > 1 else 0.0


def correlated_noise(
    rng: np.random.Generator,
    horizon: int,
    hist_chol: np.ndarray,
    weight: np.ndarray,
    within: np.ndarray,
    across: np.ndarray,
    groups: np.ndarray,
) -> np.ndarray:
    """Standard normal (T, N) draws with correlation ``(1 - w_t) C_hist + w_t C_t``.

    ``C_t`` has ``within[t]`` between symbols of the same group (``groups`` 0/1) and ``across[t]`` between
    groups (|across| <= within; one group means a uniform correlation ``within``). Built as two
    independent parts, so no per-day factorisation is needed: ``sqrt(1 - w) e_hist + sqrt(w) e_target``,
    with ``e_hist`` i.i.d. normals times the Cholesky factor of ``C_hist`` and ``e_target`` a one-factor
    model per group (the two group factors correlated ``across / within``).

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws, in this order: (T, N) for the historical part, (T, 2) group factors, (T, N) idiosyncratic.
    horizon : int
        T, sessions.
    hist_chol : ndarray of shape (N, N), float64
        Lower Cholesky factor of the historical correlation.
    weight : ndarray of shape (T,), float64
        w_t, clipped to [0, 1].
    within, across : ndarray of shape (T,), float64
        Target correlations; ``within`` is clipped to [0, ``MAX_CORRELATION``].
    groups : ndarray of shape (N,), int
        0 or 1, the block of each symbol.

    Returns
    -------
    ndarray of shape (T, N), float64

    References
    ----------
    Glasserman, P. (2003). *Monte Carlo Methods in Financial Engineering*. Springer, sec. 2.3 (correlated
    normals from a Cholesky factor).
    """
    n = hist_chol.shape[0]
    e_hist = rng.standard_normal((horizon, n)) @ hist_chol.T
    u = rng.standard_normal((horizon, 2))
    idio = rng.standard_normal((horizon, n))
    rho_w = np.clip(within, 0.0, MAX_CORRELATION)[:, None]
    c = np.where(rho_w[:, 0] > 0, np.clip(across / np.maximum(within, 1e-12), -1.0, 1.0), 1.0)
    factor_a = u[:, 0]
    factor_b = c * u[:, 0] + np.sqrt(1.0 - c**2) * u[:, 1]
    factor = np.where(groups[None, :] == 1, factor_b[:, None], factor_a[:, None])
    e_target = np.sqrt(rho_w) * factor + np.sqrt(1.0 - rho_w) * idio
    w = np.clip(weight, 0.0, 1.0)[:, None]
    return np.sqrt(1.0 - w) * e_hist + np.sqrt(w) * e_target


def pin_bridge(cum: np.ndarray, pin_day: int) -> np.ndarray:
    """Cumulative noise shifted to be 0 at session ``pin_day`` and at the last session.

    Before the pin ``X(t) - (t / p) X(p)``; after it the increments from the pin, less their linear share of
    the increment to the horizon: on a random walk, the discrete form of a Brownian bridge on each side.

    Parameters
    ----------
    cum : ndarray of shape (T, N), float64
        Cumulative noise at sessions 1..T (log).
    pin_day : int
        The session pinned to zero, clipped to 1..T.

    Returns
    -------
    ndarray of shape (T, N), float64

    References
    ----------
    Glasserman, P. (2003). *Monte Carlo Methods in Financial Engineering*. Springer, sec. 3.1 (the Brownian
    bridge).
    """
    horizon = cum.shape[0]
    t = np.arange(1, horizon + 1, dtype=np.float64)[:, None]
    out = np.empty_like(cum)
    p = min(max(pin_day, 1), horizon)
    at_pin = cum[p - 1]
    out[:p] = cum[:p] - (t[:p] / p) * at_pin
    if p < horizon:
        rest = cum[p:] - at_pin
        out[p:] = rest - ((t[p:] - p) / (horizon - p)) * rest[-1]
    return out


def bounded_noise(deterministic: np.ndarray, noise: np.ndarray, tolerance: float = NOISE_TOLERANCE) -> np.ndarray:
    """Cumulative log noise kept inside the band of the calibrated log path.

    Per symbol the band is [lo, hi]. A path that falls (below -``tolerance``): lo = its lowest calibrated level
    min(D), hi = max(0, max(D)) + ``tolerance``, so its deepest point is the calibrated one and its drawdown at
    most ``tolerance`` (log) deeper. Any other path: [-``tolerance`` / 2, max(0, max(D)) + ``tolerance`` / 2], a
    drawdown of at most ``tolerance``. Noise toward an edge is squashed to ``room * tanh(noise / room)`` with
    ``room`` the distance to that edge, so it is nearly unchanged far from the edges and vanishes at them.

    Parameters
    ----------
    deterministic : ndarray of shape (T, N), float64
        The calibrated cumulative log path D.
    noise : ndarray of shape (T, N), float64
        Cumulative log noise.
    tolerance : float, default NOISE_TOLERANCE (0.01)
        Log room above the highest level (and the drawdown allowance), as above.

    Returns
    -------
    ndarray of shape (T, N), float64
        The bounded noise (add it to ``deterministic``).
    """
    d_min = deterministic.min(axis=0)
    falls = d_min < -tolerance
    lo = np.where(falls, d_min, -tolerance / 2.0)
    hi = np.maximum(deterministic.max(axis=0), 0.0) + np.where(falls, tolerance, tolerance / 2.0)
    down = np.maximum(deterministic - lo, 0.0)
    up = np.maximum(hi - deterministic, 0.0)
    room = np.where(noise >= 0, up, down)
    safe = np.where(room > 0, room, 1.0)
    return np.where(room > 0, room * np.tanh(noise / safe), 0.0)


def pin_portfolio(log_path: np.ndarray, calibrated: np.ndarray, pin_day: int,
                  unshifted: np.ndarray | None) -> tuple[np.ndarray, float]:
    """Log paths whose equal-weight, daily rebalanced portfolio keeps the calibrated path's trough.

    Day-to-day dispersion between symbols earns a rebalanced portfolio a rebalancing return (about half
    the cross-sectional variance per session: 2.6 pp by the trough of Credit Spread Widening), so with every
    symbol pinned the portfolio would end shallower than calibrated. The portfolio's own noise (its log path
    less the calibrated portfolio's) is bridged to zero at ``pin_day`` and the horizon (:func:`pin_bridge`)
    and kept in the calibrated portfolio's band (:func:`bounded_noise`); a common daily factor on the
    symbols not in ``unshifted`` makes the portfolio follow that path exactly.

    Parameters
    ----------
    log_path : ndarray of shape (T, N), float64
        Cumulative log paths with noise.
    calibrated : ndarray of shape (T, N), float64
        The calibrated cumulative log paths (no noise).
    pin_day : int
        The full-shock session.
    unshifted : ndarray of shape (N,), bool, or None
        Symbols left as they are (the reference index, already exact; constant prices).

    Returns
    -------
    paths : ndarray of shape (T, N), float64
        ``log_path`` unchanged when no symbol may be shifted, or when a factor would have to be negative.
    shift : float
        The largest absolute shift given to a symbol (log).
    """
    gross = np.exp(np.diff(log_path, axis=0, prepend=0.0))
    calibrated_gross = np.exp(np.diff(calibrated, axis=0, prepend=0.0))
    portfolio = np.cumsum(np.log(gross.mean(axis=1)))
    target_portfolio = np.cumsum(np.log(calibrated_gross.mean(axis=1)))
    noise = pin_bridge((portfolio - target_portfolio)[:, None], pin_day)
    target = target_portfolio + bounded_noise(target_portfolio[:, None], noise)[:, 0]
    shifted = ~np.asarray(unshifted, dtype=bool)
    if not shifted.any():
        return log_path, 0.0
    n = log_path.shape[1]
    target_gross = np.exp(np.diff(target, prepend=0.0))
    fixed_sum = gross[:, ~shifted].sum(axis=1)
    factor = (n * target_gross - fixed_sum) / gross[:, shifted].sum(axis=1)
    if not (factor > 0).all():  # the index alone would exceed the target (not reachable in the reference stress tests)
        return log_path, 0.0
    shift = np.cumsum(np.log(factor))
    out = log_path.copy()
    out[:, shifted] += shift[:, None]
    return out, float(np.abs(shift).max())
