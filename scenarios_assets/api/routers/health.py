"""``GET /health``: liveness and whether there is a catalog."""

from __future__ import annotations

from fastapi import APIRouter

from scenarios_assets.api.context import Context
from scenarios_assets.api.errors import ApiError
from scenarios_assets.api.models import Health

router = APIRouter()


@router.get("/health", response_model=Health, tags=["catalog"], summary="Liveness and catalog presence")
def health(ctx: Context):
    try:
        snap = ctx.store.snapshot()
    except ApiError:
        return {"status": "ok", "catalog": False, "build_id": None, "generated_at": None}
    return {"status": "ok", "catalog": True, **snap.provenance}
