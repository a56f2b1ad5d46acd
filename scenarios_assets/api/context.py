"""What the routes of one app share (``app.state.context``), and the dependency that hands it to them."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request

from scenarios_assets.api.generation import LaunchLock, RequestLog
from scenarios_assets.api.store import CatalogStore


@dataclass
class ApiContext:
    """The app's catalog store, generation requests and launcher, Dagster instance and link settings."""

    output_dir: Path  # the library (a local directory or an fsspec location)
    dagster_home: Path  # the Dagster instance generation runs go to
    ui: str | None  # the Dagster UI's base URL, for run links
    base: str | None  # the public base URL of the API's own links (None: relative to the server's root)
    store: CatalogStore
    requests: RequestLog
    launcher: Any  # launch(record); optionally pid_of(request_id) (generation.SubprocessLauncher)
    launch_lock: LaunchLock
    _instance: Any = field(default=None, repr=False)
    _instance_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def instance(self):
        """The Dagster instance in ``dagster_home`` (None while that directory does not exist), loaded once."""
        if self._instance is None:
            from dagster import DagsterInstance

            if not self.dagster_home.exists():
                return None
            with self._instance_lock:
                if self._instance is None:
                    os.environ.setdefault("DAGSTER_HOME", str(self.dagster_home))  # the project's dagster.yaml reads it
                    self._instance = DagsterInstance.from_config(str(self.dagster_home))
        return self._instance

    def link(self, request: Request, path: str) -> str:
        """``path`` (absolute within the app) as a link: under the configured public base URL, else relative
        to the server's root; never from the request's Host header."""
        root = request.scope.get("root_path", "") or ""
        return f"{self.base or ''}{root}{path}"


def api_context(request: Request) -> ApiContext:
    """The app's ApiContext (a FastAPI dependency)."""
    return request.app.state.context


Context = Annotated[ApiContext, Depends(api_context)]
