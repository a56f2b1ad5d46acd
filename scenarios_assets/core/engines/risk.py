"""Risk figures of a set of simulated paths: value at risk and conditional value at risk of the total
return, the baseline volatility of the history, and how well the simulated correlation keeps the historical
one (``correlation_stability``: 1 - mean |C_sim - C_hist| over the off-diagonal pairs; 1 = identical
structure, 0.9 = correlations off by 0.1 on average).
"""

from __future__ import annotations

import numpy as np

from scenarios_assets.core.engines.correlation import correlation
from scenarios_assets.core.models.errors import ScenarioInputError
from scenarios_assets.core.models.scenario import portfolio_returns
from scenarios_assets.core.models.units import TRADING_DAYS_PER_YEAR


def baseline_volatility(simple_returns: np.ndarray) -> float:
    """Annualised volatility of the equal-weight portfolio of the history.

    Parameters
    ----------
    simple_returns : ndarray of shape (T, N), float64
        Daily simple returns (fractions).

    Returns
    -------
    float
        std(portfolio, ddof=1) x sqrt(252) (fraction; NaN with fewer than two sessions).
    """
    port = portfolio_returns(simple_returns)
    return float(np.std(port, ddof=1) * np.sqrt(TRADING_DAYS_PER_YEAR)) if len(port) > 1 else float("nan")


def var_cvar(total_returns: np.ndarray, levels: list[float]) -> tuple[dict, dict]:
    """Value at risk and conditional value at risk of the scenarios' total returns, as positive losses.

    VaR_c = -quantile(R, 1 - c) (linear interpolation); CVaR_c = -mean(R | R <= quantile(R, 1 - c)).

    Parameters
    ----------
    total_returns : ndarray of shape (S,), float
        Each scenario's total return over the horizon (fraction).
    levels : list of float
        Confidence levels c in (0, 1).

    Returns
    -------
    var, cvar : dict
        ``f"{c:g}"`` -> loss (fraction, positive for a loss); None for an empty ``total_returns``.

    Raises
    ------
    ScenarioInputError
        A level outside (0, 1).

    References
    ----------
    Rockafellar, R. T. & Uryasev, S. (2000). Optimization of conditional value-at-risk. Journal of Risk
    2(3):21-41.
    """
    r = np.asarray(total_returns, dtype=np.float64)
    var: dict[str, float | None] = {}
    cvar: dict[str, float | None] = {}
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
    """How well a simulated correlation keeps the historical one.

    Parameters
    ----------
    historical, simulated : ndarray of shape (N, N), float64
        Correlation matrices.

    Returns
    -------
    float
        1 - mean |C_sim - C_hist| over the off-diagonal pairs (1.0 for N = 1).
    """
    n = historical.shape[0]
    if n < 2:
        return 1.0
    off = ~np.eye(n, dtype=bool)
    return float(1.0 - np.abs(simulated[off] - historical[off]).mean())


def pooled_correlation(sample: np.ndarray) -> np.ndarray:
    """Correlation of a sample of daily simple returns pooled over scenarios and days.

    Parameters
    ----------
    sample : ndarray of shape (rows, N), float32
        Scenario-days x symbols (a stride subsample); NaN read as 0.

    Returns
    -------
    ndarray of shape (N, N), float64
        Unit diagonal, clipped to [-1, 1] (products in float32, norms in float64).
    """
    sample = np.nan_to_num(np.asarray(sample, dtype=np.float32), nan=0.0)
    sample = sample - sample.mean(axis=0)
    std = np.sqrt((sample.astype(np.float64) ** 2).sum(axis=0)).astype(np.float32)
    std[std == 0] = 1.0
    sample /= std
    c = (sample.T @ sample).astype(np.float64)
    np.fill_diagonal(c, 1.0)
    return np.clip(c, -1.0, 1.0)


def stability_metadata(historical_simple: np.ndarray, sample: np.ndarray | None) -> dict:
    """``correlation_stability`` of simulated paths against the history, with both mean correlations.

    Parameters
    ----------
    historical_simple : ndarray of shape (T, N), float64
        Daily simple returns of the calibration window.
    sample : ndarray of shape (rows, N), float32, or None
        Simulated daily simple returns pooled over scenarios and days (None: no scenarios; the history
        is compared with itself).

    Returns
    -------
    dict
        ``correlation_stability``, its measure, ``historical_mean_correlation`` and
        ``simulated_mean_correlation``.
    """
    hist = correlation(historical_simple)
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


def risk_metadata(total_returns: list[float], volatilities: list[float], max_drawdowns: list[float],
                  levels: list[float]) -> dict:
    """VaR/CVaR and medians across the paths of a set.

    Parameters
    ----------
    total_returns, volatilities, max_drawdowns : list of float, length S
        Each path's equal-weight portfolio total return, annualised volatility and max drawdown (fractions).
    levels : list of float
        Confidence levels of :func:`var_cvar`.

    Returns
    -------
    dict
        ``num_scenarios``, ``value_at_risk``, ``conditional_value_at_risk``, ``risk_measure`` and the medians
        (None without paths).
    """
    totals = np.array(total_returns)
    var, cvar = var_cvar(totals, levels)
    return {
        "num_scenarios": len(total_returns),
        "value_at_risk": var,
        "conditional_value_at_risk": cvar,
        "risk_measure": "equal-weight portfolio total return over the horizon, across scenarios; losses positive",
        "total_return_median": float(np.median(totals)) if totals.size else None,
        "annualised_volatility_median": float(np.median(volatilities)) if totals.size else None,
        "max_drawdown_median": float(np.median(max_drawdowns)) if totals.size else None,
    }
