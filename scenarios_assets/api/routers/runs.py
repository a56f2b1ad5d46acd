"""``POST /scenarios/generate`` (validate a generation request, launch its Dagster runs in a background
worker), ``GET /runs/{run_id}`` (its status, or any Dagster run's) and ``POST /runs/{run_id}/cancel``.

Two routers: ``generation`` (POST /scenarios/generate, declared before /scenarios/{scenario_id}, so that
other methods on it get a 405 whose Allow header names POST: app.py) and ``router`` (the runs).
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Path as PathParam, Request
from fastapi.responses import JSONResponse

from scenarios_assets.api.context import ApiContext, Context
from scenarios_assets.api.dagster_runs import REQUEST_TAG, dagster_runs, run_state, ui_runs_url
from scenarios_assets.api.errors import ApiError, error_responses, redact
from scenarios_assets.api.generation import RequestLog, resolve_plan, stop_generation, utc_now, worker_alive
from scenarios_assets.api.models import GenerateAccepted, GenerateRequest, RunStatus
from scenarios_assets.core.models.errors import ScenarioInputError
from scenarios_assets.service.preflight import preflight

generation = APIRouter()
router = APIRouter()

RunId = Annotated[str, PathParam(max_length=64, examples=["8d2f0c3e-3a54-4f0e-9a0e-2b8c7f1d9e10"])]


@generation.post("/scenarios/generate", status_code=202, response_model=GenerateAccepted, tags=["runs"],
                 responses=error_responses(400, 409, 413, 422),
                 summary="Validate a generation config and launch its Dagster runs")
def generate(request: Request, ctx: Context, body: GenerateRequest = Body(...)):
    config = body.model_dump(mode="json")
    try:
        plan = resolve_plan(config, ctx.output_dir)
        preflight(plan)  # bad symbols or dates fail here, before anything runs
    except ScenarioInputError as exc:
        raise ApiError(422, str(exc)) from None
    with ctx.launch_lock:
        busy = ctx.requests.active()
        if busy:
            raise ApiError(409, f"generation {busy[0]['id']} is still {busy[0].get('state')}; "
                                f"follow it at /runs/{busy[0]['id']}")
        request_id = str(uuid.uuid4())
        record = {"id": request_id, "state": "queued", "created_at": utc_now(), "request": config,
                  "families": plan.families, "severities": plan.severities, "output_dir": str(ctx.output_dir),
                  "pid": None}
        ctx.launcher.launch(record)
    status_url = ctx.link(request, str(request.app.url_path_for("run_status", run_id=request_id)))
    return JSONResponse(
        {"run_id": request_id, "state": "queued", "status_url": status_url,
         "dagster_ui_url": ui_runs_url(ctx.ui, request_id), "families": plan.families,
         "severities": plan.severities},
        status_code=202, headers={"Location": status_url},
    )


@router.get("/runs/{run_id}", response_model=RunStatus, tags=["runs"], responses=error_responses(404, 422),
            summary="Status of a generation request (or of any Dagster run of the instance)", name="run_status")
def run_status(ctx: Context, run_id: RunId):
    record = ctx.requests.read(run_id)
    if record is not None:
        return generation_status(ctx, run_id, record)
    if re.fullmatch(r"[0-9a-f-]{36}", run_id) and ctx.instance() is not None:
        runs = dagster_runs(ctx.instance(), ctx.ui, run_ids=[run_id])
        if runs:
            run = runs[0]
            return {"run_id": run_id, "kind": "dagster_run", "state": run_state(run["status"]),
                    "created_at": run["created_at"], "started_at": run["started_at"],
                    "finished_at": run["finished_at"], "dagster_runs": runs,
                    "dagster_ui_url": run["dagster_ui_url"]}
    raise ApiError(404, f"no generation request or Dagster run '{run_id}'")


@router.post("/runs/{run_id}/cancel", response_model=RunStatus, tags=["runs"],
             responses=error_responses(404, 409, 422),
             summary="Cancel a generation: stop its process and Dagster runs, free the generation slot")
def cancel_run(ctx: Context, run_id: RunId):
    record = ctx.requests.read(run_id)
    if record is None:
        raise ApiError(404, f"no generation request '{run_id}' (only generations started by POST "
                            "/scenarios/generate can be canceled here)")
    with ctx.launch_lock:
        record = ctx.requests.read(run_id) or record
        if record.get("state") in ("success", "failure"):
            raise ApiError(409, f"generation {run_id} already ended ({record['state']}); nothing to cancel")
        if record.get("state") != "canceled":
            pid_of = getattr(ctx.launcher, "pid_of", None)
            record = stop_generation(record, ctx.requests, ctx.instance(), ctx.output_dir,
                                     pid_of(run_id) if pid_of else None)
        if record.get("state") in ("success", "failure"):
            raise ApiError(409, f"generation {run_id} ended ({record['state']}) before it could be canceled")
    return run_status(ctx, run_id)


def generation_status(ctx: ApiContext, run_id: str, record: dict) -> dict:
    """The RunStatus body of a generation request: its record and its Dagster runs; a worker that died
    without a word is reported as failed."""
    runs = dagster_runs(ctx.instance(), ctx.ui, tags={REQUEST_TAG: run_id})
    state = record.get("state", "queued")
    error = record.get("error")
    if state not in RequestLog.FINAL and not worker_alive(record):
        state, error = "failure", "the generation process exited unexpectedly; see its log " \
                                  f"({run_id}.log in the server's request directory)"
    return {
        "run_id": run_id, "kind": "generation", "state": state, "created_at": record.get("created_at"),
        "started_at": record.get("started_at"), "finished_at": record.get("finished_at"),
        "error": redact(error) if error else None,
        "request": record.get("request"), "families": record.get("families"),
        "severities": record.get("severities"), "dagster_runs": runs,
        "dagster_ui_url": ui_runs_url(ctx.ui, run_id),
    }
