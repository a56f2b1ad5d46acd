"""The one data model every family produces and every consumer reads: Scenario and ScenarioSet.

A scenario's path is a (days x symbols) block of simple daily returns and prices (float32). The
equal-weight portfolio of its symbols (daily rebalanced) gives the scenario-level statistics.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scenarios_assets.core.models.units import TRADING_DAYS_PER_YEAR as ANNUALISATION



@dataclass(frozen=True)
class Skipped:
    """Why a scenario (or a step towards one) cannot be built: returned in place of the value, never raised.

    The families report it in their ``skipped`` list; ``str()`` is the reason, so it reads as one line.

    Parameters
    ----------
    reason : str
        One line saying why, as shown in the set's ``skipped`` list.
    """

    reason: str

    def __str__(self) -> str:
        return self.reason

@dataclass
class Scenario:
    """One scenario: a path of daily returns and prices for a list of symbols, with its portfolio statistics.

    The statistics (``expected_return``, ``max_drawdown``, and the metadata's ``annualised_volatility`` and
    ``max_drawdown_by_symbol``) are computed on construction by :func:`path_statistics`, from the equal-weight,
    daily rebalanced portfolio of the symbols.

    Parameters
    ----------
    id : str
        Stable id, ``family.key.severity`` (:func:`scenario_id`).
    name : str
        Human-readable name.
    family : str
        The family that built it (a key of the family registry).
    scenario_type : str
        The family's kind of scenario (e.g. a replay, a simulated path).
    severity : str
        Severity level name (:class:`~scenarios_assets.core.models.severity.Severity`).
    dates : array_like of shape (n_days,)
        The path's dates, stored as ``datetime64[D]``.
    symbols : list of str
        The ``n_symbols`` column names of ``returns`` and ``prices``.
    returns : array_like of shape (n_days, n_symbols)
        Daily simple returns (fractions, 0.01 = 1 %), stored as float32; NaN where a symbol has no data.
    prices : array_like of shape (n_days, n_symbols)
        Close prices at the end of each day, stored as float32.
    seed : int or None, default None
        The seed of the path's random generator (stochastic families), None for a deterministic scenario.
    metadata : dict, default {}
        Family-specific facts, written to ``scenario_metadata.json``; gets ``annualised_volatility`` and
        ``max_drawdown_by_symbol`` (a list in ``symbols`` order) unless given.
    validation : dict, default {}
        Per-scenario check results.
    extra : dict of str to ndarray of shape (n_days, n_symbols), default {}
        Extra per-cell series written as Parquet columns (e.g. ``volume_multiplier``, ``spread_multiplier``,
        ``low``: intraday lows, price units).
    projected : ndarray of shape (n_days,), bool, optional
        True for the dates beyond the data (projected scenarios).
    portfolio_intraday : bool, default True
        With ``extra["low"]``: True when the symbols' lows are simultaneous (a modelled market-wide crash, as
        the stress flash crashes), so the portfolio's max drawdown counts them; False for recorded bars
        (replays), whose lows fall at different times of the day, so the portfolio's drawdown stays on
        closes. Per-symbol drawdowns count the lows either way.
    calendars : dict of str to str, optional
        Symbol -> trading calendar name when the symbols keep different calendars
        (:mod:`scenarios_assets.core.data.session_layout`): a symbol has data only on its calendar's sessions
        among ``dates``. None: every date is a session of every symbol.

    Attributes
    ----------
    expected_return : float
        Total simple return of the portfolio over the path (a fraction).
    volatility_multiplier : float
        Annualised volatility relative to the long-run one (:meth:`set_volatility_multiplier`); 1.0 until set.
    max_drawdown : float
        Worst peak-to-trough fall of the portfolio's wealth, a fraction in [-1, 0].
    """

    id: str
    name: str
    family: str
    scenario_type: str
    severity: str
    dates: np.ndarray  # datetime64[D], (T,)
    symbols: list[str]
    returns: np.ndarray  # float32 (T, N) simple returns; NaN where a symbol has no data
    prices: np.ndarray  # float32 (T, N)
    seed: int | None = None
    metadata: dict = field(default_factory=dict)
    validation: dict = field(default_factory=dict)
    # Optional extra per-cell series written as Parquet columns (e.g. volume_multiplier, spread_multiplier).
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    # Optional per-date flag for dates beyond the data (projected scenarios).
    projected: np.ndarray | None = None
    # With ``extra["low"]``: True when the symbols' lows are simultaneous (a modelled market-wide crash, as
    # the stress flash crashes), so the portfolio's max drawdown counts them; False for recorded bars (replays),
    # whose lows fall at different times of the day: the portfolio's drawdown stays on closes, as its
    # intraday low is not known from daily bars. Per-symbol drawdowns count the lows either way.
    portfolio_intraday: bool = True
    # symbol -> trading calendar when the symbols keep different ones (core.data.session_layout): a symbol has
    # data only on its calendar's sessions among ``dates``; None: every date is a session of every symbol.
    calendars: dict[str, str] | None = None
    expected_return: float = field(init=False)
    volatility_multiplier: float = field(init=False, default=1.0)
    max_drawdown: float = field(init=False)

    def __post_init__(self) -> None:
        self.dates = np.asarray(self.dates, dtype="datetime64[D]")
        self.returns = np.asarray(self.returns, dtype=np.float32)
        self.prices = np.asarray(self.prices, dtype=np.float32)
        low = self.extra.get("low")
        stats = path_statistics(self.returns, self.prices, None if low is None else np.asarray(low, dtype=np.float32),
                                portfolio_intraday=self.portfolio_intraday)
        self.expected_return = stats["total_return"]
        self.max_drawdown = stats["max_drawdown"]
        self.metadata.setdefault("annualised_volatility", stats["annualised_volatility"])
        self.metadata.setdefault("max_drawdown_by_symbol", stats["max_drawdown_by_symbol_list"])

    @property
    def start_date(self) -> str:
        """The first date, ISO ``YYYY-MM-DD``."""
        return str(self.dates[0])

    @property
    def end_date(self) -> str:
        """The last date, ISO ``YYYY-MM-DD``."""
        return str(self.dates[-1])

    def set_volatility_multiplier(self, baseline_vol: float) -> None:
        """Set ``volatility_multiplier``: scenario volatility relative to the long-run volatility of the same
        portfolio.

        Parameters
        ----------
        baseline_vol : float
            Long-run annualised volatility of the same equal-weight portfolio (a fraction, 0.2 = 20 %). When it
            is not positive the multiplier is NaN.
        """
        vol = self.metadata["annualised_volatility"]
        self.volatility_multiplier = float(vol / baseline_vol) if baseline_vol > 0 else float("nan")

    def record(self) -> dict:
        """The JSON record of a scenario in scenario_metadata.json (README, "Output files"; no arrays).

        Returns
        -------
        dict
            JSON-ready fields: ids and names, ``start_date``/``end_date`` (ISO), ``symbols``, ``num_days``,
            ``expected_return``, ``volatility_multiplier`` and ``max_drawdown`` (fractions rounded to 6
            digits, None when not finite), ``seed``, ``validation`` and ``metadata`` (NumPy values converted,
            ``max_drawdown_by_symbol`` as a symbol -> value mapping).
        """
        mdd = self.metadata.get("max_drawdown_by_symbol")
        metadata = {k: v for k, v in self.metadata.items() if k != "max_drawdown_by_symbol"}
        if isinstance(mdd, list):
            metadata["max_drawdown_by_symbol"] = dict(zip(self.symbols, mdd))
        return {
            "id": self.id,
            "name": self.name,
            "family": self.family,
            "scenario_type": self.scenario_type,
            "severity": self.severity,
            "start_date": self.start_date,
            "end_date": self.end_date,
            "symbols": list(self.symbols),
            "num_days": int(len(self.dates)),
            "expected_return": _round(self.expected_return),
            "volatility_multiplier": _round(self.volatility_multiplier),
            "max_drawdown": _round(self.max_drawdown),
            "seed": self.seed,
            "validation": self.validation,
            "metadata": jsonable(metadata),
        }


@dataclass
class ScenarioSet:
    """All scenarios of one family at one severity, with what was skipped and why.

    Parameters
    ----------
    family : str
        The family's name.
    severity : str
        Severity level name.
    scenarios : list of Scenario
        The scenarios built.
    data_version : str
        Version hash of the market data they were built from.
    config_hash : str
        Hash of the configuration section that built them.
    skipped : list of dict, default []
        ``{"name": ..., "reason": ...}`` for each scenario that could not be built.
    metadata : dict, default {}
        Set-level facts (e.g. VaR/CVaR across paths).
    validation : dict, default {}
        Check name -> ``{"passed", "value", "threshold", "blocking"}``.
    generation_seconds : float, default 0.0
        Wall time of the generation, seconds.
    """

    family: str
    severity: str
    scenarios: list[Scenario]
    data_version: str
    config_hash: str
    skipped: list[dict] = field(default_factory=list)  # {"name": ..., "reason": ...}
    metadata: dict = field(default_factory=dict)
    validation: dict = field(default_factory=dict)  # check name -> {"passed", "value", "threshold", "blocking"}
    generation_seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.scenarios)

    @property
    def failed_checks(self) -> list[str]:
        """Names of the validation checks that did not pass."""
        return [name for name, res in self.validation.items() if not res["passed"]]

    @property
    def scenario_ids(self) -> list[str]:
        """Ids of the scenarios, in order."""
        return [s.id for s in self.scenarios]

    @property
    def regime_labels(self) -> set[str]:
        """The distinct ``regime`` metadata values of the scenarios (those that have one)."""
        return {str(s.metadata["regime"]) for s in self.scenarios if s.metadata.get("regime")}

    def stream(self) -> "ScenarioStream":
        """This set as a stream of one chunk (families whose sets are small build them whole).

        Returns
        -------
        ScenarioStream
            One chunk holding all ``scenarios``, with this set's ``skipped`` and ``metadata`` and ``size``
            the number of scenarios.
        """
        return ScenarioStream(self.family, self.severity, self.data_version, self.config_hash, [self.scenarios],
                              skipped=self.skipped, metadata=self.metadata, size=len(self.scenarios))


@dataclass
class ChunkPlan:
    """How a stream's chunks are made, so that they can run anywhere (this process, or tasks on a cluster):
    ``run(model, indices)``, a module-level function (picklable), returns the scenarios ``indices`` (list of
    :class:`Scenario`) and a small side result; ``model`` is everything it reads, calibrated once and shared
    by every chunk (a cluster broadcasts it to its workers once); ``parts`` the scenario indices of each
    chunk, in order; ``absorb(side)`` folds one chunk's side result into the stream's state, called in chunk
    order wherever the chunks ran (what the stream's ``finish`` then reads).

    Parameters
    ----------
    model : Any
        Everything ``run`` reads, calibrated once and shared by every chunk.
    run : callable ``(model, indices) -> (list of Scenario, side)``
        Module-level (picklable) function building the scenarios ``indices``.
    parts : list of list of int
        The scenario indices of each chunk, in order (copied to lists).
    absorb : callable ``(side) -> None``, optional
        Folds one chunk's side result into the stream's state, in chunk order.
    """

    model: Any
    run: Callable[[Any, list[int]], tuple[list["Scenario"], Any]]
    parts: list[list[int]]
    absorb: Callable[[Any], None] | None = None

    def __post_init__(self) -> None:
        self.parts = [list(p) for p in self.parts]

    def chunks(self):
        """The chunks made here, one at a time (in-process generation).

        Each chunk's side result is passed to ``absorb`` (when set) before the chunk is yielded.

        Yields
        ------
        list of Scenario
            The scenarios of one part of ``parts``, in order.
        """
        for part in self.parts:
            scenarios, side = self.run(self.model, part)
            if self.absorb is not None:
                self.absorb(side)
            yield scenarios


@dataclass
class ScenarioStream:
    """A family's scenarios at one severity as they are produced: ``chunks`` yields lists of scenarios (the
    stochastic families one chunk of paths at a time, so memory does not grow with the path count).

    ``metadata`` is what is known before generation; ``finish`` (optional) completes it from the streamed
    statistics (:class:`~scenarios_assets.core.library.validation.SetStats`: total returns, volatilities, a
    correlation sample), e.g. VaR/CVaR across paths. ``correlation_paths``: the number of scenarios the
    stream will yield, when the family wants a pooled correlation sample of them. ``size``: the number of
    scenarios the stream will yield when it is known before generation (progress bars show "k of size").
    ``plan`` (the stochastic families): how ``chunks`` is made, for a runner that sends the chunks to a cluster
    instead of iterating ``chunks`` (:class:`ChunkPlan`; ``chunks`` is then ``plan.chunks()``, not yet started).

    Parameters
    ----------
    family, severity, data_version, config_hash : str
        As in :class:`ScenarioSet`.
    chunks : iterable of list of Scenario
        The scenarios, one list per chunk.
    skipped : list of dict, default []
        ``{"name": ..., "reason": ...}`` for each scenario that could not be built.
    metadata : dict, default {}
        What is known before generation.
    finish : callable ``(SetStats) -> dict``, optional
        Completes the metadata from the streamed statistics.
    correlation_paths : int, optional
        The number of scenarios to pool into a correlation sample.
    size : int, optional
        The number of scenarios the stream will yield, when known before generation.
    plan : ChunkPlan, optional
        How ``chunks`` is made (stochastic families).
    """

    family: str
    severity: str
    data_version: str
    config_hash: str
    chunks: Iterable[list[Scenario]]
    skipped: list[dict] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    finish: Callable[[Any], dict] | None = None
    correlation_paths: int | None = None
    size: int | None = None
    plan: ChunkPlan | None = None


def slug(text: str) -> str:
    """``text`` lower-cased with every run of other characters than ``a-z0-9`` as one ``_`` (ids, file names).

    Parameters
    ----------
    text : str
        Any text (a name, a definition key).

    Returns
    -------
    str
        The slug, without leading or trailing ``_``.
    """
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def scenario_id(family: str, key: str, severity: str) -> str:
    """Stable id: the same family, definition key and severity give the same id on every rerun.

    Parameters
    ----------
    family : str
        The family's name.
    key : str
        The scenario's definition key (slugged with :func:`slug`).
    severity : str
        Severity level name.

    Returns
    -------
    str
        ``"{family}.{slug(key)}.{severity}"``.
    """
    return f"{family}.{slug(key)}.{severity}"


def max_drawdown(prices: np.ndarray) -> np.ndarray:
    """Worst peak-to-trough fall along axis 0, NaN-aware.

    The maximum drawdown [1]_, as a negative fraction (of the running peak).

    Parameters
    ----------
    prices : ndarray of shape (n_days, ...)
        Price or wealth levels (> 0), any unit; NaN where a series has no value yet.

    Returns
    -------
    ndarray of shape (...)
        min over t of prices[t] / max(prices[:t + 1]) - 1: a fraction in [-1, 0] (0: never below its peak);
        NaN for a series without a finite value. A 1-D input gives a 0-d array.

    References
    ----------
    .. [1] Magdon-Ismail, M., Atiya, A. F. (2004). Maximum drawdown. Risk 17(10):99-102.
    """
    peak = np.fmax.accumulate(prices, axis=0)
    with np.errstate(invalid="ignore"):
        dd = prices / peak - 1.0
    return np.nanmin(np.where(np.isfinite(dd), dd, np.nan), axis=0)


def portfolio_returns(returns: np.ndarray) -> np.ndarray:
    """Equal-weight, daily rebalanced portfolio of the symbols present on each day.

    Parameters
    ----------
    returns : ndarray of shape (..., n_symbols), float32 or float64
        Daily simple returns (fractions, not log returns); NaN where a symbol has no return that day.

    Returns
    -------
    ndarray of shape (...), float64
        The mean of the finite returns of each day (0 on a day where no symbol has one).
    """
    with np.errstate(invalid="ignore"):
        present = np.isfinite(returns)
        counts = present.sum(axis=-1)
        total = np.where(present, returns, 0.0).sum(axis=-1, dtype=np.float64)
        return np.where(counts > 0, total / np.maximum(counts, 1), 0.0)


def path_statistics(returns: np.ndarray, prices: np.ndarray, low: np.ndarray | None = None,
                    portfolio_intraday: bool = True) -> dict:
    """Total return, max drawdown and annualised volatility of the equal-weight portfolio of a path,
    and each symbol's max drawdown.

    The portfolio is :func:`portfolio_returns` (equal weight, daily rebalanced); its wealth starts at 1.
    A low is a trough after the previous close, so drawdowns count it: a symbol's against its running peak
    of closes, the portfolio's as the previous wealth times the mean of low / previous close over the
    symbols (each symbol's close where it has no low; exact when the lows fall in the same minute, as in the
    modelled flash crashes, else a lower bound of the portfolio's intraday low).

    Parameters
    ----------
    returns : ndarray of shape (n_days, n_symbols), float32
        Daily simple returns (fractions); NaN where a symbol has no data.
    prices : ndarray of shape (n_days, n_symbols), float32
        Close prices. Each symbol's path starts at the close before its first return,
        ``prices[0] / (1 + returns[0])``.
    low : ndarray of shape (n_days, n_symbols), optional
        Intraday lows, price units; NaN where a session has no bar range.
    portfolio_intraday : bool, default True
        False keeps the portfolio's drawdown on closes (recorded bars, whose lows are not simultaneous).

    Returns
    -------
    dict
        ``total_return`` (float, fraction: final wealth - 1), ``max_drawdown`` (float, fraction in [-1, 0],
        see :func:`max_drawdown`), ``annualised_volatility`` (float, fraction: sample standard deviation
        (ddof=1) of the portfolio's daily simple returns times sqrt(252); 0.0 for a one-day path) and
        ``max_drawdown_by_symbol_list`` (list of float or None, in symbol order, rounded to 6 digits; None
        for a symbol without data).
    """
    port = portfolio_returns(returns)
    wealth = np.cumprod(1.0 + port)
    ann_vol = float(np.std(port, ddof=1) * np.sqrt(ANNUALISATION)) if len(port) > 1 else 0.0
    mdd = float(max_drawdown(np.concatenate([[1.0], wealth])))
    previous = _previous_close(returns, prices)
    # each symbol's path starts at the close before its first return, as the portfolio's starts at 1
    by_symbol = max_drawdown(np.concatenate([previous[:1], prices.astype(np.float64)]))
    if low is not None and np.isfinite(low).any():
        if portfolio_intraday:
            mdd = min(mdd, _intraday_drawdown(returns, previous, low, wealth))
        by_symbol = np.fmin(by_symbol, _symbol_intraday_drawdown(previous, prices, low))
    return {
        "total_return": float(wealth[-1] - 1.0),
        "max_drawdown": float(min(0.0, mdd)),
        "annualised_volatility": ann_vol,
        # = [_round(v) for v in ...], without a NumPy scalar per symbol (1,000 scenarios x 500 symbols)
        "max_drawdown_by_symbol_list": [round(v, 6) if math.isfinite(v) else None for v in by_symbol.tolist()],
    }


def _previous_close(returns: np.ndarray, prices: np.ndarray) -> np.ndarray:
    """(T, N) close of the session before each one (the first from its return: P_1 / (1 + r_1))."""
    p = prices.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        first = p[:1] / (1.0 + returns[:1].astype(np.float64))
    return np.concatenate([first, p[:-1]])


def _intraday_drawdown(returns: np.ndarray, prev: np.ndarray, low: np.ndarray, wealth: np.ndarray) -> float:
    """Worst fall of the portfolio's intraday low from its running peak of closes (the start at 1 included);
    ``prev`` (T, N): each session's previous close."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(np.isfinite(low), low / prev, 1.0 + returns.astype(np.float64))
    present = np.isfinite(returns)
    counts = present.sum(axis=1)
    low_return = np.where(present, ratio - 1.0, 0.0).sum(axis=1) / np.maximum(counts, 1)
    before = np.concatenate([[1.0], wealth[:-1]])
    peak = np.maximum.accumulate(before)
    return float(np.min(before * (1.0 + low_return) / peak - 1.0))


def _symbol_intraday_drawdown(prev: np.ndarray, prices: np.ndarray, low: np.ndarray) -> np.ndarray:
    """(N,) worst fall of each symbol's intraday low from its running peak of earlier closes (``prev`` (T, N):
    each session's previous close, so the first session's low counts against the starting close)."""
    earlier = np.fmax.accumulate(prev, axis=0)
    with np.errstate(invalid="ignore"):
        dd = low.astype(np.float64) / earlier - 1.0
    dd = np.where(np.isfinite(dd), dd, np.nan)
    out = np.full(prices.shape[1], np.nan)
    has = np.isfinite(dd).any(axis=0)
    out[has] = np.nanmin(dd[:, has], axis=0)
    return out


def _round(value: float | None, digits: int = 6) -> float | None:
    if value is None:
        return None
    value = float(value)
    return round(value, digits) if np.isfinite(value) else None


def jsonable(value: Any) -> Any:
    """``value`` with JSON types only, for metadata.

    Parameters
    ----------
    value : Any
        A metadata value: dicts, lists and tuples are converted recursively.

    Returns
    -------
    Any
        Dict keys as strings, tuples as lists, floats rounded to 6 digits (non-finite ones as None), numpy
        scalars as Python ones, timestamps as ``YYYY-MM-DD``; other values unchanged.
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return _round(float(value))
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (pd.Timestamp, np.datetime64)):
        return str(pd.Timestamp(value).date())
    return value
