"""The generation config: the shipped defaults (``default_config.yaml``, also the schema of a user file),
the typed view the families read (:class:`ScenarioConfig`, frozen dataclasses, one per section), and the hashes
recorded in every output. Reading and checking a user's file is ``core.data.config_file``.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

DEFAULT_CONFIG_PATH = Path(__file__).with_name("default_config.yaml")
ROOT_KEY = "scenarios_pipeline"


def default_config() -> dict[str, Any]:
    """The shipped defaults (the ``scenarios_pipeline`` mapping; a fresh copy on every call).

    Returns
    -------
    dict
        The ``scenarios_pipeline`` mapping of ``default_config.yaml``, deep-copied (callers may change it).
    """
    return copy.deepcopy(_shipped_defaults())


@functools.lru_cache(maxsize=1)
def _shipped_defaults() -> dict[str, Any]:
    with DEFAULT_CONFIG_PATH.open() as fh:
        return yaml.safe_load(fh)[ROOT_KEY]


# --- the typed config -------------------------------------------------------------------------------
# One frozen dataclass per section of default_config.yaml, field for field (test_config_contract checks
# that the fields and the YAML keys are the same sets). Lists become tuples and open mappings read-only
# mappings, so a config cannot be changed by the code that reads it. Units are in the YAML's comments.

@dataclass(frozen=True)
class HistoricalConfig:
    """``generation.historical``: which events of ``reference/historical_events.yaml`` are replayed."""

    enabled: bool
    events: tuple[str, ...]  # event keys; empty: all
    include_full_cycles: bool
    include_context_days: int  # trading sessions of context each side of an event window
    min_coverage: float  # fraction of the event's sessions a symbol must have data on


@dataclass(frozen=True)
class RegimeConfig:
    """``generation.regime``: the regime-detection thresholds (documented in ``reference/regimes.yaml``)."""

    enabled: bool
    indices: tuple[str, ...]
    min_coverage: float  # fraction
    sma_short_days: int
    sma_long_days: int
    momentum_days: int
    volatility_days: int
    bear_rule: str  # drawdown | trend
    bear_min_decline: float  # fraction (0.20: a 20 % fall from a closing high)
    bull_max_volatility: float  # annualised volatility, fraction
    bear_min_volatility: float  # annualised volatility, fraction
    vix_threshold: float  # VIX points (annualised volatility in percent)
    large_move: float  # daily simple return, fraction
    min_large_moves: int
    large_move_window: int
    ranging_max_efficiency: float
    range_days: int
    ranging_max_range: float  # fraction (max/min - 1 over range_days)
    min_regime_days: Mapping[str, int]  # per regime type
    min_persistence_days: int
    max_gap_days: int


@dataclass(frozen=True)
class MonteCarloConfig:
    """``generation.stochastic.monte_carlo``: the calibrated path model and its window."""

    enabled: bool
    num_scenarios: int  # paths per severity
    time_horizon_days: int  # trading sessions
    return_model: str  # garch | gbm | historical_distribution
    volatility_model: str  # gjr_garch | garch
    drift_prior_annual: float  # annual log return
    drift_prior_sd_annual: float  # annual log return
    correlation_matrix: str  # rolling_<N>d | full_window
    correlation_shrinkage: float  # weight of the whole window's correlation, 0..1
    volatility_scaling: str  # GARCH | none
    confidence_levels: tuple[float, ...]  # VaR / CVaR levels, fractions
    fit_window_years: float | None
    min_coverage: float  # fraction
    min_symbols_share: float  # fraction
    calibration_end: str | None  # YYYY-MM-DD


@dataclass(frozen=True)
class BootstrapConfig:
    """``generation.stochastic.bootstrap``: the block bootstrap and its history window."""

    enabled: bool
    num_scenarios: int
    time_horizon_days: int
    block_size_days: int | None  # None: automatic (Politis-White via arch)
    sampling_method: str  # circular_block | stationary
    preserve_seasonality: bool
    seasonality_tolerance_days: int  # calendar days
    history_years: float | None
    stress_history_years: float | None
    min_coverage: float  # fraction
    min_symbols_share: float  # fraction
    calibration_end: str | None  # YYYY-MM-DD
    confidence_levels: tuple[float, ...]


@dataclass(frozen=True)
class StochasticConfig:
    """``generation.stochastic``: the two path families."""

    enabled: bool
    monte_carlo: MonteCarloConfig
    bootstrap: BootstrapConfig


@dataclass(frozen=True)
class StressConfig:
    """``generation.stress``: which stress tests of ``reference/stress_tests.yaml`` and their noise."""

    enabled: bool
    include: tuple[str, ...]
    anchor_date: str | None  # YYYY-MM-DD
    anchor_min_share: float  # fraction of symbols with data on the anchor session
    noise: bool
    common_noise: bool
    correlation_lookback_days: int
    intraday_minutes: int


@dataclass(frozen=True)
class GenerationConfig:
    """``generation``: one section per family."""

    historical: HistoricalConfig
    regime: RegimeConfig
    stochastic: StochasticConfig
    stress: StressConfig


@dataclass(frozen=True)
class DataConfig:
    """``data``: which part of the market data, and its calendars."""

    lookback_years: float | None
    symbols_universe: tuple[str, ...]
    reference_symbol: str
    trading_calendar: str  # exchange_calendars name (XNYS) or 24/7
    symbol_calendars: Mapping[str, str]
    start_date: str | None  # YYYY-MM-DD
    end_date: str | None
    split_check: bool
    accepted_moves: tuple[str, ...]  # SYMBOL:YYYY-MM-DD


@dataclass(frozen=True)
class PerformanceConfig:
    """``performance``: how a build runs; never what it generates (not hashed)."""

    save_timeseries: bool
    parallel: bool
    workers: int
    paths_per_chunk: int | None
    keep_builds: int
    memory_limit_gib: float | None
    memory_limit_fraction: float
    disk_limit_gib: float | None
    disk_limit_fraction: float


@dataclass(frozen=True)
class ScenarioConfig:
    """The whole ``scenarios_pipeline`` config, typed.

    Built by :meth:`from_mapping` from a merged and checked config mapping (``core.data.config_file.load_config``),
    which stays the form that is hashed, stored in run config and written to the outputs.
    """

    seed: int  # base seed of every random draw
    generation: GenerationConfig
    data: DataConfig
    performance: PerformanceConfig

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> ScenarioConfig:
        """The typed config of a ``scenarios_pipeline`` mapping.

        Parameters
        ----------
        config : Mapping
            The merged config (every key of ``default_config.yaml``, as ``load_config`` returns it).

        Returns
        -------
        ScenarioConfig
            Frozen dataclasses; lists as tuples, open mappings read-only.

        Raises
        ------
        KeyError
            A key of the dataclasses is missing from ``config``.
        TypeError
            ``config`` has a key the dataclasses do not (both mean the YAML and the dataclasses differ).
        """
        return _build(cls, config, "scenarios_pipeline")


class FrozenMapping(Mapping[str, Any]):
    """A read-only mapping (an open config mapping such as ``data.symbol_calendars``): hashable, picklable (to
    multiprocess steps and dask workers, unlike ``types.MappingProxyType``), equal to a dict of the same items.

    Parameters
    ----------
    items : Mapping
        The keys and values, copied.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, Any]):
        self._items = dict(items)

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._items.items())))

    def __repr__(self) -> str:
        return f"FrozenMapping({self._items!r})"

    def __reduce__(self):
        return (FrozenMapping, (self._items,))


