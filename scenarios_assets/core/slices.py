"""One family at one severity, written as it is produced: a *slice* of the library.

A family step runs its :class:`~scenarios_assets.core.scenario.ScenarioStream` through
:func:`write_slice`: each chunk of scenarios is checked, its time series and risk metrics are written as
Parquet parts and its JSON records appended, then the chunk is dropped. What Dagster keeps is the
:class:`SliceManifest` (counts, checks, set metadata, where the files are), never the paths themselves.

A slice directory (staging, then inside a build under ``slices/<family>/<severity>/`` and the two
datasets)::

    slice.json            the manifest (written last: a slice without it is incomplete)
    records.jsonl         one scenario record (DESIGN.md section 4) per line, in scenario order
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

from scenarios_assets.core.metrics import chunk_metrics, metrics_table
from scenarios_assets.core.scenario import Scenario, ScenarioStream, portfolio_returns
from scenarios_assets.core.storage import timeseries_table, write_timeseries_part
from scenarios_assets.core.validation import SetStats, consume

MANIFEST_FILE = "slice.json"
RECORDS_FILE = "records.jsonl"
TIMESERIES_PARTS = "timeseries"
METRICS_PARTS = "metrics"
PORTFOLIO_PARTS = "portfolio"
DIGEST_ROWS = 50  # scenarios listed in the family asset's metadata table


@dataclass
class SliceManifest:
    """What a family step hands on: a small description of the slice it wrote (or, for a dry run, only
    checked). ``path`` is the staging directory (None for a dry run); ``validation`` the set checks."""

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
        return [name for name, res in self.validation.items() if not res["passed"]]

    @property
    def blocking_failures(self) -> list[str]:
        return [name for name, res in self.validation.items() if res["blocking"] and not res["passed"]]

    @property
    def key(self) -> str:
        return f"{self.family}/{self.severity}"

    def to_json(self) -> dict:
        """The manifest as written to ``slice.json`` (no staging path, no timing: those are run facts)."""
        doc = asdict(self)
        doc.pop("path")
        doc.pop("generation_seconds")
        doc["regime_labels"] = sorted(self.regime_labels)
        return doc

    @classmethod
    def from_json(cls, doc: dict, path: str | None) -> SliceManifest:
        doc = dict(doc)
        doc["regime_labels"] = set(doc.get("regime_labels") or ())
        return cls(path=path, **doc)


@dataclass(frozen=True)
class SliceProgress:
    """How far a family step is: ``done`` scenarios checked (and written, unless a dry run) of ``total`` (None
    when the family does not know its count before it has generated them), ``rows`` time-series rows written,
    ``seconds`` since :func:`write_slice` started. :meth:`message` is the one-line form a step logs (the
    command line reads it back from the run's event log with :meth:`parse` to draw its progress bar)."""

    family: str
    severity: str
    done: int
    total: int | None
    rows: int
    seconds: float

    _PATTERN = re.compile(r"^progress (?P<family>\w+)\[(?P<severity>\w+)\]: (?P<done>\d+)(?: of (?P<total>\d+))? "
                          r"scenarios, (?P<rows>\d+) rows, (?P<seconds>\d+(?:\.\d+)?) s$")

    def message(self) -> str:
        of = f" of {self.total}" if self.total is not None else ""
        return f"progress {self.family}[{self.severity}]: {self.done}{of} scenarios, {self.rows} rows, {self.seconds:.1f} s"

    @classmethod
    def parse(cls, text: str) -> SliceProgress | None:
        """The progress a :meth:`message` line describes; None for any other text."""
        match = cls._PATTERN.match(text or "")
        if match is None:
            return None
        total = match["total"]
        return cls(match["family"], match["severity"], int(match["done"]), int(total) if total else None,
                   int(match["rows"]), float(match["seconds"]))


def read_manifest(directory: Path) -> SliceManifest:
    """The manifest of a slice directory (staging or inside a build)."""
    return SliceManifest.from_json(json.loads((directory / MANIFEST_FILE).read_text()), str(directory))


class _SliceFiles:
    """Writes the chunks of one slice into its directory (nothing at all for a dry run)."""

    def __init__(self, directory: Path | None, save_timeseries: bool):
        self.directory = directory
        self.save_timeseries = save_timeseries and directory is not None
        self.rows = 0
        self.parts = 0
        self.digest_rows: list[dict] = []
        self.types: Counter = Counter()
        self.names: set[str] = set()
        self.windows: set[tuple[str, str]] = set()
        self.symbols: set[str] = set()
        self.coverage: list[float] = []
        self.first: str | None = None
        self.last: str | None = None
        self._records = open(directory / RECORDS_FILE, "w") if directory is not None else None

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
                (directory / kind).mkdir(exist_ok=True)
                pq.write_table(table, directory / kind / name, compression="zstd")
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
    chunk (``scenario.portfolio_returns``), one row per scenario and date."""
    ids = pa.array([s.id for s in chunk], pa.string())
    lengths = np.array([len(s.dates) for s in chunk], dtype=np.int64)
    codes = np.repeat(np.arange(len(chunk), dtype=np.int32), lengths)
    return pa.table({
        "scenario_id": pa.DictionaryArray.from_arrays(pa.array(codes), ids),
        "date": pa.array(np.concatenate([s.dates for s in chunk]).astype("datetime64[D]")),
        "returns": pa.array(np.concatenate([portfolio_returns(s.returns) for s in chunk])),
    })


def write_slice(stream: ScenarioStream, directory: Path | None, save_timeseries: bool = True,
                family_config_hash: str = "", progress: Callable[[SliceProgress], None] | None = None) -> SliceManifest:
    """Run ``stream`` and write its slice into ``directory`` (a fresh staging directory; None: a dry run
    that checks everything and writes nothing). Memory holds one chunk of paths at a time. ``progress``,
    when given, is called after each chunk is checked and written, with the scenarios done so far.

    Returns the manifest, also written to ``directory/slice.json`` as the last file (the completion mark).
    Raises whatever the family raises (bad input: ``ScenarioInputError``); a half-written directory is
    left for :func:`~scenarios_assets.core.builds.clean_staging`."""
    started = time.perf_counter()
    files = _SliceFiles(directory, save_timeseries)
    done = 0

    def on_chunk(chunk: list[Scenario]) -> None:
        nonlocal done
        files(chunk)
        done += len(chunk)
        if progress is not None:
            progress(SliceProgress(stream.family, stream.severity, done, stream.size, files.rows,
                                   time.perf_counter() - started))

    try:
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


def _jsonable(value):
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (set, tuple)):
        return sorted(value) if isinstance(value, set) else list(value)
    if isinstance(value, pa.Scalar):
        return value.as_py()
    return str(value)
