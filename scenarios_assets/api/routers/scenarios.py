"""``GET /scenarios`` (the list, paged), ``GET /scenarios/{scenario_id}`` (one scenario) and
``GET /scenarios/{scenario_id}/timeseries`` (its time series, streamed as JSON, CSV or Parquet).

Two routers: ``listing`` (the list) and ``router`` (one scenario), so that the app can declare
``POST /scenarios/generate`` (``routers/runs.py``) between them (app.py).
"""

from __future__ import annotations

import re
from typing import Literal

import pyarrow as pa
from fastapi import APIRouter, Path as PathParam, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from scenarios_assets.api.context import Context
from scenarios_assets.api.errors import ApiError, error_responses
from scenarios_assets.api.formats import BATCH_ROWS, MEDIA, csv_stream, iterate, json_stream, negotiate, parquet_stream
from scenarios_assets.api.models import EXAMPLE_ID, BuildParam, ScenarioDetail, ScenarioPage
from scenarios_assets.api.snapshot import Snapshot, summary
from scenarios_assets.core.families.registry import FAMILIES
from scenarios_assets.core.library.builds import METRICS_FILE
from scenarios_assets.core.models.severity import SEVERITIES

listing = APIRouter()
router = APIRouter()

TIMESERIES_CONTENT = {
    "application/json": {"schema": {"type": "object", "properties": {
        "scenario_id": {"type": "string"}, "generated_at": {"type": "string"}, "build_id": {"type": "string"},
        "columns": {"type": "array", "items": {"type": "string"}},
        "rows": {"type": "array", "items": {"type": "object"}}, "row_count": {"type": "integer"}}}},
    "text/csv": {"schema": {"type": "string"}},
    "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
}


@listing.get("/scenarios", response_model=ScenarioPage, tags=["scenarios"],
             responses=error_responses(404, 422, 503), summary="List scenario definitions (paged)")
def list_scenarios(
    request: Request,
    ctx: Context,
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
    snap = ctx.store.snapshot(build)
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
        nxt = ctx.link(request, f"{request.url.path.removeprefix(request.scope.get('root_path', '') or '')}?{query}")
    body = {
        "total": len(items), "offset": offset, "limit": limit, "count": len(page), "next": nxt,
        **snap.provenance, "data_version": snap.data_version, "config_hash": snap.config_hash, "items": page,
    }
    return JSONResponse(body, headers=snap.headers)


@router.get("/scenarios/{scenario_id}", response_model=ScenarioDetail, tags=["scenarios"],
            responses=error_responses(404, 422, 503),
            summary="One scenario: definition, metadata, validation results and metrics")
def get_scenario(ctx: Context, scenario_id: str = PathParam(..., max_length=300, examples=[EXAMPLE_ID]),
                 build: BuildParam = None):
    snap, body = ctx.store.read(build, lambda snap: detail(snap, scenario_id))
    return JSONResponse(body, headers=snap.headers)


@router.get(
    "/scenarios/{scenario_id}/timeseries", tags=["scenarios"], summary="A scenario's time series (streamed)",
    response_class=StreamingResponse,
    responses={200: {"description": "one row per symbol and date (symbol-major), JSON by default; CSV or "
                     "Parquet by Accept header or ?format=", "content": TIMESERIES_CONTENT},
               **error_responses(404, 406, 422, 503)},
)
def get_timeseries(
    request: Request,
    ctx: Context,
    scenario_id: str = PathParam(..., max_length=300, examples=[EXAMPLE_ID]),
    symbol: str | None = Query(None, max_length=2000, description="one symbol or a comma-separated list "
                               "(default: all of the scenario's symbols)"),
    format: Literal["json", "csv", "parquet"] | None = Query(None, description="overrides the Accept header"),
    build: BuildParam = None,
):
    kind = negotiate(format, request.headers.get("accept"))
    snap, table = ctx.store.read(build, lambda snap: timeseries(snap, scenario_id, symbol))
    chunks = {"json": json_stream, "csv": csv_stream, "parquet": parquet_stream}[kind](table, scenario_id, snap)
    if table.num_rows <= BATCH_ROWS:  # small: serialised here, streamed without a thread hop per chunk
        chunks = iterate(list(chunks))
    name = re.sub(r"[^A-Za-z0-9._-]", "_", scenario_id)[:120]
    return StreamingResponse(chunks, media_type=MEDIA[kind],
                             headers={**snap.headers, "Content-Disposition": f'inline; filename="{name}.{kind}"'})


def scenario_or_404(snap: Snapshot, scenario_id: str) -> dict:
    """The record of ``scenario_id`` in the build (ApiError 404 naming the build when it is not there)."""
    record = snap.by_id.get(scenario_id)
    if record is None:
        raise ApiError(404, f"no scenario '{scenario_id[:200]}' in build {snap.build_id or '(legacy)'} "
                            f"generated at {snap.generated_at}")
    return record


def detail(snap: Snapshot, scenario_id: str) -> dict:
    """The ScenarioDetail body of one scenario: its record, metrics and its slice's provenance."""
    record = scenario_or_404(snap, scenario_id)
    computed = record_metrics(record)
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
        **record, **summary(record),
        "validation": record.get("validation") or {}, "metadata": record.get("metadata") or {},
        "metrics": metrics, **snap.provenance,
        "data_version": str(entry.get("data_version") or snap.data_version),
        "config_hash": str(entry.get("config_hash") or snap.config_hash),
        "origin": entry.get("origin", "new"), "stale": bool(entry.get("stale", False)),
    }


def record_metrics(record: dict) -> dict:
    """Portfolio and per-symbol metrics computed from the record (a build without scenario_metrics.parquet)."""
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


def timeseries(snap: Snapshot, scenario_id: str, symbol: str | None) -> pa.Table:
    """The rows of one scenario (and the symbols of ``symbol``, comma-separated; 404 for one not in it)."""
    record = scenario_or_404(snap, scenario_id)
    symbols = None
    if symbol is not None:
        symbols = [s.strip() for s in symbol.split(",") if s.strip()]
        unknown = [s for s in symbols if s not in (record.get("symbols") or [])]
        if unknown or not symbols:
            raise ApiError(404, f"symbol(s) {', '.join(unknown) or repr(symbol)} not in scenario "
                                f"'{scenario_id}' (its symbols: {', '.join(record.get('symbols') or [])})")
    return snap.timeseries(record, symbols)
