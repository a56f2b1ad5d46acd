"""REST API over the scenario catalog: ``scenarios serve --host 127.0.0.1 --port 8000 [--output-dir DIR]``.

Reads come from the builds of the output directory (:mod:`scenarios_assets.core.library.builds`): a request
resolves the ``current`` link once (or takes the kept build named by ``?build=``) and reads everything
from that one build, whose id every answer carries (header ``X-Scenarios-Build``, ``build_id`` beside
``generated_at`` in bodies). Builds never change once published, so each is parsed once and cached by
its id: the metadata document, the footers and row-group ranges of its time-series parts, its metrics.
A scenario's time series is read from its slice's parts only (the record's family and severity) and from
the row groups whose scenario-id range holds it. An old build pruned while a request reads it is read
again from the new current build. ``POST /scenarios/generate`` turns a generation request into the service's plan,
validated exactly as the CLI's flags are (``scenarios_assets.service``), and runs it (market data, each
severity's families, the catalog) as Dagster runs on the project's instance (``DAGSTER_HOME``), in a background process; the runs carry the
tag ``scenarios/request_id`` so the Dagster UI and ``GET /runs/{run_id}`` follow them.

Errors are JSON ``{"status", "error", "message"[, "details"]}``: 400 for a body that is not JSON, 404 for
an unknown id or build, 413 for a body above ``MAX_BODY_BYTES``, 422 for bad parameters, 503 while there is
no catalog; never a stack trace, and no server file path (``errors.redact``). Links (``next``, ``status_url``,
``Location``) are paths relative to the server's root, or absolute under a configured public base URL
(``--public-url`` / ``$SCENARIOS_PUBLIC_URL``), never built from the request's ``Host`` header.

Modules: ``app`` (create_app: settings, state, middleware, error handlers, routers), ``routers/`` (one per
resource: health, catalog, scenarios, runs, report), ``context`` (what the routes share), ``models`` (the
OpenAPI schema), ``snapshot`` and ``store`` (reading the builds), ``formats`` (JSON/CSV/Parquet streams),
``generation`` (generation requests: log, launcher, worker, cancel), ``dagster_runs`` (runs as reported),
``errors``, ``middleware`` and ``serve`` (``scenarios serve``). Generation requests become the service's
plan (``scenarios_assets.service``), as the CLI's flags do; the API imports nothing of the CLI.
"""

from scenarios_assets.api.app import create_app
from scenarios_assets.api.dagster_runs import REQUEST_TAG
from scenarios_assets.api.errors import ApiError, redact
from scenarios_assets.api.generation import RequestLog, SubprocessLauncher, execute_plan, resolve_plan, stop_generation, utc_now, worker_main
from scenarios_assets.api.middleware import MAX_BODY_BYTES
from scenarios_assets.api.serve import serve
from scenarios_assets.api.store import CatalogStore

__all__ = ["MAX_BODY_BYTES", "REQUEST_TAG", "ApiError", "CatalogStore", "RequestLog", "SubprocessLauncher", "create_app",
           "execute_plan", "redact", "resolve_plan", "serve", "stop_generation", "utc_now", "worker_main"]
