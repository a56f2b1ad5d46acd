"""REST API over the scenario catalog: ``scenarios serve --host 127.0.0.1 --port 8000 [--output-dir DIR]``.

Reads come from the builds of the output directory (:mod:`scenarios_assets.core.library.builds`): a request
resolves the ``current`` link once (or takes the kept build named by ``?build=``) and reads everything
from that one build, whose id every answer carries (header ``X-Scenarios-Build``, ``build_id`` beside
``generated_at`` in bodies). Builds never change once published, so each is parsed once and cached by
its id: the metadata document, the footers and row-group ranges of its time-series parts, its metrics.
A scenario's time series is read from its slice's parts only (the record's family and severity) and from
the row groups whose scenario-id range holds it. An old build pruned while a request reads it is read
again from the new current build. ``POST /scenarios/generate`` validates a generation request exactly as the
CLI validates its flags and runs the CLI's plan (market data, each severity's families, the catalog) as
Dagster runs on the project's instance (``DAGSTER_HOME``), in a background process; the runs carry the
tag ``scenarios/request_id`` so the Dagster UI and ``GET /runs/{run_id}`` follow them.

Errors are JSON ``{"status", "error", "message"[, "details"]}``: 400 for a body that is not JSON, 404 for
an unknown id or build, 413 for a body above ``MAX_BODY_BYTES``, 422 for bad parameters, 503 while there is
no catalog; never a stack trace, and no server file path (``_redact``). Links (``next``, ``status_url``,
``Location``) are paths relative to the server's root, or absolute under a configured public base URL
(``--public-url`` / ``$SCENARIOS_PUBLIC_URL``), never built from the request's ``Host`` header.
"""

from __future__ import annotations

import dataclasses
import fcntl
import contextlib
import gc
import io
import json
import logging
import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from fastapi import Body, FastAPI, Path as PathParam, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints
from starlette.exceptions import HTTPException as StarletteHTTPException

from scenarios_assets.core.library import builds
from scenarios_assets.core.library.builds import METADATA_FILE, METRICS_FILE, REPORT_FILE, TIMESERIES_FILE
from scenarios_assets.core.models.errors import ScenarioInputError
from scenarios_assets.core.library.atomic import atomic_write_text
from scenarios_assets.core.data.dates import parse_iso_date
from scenarios_assets.core.families.registry import CLI_TYPES, FAMILIES
from scenarios_assets.core.data.paths import DEFAULT_DAGSTER_HOME, DEFAULT_OUTPUT_DIR
from scenarios_assets.core.library.report import CHART_PREFIX
from scenarios_assets.core.models.severity import SEVERITIES
from scenarios_assets.core.library.storage import TIMESERIES_SCHEMA, TimeseriesPart
from scenarios_assets.core.library.store import is_remote, location

log = logging.getLogger("scenarios_assets.api")

