"""``GET /builds`` (the kept builds) and ``GET /catalog`` (one build's provenance and counts)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from scenarios_assets.api.context import Context
from scenarios_assets.api.errors import error_responses
from scenarios_assets.api.models import BuildList, BuildParam, CatalogInfo
from scenarios_assets.core.library import builds

router = APIRouter()


@router.get("/builds", response_model=BuildList, tags=["catalog"],
            summary="The kept builds (readable with ?build=), newest first")
def list_builds(ctx: Context):
    current, kept = ctx.store.builds()
    return JSONResponse({"current": current, "builds": kept})


@router.get("/catalog", response_model=CatalogInfo, tags=["catalog"], responses=error_responses(404, 422, 503),
            summary="The catalog build: provenance and counts by family and severity")
def catalog_info(ctx: Context, build: BuildParam = None):
    snap = ctx.store.snapshot(build)
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
