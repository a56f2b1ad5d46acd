"""Per-scenario risk metrics (the stage-3 starter): one row per scenario x symbol, computed from the catalog.

Everything is vectorised over all (scenario, symbol) series at once: the long time series is sorted into
contiguous groups, the groups are ordered by length and laid out as NaN-padded (groups x days) matrices in
blocks of bounded size, and every metric is a numpy reduction along the day axis. There is no Python loop
over scenarios or symbols (only over memory-bounded blocks).

Conventions (daily data, simple returns):
- ``total_return`` = prod(1 + r) - 1; ``annualised_return`` = (1 + total)^(252 / days) - 1;
  ``annualised_volatility`` = sample std (ddof 1) x sqrt(252).
- Drawdowns are measured on the wealth path that starts at 1 before the first return. ``max_drawdown``
  (<= 0) is the worst peak-to-trough fall; ``max_drawdown_duration_days`` counts trading days from that
  peak to the recovery to it, or to the end of the scenario when it never recovers
  (``drawdown_recovered`` False); ``drawdown_peak_date`` of the starting level is the first date.
- Intraday lows: where a session has a ``low`` (the bar range of the time series: stress flash crashes,
  replays of recorded OHLC bars), the trough may be that low. Peaks are closes (the running peak of the
  closes before the session; a bar does not say whether its high came before its low), troughs are closes
  or lows: the low of day j counts as wealth_(j-1) x low_j / close_(j-1), so a crash recovered within the
  day is a drawdown of its full depth, dated on that day, and recovered at the first close at or above
  the peak (that same day's close included). The per-scenario records' ``max_drawdown_by_symbol``
  (``scenario.path_statistics``) follows the same definition. Sessions without a low count their close.
  ``worst_intraday_return`` (``worst_intraday_date``) is the lowest low against the previous close,
  low_j / close_(j-1) - 1; NaN (NaT) for a series without lows. ``worst_day_return`` stays close to close.
- ``var_95``/``var_99`` are historical one-day Value at Risk, reported as a positive loss fraction:
  minus the 5 % / 1 % quantile of daily returns (linear interpolation, as ``numpy.quantile``).
  ``cvar_95``/``cvar_99`` (expected shortfall) are minus the mean of the daily returns at or below that
  quantile.
- ``skew`` and ``kurtosis`` are the moment estimators (population moments, as ``scipy.stats.skew`` and
  ``scipy.stats.kurtosis`` with their defaults); kurtosis is excess kurtosis (normal = 0).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from scenarios_assets.core.library.builds import METADATA_FILE, METRICS_FILE, resolve
from scenarios_assets.core.data.paths import DEFAULT_OUTPUT_DIR
from scenarios_assets.core.models.scenario import ANNUALISATION, Scenario

TAIL_LEVELS = {"95": 0.05, "99": 0.01}
# Cells (groups x padded days) per block: bounds the working memory to roughly 100-150 MiB.
BLOCK_CELLS = 1_500_000
SERIES_COLUMNS = ("scenario_id", "symbol", "date", "returns")
# Optional columns of the long series: with both, intraday lows enter the drawdowns (module docstring).
BAR_SERIES_COLUMNS = ("prices", "low")
_NAT = np.iinfo(np.int64).min  # a day number that numpy reads as NaT

METRIC_COLUMNS = (
    "num_days",
    "start_date",
    "end_date",
    "total_return",
    "annualised_return",
    "annualised_volatility",
    "max_drawdown",
    "drawdown_peak_date",
    "drawdown_trough_date",
    "drawdown_recovery_date",
    "drawdown_recovered",
    "max_drawdown_duration_days",
    "worst_day_return",
    "worst_day_date",
    "worst_intraday_return",
    "worst_intraday_date",
    "var_95",
    "cvar_95",
    "var_99",
    "cvar_99",
    "skew",
    "kurtosis",
)


class MetricsInputError(RuntimeError):
    """The catalog needed for the metrics is missing or has no time series."""


def compute_metrics(timeseries: pd.DataFrame, block_cells: int = BLOCK_CELLS) -> pd.DataFrame:
    """Risk metrics per (scenario_id, symbol) of a long time series (conventions: module docstring).

    Parameters
    ----------
    timeseries : pandas.DataFrame
        Columns ``scenario_id``, ``symbol``, ``date`` and ``returns`` (daily simple returns, fractions);
        optionally ``prices`` and ``low``, whose ratio puts intraday lows into the drawdowns; any row order.
    block_cells : int, default BLOCK_CELLS
        Cells (series x padded days) per block: bounds the working memory (about 100-150 MiB at the
        default 1,500,000).

    Returns
    -------
    pandas.DataFrame
        One row per (scenario_id, symbol), sorted by scenario_id then symbol, with the
        :data:`METRIC_COLUMNS`: returns, volatility, drawdowns, VaR and CVaR as fractions (VaR/CVaR as
        positive losses), annualised with 252 sessions a year, dates as datetime64 (NaT where none),
        ``max_drawdown_duration_days`` in sessions.

    Raises
    ------
    MetricsInputError
        When a required column is missing.

    References
    ----------
    .. [1] Rockafellar, R. T., Uryasev, S. (2000). Optimization of conditional value-at-risk. Journal of
       Risk 2(3):21-41 (VaR and CVaR / expected shortfall).
    .. [2] Magdon-Ismail, M., Atiya, A. F. (2004). Maximum drawdown. Risk 17(10):99-102.
    .. [3] Joanes, D. N., Gill, C. A. (1998). Comparing measures of sample skewness and kurtosis. Journal
       of the Royal Statistical Society D (The Statistician) 47(1):183-189 (the moment estimators g1, g2).
    """
    missing = [c for c in SERIES_COLUMNS if c not in timeseries.columns]
    if missing:
        raise MetricsInputError(f"time series lacks column(s) {', '.join(missing)}")
    if timeseries.empty:
        return _empty_frame()
    sid_codes, sid_names = _codes(timeseries["scenario_id"])
    sym_codes, sym_names = _codes(timeseries["symbol"])
    days = pd.to_datetime(timeseries["date"]).to_numpy().astype("datetime64[D]").astype(np.int64)
    returns = timeseries["returns"].to_numpy(dtype=np.float64, na_value=np.nan)
    low_ratio = _low_ratio(timeseries)

    order = np.lexsort((days, sym_codes, sid_codes))
    sid_codes, sym_codes, days, returns = sid_codes[order], sym_codes[order], days[order], returns[order]
    pair = sid_codes.astype(np.int64) * (len(sym_names) + 1) + sym_codes
    starts = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]])
    lengths = np.diff(np.r_[starts, len(pair)])

    # Lay the groups out by length so that each block pads only to its own longest series.
    by_length = np.argsort(lengths, kind="stable")
    sorted_lengths = lengths[by_length]
    rows = _ranges(starts[by_length], sorted_lengths)
    ret_sorted, day_sorted = returns[rows], days[rows]
    ratio_sorted = None if low_ratio is None else low_ratio[order][rows]
    offsets = np.r_[0, np.cumsum(sorted_lengths)]

    parts = []
    for g0, g1 in _blocks(sorted_lengths, block_cells):
        lens = sorted_lengths[g0:g1]
        width = int(lens[-1])
        within = np.arange(offsets[g0], offsets[g1]) - np.repeat(offsets[g0:g1], lens)
        row = np.repeat(np.arange(g1 - g0), lens)
        r = np.full((g1 - g0, width), np.nan)
        d = np.zeros((g1 - g0, width), dtype=np.int64)
        r[row, within] = ret_sorted[offsets[g0] : offsets[g1]]
        d[row, within] = day_sorted[offsets[g0] : offsets[g1]]
        ratio = None
        if ratio_sorted is not None:
            ratio = np.full((g1 - g0, width), np.nan)
            ratio[row, within] = ratio_sorted[offsets[g0] : offsets[g1]]
        parts.append(_block_metrics(r, d, lens, ratio))
    stats = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}

    group_rows = starts[by_length]
    frame = pd.DataFrame({"scenario_id": sid_names[sid_codes[group_rows]], "symbol": sym_names[sym_codes[group_rows]]})
    for key in METRIC_COLUMNS:
        values = stats[key]
        frame[key] = _as_dates(values) if key.endswith("_date") else values
    return frame.sort_values(["scenario_id", "symbol"], kind="stable").reset_index(drop=True)


def _low_ratio(timeseries: pd.DataFrame) -> np.ndarray | None:
    """low / close per row (float64, NaN where a row has no low), or None when the series has no lows."""
    if not all(c in timeseries.columns for c in BAR_SERIES_COLUMNS):
        return None
    low = timeseries["low"].to_numpy(dtype=np.float64, na_value=np.nan)
    if not np.isfinite(low).any():
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        return low / timeseries["prices"].to_numpy(dtype=np.float64, na_value=np.nan)


def _block_metrics(r: np.ndarray, d: np.ndarray, lens: np.ndarray, low_ratio: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """All metrics of one block: ``r`` is (groups x width) daily returns, NaN-padded after each length;
    ``low_ratio`` (groups x width) each session's low / close (NaN where it has none), or None."""
    g, width = r.shape
    cols = np.arange(width)
    inside = cols[None, :] < lens[:, None]
    valid = inside & np.isfinite(r)
    n = valid.sum(axis=1)
    r0 = np.where(valid, r, 0.0)
    first, last = d[:, 0], d[np.arange(g), lens - 1]

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # Wealth path with the starting level 1 in column 0 (column j + 1 is after day j).
        log_wealth = np.cumsum(np.log1p(r0), axis=1)
        wealth = np.concatenate([np.ones((g, 1)), np.exp(log_wealth)], axis=1)
        total = wealth[np.arange(g), lens] - 1.0
        ann_return = np.where(n > 0, np.power(1.0 + total, ANNUALISATION / np.maximum(n, 1)) - 1.0, np.nan)

        mean = r0.sum(axis=1) / np.maximum(n, 1)
        dev = np.where(valid, r - mean[:, None], 0.0)
        m2 = (dev**2).sum(axis=1) / np.maximum(n, 1)
        m3 = (dev**3).sum(axis=1) / np.maximum(n, 1)
        m4 = (dev**4).sum(axis=1) / np.maximum(n, 1)
        vol = np.where(n > 1, np.sqrt(m2 * n / np.maximum(n - 1, 1)) * np.sqrt(ANNUALISATION), np.nan)
        flat = ~(m2 > 1e-30)
        skew = np.where(flat | (n < 2), np.nan, m3 / m2**1.5)
        kurt = np.where(flat | (n < 2), np.nan, m4 / m2**2 - 3.0)
        mdd, peak_at, trough, recovered, recovery_at, duration, intraday = _drawdowns(wealth, lens, r, valid, low_ratio)

    def date_at(wealth_col: np.ndarray) -> np.ndarray:
        """Date of a wealth-path column: column j >= 1 is day j - 1; column 0 (the start) is the first day."""
        return d[np.arange(g), np.maximum(wealth_col - 1, 0)]

    # Worst day and tails: one sort per block gives quantiles and expected shortfalls for every series.
    worst_at = np.argmin(np.where(valid, r, np.inf), axis=1)
    worst = np.where(n > 0, r[np.arange(g), worst_at], np.nan)
    ordered = _order_statistics(np.where(valid, r, np.inf), n)
    out = {
        "num_days": lens.astype(np.int64),
        "start_date": first,
        "end_date": last,
        "total_return": np.where(n > 0, total, np.nan),
        "annualised_return": ann_return,
        "annualised_volatility": vol,
        "max_drawdown": np.where(n > 0, mdd, np.nan),
        "drawdown_peak_date": date_at(peak_at),
        "drawdown_trough_date": date_at(trough),
        "drawdown_recovery_date": np.where(recovered & (mdd < 0.0), date_at(np.maximum(recovery_at, 0)), _NAT),
        "drawdown_recovered": recovered | ~(mdd < 0.0),
        "max_drawdown_duration_days": duration.astype(np.int64),
        "worst_day_return": worst,
        "worst_day_date": np.where(n > 0, d[np.arange(g), worst_at], _NAT),
        **_worst_intraday(intraday, d),
    }
    with np.errstate(invalid="ignore", divide="ignore"):
        for label, p in TAIL_LEVELS.items():
            q = _sorted_quantile(ordered, n, p)
            tail = valid & (r <= q[:, None])
            es = np.where(tail, r, 0.0).sum(axis=1) / np.maximum(tail.sum(axis=1), 1)
            out[f"var_{label}"] = np.where(n > 0, -q, np.nan)
            out[f"cvar_{label}"] = np.where(n > 0, -es, np.nan)
    out["skew"] = skew
    out["kurtosis"] = kurt
    return out



