"""REST API over the scenario catalog: ``scenarios serve --host 127.0.0.1 --port 8000 [--output-dir DIR]``.

Reads come from the catalog files of DESIGN.md section 4 in the output directory and stay consistent
while the daily build replaces them: the parsed ``scenario_metadata.json`` is cached under the identity
of the file that was read (inode, mtime, size) and its ``generated_at``; the time series is read only
from a ``scenario_timeseries.parquet`` that belongs to that metadata (written by the same build: not
older than it), through an open memory map, so a file renamed over it mid-response does not change
what the response streams. ``POST /scenarios/generate`` validates a generation request exactly as the
CLI validates its flags and runs the CLI's plan (market data, each severity's families, the catalog) as
Dagster runs on the project's instance (``DAGSTER_HOME``), in a background process; the runs carry the
tag ``scenarios/request_id`` so the Dagster UI and ``GET /runs/{run_id}`` follow them.

Errors are JSON ``{"status", "error", "message"[, "details"]}``: 404 for an unknown id, 422 for bad
parameters, 503 while there is no catalog; never a stack trace.
"""

from __future__ import annotations

import dataclasses
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
import time
import uuid
from collections.abc import Iterator
from contextlib import redirect_stderr
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from fastapi import Body, FastAPI, Path as PathParam, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints
from starlette.exceptions import HTTPException as StarletteHTTPException

from scenarios_assets.core.errors import ScenarioInputError
from scenarios_assets.core.families import CLI_TYPES
from scenarios_assets.core.paths import DEFAULT_DAGSTER_HOME, DEFAULT_OUTPUT_DIR
from scenarios_assets.core.scenario import FAMILIES
from scenarios_assets.core.severity import SEVERITIES

log = logging.getLogger("scenarios_assets.api")

METADATA_FILE = "scenario_metadata.json"
TIMESERIES_FILE = "scenario_timeseries.parquet"
METRICS_FILE = "scenario_metrics.parquet"
REPORT_FILE = "scenario_report.html"
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


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


# --- reading the catalog consistently ---------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Snapshot:
    """One parsed scenario_metadata.json and the identity of the file it came from."""

    key: tuple[int, int, int, int]  # (device, inode, mtime_ns, size)
    mtime_ns: int
    document: dict
    records: list[dict]
    by_id: dict[str, dict]

    @property
    def generated_at(self) -> str:
        return str(self.document.get("generated_at", ""))


