"""Tail statistics of daily returns: the share of standardised returns beyond k sigma, observed and as a
Student-t fitted by maximum likelihood predicts it.

Used twice: the stochastic families record their calibration history's figures (:func:`tail_reference`,
set metadata ``tail_reference``), and ``core.library.validation.statistical_validity`` compares a set's
observed share with them.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

TAIL_SIGMA = 3.0
MIN_TAIL_COLUMN = 20  # a scenario x symbol column needs this many returns to be standardised
MAX_TAIL_SAMPLE = 20_000  # standardised returns used for the Student-t fit (deterministic stride)


def standardised_columns(returns: np.ndarray, min_length: int = MIN_TAIL_COLUMN) -> np.ndarray:
    """Pooled z-scores of the columns of a return block, each column by its own mean and standard deviation.

    Parameters
    ----------
    returns : ndarray of shape (n_days, n_columns) or (n_days,), float
        Daily returns (simple or log, any unit); NaN where missing.
    min_length : int
        Columns with fewer finite values are left out.

    Returns
    -------
    ndarray of shape (n_values,), float64
        The z-scores (x - mean) / std (std with ``ddof=1``) of the finite values of the kept columns with a
        non-zero standard deviation, flattened in row-major order; empty when no column qualifies.
    """
    block = np.asarray(returns, dtype=np.float64)
    if block.ndim == 1:
        block = block[:, None]
    finite = np.isfinite(block)
    counts = finite.sum(axis=0)
    keep = counts >= min_length
    if not keep.any():
        return np.array([])
    block, finite, counts = block[:, keep], finite[:, keep], counts[keep]
    values = np.where(finite, block, 0.0)
    mean = values.sum(axis=0) / counts
    var = (np.where(finite, block - mean, 0.0) ** 2).sum(axis=0) / np.maximum(counts - 1, 1)
    std = np.sqrt(var)
    ok = std > 0
    z = (block[:, ok] - mean[ok]) / std[ok]
    return z[finite[:, ok]]


def exceedance_rate(z: np.ndarray, sigma: float = TAIL_SIGMA) -> float:
    """Share of ``z`` beyond ``sigma`` in absolute value.

    Parameters
    ----------
    z : ndarray of shape (n_values,), float64
        Standardised returns (:func:`standardised_columns`).
    sigma : float
        The threshold in standard deviations.

    Returns
    -------
    float
        The fraction of values with ``|z| > sigma`` (NaN for an empty ``z``).
    """
    return float(np.mean(np.abs(z) > sigma)) if z.size else float("nan")


def student_t_rate(z: np.ndarray, sigma: float = TAIL_SIGMA) -> tuple[float, float]:
    """The share beyond ``sigma`` that a Student-t fitted by maximum likelihood to ``z`` predicts.

    The fit (``scipy.stats.t.fit``: degrees of freedom, location and scale) runs on a deterministic stride
    subsample of at most ``MAX_TAIL_SAMPLE`` values; the threshold is ``sigma`` sample standard deviations
    either side of the sample mean.

    Parameters
    ----------
    z : ndarray of shape (n_values,), float64
        Standardised returns.
    sigma : float
        The threshold in sample standard deviations.

    Returns
    -------
    df : float
        The fitted degrees of freedom (capped at 1e6).
    rate : float
        The fitted distribution's probability mass beyond the threshold, both tails (fraction).
    """
    sample = z[:: max(1, z.size // MAX_TAIL_SAMPLE)]
    df, loc, scale = stats.t.fit(sample)
    centre, cut = float(np.mean(sample)), sigma * float(np.std(sample, ddof=1))
    rate = stats.t.sf(centre + cut, df, loc, scale) + stats.t.cdf(centre - cut, df, loc, scale)
    return float(min(df, 1e6)), float(rate)


def tail_reference(history_returns, window: int | None = None, sigma: float = TAIL_SIGMA, source: str = "") -> dict:
    """The calibration history's tail figures, for ``ScenarioSet.metadata["tail_reference"]``.

    With ``window`` (the scenarios' path length) the history is cut into consecutive windows of that length
    per symbol (the most recent whole windows) and standardised within each, as
    ``core.library.validation.statistical_validity`` standardises each scenario column.

    Parameters
    ----------
    history_returns : ndarray or DataFrame of shape (n_days, n_symbols), float
        Daily simple returns of the history (fractions); NaN where missing.
    window : int, optional
        Path length in sessions; None: each symbol's whole history is one column.
    sigma : float
        The exceedance threshold in standard deviations.
    source : str
        What the history is, recorded as ``source``.

    Returns
    -------
    dict
        ``exceedance_rate`` (fraction of standardised returns beyond ``sigma``), ``sigma``, ``window``,
        ``observations``, ``student_t_df`` and ``student_t_rate`` (:func:`student_t_rate`; NaN with fewer
        than 100 observations) and ``source``.
    """
    block = np.asarray(history_returns, dtype=np.float64)
    if block.ndim == 1:
        block = block[:, None]
    if window and window < block.shape[0]:
        usable = (block.shape[0] // window) * window
        block = block[-usable:].reshape(usable // window, window, -1).transpose(1, 0, 2).reshape(window, -1)
    z = standardised_columns(block, min_length=min(MIN_TAIL_COLUMN, block.shape[0]))
    df, t_rate = student_t_rate(z, sigma) if z.size >= 100 else (float("nan"), float("nan"))
    return {
        "exceedance_rate": exceedance_rate(z, sigma),
        "sigma": sigma,
        "window": window,
        "observations": int(z.size),
        "student_t_df": df,
        "student_t_rate": t_rate,
        "source": source or "daily simple returns of the calibration history",
    }