def _build(cls: type, values: Mapping[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    extra = set(values) - names
    if extra:
        raise TypeError(f"{where}: keys without a field in {cls.__name__}: {sorted(extra)}")
    return cls(**{name: _convert(hints[name], values[name], f"{where}.{name}") for name in names})


def _convert(hint: Any, value: Any, where: str) -> Any:
    if isinstance(hint, type) and is_dataclass(hint):
        return _build(hint, value, where)
    origin = typing.get_origin(hint)
    if origin is tuple:
        return tuple(value)
    if origin is Mapping:
        return FrozenMapping(value)
    return value



# Keys that change what is generated; `performance` (executor, workers, file options) never does.
HASHED_KEYS = ("seed", "generation", "data")


def section_hash(config: dict[str, Any], section: str) -> str:
    """Hash of what one family's output depends on: ``seed``, ``data`` and ``generation.<section>``.

    A carried-over slice whose section hash differs from the current one was built with another config.

    Parameters
    ----------
    config : dict
        The ``scenarios_pipeline`` mapping.
    section : str
        A key of ``config["generation"]`` (a family's section).

    Returns
    -------
    str
        The first 16 hex digits of the SHA-256 of the canonical JSON (sorted keys, no spaces).

    Raises
    ------
    KeyError
        When ``config`` lacks ``seed``, ``data`` or ``generation.<section>``.
    """
    relevant = {"seed": config["seed"], "data": config["data"], section: config["generation"][section]}
    canonical = json.dumps(relevant, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def config_hash(config: dict[str, Any]) -> str:
    """Stable hash of the generation-relevant config (canonical JSON), recorded in every output.

    Parameters
    ----------
    config : dict
        The ``scenarios_pipeline`` mapping; only its :data:`HASHED_KEYS` (``seed``, ``generation``,
        ``data``) count, so ``performance`` settings never change it.

    Returns
    -------
    str
        The first 16 hex digits of the SHA-256 of the canonical JSON (sorted keys, no spaces).
    """
    relevant = {key: config[key] for key in HASHED_KEYS}
    canonical = json.dumps(relevant, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