def _drawdowns(wealth: np.ndarray, lens: np.ndarray, r: np.ndarray, valid: np.ndarray, low_ratio: np.ndarray | None):
    """Max drawdown per row of a (groups x width + 1) wealth block (column j <= length is inside the
    scenario) and, as wealth columns, its peak, trough and recovery; the duration in days and the intraday
    returns of :func:`_with_lows`."""
    g, width = r.shape
    wcols = np.arange(width + 1)
    w_inside = wcols[None, :] <= lens[:, None]
    peak = np.maximum.accumulate(np.where(w_inside, wealth, -np.inf), axis=1)
    close_dd = np.where(w_inside, wealth / peak - 1.0, np.inf)
    dd, intraday = _with_lows(close_dd, wealth, peak, r, valid, low_ratio)
    trough = np.argmin(dd, axis=1)
    mdd = np.minimum(dd[np.arange(g), trough], 0.0)
    at_peak = w_inside & (close_dd >= 0.0)
    last_peak = np.maximum.accumulate(np.where(at_peak, wcols[None, :], -1), axis=1)
    # the peak is a close before the trough's session (an intraday low is measured against those)
    peak_at = last_peak[np.arange(g), np.maximum(trough - 1, 0)]
    # recovery: the first close at or above the peak, from the trough's session on (its own close may
    # recover an intraday low; a close trough is below the peak, so it is never its own recovery)
    after = at_peak & (wcols[None, :] >= trough[:, None]) & (wcols[None, :] > 0)
    recovered = after.any(axis=1)
    recovery_at = np.where(recovered, np.argmax(after, axis=1), -1)
    end_at = np.where(recovered, recovery_at, lens)
    duration = np.where(mdd < 0.0, end_at - peak_at, 0)
    return mdd, peak_at, trough, recovered, recovery_at, duration, intraday


