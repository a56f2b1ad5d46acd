"""``scenarios serve``: the API under uvicorn."""

from __future__ import annotations

import os
import sys

from scenarios_assets.api.app import create_app
from scenarios_assets.core.data.paths import DEFAULT_OUTPUT_DIR
from scenarios_assets.core.models.errors import ScenarioInputError
from scenarios_assets.service.arguments import OneLineParser
from scenarios_assets.service.instance import ensure_dagster_home


def serve(argv: list[str]) -> int:
    """`scenarios serve [--host H] [--port N] [--output-dir DIR] [--dagster-ui URL]`: the API under uvicorn."""
    parser = OneLineParser(prog="scenarios serve", description="Serve the scenario catalog over HTTP.")
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

    home = ensure_dagster_home()
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