def _file_key(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


class CatalogStore:
    """The catalog in one output directory, cached by metadata-file identity, read consistently."""

    def __init__(self, output_dir: str | Path):
        self.output_dir = Path(output_dir)
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        # Parquet files (by identity) already matched with a metadata snapshot (by key).
        self._matched: dict[tuple, tuple] = {}

    @property
    def metadata_path(self) -> Path:
        return self.output_dir / METADATA_FILE

    def snapshot(self) -> Snapshot:
        try:
            st = os.stat(self.metadata_path)
        except FileNotFoundError:
            raise ApiError(503, f"no scenario catalog in '{self.output_dir}' yet: run `scenarios` or "
                                "POST /scenarios/generate") from None
        current = self._snapshot
        if current is not None and current.key == _file_key(st):
            return current
        with self._lock:
            return self._load()

    def _load(self) -> Snapshot:
        # Open once and identify the file by its descriptor, so a rename between stat and read cannot mix
        # two builds.
        with open(self.metadata_path, "rb") as fh:
            st = os.fstat(fh.fileno())
            key = _file_key(st)
            if self._snapshot is not None and self._snapshot.key == key:
                return self._snapshot
            try:
                document = json.load(fh)
                records = list(document["scenarios"])
            except (ValueError, KeyError, TypeError):
                raise ApiError(503, f"'{self.metadata_path}' is not a valid scenario catalog") from None
        snapshot = Snapshot(key, st.st_mtime_ns, document, records, {r["id"]: r for r in records})
        self._snapshot = snapshot
        return snapshot

    def open_timeseries(self, snapshot: Snapshot, attempts: int = 20) -> tuple[pa.MemoryMappedFile, Snapshot]:
        """An open memory map of the time series that belongs to ``snapshot`` (or to a newer snapshot, which
        is then returned too). Between the renames of one build the metadata can be new and the Parquet
        file still the previous one: that is detected and waited out."""
        path = self.output_dir / TIMESERIES_FILE
        for attempt in range(attempts):
            try:
                source = pa.memory_map(str(path), "r")
            except FileNotFoundError:
                source = None
            if source is not None:
                st = os.fstat(source.fileno())
                if self._belongs(snapshot, source, st):
                    return source, snapshot
                source.close()
            newer = self.snapshot()
            if newer.key != snapshot.key:
                snapshot = newer
                continue
            if source is None and attempt >= 2:
                raise ApiError(404, "this catalog was built without time series (--no-save-timeseries)")
            time.sleep(min(0.02 * (attempt + 1), 0.2))
        # Still not matched: not a build in progress (its renames take microseconds) but files copied with new
        # times. Serve the file that is there, and take it as this metadata's from now on.
        try:
            source = pa.memory_map(str(path), "r")
        except FileNotFoundError:
            raise ApiError(404, "this catalog was built without time series (--no-save-timeseries)") from None
        log.warning("%s is older than %s and says nothing of its build; serving it", path, self.metadata_path)
        self._matched = {snapshot.key: _file_key(os.fstat(source.fileno()))}
        return source, snapshot

    def _belongs(self, snapshot: Snapshot, source: pa.MemoryMappedFile, st: os.stat_result) -> bool:
        ident = _file_key(st)
        if self._matched.get(snapshot.key) == ident:
            return True
        provenance = _provenance(pq.read_schema(source).metadata)
        source.seek(0)
        if provenance.get("generated_at"):
            ok = provenance["generated_at"] == snapshot.generated_at
        else:
            # One build stages the metadata first and the Parquet file after it, then renames both.
            ok = st.st_mtime_ns >= snapshot.mtime_ns
        if ok:
            self._matched = {snapshot.key: ident}
        return ok

    def metrics(self, snapshot: Snapshot, scenario_id: str) -> tuple[list[dict] | None, str]:
        """Rows of scenario_metrics.parquet for one scenario when that file describes this catalog build."""
        path = self.output_dir / METRICS_FILE
        try:
            source = pa.memory_map(str(path), "r")
        except FileNotFoundError:
            return None, f"{METRICS_FILE} is not present"
        with source:
            st = os.fstat(source.fileno())
            schema = pq.read_schema(source)
            provenance = _provenance(schema.metadata)
            if provenance.get("generated_at"):
                if provenance["generated_at"] != snapshot.generated_at:
                    return None, f"{METRICS_FILE} describes another catalog build ({provenance['generated_at']})"
            elif st.st_mtime_ns < snapshot.mtime_ns:
                return None, f"{METRICS_FILE} is older than the catalog"
            if "scenario_id" not in schema.names:
                return None, f"{METRICS_FILE} has no scenario_id column"
            source.seek(0)
            fragment = ds.ParquetFileFormat().make_fragment(source)
            table = fragment.to_table(filter=pc.field("scenario_id") == scenario_id, schema=fragment.physical_schema)
            drop = {"scenario_id", "scenario_name", "family", "scenario_type", "severity"}
            rows = [{k: _plain(v) for k, v in row.items() if k not in drop} for row in table.to_pylist()]
        return rows, METRICS_FILE


def _provenance(metadata: dict | None) -> dict:
    """generated_at of the catalog build a Parquet file says it belongs to (if it says so)."""
    metadata = metadata or {}
    if b"generated_at" in metadata:
        return {"generated_at": metadata[b"generated_at"].decode()}
    for key, field in ((b"scenarios_metrics", "catalog_generated_at"), (b"scenarios_catalog", "generated_at")):
        if key in metadata:
            try:
                value = json.loads(metadata[key]).get(field)
            except (ValueError, AttributeError):
                value = None
            if value:
                return {"generated_at": str(value)}
    return {}


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
    generated_at: str
    data_version: str


class CatalogInfo(BaseModel):
    output_dir: str
    generated_at: str
    data_version: str
    config_hash: str
    scenario_count: int
    counts: dict[str, dict[str, int]] = Field(description="family -> severity -> scenarios")
    families: dict[str, Any] = Field(description="per family/severity: count, skipped, validation")
    files: list[str]


class Health(BaseModel):
    status: Literal["ok"]
    catalog: bool
    generated_at: str | None = None


Symbol = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9^][A-Za-z0-9._^=-]{0,19}$")]