def _with_lows(close_dd: np.ndarray, wealth: np.ndarray, peak: np.ndarray, r: np.ndarray, valid: np.ndarray,
               low_ratio: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Drawdowns (groups x width + 1, wealth columns) with intraday lows: the low of day j (column j + 1)
    is wealth_(j+1) x low_j / close_j against the peak of the closes before it (column j); the lower of it
    and the close's drawdown. Also returns each day's low against the previous close minus 1 (groups x
    width; +inf where a day has no low), or None without lows."""
    if low_ratio is None:
        return close_dd, None
    has_low = valid & np.isfinite(low_ratio)
    if not has_low.any():
        return close_dd, None
    ratio = np.where(has_low, low_ratio, 1.0)
    low_dd = np.where(has_low, wealth[:, 1:] * ratio / peak[:, :-1] - 1.0, np.inf)
    dd = np.minimum(close_dd, np.concatenate([np.full((len(r), 1), np.inf), low_dd], axis=1))
    intraday = np.where(has_low, (1.0 + np.where(valid, r, 0.0)) * ratio - 1.0, np.inf)
    return dd, intraday


def _worst_intraday(intraday: np.ndarray | None, d: np.ndarray) -> dict[str, np.ndarray]:
    """``worst_intraday_return`` and its date per row (NaN / NaT for a row without lows)."""
    g = len(d)
    if intraday is None:
        return {"worst_intraday_return": np.full(g, np.nan), "worst_intraday_date": np.full(g, _NAT)}
    at = np.argmin(intraday, axis=1)
    value = intraday[np.arange(g), at]
    has = np.isfinite(value)
    return {"worst_intraday_return": np.where(has, value, np.nan),
            "worst_intraday_date": np.where(has, d[np.arange(g), at], _NAT)}


def _order_statistics(values: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``values`` with, per row, the order statistics that :func:`_sorted_quantile` reads in place: a full
    sort when the rows hold different counts, else an O(width) ``np.partition`` at just those positions
    (every stochastic path has the same length, so this is the common case)."""
    if len(n) == 0 or not (n == n[0]).all() or n[0] == 0:
        return np.sort(values, axis=1)
    h = (int(n[0]) - 1) * np.array(list(TAIL_LEVELS.values()))
    lo = np.floor(h).astype(np.int64)
    kth = np.unique(np.r_[lo, np.minimum(lo + 1, int(n[0]) - 1)])
    return np.partition(values, kth, axis=1)


def _sorted_quantile(ordered: np.ndarray, n: np.ndarray, p: float) -> np.ndarray:
    """The p-quantile of each row's first n sorted values, interpolated linearly (numpy's default)."""
    g = len(n)
    h = np.maximum(n - 1, 0) * p
    lo = np.floor(h).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
    a, b = ordered[np.arange(g), lo], ordered[np.arange(g), hi]
    return np.where(n > 0, a + (h - lo) * (b - a), np.nan)


def _codes(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of a (possibly categorical) column and the values they stand for."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        cat = column.cat.remove_unused_categories()
        return cat.cat.codes.to_numpy(np.int64), np.asarray(cat.cat.categories.astype(str), dtype=object)
    codes, uniques = pd.factorize(column.astype(str), sort=True)
    return codes.astype(np.int64), np.asarray(uniques, dtype=object)


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of arange(start, start + length) for every pair, without a Python loop."""
    total = int(lengths.sum())
    begin = np.r_[0, np.cumsum(lengths)[:-1]]
    return np.repeat(starts - begin, lengths) + np.arange(total)


def _blocks(sorted_lengths: np.ndarray, block_cells: int) -> list[tuple[int, int]]:
    """Contiguous runs of groups (ascending lengths) whose padded size stays within ``block_cells``."""
    blocks, start, total = [], 0, len(sorted_lengths)
    while start < total:
        ks = np.arange(1, total - start + 1)
        cost = ks * sorted_lengths[start:]  # non-decreasing: padding width is the last length
        k = max(1, int(np.searchsorted(cost, block_cells, side="right")))
        blocks.append((start, start + k))
        start += k
    return blocks


def _as_dates(values: np.ndarray) -> pd.Series:
    """Day numbers (the NaT sentinel included) as a datetime column."""
    return pd.Series(values.astype("datetime64[D]").astype("datetime64[ns]"))


def _empty_frame() -> pd.DataFrame:
    return pd.DataFrame(columns=["scenario_id", "symbol", *METRIC_COLUMNS])


# --- metrics of a chunk of scenarios, straight from its arrays ------------------------------------------

def chunk_metrics(scenarios: list[Scenario], block_cells: int = BLOCK_CELLS) -> pd.DataFrame:
    """Metrics (METRIC_COLUMNS) of every (scenario, symbol) series of a chunk, one row each in scenario
    order then the scenario's symbol order, with ``scenario_id``, ``scenario_name`` and ``scenario_type``.

    Scenarios with data in every cell (all stochastic paths) are stacked as (scenarios x symbols, days)
    float64 blocks of at most ``block_cells`` cells and reduced at once; the few with missing cells (replays
    of symbols that start inside the window) go through :func:`compute_metrics` on their long rows, so the
    figures are those of the written time series either way.

    Parameters
    ----------
    scenarios : list of Scenario
        The chunk's scenarios.
    block_cells : int, default BLOCK_CELLS
        Cells per block (memory bound), as in :func:`compute_metrics`.

    Returns
    -------
    pandas.DataFrame
        ``scenario_id``, ``scenario_name``, ``scenario_type``, ``symbol`` and the :data:`METRIC_COLUMNS`
        (as :func:`compute_metrics`), in scenario order then each scenario's symbol order.

    References
    ----------
    .. [1] Rockafellar, R. T., Uryasev, S. (2000). Optimization of conditional value-at-risk. Journal of
       Risk 2(3):21-41 (VaR and CVaR / expected shortfall).
    .. [2] Magdon-Ismail, M., Atiya, A. F. (2004). Maximum drawdown. Risk 17(10):99-102.
    .. [3] Joanes, D. N., Gill, C. A. (1998). Comparing measures of sample skewness and kurtosis. Journal
       of the Royal Statistical Society D (The Statistician) 47(1):183-189 (the moment estimators g1, g2).
    """
    frames = []
    full = [s for s in scenarios if not np.isnan(s.prices).any()]
    by_length: dict[int, list[Scenario]] = {}
    for s in full:
        by_length.setdefault(len(s.dates), []).append(s)
    for length, group in by_length.items():
        r = np.concatenate([s.returns.T for s in group]).astype(np.float64)  # (sum of N, T)
        d = np.concatenate([np.broadcast_to(s.dates.astype(np.int64), (len(s.symbols), length)) for s in group])
        ratio = _chunk_low_ratio(group)
        per = max(1, block_cells // max(length, 1))
        parts = [_block_metrics(r[i : i + per], d[i : i + per], np.full(len(r[i : i + per]), length),
                                None if ratio is None else ratio[i : i + per])
                 for i in range(0, len(r), per)]
        stats = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
        frame = pd.DataFrame({
            "scenario_id": np.repeat([s.id for s in group], [len(s.symbols) for s in group]),
            "symbol": np.concatenate([np.asarray(s.symbols, dtype=object) for s in group]),
        })
        for key in METRIC_COLUMNS:
            frame[key] = _as_dates(stats[key]) if key.endswith("_date") else stats[key]
        frames.append(frame)
    partial = [s for s in scenarios if np.isnan(s.prices).any()]
    if partial:
        from scenarios_assets.core.library.storage import timeseries_table

        long = timeseries_table(partial).select([*SERIES_COLUMNS, *BAR_SERIES_COLUMNS]).to_pandas()
        frames.append(compute_metrics(long))
    frame = pd.concat(frames, ignore_index=True) if frames else _empty_frame()
    position = {s.id: i for i, s in enumerate(scenarios)}
    names = {s.id: (s.name, s.scenario_type) for s in scenarios}
    symbol_rank = {(s.id, sym): j for s in scenarios for j, sym in enumerate(s.symbols)}
    frame["scenario_id"] = frame["scenario_id"].astype(str)
    order = np.lexsort((
        [symbol_rank[(i, sym)] for i, sym in zip(frame["scenario_id"], frame["symbol"])],
        frame["scenario_id"].map(position).to_numpy(),
    ))
    frame = frame.iloc[order].reset_index(drop=True)
    frame.insert(1, "scenario_name", frame["scenario_id"].map(lambda i: names[i][0]))
    frame.insert(2, "scenario_type", frame["scenario_id"].map(lambda i: names[i][1]))
    return frame


def _chunk_low_ratio(group: list[Scenario]) -> np.ndarray | None:
    """(sum of N, T) float64 low / close of a group of full scenarios (NaN where a session has no low), or
    None when none of them has a low: the stochastic families' paths cost nothing extra."""
    if not any(_has_lows(s) for s in group):
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.concatenate([
            (s.extra["low"].astype(np.float64) / s.prices).T if _has_lows(s) else np.full(s.returns.T.shape, np.nan)
            for s in group
        ])


def _has_lows(s: Scenario) -> bool:
    low = s.extra.get("low")
    return low is not None and bool(np.isfinite(low).any())


def metrics_table(frame: pd.DataFrame) -> pa.Table:
    """A metrics frame as Arrow, dates as date32 (the columns of one metrics part).

    Parameters
    ----------
    frame : pandas.DataFrame
        A :func:`chunk_metrics` or :func:`compute_metrics` frame.

    Returns
    -------
    pyarrow.Table
        The same columns, without the index; every ``*_date`` column cast to date32.
    """
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for i, name in enumerate(table.column_names):
        if name.endswith("_date"):
            table = table.set_column(i, name, table.column(i).cast(pa.date32()))
    return table


# --- reading the metrics of a build -----------------------------------------------------------------------

def load_scenario_metrics(
    output_dir: str | Path | None = None,
    *,
    family: str | list[str] | None = None,
    severity: str | list[str] | None = None,
    scenario_id: str | list[str] | None = None,
    symbols: list[str] | None = None,
    build: str | None = None,
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """Load the risk metrics of the current build in ``output_dir`` (default ``data/scenarios``; a local path
    or an fsspec URL; or of the
    kept build ``build``), optionally filtered (one value or a list per filter; partitions pruned and rows
    filtered inside pyarrow; ``columns``: read only these). ``frame.attrs["provenance"]`` says which build the metrics describe
    (``build_id``, ``catalog_generated_at``, ``data_version``, ``config_hash``, and per slice its
    ``origin``, ``stale``, ``data_version`` and ``config_hash``).

    Parameters
    ----------
    output_dir : str or Path, optional
        The library's directory or fsspec URL; None: ``data/scenarios``.
    family, severity, scenario_id : str or list of str, optional
        Keep the rows whose field is (one of) the value(s).
    symbols : list of str, optional
        Keep these symbols' rows.
    build : str, optional
        A kept build's id instead of the current one.
    columns : list of str, optional
        Read only these columns.

    Returns
    -------
    pandas.DataFrame
        One row per (scenario, symbol): ``family``, ``severity`` (str), ids and the :data:`METRIC_COLUMNS`
        (:func:`compute_metrics`; dates as datetime64[ns]); ``attrs["provenance"]`` as above.

    Raises
    ------
    FileNotFoundError
        When there is no build or it was written without time series.

    References
    ----------
    .. [1] Apache Parquet file format, https://parquet.apache.org/docs/file-format/
    """
    from scenarios_assets.core.library.storage import PARTITIONING
    from scenarios_assets.core.library.store import arrow_location, location

    root = resolve(location(output_dir or DEFAULT_OUTPUT_DIR), build)
    path = root / METRICS_FILE
    if not path.exists():
        raise FileNotFoundError(f"'{path}' does not exist; metrics are written with the time series (--save-timeseries)")
    where, fs = arrow_location(path)
    dataset = ds.dataset(where, format="parquet", partitioning=PARTITIONING if path.is_dir() else None, filesystem=fs)
    expr = None
    for column, wanted in (("family", family), ("severity", severity), ("scenario_id", scenario_id), ("symbol", symbols)):
        if wanted is None:
            continue
        term = pc.field(column).isin([wanted] if isinstance(wanted, str) else list(wanted))
        expr = term if expr is None else expr & term
    table = dataset.to_table(filter=expr, columns=columns)
    frame = table.to_pandas(date_as_object=False)
    for column in ("family", "severity"):
        if column in frame.columns:
            frame[column] = frame[column].astype(str)
    for column in [c for c in frame.columns if c.endswith("_date")]:
        frame[column] = frame[column].astype("datetime64[ns]")
    with (root / METADATA_FILE).open("rb") as fh:
        document = json.load(fh)
    frame.attrs["provenance"] = {
        "build_id": (document.get("run") or {}).get("build_id", ""),
        "catalog_generated_at": document.get("generated_at", ""),
        "data_version": document.get("data_version", ""),
        "config_hash": document.get("config_hash", ""),
        # per slice: new or carried over, and from which data version / config (a carried slice may be stale)
        "slices": {key: {k: entry.get(k) for k in ("origin", "stale", "data_version", "config_hash")}
                   for key, entry in (document.get("families") or {}).items()},
    }
    return frame
