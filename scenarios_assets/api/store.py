"""The builds of one output directory, as the API reads them: a request resolves ``current`` once (or names a
kept build) and reads everything from that build."""

from __future__ import annotations

import gc
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scenarios_assets.api.errors import ApiError
from scenarios_assets.api.snapshot import Snapshot
from scenarios_assets.core.library import builds
from scenarios_assets.core.library.builds import METADATA_FILE
from scenarios_assets.core.library.store import location

log = logging.getLogger("scenarios_assets.api")


class CatalogStore:
    """The builds of one output directory. A request resolves ``current`` once (or names a kept build) and
    reads everything from that build; each build is parsed once and cached by its id (immutable, so nothing
    is re-checked). A build deleted under a request (an old one, pruned after a publish) is read again from
    the new current build."""

    MAX_CACHED = 4  # parsed builds held: the current one, and kept ones asked for by id

    def __init__(self, output_dir: str | Path):
        self.output_dir = location(output_dir)  # a local directory or an fsspec URL (core/library/store.py)
        self._lock = threading.Lock()
        self._snapshots: dict[str, Snapshot] = {}  # insertion order = age
        self._headers: dict[str, dict] = {}

    def snapshot(self, build: str | None = None) -> Snapshot:
        """The current build, or the kept build ``build`` (404 naming the kept ones when it is not kept)."""
        for attempt in (1, 2):
            try:
                path = builds.resolve(self.output_dir, build)
            except FileNotFoundError as exc:
                if build:
                    raise ApiError(404, str(exc)) from None
                raise ApiError(503, f"no scenario catalog in '{self.output_dir}' yet: run `scenarios` or "
                                    "POST /scenarios/generate") from None
            try:
                key = path.name if path != self.output_dir else _legacy_key(path)
                return self._snapshots.get(key) or self._load(key, path)
            except FileNotFoundError:  # deleted between resolving and reading
                if build or attempt == 2:
                    raise ApiError(404 if build else 503, self._deleted(path.name)) from None
        raise AssertionError("unreachable")

    def read(self, build: str | None, read: Callable[[Snapshot], Any]) -> tuple[Snapshot, Any]:
        """``read(snapshot)`` of one build, once more on the new current build if that one was deleted meanwhile."""
        for attempt in (1, 2):
            snap = self.snapshot(build)
            try:
                return snap, read(snap)
            except FileNotFoundError as exc:
                if snap.key == builds.current_build_id(self.output_dir):  # never pruned: a damaged build
                    raise ApiError(503, f"build '{snap.build_id}' is incomplete: {exc}") from None
                with self._lock:
                    self._snapshots.pop(snap.key, None)
                if build or attempt == 2:
                    raise ApiError(404 if build else 503, self._deleted(snap.build_id)) from None
                log.info("build %s was deleted while a request read it; reading the current build", snap.build_id)
        raise AssertionError("unreachable")

    def _deleted(self, build_id: str) -> str:
        kept = ", ".join(builds.published_builds(self.output_dir)) or "none"
        return f"build '{build_id}' was deleted while it was read (kept builds: {kept})"

    def _load(self, key: str, path: Path) -> Snapshot:
        with self._lock:
            if key in self._snapshots:
                return self._snapshots[key]
            try:
                with (path / METADATA_FILE).open("rb") as fh:
                    snap = Snapshot(key, path, json.load(fh))
            except (ValueError, KeyError, TypeError, AttributeError):
                raise ApiError(503, f"'{path / METADATA_FILE}' is not a valid scenario catalog") from None
            for gone in [k for k, s in self._snapshots.items() if not s.alive()]:
                del self._snapshots[gone]
            while len(self._snapshots) >= self.MAX_CACHED:  # the oldest loaded first
                del self._snapshots[next(iter(self._snapshots))]
            self._snapshots[key] = snap
            # A parsed build is a few hundred thousand long-lived containers (no reference cycles: freed by
            # reference counting when evicted). Kept out of the cyclic collector's full passes, which would
            # otherwise walk all of them every so often: ~0.1 s pauses per 6,000 scenarios.
            gc.freeze()
            return snap

    def builds(self) -> tuple[str | None, list[dict]]:
        """The current build's id and the kept builds, newest first."""
        current = builds.current_build_id(self.output_dir)
        kept = builds.published_builds(self.output_dir)
        listed = []
        for build_id in reversed(kept):
            header = self._headers.get(build_id)
            if header is None:
                try:
                    header = self._headers[build_id] = self._header(build_id)
                except FileNotFoundError:  # pruned meanwhile
                    continue
            listed.append({**header, "current": build_id == current})
        for gone in set(self._headers) - set(kept):
            self._headers.pop(gone, None)
        return current, listed

    def _header(self, build_id: str) -> dict:
        snap = self._snapshots.get(build_id)
        path = builds.build_path(self.output_dir, build_id) / METADATA_FILE
        doc = snap.document if snap is not None else _metadata_header(path)
        count = len(doc["scenarios"]) if "scenarios" in doc else sum(e["count"] for e in doc["families"].values())
        return {"build_id": build_id, "generated_at": str(doc.get("generated_at", "")),
                "data_version": str(doc.get("data_version", "")), "config_hash": str(doc.get("config_hash", "")),
                "scenario_count": count}


def _legacy_key(out: Path) -> str:
    """A directory written before builds existed changes in place: cached by the metadata file's identity."""
    st = os.stat(out / METADATA_FILE)
    return f"legacy:{st.st_dev}:{st.st_ino}:{st.st_mtime_ns}:{st.st_size}"


def _metadata_header(path: Path) -> dict:
    """scenario_metadata.json without its records: the build's small ``build.json`` (library.write_build
    writes both), else the whole document (a build from before build.json)."""
    header = path.with_name(builds.BUILD_FILE)
    with (header if header.is_file() else path).open("rb") as fh:
        return json.load(fh)