def _iso_date(value):
    """YYYY-MM-DD only (the schema's `format: date`), not a number or a timestamp coerced into a date."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"'{value}' is not a calendar date") from None
    raise ValueError("must be a date string YYYY-MM-DD")


IsoDate = Annotated[date, BeforeValidator(_iso_date)]


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
    output_dir: str


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
    text = {400: "Unreadable body (not UTF-8 JSON)", 404: "Not found", 406: "Not acceptable", 409: "Conflict",
            422: "Invalid parameters", 503: "No catalog yet"}
    return {code: {"model": ErrorBody, "description": text.get(code, "Error")} for code in codes}


# --- generation: the CLI's plan as Dagster runs in a background process -----------------------------

def _utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def resolve_plan(config: dict, output_dir: Path):
    """The CLI's Plan for a generation request, validated exactly as the CLI validates its flags (raises
    ScenarioInputError naming the problem)."""
    from scenarios_assets import cli
    from scenarios_assets.core.families import FAMILY_SPECS, enabled, families_for_type

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
    from scenarios_assets import cli

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
        fd, tmp = tempfile.mkstemp(prefix=f".{record['id']}.", suffix=".tmp", dir=self.dir)
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh, indent=2)
        os.replace(tmp, self.path(record["id"]))

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
            return (datetime.now(timezone.utc) - datetime.fromisoformat(created)).total_seconds() < 60
        except (TypeError, ValueError):
            return False
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


class SubprocessLauncher:
    """Runs each generation request in a background `python -m scenarios_assets.api run-request FILE`."""

    def __init__(self, requests: RequestLog, dagster_home: Path):
        self.requests = requests
        self.dagster_home = Path(dagster_home)
        self._children: dict[str, subprocess.Popen] = {}

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
    requests.update(request_id, state="running", pid=os.getpid(), started_at=_utc())
    try:
        plan = resolve_plan(record["request"], Path(record["output_dir"]))
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
    body = {"status": status, "error": phrase, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse(body, status_code=status, headers=headers)


def create_app(
    output_dir: str | Path | None = None,
    dagster_home: str | Path | None = None,
    dagster_ui_url: str | None = None,
    launcher=None,
) -> FastAPI:
    """The API over the catalog in ``output_dir`` (default: $SCENARIOS_OUTPUT_DIR or data/scenarios);
    generation runs go to the Dagster instance in ``dagster_home`` (default: $DAGSTER_HOME or the
    project's .dagster_home). ``dagster_ui_url`` (or $SCENARIOS_DAGSTER_UI_URL), e.g.
    http://127.0.0.1:3000, adds links to the runs in the Dagster UI."""
    out = Path(output_dir or os.environ.get("SCENARIOS_OUTPUT_DIR") or DEFAULT_OUTPUT_DIR).resolve()
    home = Path(dagster_home or os.environ.get("DAGSTER_HOME") or DEFAULT_DAGSTER_HOME).resolve()
    ui = (dagster_ui_url or os.environ.get("SCENARIOS_DAGSTER_UI_URL") or "").rstrip("/") or None
    store = CatalogStore(out)
    requests = RequestLog(home)
    launcher = launcher or SubprocessLauncher(requests, home)
    instance_holder: dict = {}
    launch_lock = threading.Lock()

    app = FastAPI(
        title="Market scenarios API",
        version="1.0.0",
        description="The scenario library of the catalog files (scenario_metadata.json, "
        "scenario_timeseries.parquet, scenario_metrics.parquet) over HTTP, and generation runs on the "
        "project's Dagster instance. Errors: JSON {status, error, message}.",
    )
    app.state.store = store
    app.state.launcher = launcher

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

    def headers(snapshot: Snapshot) -> dict[str, str]:
        return {"X-Catalog-Generated-At": snapshot.generated_at}

    @app.get("/health", response_model=Health, tags=["catalog"], summary="Liveness and catalog presence")
    def health():
        try:
            snap = store.snapshot()
        except ApiError:
            return {"status": "ok", "catalog": False, "generated_at": None}
        return {"status": "ok", "catalog": True, "generated_at": snap.generated_at}

    @app.get("/catalog", response_model=CatalogInfo, tags=["catalog"], responses=_error_responses(503),
             summary="The catalog build: provenance and counts by family and severity")
    def catalog_info():
        snap = store.snapshot()
        counts: dict[str, dict[str, int]] = {}
        for r in snap.records:
            counts.setdefault(r["family"], {}).setdefault(r["severity"], 0)
            counts[r["family"]][r["severity"]] += 1
        files = sorted(p.name for p in out.iterdir() if p.is_file() and not p.name.startswith("."))
        doc = snap.document
        return JSONResponse({
            "output_dir": str(out), "generated_at": snap.generated_at,
            "data_version": str(doc.get("data_version", "")), "config_hash": str(doc.get("config_hash", "")),
            "scenario_count": len(snap.records), "counts": counts, "families": doc.get("families", {}),
            "files": files,
        }, headers=headers(snap))

    @app.get("/scenarios", response_model=ScenarioPage, tags=["scenarios"],
             responses=_error_responses(422, 503), summary="List scenario definitions (paged)")
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
    ):
        snap = store.snapshot()
        wanted_type = type.upper() if type else None
        items = [
            r for r in snap.records
            if (wanted_type is None or str(r.get("scenario_type", "")).upper() == wanted_type)
            and (family is None or r.get("family") == family)
            and (severity is None or r.get("severity") == severity)
            and (active is None or _active(r) == active)
            and (symbol is None or symbol in (r.get("symbols") or []))
        ]
        page = items[offset: offset + limit]
        nxt = None
        if offset + limit < len(items):
            nxt = str(request.url.include_query_params(offset=offset + limit, limit=limit))
        doc = snap.document
        body = {
            "total": len(items), "offset": offset, "limit": limit, "count": len(page), "next": nxt,
            "generated_at": snap.generated_at, "data_version": str(doc.get("data_version", "")),
            "config_hash": str(doc.get("config_hash", "")), "items": [_summary(r) for r in page],
        }
        return JSONResponse(body, headers=headers(snap))

    # Declared before /scenarios/{scenario_id}, so that other methods on /scenarios/generate get a 405 whose
    # Allow header names POST.
    @app.post("/scenarios/generate", status_code=202, response_model=GenerateAccepted, tags=["runs"],
              responses=_error_responses(400, 409, 422),
              summary="Validate a generation config and launch its Dagster runs")
    def generate(request: Request, body: GenerateRequest = Body(...)):
        config = body.model_dump(mode="json")
        try:
            plan = resolve_plan(config, out)
            from scenarios_assets import cli

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
        status_url = str(request.url_for("run_status", run_id=request_id))
        return JSONResponse(
            {"run_id": request_id, "state": "queued", "status_url": status_url,
             "dagster_ui_url": _ui_runs_url(ui, request_id), "families": plan.families,
             "severities": plan.severities, "output_dir": str(out)},
            status_code=202, headers={"Location": status_url},
        )

    def scenario_or_404(snap: Snapshot, scenario_id: str) -> dict:
        record = snap.by_id.get(scenario_id)
        if record is None:
            raise ApiError(404, f"no scenario '{scenario_id[:200]}' in the catalog generated at {snap.generated_at}")
        return record

    @app.get("/scenarios/{scenario_id}", response_model=ScenarioDetail, tags=["scenarios"],
             responses=_error_responses(404, 422, 503),
             summary="One scenario: definition, metadata, validation results and metrics")
    def get_scenario(scenario_id: str = PathParam(..., max_length=300, examples=[EXAMPLE_ID])):
        snap = store.snapshot()
        record = scenario_or_404(snap, scenario_id)
        computed = _record_metrics(record)
        rows, note = store.metrics(snap, scenario_id)
        metrics = {
            "source": METRICS_FILE if rows is not None else "catalog_record",
            "note": "" if rows is not None else f"computed summary from the scenario record ({note})",
            "portfolio": computed["portfolio"],
            "by_symbol": rows if rows is not None else computed["by_symbol"],
        }
        body = {
            **record, **_summary(record), "validation": record.get("validation") or {},
            "metadata": record.get("metadata") or {}, "metrics": metrics,
            "generated_at": snap.generated_at, "data_version": str(snap.document.get("data_version", "")),
        }
        return JSONResponse(body, headers=headers(snap))

    ts_content = {
        "application/json": {"schema": {"type": "object", "properties": {
            "scenario_id": {"type": "string"}, "generated_at": {"type": "string"},
            "columns": {"type": "array", "items": {"type": "string"}},
            "rows": {"type": "array", "items": {"type": "object"}}, "row_count": {"type": "integer"}}}},
        "text/csv": {"schema": {"type": "string"}},
        "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
    }

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
    ):
        kind = _negotiate(format, request.headers.get("accept"))
        snap = store.snapshot()
        scenario_or_404(snap, scenario_id)
        source, snap = store.open_timeseries(snap)
        try:
            record = scenario_or_404(snap, scenario_id)
            symbols = None
            if symbol is not None:
                symbols = [s.strip() for s in symbol.split(",") if s.strip()]
                unknown = [s for s in symbols if s not in (record.get("symbols") or [])]
                if unknown or not symbols:
                    raise ApiError(404, f"symbol(s) {', '.join(unknown) or repr(symbol)} not in scenario "
                                        f"'{scenario_id}' (its symbols: {', '.join(record.get('symbols') or [])})")
            fragment = ds.ParquetFileFormat().make_fragment(source)
            schema = fragment.physical_schema
            columns = [c for c in schema.names if c != "scenario_name"]
            expr = pc.field("scenario_id") == scenario_id
            if symbols:
                expr = expr & pc.field("symbol").isin(symbols)
            batches = fragment.to_batches(filter=expr, columns=columns, schema=schema, batch_size=BATCH_ROWS)
        except BaseException:
            source.close()
            raise
        stream = {"json": _json_stream, "csv": _csv_stream, "parquet": _parquet_stream}[kind]
        name = re.sub(r"[^A-Za-z0-9._-]", "_", scenario_id)[:120]
        extension = {"json": "json", "csv": "csv", "parquet": "parquet"}[kind]
        return StreamingResponse(
            _closing(stream(batches, scenario_id, snap), source),
            media_type=MEDIA[kind],
            headers={**headers(snap), "Content-Disposition": f'inline; filename="{name}.{extension}"'},
        )

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
                                          f"({requests.dir / (run_id + '.log')})"
            return {
                "run_id": run_id, "kind": "generation", "state": state, "created_at": record.get("created_at"),
                "started_at": record.get("started_at"), "finished_at": record.get("finished_at"), "error": error,
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

    @app.get("/report", tags=["catalog"], response_class=FileResponse, responses={
        200: {"content": {"text/html": {"schema": {"type": "string"}}}, "description": "scenario_report.html"},
        **_error_responses(404)}, summary="The visual scenario report of the catalog build")
    def report():
        path = out / REPORT_FILE
        if not path.exists():
            raise ApiError(404, f"no {REPORT_FILE} in '{out}' (it is written by each catalog build)")
        return FileResponse(path, media_type="text/html; charset=utf-8")

    return app


def _closing(chunks: Iterator[bytes], source) -> Iterator[bytes]:
    try:
        yield from chunks
    finally:
        source.close()


def _prepare(batch: pa.RecordBatch) -> pa.Table:
    table = pa.Table.from_batches([batch])
    for i, name in enumerate(table.column_names):
        col = table.column(i)
        if pa.types.is_dictionary(col.type):
            table = table.set_column(i, name, col.cast(pa.string()))
    return table


def _json_stream(batches, scenario_id: str, snap: Snapshot) -> Iterator[bytes]:
    head = {"scenario_id": scenario_id, "generated_at": snap.generated_at}
    yield (json.dumps(head)[:-1] + ', "rows": [').encode()
    count, columns = 0, None
    for batch in batches:
        if batch.num_rows == 0:
            continue
        table = _prepare(batch).drop_columns(["scenario_id"])
        columns = table.column_names
        for i, name in enumerate(columns):
            col = table.column(i)
            if pa.types.is_date(col.type):
                table = table.set_column(i, name, col.cast(pa.string()))
            elif pa.types.is_floating(col.type):
                # The shortest decimal that reads back as this float32 (not its float64 expansion); NaN -> null.
                col = col.cast(pa.string()).cast(pa.float64())
                table = table.set_column(i, name, pc.if_else(pc.is_nan(col), pa.scalar(None, pa.float64()), col))
        text = json.dumps(table.to_pylist(), separators=(",", ":"), allow_nan=False)
        yield ((", " if count else "") + text[1:-1]).encode()
        count += batch.num_rows
    yield f'], "columns": {json.dumps(columns or [])}, "row_count": {count}}}'.encode()


def _csv_stream(batches, scenario_id: str, snap: Snapshot) -> Iterator[bytes]:
    import pyarrow.csv as pacsv

    first = True
    for batch in batches:
        if batch.num_rows == 0 and not first:
            continue
        buffer = io.BytesIO()
        pacsv.write_csv(_prepare(batch), buffer, pacsv.WriteOptions(include_header=first, quoting_style="needed"))
        first = False
        yield buffer.getvalue()
    if first:  # no batch at all: header of nothing
        yield b""


def _parquet_stream(batches, scenario_id: str, snap: Snapshot) -> Iterator[bytes]:
    spool = tempfile.SpooledTemporaryFile(max_size=32 * 2**20)
    writer = None
    try:
        for batch in batches:
            table = _prepare(batch)
            if writer is None:
                schema = table.schema.with_metadata({b"generated_at": snap.generated_at.encode(),
                                                     b"scenario_id": scenario_id.encode()})
                writer = pq.ParquetWriter(spool, schema, compression="zstd")
            if table.num_rows:
                writer.write_table(table.cast(writer.schema))
        if writer is None:
            return
        writer.close()
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
    from scenarios_assets import cli

    parser = cli.OneLineParser(prog="scenarios serve", description="Serve the scenario catalog over HTTP.")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    parser.add_argument("--output-dir",
                        help=f"catalog directory (default: $SCENARIOS_OUTPUT_DIR or {DEFAULT_OUTPUT_DIR})")
    parser.add_argument("--dagster-ui", help="URL of the Dagster UI for run links (default: $SCENARIOS_DAGSTER_UI_URL)")
    parser.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    try:
        args = parser.parse_args(argv)
    except ScenarioInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not 0 < args.port < 65536:
        print(f"error: --port must be 1..65535, got {args.port}", file=sys.stderr)
        return 2
    import uvicorn

    home = cli.ensure_dagster_home()
    app = create_app(args.output_dir, home, args.dagster_ui)
    print(f"serving {app.state.store.output_dir} on http://{args.host}:{args.port} (docs: /docs; "
          f"Dagster instance {home})", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raise SystemExit(_worker_main(sys.argv[1:]))
