"""``GET /report`` (the build's visual report, HTML) and ``GET /report/charts/{chart}.png`` (one chart)."""

from __future__ import annotations

import os
from typing import Annotated

from fastapi import APIRouter, Path as PathParam, Query
from fastapi.responses import Response, StreamingResponse

from scenarios_assets.api.context import Context
from scenarios_assets.api.errors import error_responses
from scenarios_assets.api.formats import file_chunks, scaled_png
from scenarios_assets.api.models import BuildParam
from scenarios_assets.api.snapshot import Snapshot

router = APIRouter()


@router.get("/report", tags=["catalog"], response_class=StreamingResponse, responses={
    200: {"content": {"text/html": {"schema": {"type": "string"}}}, "description": "scenario_report.html"},
    **error_responses(404, 422, 503)}, summary="The visual scenario report of the catalog build")
def report(ctx: Context, build: BuildParam = None):
    snap, source = ctx.store.read(build, Snapshot.open_report)
    size = os.fstat(source.fileno()).st_size
    return StreamingResponse(file_chunks(source), media_type="text/html; charset=utf-8",
                             headers={**snap.headers, "Content-Length": str(size)})


@router.get("/report/charts/{chart}.png", tags=["catalog"], response_class=StreamingResponse, responses={
    200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
          "description": "one chart of the report (the Dagster UI shows them in the catalog's metadata)"},
    **error_responses(404, 422, 503)}, summary="One chart of the visual report, as PNG")
def report_chart(ctx: Context,
                 chart: Annotated[str, PathParam(pattern=r"^[a-z0-9_]{1,64}$",
                                                 description="chart key, e.g. overview, monte_carlo_fan")],
                 build: BuildParam = None,
                 width: Annotated[int | None, Query(ge=100, le=4000, description=(
                     "scale down to this many pixels wide (aspect kept; never up), e.g. for the Dagster "
                     "UI's metadata panel"))] = None):
    snap, source = ctx.store.read(build, lambda snap: snap.open_chart(chart))
    # A build never changes once published: a chart asked for by build id may be cached for good.
    headers = {**snap.headers, **({"Cache-Control": "public, max-age=31536000, immutable"} if build else {})}
    if width is not None:
        with source:
            return Response(scaled_png(source.read(), width), media_type="image/png", headers=headers)
    size = os.fstat(source.fileno()).st_size
    return StreamingResponse(file_chunks(source), media_type="image/png",
                             headers={**headers, "Content-Length": str(size)})
