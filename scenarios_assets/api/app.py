"""The application: settings, shared state, middleware, error handlers and the routers."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from scenarios_assets.api.context import ApiContext
from scenarios_assets.api.errors import install_error_handlers
from scenarios_assets.api.generation import LaunchLock, RequestLog, SubprocessLauncher
from scenarios_assets.api.middleware import MAX_BODY_BYTES, BodyLimit
from scenarios_assets.api.routers import catalog, health, report, runs, scenarios
from scenarios_assets.api.store import CatalogStore
from scenarios_assets.core.data.paths import DEFAULT_DAGSTER_HOME, DEFAULT_OUTPUT_DIR
from scenarios_assets.core.library.store import is_remote, location

# Order matters: POST /scenarios/generate before /scenarios/{scenario_id} (a 405 naming POST for the other
# methods on it, not a 404 for a scenario called "generate"); the OpenAPI paths follow this order.
ROUTERS = (health.router, catalog.router, scenarios.listing, runs.generation, scenarios.router, runs.router,
           report.router)


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
    requests = RequestLog(home)
    context = ApiContext(
        output_dir=out, dagster_home=home,
        ui=(dagster_ui_url or os.environ.get("SCENARIOS_DAGSTER_UI_URL") or "").rstrip("/") or None,
        base=(public_url or os.environ.get("SCENARIOS_PUBLIC_URL") or "").rstrip("/") or None,
        store=CatalogStore(out), requests=requests, launcher=launcher or SubprocessLauncher(requests, home),
        launch_lock=LaunchLock(requests.dir / ".launch.lock"),
    )
    # Swagger UI (/docs) and ReDoc (/redoc) from the files fastapi-offline ships (FastAPI's self-hosting recipe,
    # under /static-offline-docs), not from a CDN: the docs work without internet.
    app = FastAPIOffline(
        title="Market scenarios API",
        version="1.0.0",
        description="The scenario library of the catalog files (scenario_metadata.json, "
        "scenario_timeseries.parquet, scenario_metrics.parquet) over HTTP, and generation runs on the "
        "project's Dagster instance. Errors: JSON {status, error, message}.",
    )
    app.state.context = context
    app.state.store = context.store
    app.state.launcher = context.launcher
    app.add_middleware(BodyLimit, limit=max_body_bytes)
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    return app
