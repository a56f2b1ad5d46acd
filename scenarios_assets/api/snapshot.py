"""One build of the library, parsed once: builds never change after they are published, so what is read from
one (records, summaries, time-series part footers, metrics) is cached with it."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from scenarios_assets.api.errors import ApiError
from scenarios_assets.api.models import ScenarioSummary
from scenarios_assets.core.library.builds import METRICS_FILE, REPORT_FILE, TIMESERIES_FILE, METADATA_FILE
from scenarios_assets.core.library.report import CHART_PREFIX
from scenarios_assets.core.library.storage import TIMESERIES_SCHEMA, TimeseriesPart
from scenarios_assets.core.library.store import is_remote

_MISSING = object()
NO_ROWS = np.empty(0, np.int64)
METRICS_DROP = ("scenario_id", "scenario_name", "family", "scenario_type", "severity")


@dataclasses.dataclass(frozen=True)
class _SliceMetrics:
    table: pa.Table  # symbol and metric columns
    rows: dict[str, np.ndarray]  # scenario id -> its rows in ``table``


class Snapshot:
    """One build, parsed once. Builds never change after they are published, so what is read from one is
    cached with it: the records and their summaries, the time-series parts of each slice (footer and row-group
    ranges), the metrics of each slice."""

    def __init__(self, key: str, path: Path, document: dict):
        self.key, self.path, self.document = key, path, document
        self.legacy = key.startswith("legacy:")
        self.records: list[dict] = list(document["scenarios"])
        self.by_id = {r["id"]: r for r in self.records}
        self.summaries = [summary(r) for r in self.records]
        self.build_id = str((document.get("run") or {}).get("build_id") or (path.name if key == path.name else ""))
        self.generated_at = str(document.get("generated_at", ""))
        self.data_version = str(document.get("data_version", ""))
        self.config_hash = str(document.get("config_hash", ""))
        self.headers = {"X-Catalog-Generated-At": self.generated_at, "X-Scenarios-Build": self.build_id}
        # Written with time series? The families' row counts say so (a build being deleted may have lost its
        # directories already); a legacy document without them: the files.
        rows = [entry.get("rows") for entry in (document.get("families") or {}).values() if isinstance(entry, dict)]
        self.has_timeseries = any(rows) if rows and None not in rows else (path / TIMESERIES_FILE).exists()
        self._lock = threading.Lock()
        self._parts: dict[tuple, list[TimeseriesPart]] = {}
        self._metrics: dict[tuple, _SliceMetrics] = {}

    @property
    def provenance(self) -> dict[str, str]:
        return {"build_id": self.build_id, "generated_at": self.generated_at}

    def alive(self) -> bool:
        return (self.path / METADATA_FILE).exists()

    def ensure_alive(self) -> None:
        """FileNotFoundError when the build was deleted (pruned) since it was resolved."""
        if not self.alive():
            raise FileNotFoundError(f"build '{self.build_id}' was deleted")

    def timeseries(self, record: dict, symbols: list[str] | None) -> pa.Table:
        """The rows of one scenario (and ``symbols``): its slice's parts only, the row groups that hold it only."""
        if not self.has_timeseries:
            raise ApiError(404, "this catalog was built without time series (--no-save-timeseries)")
        parts = self._cached(self._parts, _slice_key(record),
                             lambda: [TimeseriesPart.read(p, exclude=("scenario_name",)) for p in self._slice_files(TIMESERIES_FILE, record)])
        tables = [t for t in (part.rows(record["id"], symbols) for part in parts) if t is not None]
        if not tables:
            schema = parts[0].metadata.schema.to_arrow_schema() if parts else TIMESERIES_SCHEMA
            return pa.schema([f for f in schema if f.name != "scenario_name"]).empty_table()
        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]

    def metrics(self, record: dict) -> list[dict] | None:
        """Per-symbol rows of the build's scenario_metrics.parquet for one scenario (None: not in this build)."""
        if not self.has_timeseries or (self.legacy and not (self.path / METRICS_FILE).exists()):
            return None
        metrics = self._cached(self._metrics, _slice_key(record), lambda: self._read_metrics(record))
        rows = metrics.table.take(metrics.rows.get(record["id"], NO_ROWS)).to_pylist()
        return [{k: _plain(v) for k, v in row.items()} for row in rows]

    def _read_metrics(self, record: dict) -> _SliceMetrics:
        parts = []
        for path in self._slice_files(METRICS_FILE, record):
            with contextlib.ExitStack() as stack:
                source = stack.enter_context(pq.ParquetFile(stack.enter_context(path.open("rb")) if is_remote(path) else path,
                                                            memory_map=not is_remote(path)))
                names = source.schema_arrow.names
                parts.append(source.read(columns=[c for c in names if c == "scenario_id" or c not in METRICS_DROP]))
        if not parts:
            return _SliceMetrics(pa.table({}), {})
        table = pa.concat_tables(parts, promote_options="default") if len(parts) > 1 else parts[0]
        ids = table["scenario_id"].combine_chunks()
        ids = ids if pa.types.is_dictionary(ids.type) else ids.dictionary_encode()
        codes = ids.indices.to_numpy(zero_copy_only=False)
        order = np.argsort(codes, kind="stable")  # each scenario's rows, in file order
        bounds = np.searchsorted(codes[order], np.arange(len(ids.dictionary) + 1))
        rows = {sid: order[bounds[i]:bounds[i + 1]] for i, sid in enumerate(ids.dictionary.to_pylist())}
        return _SliceMetrics(table.drop_columns([c for c in METRICS_DROP if c in table.column_names]), rows)

    def open_chart(self, chart: str):
        """The report's chart ``chart`` (``scenario_report_<chart>.png`` of the build)."""
        try:
            return (self.path / f"{CHART_PREFIX}{chart}.png").open("rb")
        except FileNotFoundError:
            self.ensure_alive()
            raise ApiError(404, f"no chart '{chart}' in build {self.build_id or self.path} (the report's charts follow "
                                "the families the build holds)") from None

    def open_report(self):
        try:
            return (self.path / REPORT_FILE).open("rb")
        except FileNotFoundError:
            self.ensure_alive()
            raise ApiError(404, f"no {REPORT_FILE} in build {self.build_id or self.path} (it is written by each "
                                "catalog build; see the catalog run's log)") from None

    def _slice_files(self, dataset: str, record: dict) -> list[Path]:
        """The Parquet parts of the record's slice in a dataset of the build (partition pruning by directory
        name); a legacy directory's single file."""
        root = self.path / dataset
        if root.is_file():
            return [root]
        files = sorted((root / f"family={record['family']}" / f"severity={record['severity']}").glob("part-*.parquet"))
        entry = (self.document.get("families") or {}).get(f"{record['family']}/{record['severity']}") or {}
        if not files and (entry.get("rows") or not self.alive()):  # a build being deleted
            raise FileNotFoundError(f"no parts of slice {record['family']}/{record['severity']} in '{root}'")
        return files

    def _cached(self, cache: dict, key, load):
        value = cache.get(key, _MISSING)
        if value is _MISSING:
            with self._lock:
                value = cache.get(key, _MISSING)
                if value is _MISSING:
                    value = cache[key] = load()
        return value


def _slice_key(record: dict) -> tuple[str, str]:
    return record.get("family", ""), record.get("severity", "")




def _plain(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value



def active(record: dict) -> bool:
    """Every blocking validation check of the scenario passed."""
    return all(v.get("passed", False) for v in (record.get("validation") or {}).values() if v.get("blocking"))


def summary(record: dict) -> dict:
    """The record's fields of ScenarioSummary (the list's items)."""
    keys = ScenarioSummary.model_fields
    return {k: record.get(k) for k in keys if k != "active"} | {"active": active(record)}
