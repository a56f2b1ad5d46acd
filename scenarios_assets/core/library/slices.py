"""One family at one severity, written as it is produced: a *slice* of the library.

A family step runs its :class:`~scenarios_assets.core.models.scenario.ScenarioStream` through
:func:`write_slice`: each chunk of scenarios is checked, its time series and risk metrics are written as
Parquet parts and its JSON records appended, then the chunk is dropped. What Dagster keeps is the
:class:`SliceManifest` (counts, checks, set metadata, where the files are), never the paths themselves.

A slice directory (staging, then inside a build under ``slices/<family>/<severity>/`` and the two
datasets)::

    slice.json            the manifest (written last: a slice without it is incomplete)
    records.jsonl         one scenario record (DESIGN.md section 4) per line, in scenario order (chunks run
                          as cluster tasks write records-part-<k>.jsonl, concatenated in order at the end)
    timeseries/part-00000.parquet ...   rows of the chunk, TIMESERIES_SCHEMA (with save_timeseries)
    metrics/part-00000.parquet ...      per scenario x symbol risk metrics (with save_timeseries)
    portfolio/part-00000.parquet ...    the equal-weight portfolio's daily return per scenario and date
                                        (the report's path charts; with save_timeseries)
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from scenarios_assets.core.library.metrics import chunk_metrics, metrics_table
from scenarios_assets.core.models.scenario import Scenario, ScenarioStream, portfolio_returns
from scenarios_assets.core.library.storage import timeseries_table, write_timeseries_part
from scenarios_assets.core.library.store import is_remote
from scenarios_assets.core.library.validation import SetStats, consume, finish_set

MANIFEST_FILE = "slice.json"
RECORDS_FILE = "records.jsonl"
TIMESERIES_PARTS = "timeseries"
METRICS_PARTS = "metrics"
PORTFOLIO_PARTS = "portfolio"
DIGEST_ROWS = 50  # scenarios listed in the family asset's metadata table


@dataclass
class SliceManifest:
    """What a family step hands on: a small description of the slice it wrote (or, for a dry run, only
    checked). ``path`` is the staging directory (None for a dry run); ``validation`` the set checks.

    Parameters
    ----------
    family, severity : str
        The slice.
    data_version, config_hash : str
        The market-data version and config hash it was built with.
    slice_id : str
        The staging directory's name (``"dry-run"`` for a dry run).
    path : str or None
        The slice directory, None for a dry run.
    count : int
        Scenarios in the slice.
    rows : int
        Time-series rows written (0 without time series).
    skipped : list of dict
        ``{"name", "reason"}`` of what could not be built.
    validation : dict
        Set check name -> result (:func:`~scenarios_assets.core.library.validation.result`).
    metadata : dict
        The set's metadata.
    scenario_ids : list of str
        Ids in scenario order.
    regime_labels : set of str, default set()
        Distinct ``regime`` labels of the scenarios.
    digest : dict, default {}
        Monitoring figures (types, diversity, coverage, return and drawdown ranges, first scenarios).
    timeseries : bool, default False
        Whether the Parquet parts were written.
    family_config_hash : str, default ""
        ``config.section_hash`` of the family's section: what staleness compares.
    generation_seconds : float, default 0.0
        Wall time of the step, seconds (not written to ``slice.json``).
    """

    family: str
    severity: str
    data_version: str
    config_hash: str
    slice_id: str
    path: str | None
    count: int
    rows: int
    skipped: list[dict]
    validation: dict
    metadata: dict
    scenario_ids: list[str]
    regime_labels: set[str] = field(default_factory=set)
    digest: dict = field(default_factory=dict)
    timeseries: bool = False
    family_config_hash: str = ""  # config.section_hash of the family's section: what staleness compares
    generation_seconds: float = 0.0

    def __len__(self) -> int:
        return self.count

    @property
    def failed_checks(self) -> list[str]:
        """Names of the set checks that did not pass."""
        return [name for name, res in self.validation.items() if not res["passed"]]

    @property
    def blocking_failures(self) -> list[str]:
        """Names of the blocking set checks that did not pass (downstream assets do not run)."""
        return [name for name, res in self.validation.items() if res["blocking"] and not res["passed"]]

    @property
    def key(self) -> str:
        """``"family/severity"``."""
        return f"{self.family}/{self.severity}"

    def to_json(self) -> dict:
        """The manifest as written to ``slice.json`` (no staging path, no timing: those are run facts).

        Returns
        -------
        dict
            The fields without ``path`` and ``generation_seconds``; ``regime_labels`` as a sorted list.
        """
        doc = asdict(self)
        doc.pop("path")
        doc.pop("generation_seconds")
        doc["regime_labels"] = sorted(self.regime_labels)
        return doc

    @classmethod
    def from_json(cls, doc: dict, path: str | None) -> SliceManifest:
        """The manifest of a ``slice.json`` document (:meth:`to_json`).

        Parameters
        ----------
        doc : dict
            The document.
        path : str or None
            Where the slice's directory is now.

        Returns
        -------
        SliceManifest
            The manifest (``generation_seconds`` 0.0).
        """
        doc = dict(doc)
        doc["regime_labels"] = set(doc.get("regime_labels") or ())
        return cls(path=path, **doc)


@dataclass(frozen=True)
class SliceProgress:
    """How far a family step is: ``done`` scenarios checked (and written, unless a dry run) of ``total`` (None
    when the family does not know its count before it has generated them), ``rows`` time-series rows written,
    ``seconds`` since :func:`write_slice` started. :meth:`message` is the one-line form a step logs (the
    command line reads it back from the run's event log with :meth:`parse` to draw its progress bar).

    Parameters
    ----------
    family, severity : str
        The slice.
    done : int
        Scenarios checked so far.
    total : int or None
        Scenarios the stream will yield, None when unknown.
    rows : int
        Time-series rows written so far.
    seconds : float
        Wall time since the start, seconds.
    """

    family: str
    severity: str
    done: int
    total: int | None
    rows: int
    seconds: float

    _PATTERN = re.compile(r"^progress (?P<family>\w+)\[(?P<severity>\w+)\]: (?P<done>\d+)(?: of (?P<total>\d+))? "
                          r"scenarios, (?P<rows>\d+) rows, (?P<seconds>\d+(?:\.\d+)?) s$")

    def message(self) -> str:
        """The one-line log form; :meth:`parse` reads it back.

        Returns
        -------
        str
            ``progress <family>[<severity>]: <done>[ of <total>] scenarios, <rows> rows, <seconds> s``
            (seconds to 0.1).
        """
        of = f" of {self.total}" if self.total is not None else ""
        return f"progress {self.family}[{self.severity}]: {self.done}{of} scenarios, {self.rows} rows, {self.seconds:.1f} s"

    @classmethod
    def parse(cls, text: str) -> SliceProgress | None:
        """The progress a :meth:`message` line describes.

        Parameters
        ----------
        text : str
            A log message (None or empty is accepted).

        Returns
        -------
        SliceProgress or None
            The progress (``seconds`` at the message's 0.1 s precision), None for any other text.
        """
        match = cls._PATTERN.match(text or "")
        if match is None:
            return None
        total = match["total"]
        return cls(match["family"], match["severity"], int(match["done"]), int(total) if total else None,
                   int(match["rows"]), float(match["seconds"]))


def chunk_records_name(k: int) -> str:
    """The records file of chunk ``k`` of a slice whose chunks ran as cluster tasks.

    Parameters
    ----------
    k : int
        The chunk's index.

    Returns
    -------
    str
        ``records-part-<k, 5 digits>.jsonl``.
    """
    return f"records-part-{k:05d}.jsonl"


def read_manifest(directory: Path) -> SliceManifest:
    """The manifest of a slice directory (staging or inside a build).

    Parameters
    ----------
    directory : Path
        The slice directory (local or fsspec).

    Returns
    -------
    SliceManifest
        The manifest of its ``slice.json``, ``path`` set to ``directory``.

    Raises
    ------
    FileNotFoundError
        When the slice has no ``slice.json`` (an incomplete slice).
    """
    return SliceManifest.from_json(json.loads((directory / MANIFEST_FILE).read_text()), str(directory))


class _SliceFiles:
    """Writes the chunks of one slice into its directory (nothing at all for a dry run). ``part``: the number of
    the first Parquet part it writes; ``records``: the records file's name (a chunk task writes its own)."""

    def __init__(self, directory: Path | None, save_timeseries: bool, part: int = 0, records: str = RECORDS_FILE):
        self.directory = directory
        self.save_timeseries = save_timeseries and directory is not None
        self.rows = 0
        self.parts = part
        self.digest_rows: list[dict] = []
        self.types: Counter = Counter()
        self.names: set[str] = set()
        self.windows: set[tuple[str, str]] = set()
        self.symbols: set[str] = set()
        self.coverage: list[float] = []
        self.first: str | None = None
        self.last: str | None = None
        self._records = (directory / records).open("w") if directory is not None else None

    def __call__(self, chunk: list[Scenario]) -> None:
        for s in chunk:
            self._digest(s)
            if self._records is not None:
                self._records.write(json.dumps(s.record(), allow_nan=False, separators=(",", ":")) + "\n")
        directory = self.directory
        if self.save_timeseries and chunk and directory is not None:
            name = f"part-{self.parts:05d}.parquet"
            table = timeseries_table(chunk)
            self.rows += table.num_rows
            write_timeseries_part(table, directory / TIMESERIES_PARTS / name)
            del table
            for kind, table in ((METRICS_PARTS, metrics_table(chunk_metrics(chunk))), (PORTFOLIO_PARTS, portfolio_table(chunk))):
                if not is_remote(directory):
                    (directory / kind).mkdir(exist_ok=True)
                with (directory / kind / name).open("wb") as fh:
                    pq.write_table(table, fh, compression="zstd")
            self.parts += 1

    def _digest(self, s: Scenario) -> None:
        self.types[s.scenario_type] += 1
        self.names.add(s.name)
        self.windows.add((s.start_date, s.end_date))
        self.symbols.update(s.symbols)
        cover = s.validation.get("coverage", {}).get("value")
        if cover is not None:
            self.coverage.append(cover)
        self.first = min(self.first or s.start_date, s.start_date)
        self.last = max(self.last or s.end_date, s.end_date)
        if len(self.digest_rows) < DIGEST_ROWS:
            self.digest_rows.append({
                "name": s.name, "start": s.start_date, "end": s.end_date, "symbols": len(s.symbols),
                "total_return": round(s.expected_return, 4), "max_drawdown": round(s.max_drawdown, 4),
                "vol_multiplier": round(s.volatility_multiplier, 2),
            })

    def close(self) -> None:
        if self._records is not None:
            self._records.close()
            self._records = None  # closed: the object can travel back from a cluster task

    def merge(self, other: _SliceFiles) -> None:
        """Fold in the figures of the chunk that follows (``other``, closed), as if this object had written it."""
        self.rows += other.rows
        self.parts = max(self.parts, other.parts)
        self.types += other.types
        self.names |= other.names
        self.windows |= other.windows
        self.symbols |= other.symbols
        self.coverage += other.coverage
        firsts = [d for d in (self.first, other.first) if d]
        lasts = [d for d in (self.last, other.last) if d]
        self.first, self.last = (min(firsts) if firsts else None), (max(lasts) if lasts else None)
        self.digest_rows += other.digest_rows[: max(0, DIGEST_ROWS - len(self.digest_rows))]

    def append_records(self, name: str) -> None:
        """Append the records file ``name`` of a chunk to this slice's records (in chunk order), then delete it."""
        if self._records is None or self.directory is None:
            return
        path = self.directory / name
        with path.open() as fh:
            while block := fh.read(1 << 20):
                self._records.write(block)
        path.unlink()

    def digest(self, stats: SetStats) -> dict:
        """Figures for monitoring (the family asset's metadata in the UI): types, diversity, coverage."""
        returns, drawdowns = np.array(stats.total_returns), np.array(stats.max_drawdowns)
        return {
            "scenario_types": dict(self.types),
            "unique_names": len(self.names),
            "symbols_covered": len(self.symbols),
            "min_coverage": min(self.coverage, default=0.0),
            "mean_coverage": round(float(np.mean(self.coverage)), 4) if self.coverage else 0.0,
            "unique_date_ranges": len(self.windows),
            "date_range": f"{self.first}..{self.last}" if self.first else "none",
            "return_dispersion": round(float(returns.std()), 6) if returns.size else 0.0,
            "return_range": [round(float(returns.min()), 6), round(float(returns.max()), 6)] if returns.size else [],
            "max_drawdown_range": [round(float(drawdowns.min()), 6), round(float(drawdowns.max()), 6)]
            if drawdowns.size else [],
            "scenarios": self.digest_rows,
        }


def portfolio_table(chunk: list[Scenario]) -> pa.Table:
    """(scenario_id, date, returns): the equal-weight portfolio's daily simple return of each scenario of a
    chunk (``scenario.portfolio_returns``), one row per scenario and date.

    Parameters
    ----------
    chunk : list of Scenario
        The chunk's scenarios.

    Returns
    -------
    pyarrow.Table
        ``scenario_id`` (dictionary string), ``date`` (date32) and ``returns`` (float64, daily simple return
        of the equal-weight, daily rebalanced portfolio, a fraction).
    """
    ids = pa.array([s.id for s in chunk], pa.string())
    lengths = np.array([len(s.dates) for s in chunk], dtype=np.int64)
    codes = np.repeat(np.arange(len(chunk), dtype=np.int32), lengths)
    return pa.table({
        "scenario_id": pa.DictionaryArray.from_arrays(pa.array(codes), ids),
        "date": pa.array(np.concatenate([s.dates for s in chunk]).astype("datetime64[D]")),
        "returns": pa.array(np.concatenate([portfolio_returns(s.returns) for s in chunk])),
    })


def write_slice(stream: ScenarioStream, directory: Path | None, save_timeseries: bool = True,
                family_config_hash: str = "", progress: Callable[[SliceProgress], None] | None = None,
                client=None) -> SliceManifest:
    """Run ``stream`` and write its slice into ``directory`` (a fresh staging directory, local or on an fsspec
    store; None: a dry run that checks everything and writes nothing). Memory holds one chunk of paths at a
    time. ``progress``, when given, is called after each chunk is checked and written, with the scenarios done
    so far. ``client`` (a ``dask.distributed`` client, optional): a stream with a chunk plan (Monte Carlo,
    bootstrap) runs each chunk as a task on its cluster (:func:`run_chunks_on`); the slice is the same, file
    for file and value for value, as in process.

    Parameters
    ----------
    stream : ScenarioStream
        A family's stream at one severity.
    directory : Path or None
        A fresh staging directory (local or fsspec); None: a dry run.
    save_timeseries : bool, default True
        Write the time-series, metrics and portfolio Parquet parts (records and the manifest are always
        written).
    family_config_hash : str, default ""
        ``config.section_hash`` of the family's section, recorded in the manifest.
    progress : callable ``(SliceProgress) -> None``, optional
        Called after each chunk.
    client : dask.distributed.Client, optional
        Runs a planned stream's chunks on its cluster.

    Returns
    -------
    SliceManifest
        The manifest, also written to ``directory/slice.json`` as the last file (the completion mark).

    Raises
    ------
    ScenarioInputError
        Whatever the family raises for bad input (other errors propagate too); a half-written directory is
        left for :func:`~scenarios_assets.core.library.builds.clean_staging`.
    """
    started = time.perf_counter()
    files = _SliceFiles(directory, save_timeseries)
    done = 0

    def on_chunk(chunk: list[Scenario]) -> None:
        nonlocal done
        files(chunk)
        done += len(chunk)
        report(done)

    def report(count: int, rows: int | None = None) -> None:
        if progress is not None:
            progress(SliceProgress(stream.family, stream.severity, count, stream.size,
                                   files.rows if rows is None else rows, time.perf_counter() - started))

    try:
        if client is not None and stream.plan is not None:
            stats = run_chunks_on(client, stream, files, report)
        else:
            stats = consume(stream, on_chunk)
    finally:
        files.close()
    manifest = SliceManifest(
        family=stream.family, severity=stream.severity, data_version=stream.data_version,
        config_hash=stream.config_hash, slice_id=directory.name if directory is not None else "dry-run",
        path=str(directory) if directory is not None else None, count=len(stats), rows=files.rows,
        skipped=stats.skipped, validation=stats.validation, metadata=stats.metadata, scenario_ids=stats.ids,
        regime_labels=stats.regime_labels, digest=files.digest(stats), timeseries=files.save_timeseries,
        family_config_hash=family_config_hash,
        generation_seconds=time.perf_counter() - started,
    )
    if directory is not None:
        payload = json.dumps(manifest.to_json(), allow_nan=False, default=_jsonable, indent=1)
        (directory / MANIFEST_FILE).write_text(payload)
    return manifest


@dataclass
class ChunkResult:
    """What a chunk task sends back (small: no paths): its index, the statistics of its scenarios, the family's
    side result, the figures of the files it wrote, and its seconds (generation, checks and writing).

    Parameters
    ----------
    index : int
        The chunk's index in the plan.
    stats : SetStats
        The statistics of its scenarios (``offset``: its first scenario's index in the set).
    side : object
        The family's side result (folded in by the plan's ``absorb``).
    files : _SliceFiles
        The figures of the files it wrote (closed).
    seconds : float
        Wall time of the task, seconds.
    """

    index: int
    stats: SetStats
    side: object
    files: _SliceFiles
    seconds: float


def chunk_task(model, run, part: list[int], index: int, offset: int, directory: Path | None, save_timeseries: bool,
               family: str, severity: str, correlation_paths: int | None) -> ChunkResult:
    """One chunk of a stream's :class:`~scenarios_assets.core.models.scenario.ChunkPlan`, run anywhere (a cluster
    worker): generate the scenarios ``part`` (``run(model, part)``), check them, write their Parquet parts
    (``part-<index>``) and records (``records-part-<index>.jsonl``) into the slice ``directory`` (a store every
    worker reaches), and return only the small :class:`ChunkResult`.

    Parameters
    ----------
    model : object
        The plan's calibrated model.
    run : callable ``(model, part) -> (list of Scenario, side)``
        The plan's chunk function.
    part : list of int
        The chunk's scenario indices.
    index : int
        The chunk's index (names its files).
    offset : int
        Index in the set of the chunk's first scenario.
    directory : Path or None
        The slice directory; None: a dry run.
    save_timeseries : bool
        Write the Parquet parts.
    family, severity : str
        The slice.
    correlation_paths : int or None
        As :class:`~scenarios_assets.core.library.validation.SetStats`.

    Returns
    -------
    ChunkResult
        The chunk's statistics, side result and file figures.
    """
    started = time.perf_counter()
    scenarios, side = run(model, part)
    stats = SetStats(family, severity, correlation_paths, offset=offset)
    for s in scenarios:
        stats.add(s)
    files = _SliceFiles(directory, save_timeseries, part=index, records=chunk_records_name(index))
    try:
        files(scenarios)
    finally:
        files.close()
    return ChunkResult(index, stats, side, files, time.perf_counter() - started)


def run_chunks_on(client, stream: ScenarioStream, files: _SliceFiles, report: Callable[[int, int], None]) -> SetStats:
    """Run the chunks of ``stream.plan`` as tasks on ``client``'s cluster: the model is scattered to every
    worker once (never refitted per chunk or per worker), every chunk is submitted at once and writes its own
    parts; the results are merged in chunk order (statistics, side results, file figures, records), so the
    set's statistics are exactly those of an in-process run. ``report(scenarios, rows)`` after each finished
    chunk (the totals so far).

    Parameters
    ----------
    client : dask.distributed.Client
        The cluster's client.
    stream : ScenarioStream
        A stream with a chunk plan.
    files : _SliceFiles
        The slice's writer; the chunks' figures and records are merged into it.
    report : callable ``(int, int) -> None``
        Progress callback.

    Returns
    -------
    SetStats
        The completed statistics of the set (:func:`~scenarios_assets.core.library.validation.finish_set`).

    Raises
    ------
    ValueError
        When the stream has no chunk plan.
    """
    from distributed import as_completed

    plan = stream.plan
    if plan is None:
        raise ValueError(f"{stream.family} {stream.severity}: a stream without a chunk plan runs in process")
    model = client.scatter(plan.model, broadcast=True, hash=False)
    futures, offset = [], 0
    for k, part in enumerate(plan.parts):
        futures.append(client.submit(chunk_task, model, plan.run, part, k, offset, files.directory,
                                     files.save_timeseries, stream.family, stream.severity, stream.correlation_paths,
                                     pure=False, key=f"chunk-{stream.family}-{stream.severity}-{k:05d}-{id(files):x}"))
        offset += len(part)
    results: dict[int, ChunkResult] = {}
    stats = SetStats(stream.family, stream.severity, stream.correlation_paths)
    try:
        for _future, result in as_completed(futures, with_results=True):
            results[result.index] = result
            report(sum(len(r.stats) for r in results.values()), sum(r.files.rows for r in results.values()))
    finally:
        for future in futures:
            future.cancel()
    for k in range(len(plan.parts)):
        result = results.pop(k)
        stats.merge(result.stats)
        if plan.absorb is not None:
            plan.absorb(result.side)
        files.merge(result.files)
        if files.directory is not None:
            files.append_records(chunk_records_name(k))
    return finish_set(stream, stats)


def _jsonable(value):
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (set, tuple)):
        return sorted(value) if isinstance(value, set) else list(value)
    if isinstance(value, pa.Scalar):
        return value.as_py()
    return str(value)