REQUEST_TAG = "scenarios/request_id"
EXAMPLE_ID = "historical.covid_crash.severe"
MEDIA = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}
ACCEPT = {
    "application/json": "json",
    "text/csv": "csv",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
    "application/parquet": "parquet",
    "application/octet-stream": "parquet",
    "application/*": "json",
    "text/*": "csv",
    "*/*": "json",
}
BATCH_ROWS = 16_384
# Largest request body accepted (413 beyond): a generation request is a few kB (1,000 symbols ~ 25 kB).
MAX_BODY_BYTES = 64 * 1024
# Absolute server paths in an answer's text are cut to their last component (``_redact``); the API's own
# routes (e.g. "follow it at /runs/<id>") are links, not server paths, and stay whole.
API_ROUTE_ROOTS = ("runs", "scenarios", "builds", "report", "health", "docs", "openapi.json")
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.~-])/(?!(?:%s)(?:/|\b))(?:[^\s'\"/()]+/)+([^\s'\"/()]*)"
                            % "|".join(re.escape(r) for r in API_ROUTE_ROOTS))


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


# --- reading the builds --------------------------------------------------------------------------------------

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
        self.summaries = [_summary(r) for r in self.records]
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


class CatalogStore:
    """The builds of one output directory. A request resolves ``current`` once (or names a kept build) and
    reads everything from that build; each build is parsed once and cached by its id (immutable, so nothing
    is re-checked). A build deleted under a request (an old one, pruned after a publish) is read again from
    the new current build."""

    MAX_CACHED = 4  # parsed builds held: the current one, and kept ones asked for by id

    def __init__(self, output_dir: str | Path):
        self.output_dir = location(output_dir)  # a local directory or an fsspec URL (core/library/store.py)
        self._lock = threading.Lock()
        self._snapshots: dict[str, Snapshot] = {}  # insertion order = age
        self._headers: dict[str, dict] = {}

    def snapshot(self, build: str | None = None) -> Snapshot:
        """The current build, or the kept build ``build`` (404 naming the kept ones when it is not kept)."""
        for attempt in (1, 2):
            try:
                path = builds.resolve(self.output_dir, build)
            except FileNotFoundError as exc:
                if build:
                    raise ApiError(404, str(exc)) from None
                raise ApiError(503, f"no scenario catalog in '{self.output_dir}' yet: run `scenarios` or "
                                    "POST /scenarios/generate") from None
            try:
                key = path.name if path != self.output_dir else _legacy_key(path)
                return self._snapshots.get(key) or self._load(key, path)
            except FileNotFoundError:  # deleted between resolving and reading
                if build or attempt == 2:
                    raise ApiError(404 if build else 503, self._deleted(path.name)) from None
        raise AssertionError("unreachable")

    def read(self, build: str | None, read: Callable[[Snapshot], Any]) -> tuple[Snapshot, Any]:
        """``read(snapshot)`` of one build, once more on the new current build if that one was deleted meanwhile."""
        for attempt in (1, 2):
            snap = self.snapshot(build)
            try:
                return snap, read(snap)
            except FileNotFoundError as exc:
                if snap.key == builds.current_build_id(self.output_dir):  # never pruned: a damaged build
                    raise ApiError(503, f"build '{snap.build_id}' is incomplete: {exc}") from None
                with self._lock:
                    self._snapshots.pop(snap.key, None)
                if build or attempt == 2:
                    raise ApiError(404 if build else 503, self._deleted(snap.build_id)) from None
                log.info("build %s was deleted while a request read it; reading the current build", snap.build_id)
        raise AssertionError("unreachable")

    def _deleted(self, build_id: str) -> str:
        kept = ", ".join(builds.published_builds(self.output_dir)) or "none"
        return f"build '{build_id}' was deleted while it was read (kept builds: {kept})"

    def _load(self, key: str, path: Path) -> Snapshot:
        with self._lock:
            if key in self._snapshots:
                return self._snapshots[key]
            try:
                with (path / METADATA_FILE).open("rb") as fh:
                    snap = Snapshot(key, path, json.load(fh))
            except (ValueError, KeyError, TypeError, AttributeError):
                raise ApiError(503, f"'{path / METADATA_FILE}' is not a valid scenario catalog") from None
            for gone in [k for k, s in self._snapshots.items() if not s.alive()]:
                del self._snapshots[gone]
            while len(self._snapshots) >= self.MAX_CACHED:  # the oldest loaded first
                del self._snapshots[next(iter(self._snapshots))]
            self._snapshots[key] = snap
            # A parsed build is a few hundred thousand long-lived containers (no reference cycles: freed by
            # reference counting when evicted). Kept out of the cyclic collector's full passes, which would
            # otherwise walk all of them every so often: ~0.1 s pauses per 6,000 scenarios.
            gc.freeze()
            return snap

    def builds(self) -> tuple[str | None, list[dict]]:
        """The current build's id and the kept builds, newest first."""
        current = builds.current_build_id(self.output_dir)
        kept = builds.published_builds(self.output_dir)
        listed = []
        for build_id in reversed(kept):
            header = self._headers.get(build_id)
            if header is None:
                try:
                    header = self._headers[build_id] = self._header(build_id)
                except FileNotFoundError:  # pruned meanwhile
                    continue
            listed.append({**header, "current": build_id == current})
        for gone in set(self._headers) - set(kept):
            self._headers.pop(gone, None)
        return current, listed

    def _header(self, build_id: str) -> dict:
        snap = self._snapshots.get(build_id)
        path = builds.build_path(self.output_dir, build_id) / METADATA_FILE
        doc = snap.document if snap is not None else _metadata_header(path)
        count = len(doc["scenarios"]) if "scenarios" in doc else sum(e["count"] for e in doc["families"].values())
        return {"build_id": build_id, "generated_at": str(doc.get("generated_at", "")),
                "data_version": str(doc.get("data_version", "")), "config_hash": str(doc.get("config_hash", "")),
                "scenario_count": count}


def _legacy_key(out: Path) -> str:
    """A directory written before builds existed changes in place: cached by the metadata file's identity."""
    st = os.stat(out / METADATA_FILE)
    return f"legacy:{st.st_dev}:{st.st_ino}:{st.st_mtime_ns}:{st.st_size}"


def _metadata_header(path: Path) -> dict:
    """scenario_metadata.json without its records: the build's small ``build.json`` (library.write_build
    writes both), else the whole document (a build from before build.json)."""
    header = path.with_name(builds.BUILD_FILE)
    with (header if header.is_file() else path).open("rb") as fh:
        return json.load(fh)


def _plain(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


# --- models (the OpenAPI schema) -------------------------------------------------------------------

class ErrorBody(BaseModel):
    status: int
    error: str
    message: str
    details: list[dict[str, Any]] | None = None


class ValidationResult(BaseModel):
    model_config = ConfigDict(extra="allow")
    passed: bool
    value: float | None = None
    threshold: Any = None
    blocking: bool | None = None
    detail: str | None = None


class ScenarioSummary(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str = Field(examples=[EXAMPLE_ID])
    name: str
    family: str
    scenario_type: str
    severity: str
    start_date: str
    end_date: str
    symbols: list[str]
    num_days: int | None = None
    expected_return: float | None = None
    volatility_multiplier: float | None = None
    max_drawdown: float | None = None
    seed: int | None = None
    active: bool = Field(description="every blocking validation check of the scenario passed")


class ScenarioPage(BaseModel):
    total: int
    offset: int
    limit: int
    count: int
    next: str | None = Field(description="URL of the next page, if any")
    build_id: str
    generated_at: str
    data_version: str
    config_hash: str
    items: list[ScenarioSummary]


class Metrics(BaseModel):
    source: str = Field(description="scenario_metrics.parquet, or catalog_record (computed summary)")
    note: str = ""
    portfolio: dict[str, float | int | None]
    by_symbol: list[dict[str, Any]]


class ScenarioDetail(ScenarioSummary):
    validation: dict[str, ValidationResult]
    metadata: dict[str, Any]
    metrics: Metrics
    build_id: str
    generated_at: str
    data_version: str = Field(description="the data version this scenario's slice was built from")
    config_hash: str = Field(description="the config hash this scenario's slice was built with")
    origin: Literal["new", "carried"] = Field(description="new in this build, or carried over from an earlier one")
    stale: bool = Field(description="carried over from another data version or config of its family")


class CatalogInfo(BaseModel):
    build_id: str
    generated_at: str
    data_version: str
    config_hash: str
    scenario_count: int
    counts: dict[str, dict[str, int]] = Field(description="family -> severity -> scenarios")
    families: dict[str, Any] = Field(description="per family/severity: count, origin, stale, validation, ...")
    files: list[str] = Field(description="the build's files and datasets")


class Health(BaseModel):
    status: Literal["ok"]
    catalog: bool
    build_id: str | None = None
    generated_at: str | None = None


class BuildInfo(BaseModel):
    build_id: str
    generated_at: str
    data_version: str
    config_hash: str
    scenario_count: int
    current: bool


class BuildList(BaseModel):
    current: str | None = Field(description="id of the current build")
    builds: list[BuildInfo] = Field(description="the kept builds, newest first")


BuildParam = Annotated[str | None, Query(
    max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
    description="a kept build (GET /builds); default: the current build")]


Symbol = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9^][A-Za-z0-9._^=-]{0,19}$")]


# YYYY-MM-DD only (the schema's `format: date`), not a number or a timestamp coerced into a date.
IsoDate = Annotated[date, BeforeValidator(parse_iso_date)]


class GenerateRequest(BaseModel):
    """What to generate: the CLI's flags as JSON (lists where the CLI takes one value or `all`)."""

    # Strict: a number is not a date or a boolean, a string not a number (the schema's types, exactly).
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={
        "examples": [{"types": ["historical"], "severities": ["severe"], "symbols": ["SPX", "AAPL"],
                      "start_date": "2015-01-01"}]
    })
    types: list[Literal[CLI_TYPES]] = Field(  # type: ignore[valid-type]
        default=["all"], min_length=1, max_length=len(CLI_TYPES))
    severities: list[Literal["moderate", "severe", "extreme", "all"]] = Field(
        default=["all"], min_length=1, max_length=4)
    num_scenarios: int | None = Field(default=None, ge=1, le=100_000,
                                      description="scenarios per severity for the stochastic families")
    symbols: list[Symbol] | None = Field(default=None, min_length=1, max_length=1000,
                                      description="the universe (default: every symbol in the market data)")
    start_date: IsoDate | None = None
    end_date: IsoDate | None = None
    include_full_cycles: bool = False
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    save_timeseries: bool = True
    dry_run: bool = Field(default=False, description="generate and validate, write no files")


class GenerateAccepted(BaseModel):
    run_id: str
    state: str
    status_url: str
    dagster_ui_url: str | None
    families: list[str]
    severities: list[str]


class DagsterRun(BaseModel):
    run_id: str
    job_name: str
    partition: str | None
    status: str
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    dagster_ui_url: str | None


class RunStatus(BaseModel):
    run_id: str
    kind: Literal["generation", "dagster_run"]
    state: Literal["queued", "running", "success", "failure", "canceled"]
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None
    request: dict[str, Any] | None = None
    families: list[str] | None = None
    severities: list[str] | None = None
    dagster_runs: list[DagsterRun]
    dagster_ui_url: str | None = None


def _error_responses(*codes: int) -> dict:
    text = {400: "Unreadable body (not JSON, or empty)", 404: "Not found", 406: "Not acceptable", 409: "Conflict",
            413: "Body too large", 422: "Invalid parameters", 503: "No catalog yet"}
    return {code: {"model": ErrorBody, "description": text.get(code, "Error")} for code in codes}


# --- generation: the CLI's plan as Dagster runs in a background process -----------------------------

def _utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def resolve_plan(config: dict, output_dir: Path):
    """The CLI's Plan for a generation request, validated exactly as the CLI validates its flags (raises
    ScenarioInputError naming the problem)."""
    from scenarios_assets.cli import main as cli
    from scenarios_assets.core.families.registry import FAMILY_SPECS, enabled, families_for_type

    types = list(dict.fromkeys(config.get("types") or ["all"]))
    severities = list(dict.fromkeys(config.get("severities") or ["all"]))
    argv = ["--type", types[0] if len(types) == 1 else "all",
            "--severity", severities[0] if len(severities) == 1 else "all",
            "--output-dir", str(output_dir)]
    if config.get("num_scenarios") is not None:
        argv += ["--num-scenarios", str(config["num_scenarios"])]
    if config.get("symbols"):
        argv += ["--symbols", ",".join(config["symbols"])]
    for key in ("start_date", "end_date"):
        if config.get(key):
            argv += [f"--{key.replace('_', '-')}", str(config[key])]
    if config.get("include_full_cycles"):
        argv.append("--include-full-cycles")
    if config.get("seed") is not None:
        argv += ["--seed", str(config["seed"])]
    argv.append("--save-timeseries" if config.get("save_timeseries", True) else "--no-save-timeseries")
    if config.get("dry_run"):
        argv.append("--dry-run")
    plan = cli.plan_from_args(cli.build_parser().parse_args(argv))
    if len(types) > 1:
        wanted = {f for t in types for f in families_for_type(t)}
        families = [f for f in FAMILY_SPECS if f in wanted and enabled(FAMILY_SPECS[f], plan.config)]
        if not families:
            raise ScenarioInputError(
                f"types {', '.join(types)}: no enabled scenario family of these types in this version")
        plan = dataclasses.replace(plan, families=families, settings={**plan.settings, "families": families})
    if len(severities) > 1:
        chosen = [s for s in SEVERITIES if "all" in severities or s in severities]
        plan = dataclasses.replace(plan, severities=chosen, settings={**plan.settings, "severities": chosen})
    return plan


def execute_plan(plan, request_id: str) -> None:
    """Run the plan exactly as the CLI does (cli.run_plan: market data, each severity's families, the catalog,
    as Dagster runs on the instance in DAGSTER_HOME), every run tagged with the request id. Raises
    RuntimeError with the CLI's one-line reason when a run fails."""
    from scenarios_assets.cli import main as cli

    class Tee(io.TextIOBase):
        def __init__(self, *streams):
            self.streams = streams

        def write(self, text):
            for stream in self.streams:
                stream.write(text)
            return len(text)

    errors = io.StringIO()
    with redirect_stderr(Tee(sys.stderr, errors)):
        code = cli.run_plan(plan, out=sys.stdout, tags={"scenarios/api": "1", REQUEST_TAG: request_id})
    if code != cli.EXIT_OK:
        reasons = [line.removeprefix("error: ") for line in errors.getvalue().splitlines() if line.startswith("error: ")]
        raise RuntimeError(reasons[0] if reasons else f"the run failed (exit {code})")


class RequestLog:
    """Generation requests as JSON files under $DAGSTER_HOME/scenarios_api/requests (atomic writes), so
    their state survives an API restart and the worker process reports into it."""

    FINAL = ("success", "failure", "canceled")

    def __init__(self, dagster_home: Path):
        self.dir = Path(dagster_home) / "scenarios_api" / "requests"

    def path(self, request_id: str) -> Path:
        return self.dir / f"{request_id}.json"

    def read(self, request_id: str) -> dict | None:
        if not re.fullmatch(r"[0-9a-f-]{36}", request_id):
            return None
        try:
            return json.loads(self.path(request_id).read_text())
        except (FileNotFoundError, ValueError):
            return None

    def write(self, record: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path(record["id"]), json.dumps(record, indent=2))

    def update(self, request_id: str, **changes) -> dict:
        record = self.read(request_id) or {"id": request_id}
        record.update(changes)
        self.write(record)
        return record

    def active(self) -> list[dict]:
        if not self.dir.exists():
            return []
        records = [self.read(p.stem) for p in self.dir.glob("*.json")]
        return [r for r in records if r and r.get("state") not in self.FINAL and _alive(r)]


def _alive(record: dict) -> bool:
    pid = record.get("pid")
    if pid is None:  # not started yet: alive for a minute at most
        created = record.get("created_at")
        try:
            return (datetime.now(timezone.utc) - datetime.fromisoformat(str(created))).total_seconds() < 60
        except (TypeError, ValueError):
            return False
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


class _LaunchLock:
    """One generation launch at a time across the threads and the worker processes of one server."""

    def __init__(self, path: Path):
        self.path = path
        self._threads = threading.Lock()
        self._fh = None

    def __enter__(self):
        self._threads.acquire()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a")
            fcntl.flock(self._fh, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise
        return self

    def __exit__(self, *exc):
        self._fh.close()  # releases the flock
        self._threads.release()


class SubprocessLauncher:
    """Runs each generation request in a background `python -m scenarios_assets.api run-request FILE`."""

    def __init__(self, requests: RequestLog, dagster_home: Path):
        self.requests = requests
        self.dagster_home = Path(dagster_home)
        self._children: dict[str, subprocess.Popen] = {}

    def pid_of(self, request_id: str) -> int | None:
        """The pid of the worker this launcher started for ``request_id`` (None: not started here)."""
        child = self._children.get(request_id)
        return child.pid if child is not None else None

    def launch(self, record: dict) -> None:
        self.requests.write(record)
        logfile = self.requests.dir / f"{record['id']}.log"
        env = {**os.environ, "DAGSTER_HOME": str(self.dagster_home), "PYTHONWARNINGS": "ignore"}
        with open(logfile, "ab") as out:
            child = subprocess.Popen(
                [sys.executable, "-m", "scenarios_assets.api", "run-request", str(self.requests.path(record["id"]))],
                env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self._children[record["id"]] = child
        # Reap it when it ends (no zombie). It runs in its own session and outlives a stopped server, so
        # its Dagster runs finish and report their state.
        threading.Thread(target=child.wait, daemon=True).start()


def _worker_main(argv: list[str]) -> int:
    """`python -m scenarios_assets.api run-request FILE`: execute one generation request."""
    if len(argv) != 2 or argv[0] != "run-request":
        print("usage: python -m scenarios_assets.api run-request FILE", file=sys.stderr)
        return 2
    path = Path(argv[1])
    requests = RequestLog(path.parent.parent.parent)
    record = json.loads(path.read_text())
    request_id = record["id"]
    if record.get("state") == "canceled":  # canceled before this process started
        return 0
    requests.update(request_id, state="running", pid=os.getpid(), started_at=_utc())
    try:
        plan = resolve_plan(record["request"], location(record["output_dir"]))
        execute_plan(plan, request_id)
    except ScenarioInputError as exc:
        requests.update(request_id, state="failure", finished_at=_utc(), error=str(exc))
        return 2
    except Exception as exc:  # reported through GET /runs/{id}; the traceback goes to the request's log
        log.exception("generation request %s failed", request_id)
        requests.update(request_id, state="failure", finished_at=_utc(), error=str(exc).splitlines()[0][:2000])
        return 1
    requests.update(request_id, state="success", finished_at=_utc())
    return 0


# Seconds a cancelled generation's processes get to disappear after SIGKILL before the cancel answers 500.
CANCEL_WAIT_SECONDS = 15.0


def _generation_processes(record: dict, requests: RequestLog, launched_pid: int | None) -> list:
    """The request's worker process and its descendants (psutil.Process), or [] when none is alive. The worker
    is recognised by its command line (``run-request <the request's file>``), so a reused pid is never taken."""
    import psutil

    pid = record.get("pid") or launched_pid
    if not pid:
        return []
    try:
        worker = psutil.Process(int(pid))
        if str(requests.path(record["id"])) not in worker.cmdline() or worker.status() == psutil.STATUS_ZOMBIE:
            return []
        return [worker, *worker.children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return []


def stop_generation(record: dict, requests: RequestLog, instance, output_dir: Path,
                    launched_pid: int | None = None) -> dict:
    """Cancel generation ``record``: SIGKILL its worker's process group (the worker runs in a session of its own:
    the Dagster runs execute in it, with the GARCH fit workers and any step processes), report its unfinished
    Dagster runs CANCELED in ``instance``, remove their staging and unfinished build directories from
    ``output_dir`` (builds.remove_run_leftovers; the current build is never touched) and record the request as
    ``canceled``. The kernel releases the run's locks (flock) with the process. Returns the updated record;
    one that ended before it could be stopped keeps its final state. Raises RuntimeError when a process
    outlives CANCEL_WAIT_SECONDS."""
    import signal

    import psutil
    from dagster import RunsFilter

    from scenarios_assets.defs.dead_runs import UNFINISHED

    processes = _generation_processes(record, requests, launched_pid)
    if processes:
        with _suppress_gone():
            os.killpg(processes[0].pid, signal.SIGKILL)
        for proc in processes[1:]:  # a descendant that left the group (none today) is stopped too
            with _suppress_gone():
                proc.kill()
        _, alive = psutil.wait_procs(processes, timeout=CANCEL_WAIT_SECONDS)
        if alive:
            raise RuntimeError(f"process(es) {', '.join(str(p.pid) for p in alive)} of generation {record['id']} "
                               f"did not stop within {CANCEL_WAIT_SECONDS:.0f} s")
    current = requests.read(record["id"]) or record
    if current.get("state") in ("success", "failure"):
        return current
    run_ids: set[str] = set()
    if instance is not None:
        for run in instance.get_runs(filters=RunsFilter(tags={REQUEST_TAG: record["id"]})):
            run_ids.add(run.run_id)
            if run.status in UNFINISHED:
                instance.report_run_canceled(run, message=f"canceled through the API (generation {record['id']})")
    removed = builds.remove_run_leftovers(output_dir, run_ids) if run_ids else []
    return requests.update(record["id"], state="canceled", finished_at=_utc(), error=None,
                           canceled={"dagster_runs": sorted(run_ids), "removed": removed})


class _suppress_gone:
    """Ignore a process that is already gone when it is signalled."""

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        import psutil

        return kind is not None and issubclass(kind, (ProcessLookupError, psutil.NoSuchProcess))


# --- the application -------------------------------------------------------------------------------

def _active(record: dict) -> bool:
    return all(v.get("passed", False) for v in (record.get("validation") or {}).values() if v.get("blocking"))


def _summary(record: dict) -> dict:
    keys = ScenarioSummary.model_fields
    return {k: record.get(k) for k in keys if k != "active"} | {"active": _active(record)}


def _record_metrics(record: dict) -> dict:
    meta = record.get("metadata") or {}
    by_symbol = meta.get("max_drawdown_by_symbol") or {}
    return {
        "portfolio": {
            "total_return": record.get("expected_return"),
            "max_drawdown": record.get("max_drawdown"),
            "annualised_volatility": meta.get("annualised_volatility"),
            "volatility_multiplier": record.get("volatility_multiplier"),
            "num_days": record.get("num_days"),
        },
        "by_symbol": [{"symbol": s, "max_drawdown": v} for s, v in by_symbol.items()]
        if isinstance(by_symbol, dict) else [],
    }


def _negotiate(fmt: str | None, accept: str | None) -> str:
    if fmt:
        return fmt
    if not accept:
        return "json"
    choices = []
    for position, part in enumerate(accept.split(",")):
        pieces = [p.strip() for p in part.split(";")]
        media, q = pieces[0].lower(), 1.0
        for param in pieces[1:]:
            if param.startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        if media in ACCEPT and q > 0:
            choices.append((-q, position, ACCEPT[media]))
    if not choices:
        raise ApiError(406, "unsupported Accept header: ask for application/json, text/csv or "
                            "application/vnd.apache.parquet (or use ?format=json|csv|parquet)")
    return min(choices)[2]


def _error(status: int, message: str, details: list | None = None, headers: dict | None = None) -> JSONResponse:
    from http import HTTPStatus

    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    body = {"status": status, "error": phrase, "message": _redact(message)}
    if details is not None:
        body["details"] = [{**d, "message": _redact(str(d.get("message", "")))} for d in details]
    return JSONResponse(body, status_code=status, headers=headers)


def _redact(text: str) -> str:
    """``text`` with every absolute file path cut to its last component ('/srv/data/ohlcv.parquet' ->
    'ohlcv.parquet'): answers name the input, never where the server keeps it."""
    return _ABSOLUTE_PATH.sub(lambda m: m.group(1) or "/", str(text))


class BodyLimit:
    """ASGI middleware: a request body above ``limit`` bytes is refused with 413, before it is read when
    Content-Length says so, else as soon as the bytes received pass the limit (chunked uploads)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, int(limit)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            response = _error(413, f"the request body is {declared.decode(errors='replace')[:20]} bytes; at most "
                                   f"{self.limit} are accepted")
            return await response(scope, receive, send)
        received = 0

        async def limited():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise StarletteHTTPException(413, f"the request body passed {self.limit} bytes, the most accepted")
            return message

        return await self.app(scope, limited, send)


def _link(request: Request, path: str, base: str | None) -> str:
    """``path`` (absolute within the app) as a link: under the configured public base URL, else relative to
    the server's root; never from the request's Host header."""
    root = request.scope.get("root_path", "") or ""
    return f"{base or ''}{root}{path}"


def create_app(
    output_dir: str | Path | None = None,
    dagster_home: str | Path | None = None,
    dagster_ui_url: str | None = None,
    launcher=None,
    public_url: str | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> FastAPI:
    """The API over the catalog in ``output_dir`` (default: $SCENARIOS_OUTPUT_DIR or data/scenarios);
    generation runs go to the Dagster instance in ``dagster_home`` (default: $DAGSTER_HOME or the
    project's .dagster_home). ``dagster_ui_url`` (or $SCENARIOS_DAGSTER_UI_URL), e.g.
    http://127.0.0.1:3000, adds links to the runs in the Dagster UI. ``public_url`` (or $SCENARIOS_PUBLIC_URL),
    e.g. https://scenarios.example.org, makes the API's own links absolute under it (default: relative paths).
    Bodies above ``max_body_bytes`` get 413."""
    out = location(output_dir or os.environ.get("SCENARIOS_OUTPUT_DIR") or DEFAULT_OUTPUT_DIR)
    out = out if is_remote(out) else out.resolve()
    home = Path(dagster_home or os.environ.get("DAGSTER_HOME") or DEFAULT_DAGSTER_HOME).resolve()
    ui = (dagster_ui_url or os.environ.get("SCENARIOS_DAGSTER_UI_URL") or "").rstrip("/") or None
    base = (public_url or os.environ.get("SCENARIOS_PUBLIC_URL") or "").rstrip("/") or None
    store = CatalogStore(out)
    requests = RequestLog(home)
    launcher = launcher or SubprocessLauncher(requests, home)
    instance_holder: dict = {}
    launch_lock = _LaunchLock(requests.dir / ".launch.lock")

    # Swagger UI (/docs) and ReDoc (/redoc) from the files fastapi-offline ships (FastAPI's self-hosting recipe,
    # under /static-offline-docs), not from a CDN: the docs work without internet.
    app = FastAPIOffline(
        title="Market scenarios API",
        version="1.0.0",
        description="The scenario library of the catalog files (scenario_metadata.json, "
        "scenario_timeseries.parquet, scenario_metrics.parquet) over HTTP, and generation runs on the "
        "project's Dagster instance. Errors: JSON {status, error, message}.",
    )
    app.state.store = store
    app.state.launcher = launcher
    app.add_middleware(BodyLimit, limit=max_body_bytes)

    @app.exception_handler(ApiError)
    async def _api_error(_request, exc: ApiError):
        return _error(exc.status, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and message == "Not Found":
            message = "no such endpoint; see /docs"
        elif exc.status_code == 400 and message == "There was an error parsing the body":
            message = "the request body is not readable JSON (UTF-8)"
        return _error(exc.status_code, message, headers=getattr(exc, "headers", None))  # e.g. Allow on a 405

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request, exc: RequestValidationError):
        errors = exc.errors()
        unreadable = next((e for e in errors if e.get("type") == "json_invalid"), None)
        if unreadable is not None:
            position = unreadable.get("loc", ("body", "?"))[-1]
            reason = (unreadable.get("ctx") or {}).get("error", "invalid JSON")
            return _error(400, f"the request body is not valid JSON: {reason} (at character {position})")
        if any(e.get("type") == "missing" and tuple(e.get("loc", ())) == ("body",) for e in errors):
            return _error(400, "the request body is empty: send a JSON object ({} for the defaults)")
        details = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()))
            details.append({"location": loc, "message": str(err.get("msg", "invalid"))[:500]})
        summary = "; ".join(f"{d['location']}: {d['message']}" for d in details[:3]) or "invalid request"
        return _error(422, f"invalid parameters: {summary}", details)

    @app.exception_handler(Exception)
    async def _unexpected(_request, exc: Exception):
        log.exception("unhandled error", exc_info=exc)
        return _error(500, "internal error; the server log has the details")

    @app.get("/health", response_model=Health, tags=["catalog"], summary="Liveness and catalog presence")
    def health():
        try:
            snap = store.snapshot()
        except ApiError:
            return {"status": "ok", "catalog": False, "build_id": None, "generated_at": None}
        return {"status": "ok", "catalog": True, **snap.provenance}

    @app.get("/builds", response_model=BuildList, tags=["catalog"],
             summary="The kept builds (readable with ?build=), newest first")
    def list_builds():
        current, kept = store.builds()
        return JSONResponse({"current": current, "builds": kept})

    @app.get("/catalog", response_model=CatalogInfo, tags=["catalog"], responses=_error_responses(404, 422, 503),
             summary="The catalog build: provenance and counts by family and severity")
    def catalog_info(build: BuildParam = None):
        snap = store.snapshot(build)
        counts: dict[str, dict[str, int]] = {}
        for r in snap.records:
            counts.setdefault(r["family"], {}).setdefault(r["severity"], 0)
            counts[r["family"]][r["severity"]] += 1
        files = sorted(p.name for p in snap.path.iterdir() if not p.name.startswith(".") and p.name != builds.SLICES_DIR
                       and (p.is_file() or p.name.endswith(".parquet")))
        return JSONResponse({
            **snap.provenance, "data_version": snap.data_version,
            "config_hash": snap.config_hash, "scenario_count": len(snap.records), "counts": counts,
            "families": snap.document.get("families", {}), "files": files,
        }, headers=snap.headers)

    @app.get("/scenarios", response_model=ScenarioPage, tags=["scenarios"],
             responses=_error_responses(404, 422, 503), summary="List scenario definitions (paged)")
    def list_scenarios(
        request: Request,
        type: str | None = Query(None, max_length=64, description="scenario_type, e.g. CRISIS, BULL, MONTE_CARLO "
                                 "(case-insensitive)"),
        family: Literal[FAMILIES] | None = Query(None),  # type: ignore[valid-type]
        severity: Literal[SEVERITIES] | None = Query(None),  # type: ignore[valid-type]
        active: bool | None = Query(None, description="true: only scenarios whose blocking checks all passed; "
                                    "false: only the others; omitted: all"),
        symbol: str | None = Query(None, max_length=32, description="only scenarios that include this symbol"),
        limit: int = Query(100, ge=1, le=1000),
        offset: int = Query(0, ge=0, le=10_000_000),
        build: BuildParam = None,
    ):
        snap = store.snapshot(build)
        wanted_type = type.upper() if type else None
        unfiltered = all(f is None for f in (type, family, severity, active, symbol))
        items = snap.summaries if unfiltered else [
            s for s in snap.summaries
            if (wanted_type is None or str(s.get("scenario_type", "")).upper() == wanted_type)
            and (family is None or s.get("family") == family)
            and (severity is None or s.get("severity") == severity)
            and (active is None or s["active"] == active)
            and (symbol is None or symbol in (s.get("symbols") or []))
        ]
        page = items[offset: offset + limit]
        nxt = None
        if offset + limit < len(items):
            query = request.url.include_query_params(offset=offset + limit, limit=limit).query
            nxt = _link(request, f"{request.url.path.removeprefix(request.scope.get('root_path', '') or '')}?{query}", base)
        body = {
            "total": len(items), "offset": offset, "limit": limit, "count": len(page), "next": nxt,
            **snap.provenance, "data_version": snap.data_version, "config_hash": snap.config_hash, "items": page,
        }
        return JSONResponse(body, headers=snap.headers)

    # Declared before /scenarios/{scenario_id}, so that other methods on /scenarios/generate get a 405 whose
    # Allow header names POST.
    @app.post("/scenarios/generate", status_code=202, response_model=GenerateAccepted, tags=["runs"],
              responses=_error_responses(400, 409, 413, 422),
              summary="Validate a generation config and launch its Dagster runs")
    def generate(request: Request, body: GenerateRequest = Body(...)):
        config = body.model_dump(mode="json")
        try:
            plan = resolve_plan(config, out)
            from scenarios_assets.cli import main as cli

            cli.preflight(plan)  # bad symbols or dates fail here, before anything runs
        except ScenarioInputError as exc:
            raise ApiError(422, str(exc)) from None
        with launch_lock:
            busy = requests.active()
            if busy:
                raise ApiError(409, f"generation {busy[0]['id']} is still {busy[0].get('state')}; "
                                    f"follow it at /runs/{busy[0]['id']}")
            request_id = str(uuid.uuid4())
            record = {"id": request_id, "state": "queued", "created_at": _utc(), "request": config,
                      "families": plan.families, "severities": plan.severities, "output_dir": str(out), "pid": None}
            launcher.launch(record)
        status_url = _link(request, str(request.app.url_path_for("run_status", run_id=request_id)), base)
        return JSONResponse(
            {"run_id": request_id, "state": "queued", "status_url": status_url,
             "dagster_ui_url": _ui_runs_url(ui, request_id), "families": plan.families,
             "severities": plan.severities},
            status_code=202, headers={"Location": status_url},
        )

    def scenario_or_404(snap: Snapshot, scenario_id: str) -> dict:
        record = snap.by_id.get(scenario_id)
        if record is None:
            raise ApiError(404, f"no scenario '{scenario_id[:200]}' in build {snap.build_id or '(legacy)'} "
                                f"generated at {snap.generated_at}")
        return record

    def detail(snap: Snapshot, scenario_id: str) -> dict:
        record = scenario_or_404(snap, scenario_id)
        computed = _record_metrics(record)
        rows = snap.metrics(record)
        metrics = {
            "source": METRICS_FILE if rows is not None else "catalog_record",
            "note": "" if rows is not None else f"computed summary from the scenario record ({METRICS_FILE} is "
                                                 "not present in this build)",
            "portfolio": computed["portfolio"],
            "by_symbol": rows if rows is not None else computed["by_symbol"],
        }
        entry = (snap.document.get("families") or {}).get(f"{record['family']}/{record['severity']}") or {}
        return {
            **record, **_summary(record),
            "validation": record.get("validation") or {}, "metadata": record.get("metadata") or {},
            "metrics": metrics, **snap.provenance,
            "data_version": str(entry.get("data_version") or snap.data_version),
            "config_hash": str(entry.get("config_hash") or snap.config_hash),
            "origin": entry.get("origin", "new"), "stale": bool(entry.get("stale", False)),
        }

    @app.get("/scenarios/{scenario_id}", response_model=ScenarioDetail, tags=["scenarios"],
             responses=_error_responses(404, 422, 503),
             summary="One scenario: definition, metadata, validation results and metrics")
    def get_scenario(scenario_id: str = PathParam(..., max_length=300, examples=[EXAMPLE_ID]),
                     build: BuildParam = None):
        snap, body = store.read(build, lambda snap: detail(snap, scenario_id))
        return JSONResponse(body, headers=snap.headers)

    ts_content = {
        "application/json": {"schema": {"type": "object", "properties": {
            "scenario_id": {"type": "string"}, "generated_at": {"type": "string"}, "build_id": {"type": "string"},
            "columns": {"type": "array", "items": {"type": "string"}},
            "rows": {"type": "array", "items": {"type": "object"}}, "row_count": {"type": "integer"}}}},
        "text/csv": {"schema": {"type": "string"}},
        "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
    }

    def timeseries(snap: Snapshot, scenario_id: str, symbol: str | None) -> pa.Table:
        record = scenario_or_404(snap, scenario_id)
        symbols = None
        if symbol is not None:
            symbols = [s.strip() for s in symbol.split(",") if s.strip()]
            unknown = [s for s in symbols if s not in (record.get("symbols") or [])]
            if unknown or not symbols:
                raise ApiError(404, f"symbol(s) {', '.join(unknown) or repr(symbol)} not in scenario "
                                    f"'{scenario_id}' (its symbols: {', '.join(record.get('symbols') or [])})")
        return snap.timeseries(record, symbols)

    @app.get(
        "/scenarios/{scenario_id}/timeseries", tags=["scenarios"], summary="A scenario's time series (streamed)",
        response_class=StreamingResponse,
        responses={200: {"description": "one row per symbol and date (symbol-major), JSON by default; CSV or "
                         "Parquet by Accept header or ?format=", "content": ts_content},
                   **_error_responses(404, 406, 422, 503)},
    )
    def get_timeseries(
        request: Request,
        scenario_id: str = PathParam(..., max_length=300, examples=[EXAMPLE_ID]),
        symbol: str | None = Query(None, max_length=2000, description="one symbol or a comma-separated list "
                                   "(default: all of the scenario's symbols)"),
        format: Literal["json", "csv", "parquet"] | None = Query(None, description="overrides the Accept header"),
        build: BuildParam = None,
    ):
        kind = _negotiate(format, request.headers.get("accept"))
        snap, table = store.read(build, lambda snap: timeseries(snap, scenario_id, symbol))
        chunks = {"json": _json_stream, "csv": _csv_stream, "parquet": _parquet_stream}[kind](table, scenario_id, snap)
        if table.num_rows <= BATCH_ROWS:  # small: serialised here, streamed without a thread hop per chunk
            chunks = _iterate(list(chunks))
        name = re.sub(r"[^A-Za-z0-9._-]", "_", scenario_id)[:120]
        return StreamingResponse(chunks, media_type=MEDIA[kind],
                                 headers={**snap.headers, "Content-Disposition": f'inline; filename="{name}.{kind}"'})

    def instance():
        if "instance" not in instance_holder:
            from dagster import DagsterInstance

            if not home.exists():
                return None
            os.environ.setdefault("DAGSTER_HOME", str(home))  # the project's dagster.yaml reads it
            instance_holder["instance"] = DagsterInstance.from_config(str(home))
        return instance_holder["instance"]

    @app.get("/runs/{run_id}", response_model=RunStatus, tags=["runs"], responses=_error_responses(404, 422),
             summary="Status of a generation request (or of any Dagster run of the instance)", name="run_status")
    def run_status(run_id: str = PathParam(..., max_length=64, examples=["8d2f0c3e-3a54-4f0e-9a0e-2b8c7f1d9e10"])):
        record = requests.read(run_id)
        if record is not None:
            runs = _dagster_runs(instance(), ui, tags={REQUEST_TAG: run_id})
            state = record.get("state", "queued")
            error = record.get("error")
            if state not in RequestLog.FINAL and not _alive(record):
                state, error = "failure", "the generation process exited unexpectedly; see its log " \
                                          f"({run_id}.log in the server's request directory)"
            return {
                "run_id": run_id, "kind": "generation", "state": state, "created_at": record.get("created_at"),
                "started_at": record.get("started_at"), "finished_at": record.get("finished_at"),
                "error": _redact(error) if error else None,
                "request": record.get("request"), "families": record.get("families"),
                "severities": record.get("severities"), "dagster_runs": runs,
                "dagster_ui_url": _ui_runs_url(ui, run_id),
            }
        if re.fullmatch(r"[0-9a-f-]{36}", run_id) and instance() is not None:
            runs = _dagster_runs(instance(), ui, run_ids=[run_id])
            if runs:
                run = runs[0]
                return {"run_id": run_id, "kind": "dagster_run", "state": _state(run["status"]),
                        "created_at": run["created_at"], "started_at": run["started_at"],
                        "finished_at": run["finished_at"], "dagster_runs": runs,
                        "dagster_ui_url": run["dagster_ui_url"]}
        raise ApiError(404, f"no generation request or Dagster run '{run_id}'")

    @app.post("/runs/{run_id}/cancel", response_model=RunStatus, tags=["runs"],
              responses=_error_responses(404, 409, 422),
              summary="Cancel a generation: stop its process and Dagster runs, free the generation slot")
    def cancel_run(run_id: str = PathParam(..., max_length=64, examples=["8d2f0c3e-3a54-4f0e-9a0e-2b8c7f1d9e10"])):
        record = requests.read(run_id)
        if record is None:
            raise ApiError(404, f"no generation request '{run_id}' (only generations started by POST "
                                "/scenarios/generate can be canceled here)")
        with launch_lock:
            record = requests.read(run_id) or record
            if record.get("state") in ("success", "failure"):
                raise ApiError(409, f"generation {run_id} already ended ({record['state']}); nothing to cancel")
            if record.get("state") != "canceled":
                pid_of = getattr(launcher, "pid_of", None)
                record = stop_generation(record, requests, instance(), out, pid_of(run_id) if pid_of else None)
            if record.get("state") in ("success", "failure"):
                raise ApiError(409, f"generation {run_id} ended ({record['state']}) before it could be canceled")
        return run_status(run_id)

    @app.get("/report", tags=["catalog"], response_class=StreamingResponse, responses={
        200: {"content": {"text/html": {"schema": {"type": "string"}}}, "description": "scenario_report.html"},
        **_error_responses(404, 422, 503)}, summary="The visual scenario report of the catalog build")
    def report(build: BuildParam = None):
        snap, source = store.read(build, Snapshot.open_report)
        size = os.fstat(source.fileno()).st_size
        return StreamingResponse(_file_chunks(source), media_type="text/html; charset=utf-8",
                                 headers={**snap.headers, "Content-Length": str(size)})

    @app.get("/report/charts/{chart}.png", tags=["catalog"], response_class=StreamingResponse, responses={
        200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
              "description": "one chart of the report (the Dagster UI shows them in the catalog's metadata)"},
        **_error_responses(404, 422, 503)}, summary="One chart of the visual report, as PNG")
    def report_chart(chart: Annotated[str, PathParam(pattern=r"^[a-z0-9_]{1,64}$",
                                                     description="chart key, e.g. overview, monte_carlo_fan")],
                     build: BuildParam = None,
                     width: Annotated[int | None, Query(ge=100, le=4000, description=(
                         "scale down to this many pixels wide (aspect kept; never up), e.g. for the Dagster "
                         "UI's metadata panel"))] = None):
        snap, source = store.read(build, lambda snap: snap.open_chart(chart))
        # A build never changes once published: a chart asked for by build id may be cached for good.
        headers = {**snap.headers, **({"Cache-Control": "public, max-age=31536000, immutable"} if build else {})}
        if width is not None:
            with source:
                return Response(_scaled_png(source.read(), width), media_type="image/png", headers=headers)
        size = os.fstat(source.fileno()).st_size
        return StreamingResponse(_file_chunks(source), media_type="image/png",
                                 headers={**headers, "Content-Length": str(size)})

    return app


async def _iterate(chunks: list[bytes]):
    for chunk in chunks:
        yield chunk


def _scaled_png(png: bytes, width: int) -> bytes:
    """``png`` scaled down to ``width`` pixels wide, aspect kept (Pillow, Lanczos); unchanged when not wider."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        if image.width <= width:
            return png
        height = max(1, round(image.height * width / image.width))
        out = io.BytesIO()
        image.resize((width, height), Image.Resampling.LANCZOS).save(out, format="PNG", optimize=True)
        return out.getvalue()


def _file_chunks(source) -> Iterator[bytes]:
    with source:
        while chunk := source.read(1 << 20):
            yield chunk


def _prepare(data: pa.RecordBatch | pa.Table) -> pa.Table:
    """Dictionary columns as plain strings."""
    table = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
    for i, name in enumerate(table.column_names):
        col = table.column(i)
        if pa.types.is_dictionary(col.type):
            table = table.set_column(i, name, col.cast(pa.string()))
    return table


def _json_stream(table: pa.Table, scenario_id: str, snap: Snapshot) -> Iterator[bytes]:
    head = {"scenario_id": scenario_id, **snap.provenance}
    yield (json.dumps(head)[:-1] + ', "rows": [').encode()
    count, columns = 0, [c for c in table.column_names if c != "scenario_id"]
    for batch in table.to_batches(max_chunksize=BATCH_ROWS):
        if batch.num_rows == 0:
            continue
        rows = _prepare(batch).drop_columns(["scenario_id"])
        for i, name in enumerate(columns):
            col = rows.column(i)
            if pa.types.is_date(col.type):
                rows = rows.set_column(i, name, col.cast(pa.string()))
            elif pa.types.is_floating(col.type):
                # The shortest decimal that reads back as this float32 (not its float64 expansion); NaN -> null.
                col = col.cast(pa.string()).cast(pa.float64())
                rows = rows.set_column(i, name, pc.if_else(pc.is_nan(col), pa.scalar(None, pa.float64()), col))
        text = json.dumps(rows.to_pylist(), separators=(",", ":"), allow_nan=False)
        yield ((", " if count else "") + text[1:-1]).encode()
        count += batch.num_rows
    yield f'], "columns": {json.dumps(columns)}, "row_count": {count}}}'.encode()


def _csv_stream(table: pa.Table, scenario_id: str, snap: Snapshot) -> Iterator[bytes]:
    import pyarrow.csv as pacsv

    first = True
    for batch in table.to_batches(max_chunksize=BATCH_ROWS) or [pa.RecordBatch.from_pylist([], table.schema)]:
        if batch.num_rows == 0 and not first:
            continue
        buffer = io.BytesIO()
        pacsv.write_csv(_prepare(batch), buffer, pacsv.WriteOptions(include_header=first, quoting_style="needed"))
        first = False
        yield buffer.getvalue()


def _parquet_stream(table: pa.Table, scenario_id: str, snap: Snapshot) -> Iterator[bytes]:
    table = _prepare(table)
    schema = table.schema.with_metadata({b"generated_at": snap.generated_at.encode(),
                                         b"build_id": snap.build_id.encode(), b"scenario_id": scenario_id.encode()})
    spool = tempfile.SpooledTemporaryFile(max_size=32 * 2**20)
    try:
        pq.write_table(table.replace_schema_metadata(schema.metadata), spool, compression="zstd")
        spool.seek(0)
        while chunk := spool.read(1 << 20):
            yield chunk
    finally:
        spool.close()


def _state(status: str) -> str:
    return {"SUCCESS": "success", "FAILURE": "failure", "CANCELED": "canceled", "CANCELING": "running",
            "STARTED": "running", "STARTING": "running"}.get(status, "queued")


def _iso(timestamp) -> str | None:
    if timestamp is None:
        return None
    if isinstance(timestamp, datetime):
        return timestamp.astimezone(timezone.utc).isoformat(timespec="seconds")
    return datetime.fromtimestamp(float(timestamp), timezone.utc).isoformat(timespec="seconds")


def _dagster_runs(instance, ui: str | None, tags: dict | None = None, run_ids: list[str] | None = None) -> list[dict]:
    if instance is None:
        return []
    from dagster import RunsFilter

    records = instance.get_run_records(filters=RunsFilter(tags=tags, run_ids=run_ids), ascending=True,
                                       order_by="create_timestamp")
    return [
        {
            "run_id": rec.dagster_run.run_id,
            "job_name": rec.dagster_run.job_name,
            "partition": rec.dagster_run.tags.get("dagster/partition"),
            "status": rec.dagster_run.status.value,
            "created_at": _iso(rec.create_timestamp),
            "started_at": _iso(rec.start_time),
            "finished_at": _iso(rec.end_time),
            "dagster_ui_url": f"{ui}/runs/{rec.dagster_run.run_id}" if ui else None,
        }
        for rec in records
    ]


def _ui_runs_url(ui: str | None, request_id: str) -> str | None:
    from urllib.parse import quote

    return f"{ui}/runs?q%5B%5D={quote(f'tag:{REQUEST_TAG}={request_id}', safe='')}" if ui else None


# --- `scenarios serve` -----------------------------------------------------------------------------

def serve(argv: list[str]) -> int:
    """`scenarios serve [--host H] [--port N] [--output-dir DIR] [--dagster-ui URL]`: the API under uvicorn."""
    from scenarios_assets.cli import main as cli

    parser = cli.OneLineParser(prog="scenarios serve", description="Serve the scenario catalog over HTTP.")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    parser.add_argument("--output-dir",
                        help="catalog directory or fsspec URL, e.g. s3://bucket/prefix "
                             f"(default: $SCENARIOS_OUTPUT_DIR or {DEFAULT_OUTPUT_DIR})")
    parser.add_argument("--dagster-ui", help="URL of the Dagster UI for run links (default: $SCENARIOS_DAGSTER_UI_URL)")
    parser.add_argument("--public-url", help="base URL of the API's own links, e.g. https://scenarios.example.org "
                        "(default: $SCENARIOS_PUBLIC_URL, else links are paths relative to the server's root)")
    parser.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes (default 1; each parses and caches the builds it reads)")
    try:
        args = parser.parse_args(argv)
    except ScenarioInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not 0 < args.port < 65536:
        print(f"error: --port must be 1..65535, got {args.port}", file=sys.stderr)
        return 2
    if not 0 < args.workers <= 64:
        print(f"error: --workers must be 1..64, got {args.workers}", file=sys.stderr)
        return 2
    import uvicorn

    home = cli.ensure_dagster_home()
    app = create_app(args.output_dir, home, args.dagster_ui, public_url=args.public_url)
    print(f"serving {app.state.store.output_dir} on http://{args.host}:{args.port} (docs: /docs; "
          f"Dagster instance {home}; {args.workers} worker(s))", flush=True)
    if args.workers == 1:
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
        return 0
    # Worker processes build their own app (create_app reads these) from an import string.
    os.environ["SCENARIOS_OUTPUT_DIR"] = str(app.state.store.output_dir)
    if args.dagster_ui:
        os.environ["SCENARIOS_DAGSTER_UI_URL"] = args.dagster_ui
    if args.public_url:
        os.environ["SCENARIOS_PUBLIC_URL"] = args.public_url
    uvicorn.run("scenarios_assets.api:create_app", factory=True, workers=args.workers, host=args.host, port=args.port,
                log_level=args.log_level)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raise SystemExit(_worker_main(sys.argv[1:]))
