"""What a generation request needs in memory and on disk, estimated before anything runs, and the limits it
is held to. Pure (no Dagster): the command line and the REST API call :func:`check_request` after their
preflight and refuse, in one line, a request that cannot fit.

Every factor is a size the code allocates, times a per-unit figure measured on this project's code
(``scenarios_tests/test_footprint.py`` re-measures each and holds the estimate to it):

- *loading the market data* (``core.data.market.load_market_data``: the long rows, their validation and the
  panel pivot): ``MARKET_LOAD_BYTES_PER_ROW`` per input row, the rows counted from the source before it is
  read (a Parquet footer; a CSV's size over its mean line length);
- *the panel* held by every step: sessions x symbols x 8 B (float64) x ``PANEL_ARRAYS``;
- *one chunk of stochastic paths* (``families.stochastic.chunk_size``: ``performance.paths_per_chunk`` or about
  ``families.stochastic.CHUNK_ELEMENTS`` cells): paths x horizon x symbols x ``CHUNK_BYTES_PER_CELL`` (the float32 draws, mixing
  factors, returns and prices, the long table and Parquet buffers), plus the metrics block
  (``core.library.metrics.BLOCK_CELLS`` float64 cells x ``METRICS_BLOCK_ARRAYS``);
- *the set's checks* (``validation.SetStats``): ``SCENARIO_STATS_BYTES`` per path of a slice;
- *the Monte Carlo fit*: symbols^2 x 8 B x ``CALIBRATION_MATRICES`` (correlations, their Cholesky factors,
  the severity variants);
- *replays* (historical, regime, stress: every family whose spec is not ``simulated``): sessions x symbols x ``REPLAY_BYTES_PER_PANEL_CELL``;
- *disk*: time-series rows x ``TIMESERIES_BYTES_PER_ROW`` (float32 returns and prices, zstd), per path and
  symbol ``RECORD_BYTES_PER_PATH_SYMBOL`` (metrics row, JSON record, metadata entry), per path and day
  ``PORTFOLIO_BYTES_PER_PATH_DAY``, and ``REPORT_BYTES`` for the report and its charts.

Limits (config ``performance``; the command line's flags and the environment override them): memory
``memory_limit_gib`` (null: ``memory_limit_fraction`` of the memory available now, psutil), disk
``disk_limit_gib`` (null: ``disk_limit_fraction`` of the free space of the output directory's file system,
``shutil.disk_usage``).
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from scenarios_assets.core.engines.calibration import calibration_window
from scenarios_assets.core.families.registry import FAMILY_SPECS
from scenarios_assets.core.families.stochastic import chunk_size
from scenarios_assets.core.models.config import BootstrapConfig, MonteCarloConfig, ScenarioConfig
from scenarios_assets.core.models.errors import CalibrationError, ScenarioInputError
from scenarios_assets.core.library.metrics import BLOCK_CELLS
from scenarios_assets.core.library.store import is_remote

GIB = 1024**3
MIB = 1024**2

# --- measured figures (each re-measured by scenarios_tests/test_footprint.py) ----------------------------
# RSS of a CLI or API worker process with Dagster, numpy, pandas, pyarrow and arch imported, before any data.
PROCESS_BASE_BYTES = 400 * MIB
# Peak RSS growth of load_market_data per input row: 437 B on the bundled data (198,006 rows), 372 B on a
# 300-symbol x 2,520-session file, 233 B at 18 M rows (2,000 x 9,000): the smaller files' slope, an upper bound
# at scale.
MARKET_LOAD_BYTES_PER_ROW = 350
MARKET_LOAD_FIXED_BYTES = 20 * MIB
PANEL_ARRAYS = 4  # close, volume, log returns and one working copy (dates x symbols float64)
# One chunk of paths, per (path, day, symbol) cell: 29-46 B of peak RSS in repeated measurements (Monte Carlo
# GJR-GARCH-t, bundled data, a large against a small chunk, each in a fresh process): the float32 draws, mixing
# factors, returns and prices, the long table's int32/float32 columns (27 B traced by tracemalloc at its peak)
# and Arrow's Parquet buffers (16 B at theirs, not at the same moment).
CHUNK_BYTES_PER_CELL = 40
METRICS_BLOCK_ARRAYS = 9  # core.library.metrics works on blocks of BLOCK_CELLS float64 cells, ~9 arrays of them alive
# SetStats per path: its id, five check results, three floats, a 64-value tail sample and its correlation
# rows: 2.45 kB measured (tracemalloc, 2,000 against 6,000 Monte Carlo paths of 22 symbols).
SCENARIO_STATS_BYTES = 2_600
CALIBRATION_MATRICES = 24  # symbols x symbols float64 matrices alive in the Monte Carlo calibration
REPLAY_BYTES_PER_PANEL_CELL = 32  # replay steps' peak growth per panel cell: 20-31 B at 2,000 x 9,000
# Parquet bytes per time-series row, measured on real builds: Monte Carlo 7.44 (bundled data) / 7.56
# (2,000 symbols), bootstrap 6.07 / 7.29, replays 7.5-7.6.
TIMESERIES_BYTES_PER_ROW = 7.6
RECORD_BYTES_PER_PATH_SYMBOL = 320  # metrics row 93 B + records.jsonl 115 B + scenario_metadata.json 110 B
RECORD_ONLY_BYTES_PER_PATH_SYMBOL = 230  # without time series: the records and the metadata only
PORTFOLIO_BYTES_PER_PATH_DAY = 5.0
REPORT_BYTES = 1 * MIB  # report and charts: 0.5 MB for a stochastic-only build, 2.4 MB for the default library

# Where each limit is set, named in the refusal line.
MEMORY_SETTING = "--memory-limit GIB (env SCENARIOS_MEMORY_LIMIT_GIB, config performance.memory_limit_gib)"
DISK_SETTING = "--disk-limit GIB (env SCENARIOS_DISK_LIMIT_GIB, config performance.disk_limit_gib)"


@dataclass(frozen=True)
class Sizes:
    """The sizes a request allocates by: ``rows`` input rows of the market data (None: unknown before it is
    read, e.g. PostgreSQL), the panel's ``sessions`` x ``symbols``, and per stochastic family the symbols of
    its universe (``universe``; default: every symbol).

    Parameters
    ----------
    rows : int or None
        Input rows of the market data (long OHLCV rows), None when unknown.
    sessions : int
        Sessions (rows) of the panel.
    symbols : int
        Symbols (columns) of the panel.
    universe : dict of str to int, default {}
        Stochastic family -> the symbols of its universe.
    """

    rows: int | None
    sessions: int
    symbols: int
    universe: dict[str, int] = field(default_factory=dict)


@dataclass
class Estimate:
    """Peak memory and disk of a request, in bytes, with the part that sets each (``memory_parts``: name ->
    bytes of the largest step; ``disk_parts``: name -> bytes written).

    Parameters
    ----------
    memory : int
        Peak resident memory of the process, bytes (``PROCESS_BASE_BYTES`` included).
    disk : int
        Bytes written, 0 for a dry run.
    memory_parts : dict of str to int
        The market-data load, the panel and the largest step, bytes.
    disk_parts : dict of str to int
        What is written per family (and the report), bytes.
    memory_driver, disk_driver : str
        The part that sets each figure.
    """

    memory: int
    disk: int
    memory_parts: dict[str, int]
    disk_parts: dict[str, int]
    memory_driver: str
    disk_driver: str


def _paths_config(config: dict, family: str) -> MonteCarloConfig | BootstrapConfig:
    """The typed settings of a simulated family (``generation.stochastic.<family>``)."""
    return getattr(ScenarioConfig.from_mapping(config).generation.stochastic, family)


def _slice_count(config: dict, family: str) -> int:
    return _paths_config(config, family).num_scenarios


def _horizon(config: dict, family: str) -> int:
    return _paths_config(config, family).time_horizon_days


def chunk_paths(config: dict, family: str, symbols: int) -> int:
    """Paths per chunk exactly as the family computes them (``families.stochastic.chunk_size``).

    Parameters
    ----------
    config : dict
        The ``scenarios_pipeline`` mapping (the family's ``time_horizon_days``,
        ``performance.paths_per_chunk``).
    family : str
        ``"monte_carlo"`` or ``"bootstrap"``.
    symbols : int
        Symbols of the family's universe.

    Returns
    -------
    int
        Paths per chunk.
    """
    return chunk_size(_horizon(config, family), symbols, ScenarioConfig.from_mapping(config).performance.paths_per_chunk)


def estimate(config: dict, families: list[str], severities: list[str], sizes: Sizes,
             save_timeseries: bool, dry_run: bool = False) -> Estimate:
    """Peak memory (bytes) of the process that runs the request's steps one after the other, and the bytes it
    writes (0 for a dry run), from ``sizes`` and the factors above. See the module docstring.

    Memory is the process base plus the larger of the market-data load and the panel plus the largest step
    (steps run one after the other); disk is the sum over families and severities, plus the report.

    Parameters
    ----------
    config : dict
        The ``scenarios_pipeline`` mapping.
    families : list of str
        The requested families.
    severities : list of str
        The requested severities (each writes one slice per family).
    sizes : Sizes
        The sizes of the request's data.
    save_timeseries : bool
        Whether the Parquet datasets are written.
    dry_run : bool, default False
        Nothing is written (disk 0).

    Returns
    -------
    Estimate
        Peak memory and disk, bytes, with their parts.
    """
    panel = sizes.sessions * sizes.symbols * 8 * PANEL_ARRAYS
    steps: dict[str, int] = {}
    disk: dict[str, int] = {}
    n_sev = len(severities)
    for family in families:
        if FAMILY_SPECS[family].simulated:
            n, t = _slice_count(config, family), _horizon(config, family)
            symbols = sizes.universe.get(family, sizes.symbols)
            paths = min(n, chunk_paths(config, family, symbols))
            work = paths * t * symbols * CHUNK_BYTES_PER_CELL + BLOCK_CELLS * 8 * METRICS_BLOCK_ARRAYS
            work += n * SCENARIO_STATS_BYTES
            if family == "monte_carlo":
                work += symbols * symbols * 8 * CALIBRATION_MATRICES
            steps[f"{family}: a chunk of {paths:,} paths x {t} days x {symbols:,} symbols, checks of {n:,} paths"] = work
            per_slice = n * symbols * (RECORD_BYTES_PER_PATH_SYMBOL if save_timeseries else RECORD_ONLY_BYTES_PER_PATH_SYMBOL)
            if save_timeseries:
                per_slice += int(n * t * symbols * TIMESERIES_BYTES_PER_ROW + n * t * PORTFOLIO_BYTES_PER_PATH_DAY)
            disk[f"{family}: {n:,} paths x {t} days x {symbols:,} symbols x {n_sev} severit{'y' if n_sev == 1 else 'ies'}"] = per_slice * n_sev
        else:  # replays and defined shocks: about one row per session x symbol
            cells = sizes.sessions * sizes.symbols
            steps[f"{family}: replays over {sizes.sessions:,} sessions x {sizes.symbols:,} symbols"] = cells * REPLAY_BYTES_PER_PANEL_CELL
            if save_timeseries:
                disk[f"{family}: at most every session x symbol once"] = int(cells * TIMESERIES_BYTES_PER_ROW) * n_sev
    largest = max(steps.items(), key=lambda kv: kv[1], default=("no step", 0))
    load = MARKET_LOAD_FIXED_BYTES + (sizes.rows or 0) * MARKET_LOAD_BYTES_PER_ROW
    load_name = f"loading {sizes.rows:,} market-data rows" if sizes.rows else "loading the market data"
    memory_parts = {load_name: load, f"the panel ({sizes.sessions:,} sessions x {sizes.symbols:,} symbols)": panel,
                    largest[0]: largest[1]}
    if load >= panel + largest[1]:
        memory, driver = PROCESS_BASE_BYTES + load, load_name
    else:
        memory, driver = PROCESS_BASE_BYTES + panel + largest[1], largest[0]
    if dry_run:
        disk = {}
    elif disk:
        disk["report and charts"] = REPORT_BYTES
    total_disk = sum(disk.values())
    disk_driver = max(disk.items(), key=lambda kv: kv[1])[0] if disk else "nothing written"
    return Estimate(memory, total_disk, memory_parts, disk, driver, disk_driver)


def market_sizes(market, config: dict, rows: int | None) -> Sizes:
    """The sizes of a loaded ``MarketData`` (``core.data.market``): its panel, and each stochastic family's universe
    as the family chooses it (``engines.calibration.calibration_window`` with the family's settings; every symbol
    when the window cannot be found: the family will then be skipped).

    Parameters
    ----------
    market : MarketData
        The loaded panel.
    config : dict
        The ``scenarios_pipeline`` mapping (the stochastic families' window settings).
    rows : int or None
        Input rows of the source (:func:`source_rows`).

    Returns
    -------
    Sizes
        The panel's sessions and symbols, and each stochastic family's universe size.
    """
    stochastic = ScenarioConfig.from_mapping(config).generation.stochastic
    universe = {}
    windows = (("monte_carlo", stochastic.monte_carlo.fit_window_years, 250),
               ("bootstrap", stochastic.bootstrap.history_years, 20))
    for family, years, min_sessions in windows:
        cfg = getattr(stochastic, family)
        try:
            window = calibration_window(market.close, years=years, min_coverage=cfg.min_coverage,
                                        min_symbols_share=cfg.min_symbols_share, end=cfg.calibration_end,
                                        min_sessions=min_sessions)
            universe[family] = len(window.symbols)
        except (CalibrationError, ValueError, KeyError):
            universe[family] = market.close.shape[1]
    return Sizes(rows, market.close.shape[0], market.close.shape[1], universe)


def source_rows(source: str | Path) -> int | None:
    """Input rows of a market-data file or directory, counted before it is read: Parquet footers exactly, CSV
    (also .csv.gz) by counting its lines. None for a database URL.

    Parameters
    ----------
    source : str or Path
        A market-data file or directory (hidden files skipped), or a URL.

    Returns
    -------
    int or None
        Data rows (CSV headers not counted; unreadable files count 0), None for a URL.
    """
    text = str(source)
    if "://" in text:
        return None
    path = Path(text)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    total = 0
    for file in files:
        name = file.name.lower()
        if file.name.startswith((".", "_")):
            continue
        try:
            if name.endswith(".parquet"):
                import pyarrow.parquet as pq

                total += pq.ParquetFile(file).metadata.num_rows
            elif name.endswith(".csv") or name.endswith(".csv.gz"):
                total += _csv_rows(file, name.endswith(".gz"))
        except Exception:  # an unreadable file is the input check's to report, in its own words
            continue
    return total


def _csv_rows(file: Path, gzipped: bool) -> int:
    """Data lines of a CSV file (newlines counted in 1 MiB blocks, about 1 s a GB; the header not counted)."""
    import gzip

    opener = gzip.open if gzipped else open
    lines, last = 0, b"\n"
    with opener(file, "rb") as fh:
        while block := fh.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    return max(0, lines + (last != b"\n") - 1)


@dataclass(frozen=True)
class Limits:
    """The bytes a request may use and where each limit came from (for the refusal line).

    Parameters
    ----------
    memory, disk : int
        The limits, bytes (``disk`` is ``sys.maxsize`` on an object store without an explicit limit).
    memory_source, disk_source : str
        Where each came from (e.g. ``"16 GiB"``, ``"0.8 of the 12.3 GiB available"``).
    """

    memory: int
    disk: int
    memory_source: str
    disk_source: str


def _given(flag_value: float | None, env: str) -> tuple[float | None, str]:
    if flag_value is not None:
        return flag_value, "flag"
    text = os.environ.get(env)
    if text is None or not text.strip():
        return None, ""
    try:
        value = float(text)
    except ValueError:
        raise ScenarioInputError(f"{env}='{text}' is not a number of GiB (e.g. {env}=16)") from None
    if not 0 < value < float("inf"):
        raise ScenarioInputError(f"{env}={text} must be a positive number of GiB")
    return value, env


def limits(performance: dict, output_dir: Path, memory_gib: float | None = None,
           disk_gib: float | None = None) -> Limits:
    """The limits of a request: the flag's value, else the environment's, else the config's ``*_limit_gib``,
    else its ``*_limit_fraction`` of the available memory (psutil.virtual_memory().available) and of the free
    space of ``output_dir``'s file system (its nearest existing parent; shutil.disk_usage). An object store
    (``core.library.store.is_remote``) has no free-space figure: its disk is bounded only by an explicit limit.

    Parameters
    ----------
    performance : dict
        The config's ``performance`` section: ``memory_limit_gib``, ``memory_limit_fraction`` (default
        0.8), ``disk_limit_gib``, ``disk_limit_fraction`` (default 0.9); GiB = 1024**3 bytes.
    output_dir : Path
        The library's :func:`~scenarios_assets.core.library.store.location`.
    memory_gib, disk_gib : float, optional
        The command line's flags, GiB.

    Returns
    -------
    Limits
        The limits, bytes.

    Raises
    ------
    ScenarioInputError
        When ``SCENARIOS_MEMORY_LIMIT_GIB`` or ``SCENARIOS_DISK_LIMIT_GIB`` is set but not a positive finite
        number.
    """
    import psutil

    mem, _ = _given(memory_gib, "SCENARIOS_MEMORY_LIMIT_GIB")
    if mem is None and performance.get("memory_limit_gib") is not None:
        mem = float(performance["memory_limit_gib"])
    if mem is not None:
        memory, memory_source = int(mem * GIB), f"{mem:g} GiB"
    else:
        fraction = float(performance.get("memory_limit_fraction", 0.8))
        available = psutil.virtual_memory().available
        memory, memory_source = int(fraction * available), f"{fraction:g} of the {available / GIB:.1f} GiB available"
    dsk, _ = _given(disk_gib, "SCENARIOS_DISK_LIMIT_GIB")
    if dsk is None and performance.get("disk_limit_gib") is not None:
        dsk = float(performance["disk_limit_gib"])
    if dsk is not None:
        disk, disk_source = int(dsk * GIB), f"{dsk:g} GiB"
    elif is_remote(output_dir):  # an object store has no free-space figure: bounded only by an explicit limit
        disk, disk_source = sys.maxsize, "no limit on an object store unless one is set"
    else:
        existing = Path(output_dir)
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        free = shutil.disk_usage(existing).free
        fraction = float(performance.get("disk_limit_fraction", 0.9))
        disk, disk_source = int(fraction * free), f"{fraction:g} of the {free / GIB:.1f} GiB free there"
    return Limits(memory, disk, memory_source, disk_source)


def _gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB" if n >= 0.1 * GIB else f"{n / MIB:.0f} MiB"


def refusal(est: Estimate, lim: Limits, output_dir: Path) -> str | None:
    """The one line refusing a request that does not fit (None when it fits): for memory and disk each, the
    estimate and what drives it, the limit and where it comes from, and the setting that raises it.

    Parameters
    ----------
    est : Estimate
        The request's estimate (:func:`estimate`).
    lim : Limits
        Its limits (:func:`limits`).
    output_dir : Path
        The library's location, named in the disk part.

    Returns
    -------
    str or None
        The refusal line, None when both estimates are within their limits.
    """
    problems = []
    if est.memory > lim.memory:
        problems.append(f"needs about {_gib(est.memory)} of memory (largest: {est.memory_driver}), above the limit of "
                        f"{_gib(lim.memory)} ({lim.memory_source}); raise it with {MEMORY_SETTING}")
    if est.disk > lim.disk:
        problems.append(f"needs about {_gib(est.disk)} of disk in {output_dir} (largest: {est.disk_driver}), above the "
                        f"limit of {_gib(lim.disk)} ({lim.disk_source}); raise it with {DISK_SETTING}")
    if not problems:
        return None
    less = ("or read less (a smaller --market-data source)" if est.memory_driver.startswith("loading") and
            est.memory > lim.memory else
            "or ask for less (fewer --num-scenarios or --symbols, --no-save-timeseries, one --severity)")
    return "the request " + "; and ".join(problems) + "; " + less
