"""The output directory as a store of builds with one commit point (DESIGN.md section 4).

Layout of ``<output-dir>``::

    builds/<build-id>/              one complete build, never changed once published
        scenario_metadata.json
        build.json                  scenario_metadata.json without its `scenarios` (a small header to read)
        scenario_summary.txt
        scenario_timeseries.parquet/family=<f>/severity=<s>/part-00000.parquet ...   (with time series)
        scenario_metrics.parquet/family=<f>/severity=<s>/part-00000.parquet ...      (with time series)
        scenario_portfolio.parquet/family=<f>/severity=<s>/part-00000.parquet ...    (with time series)
        scenario_report.html, scenario_report_<chart>.png
        slices/<family>/<severity>/slice.json, records.jsonl      (what a later build carries over)
    builds/.tmp-<build-id>/         a build being written (removed by the next build if its writer died;
                                    on an object store the build is written at builds/<build-id>/ directly)
    CURRENT                         THE commit point: one small object holding the current build's id,
                                    written last (rename(2) of a temporary file locally, one PUT on an
                                    object store) and read first by every reader
    current -> builds/<build-id>    local stores only, for humans and tools: a symbolic link replaced
    scenario_metadata.json -> current/scenario_metadata.json      right after CURRENT; the seed's names
    scenario_timeseries.parquet -> current/...                     resolved through it (fixed links)
    ...
    .staging/<slice-id>/            family steps' output not yet in a build
    .lock                           held (flock) while a build is assembled and published (for an object
                                    store, a lock file in this machine's temporary directory, keyed by URL)

``<output-dir>`` is a local directory or an fsspec URL (:mod:`scenarios_assets.core.library.store`). A reader reads
``CURRENT`` once (:func:`current_build`) and reads every file from that build directory, so it always sees
one consistent build; ``<output-dir>/<file>`` works locally for tools that know nothing of builds. A build
becomes current only after every file in it is complete; a crash at any point leaves the previous build
current and complete. Carrying a slice over into a new build hard-links its files locally (same inode) and
copies them server-side on an object store (s3fs CopyObject: no bytes through the writer).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from scenarios_assets.core.library.atomic import atomic_symlink
from scenarios_assets.core.models.errors import ScenarioInputError
from scenarios_assets.core.library.store import copy_file, is_remote, local_lock_path, location, remove_tree, write_bytes_atomic

BUILDS_DIR = "builds"
CURRENT = "current"  # the local stores' symbolic link (for humans)
CURRENT_FILE = "CURRENT"  # the commit point: the current build's id
STAGING_DIR = ".staging"
LOCK_FILE = ".lock"
TMP_PREFIX = ".tmp-"
LOCK_WAIT_SECONDS = 600.0  # how long a build waits for another one's publish (seconds, which take seconds)

METADATA_FILE = "scenario_metadata.json"
TIMESERIES_FILE = "scenario_timeseries.parquet"
SUMMARY_FILE = "scenario_summary.txt"
METRICS_FILE = "scenario_metrics.parquet"
REPORT_FILE = "scenario_report.html"
PORTFOLIO_FILE = "scenario_portfolio.parquet"  # per scenario: the equal-weight portfolio's daily return
SLICES_DIR = "slices"
BUILD_FILE = "build.json"
# The seed's file names, readable at <output-dir>/<name> through `current`.
PUBLISHED_NAMES = (METADATA_FILE, TIMESERIES_FILE, SUMMARY_FILE, METRICS_FILE, REPORT_FILE)


class BuildInProgressError(ScenarioInputError):
    """Another process is assembling or publishing a build in the same output directory."""


def new_build_id(now: datetime | None = None) -> str:
    """Sortable, unique: UTC time to the microsecond plus a random suffix.

    Parameters
    ----------
    now : datetime, optional
        The time to use (UTC); default: now.

    Returns
    -------
    str
        ``YYYYMMDDTHHMMSSffffffZ-xxxxxx`` (6 random hex digits).
    """
    now = now or datetime.now(timezone.utc)
    return f"{now:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:6]}"


def builds_root(out: str | Path) -> Path:
    """The ``builds`` directory of an output directory.

    Parameters
    ----------
    out : str or Path
        The output directory, local or an fsspec URL (:mod:`scenarios_assets.core.library.store`).

    Returns
    -------
    Path
        ``<out>/builds`` (not created).
    """
    return location(out) / BUILDS_DIR


def current_build_id(out: str | Path) -> str | None:
    """Id of the current build of ``out`` (None before the first publish): the content of its ``CURRENT``
    object (the commit point), else, in a local directory published before ``CURRENT`` existed, the target
    of its ``current`` link.

    Parameters
    ----------
    out : str or Path
        The output directory, local or an fsspec URL (:mod:`scenarios_assets.core.library.store`).

    Returns
    -------
    str or None
        The build id, None before the first publish.

    Raises
    ------
    OSError
        Propagated (e.g. PermissionError, a store that cannot be reached); a missing ``CURRENT`` is not one.
    """
    out = location(out)
    try:
        text = (out / CURRENT_FILE).read_text().strip()
    except FileNotFoundError:
        text = ""
    if text:
        return text
    if is_remote(out):
        return None
    try:
        target = os.readlink(out / CURRENT)
    except OSError:
        return None
    return Path(target).name


def current_build(out: str | Path) -> Path | None:
    """The current build's directory (resolved once: read every file of one build from it), or None.

    Parameters
    ----------
    out : str or Path
        The output directory, local or an fsspec URL (:mod:`scenarios_assets.core.library.store`).

    Returns
    -------
    Path or None
        ``<out>/builds/<id>``, None before the first publish.

    Raises
    ------
    FileNotFoundError
        When ``CURRENT`` names a build that is gone (:func:`build_path`).
    """
    build_id = current_build_id(out)
    return build_path(out, build_id) if build_id else None


def build_path(out: str | Path, build_id: str) -> Path:
    """The directory of a published build.

    Parameters
    ----------
    out : str or Path
        The output directory, local or an fsspec URL (:mod:`scenarios_assets.core.library.store`).
    build_id : str
        A build id (:func:`published_builds`).

    Returns
    -------
    Path
        ``<out>/builds/<build_id>``.

    Raises
    ------
    FileNotFoundError
        Naming the kept builds, when the id is not a complete build (or starts with ``.`` or holds ``/``).
    """
    path = builds_root(out) / build_id
    if build_id.startswith(".") or "/" in build_id or not (path / METADATA_FILE).is_file():
        kept = ", ".join(published_builds(out)) or "none"
        raise FileNotFoundError(f"no build '{build_id}' in '{out}' (kept builds: {kept})")
    return path


def published_builds(out: str | Path) -> list[str]:
    """Ids of the complete builds in ``out``, oldest first.

    Parameters
    ----------
    out : str or Path
        The output directory, local or an fsspec URL (:mod:`scenarios_assets.core.library.store`).

    Returns
    -------
    list of str
        The ids of the build directories holding a ``scenario_metadata.json`` (sorted: ids sort by time).
    """
    root = builds_root(out)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if not p.name.startswith(".") and (p / METADATA_FILE).is_file())


def resolve(out: str | Path, build: str | None = None) -> Path:
    """The directory to read: build ``build`` (an id from :func:`published_builds`), else the current one.

    A directory written before builds existed (the catalog files directly in it) is read as it is.

    Parameters
    ----------
    out : str or Path
        The output directory, local or an fsspec URL (:mod:`scenarios_assets.core.library.store`).
    build : str, optional
        A kept build's id; None: the current build.

    Returns
    -------
    Path
        The build's directory (or ``out`` itself for the legacy flat layout).

    Raises
    ------
    FileNotFoundError
        When ``build`` is not a kept build, or ``out`` has no build at all.
    """
    out = location(out)
    if build:
        return build_path(out, build)
    path = current_build(out)
    if path is not None:
        return path
    if (out / METADATA_FILE).is_file():  # legacy flat layout
        return out
    raise FileNotFoundError(f"no scenario catalog in '{out}' (no current build); run `scenarios` first")


@contextlib.contextmanager
def build_lock(out: Path, wait_seconds: float | None = None) -> Iterator[None]:
    """Exclusive lock of ``out`` while one build is assembled and published. Another build's publish takes
    seconds, so this waits for it (up to ``wait_seconds``) rather than throwing away the caller's work;
    BuildInProgressError naming the holder after that.

    An ``flock(2)`` on :func:`lock_path`; the file holds the holder's pid and start time while held.

    Parameters
    ----------
    out : Path
        The output directory.
    wait_seconds : float, optional
        Seconds to wait for another holder; default :data:`LOCK_WAIT_SECONDS` (600 s).

    Yields
    ------
    None
        While the lock is held.

    Raises
    ------
    BuildInProgressError
        When the lock is still held by another process after ``wait_seconds``.
    """
    wait_seconds = LOCK_WAIT_SECONDS if wait_seconds is None else wait_seconds
    fh = open(lock_path(out), "a+")
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    fh.seek(0)
                    holder = fh.read().strip() or "another process"
                    raise BuildInProgressError(
                        f"another build has been publishing in '{out}' for over {wait_seconds:.0f} s ({holder})"
                    ) from None
                time.sleep(0.2)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} since {datetime.now(timezone.utc).isoformat(timespec='seconds')}")
        fh.flush()
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()  # no stale holder text once released
    finally:
        fh.close()  # releases the lock


def lock_path(out: Path) -> Path:
    """The lock file of ``out``: ``<out>/.lock`` locally; for an object store (which has no locks) a file in
    this machine's temporary directory named after the URL's hash, so builds published from this machine
    take turns (one Dagster instance runs one build at a time per output directory; writers on several
    machines must be serialised by their orchestrator).

    Parameters
    ----------
    out : Path
        The output directory (a local one is created).

    Returns
    -------
    Path
        The lock file's local path.
    """
    out = location(out)
    if not is_remote(out):
        out.mkdir(parents=True, exist_ok=True)
    return local_lock_path(out, LOCK_FILE)


def start_build(out: Path, build_id: str) -> Path:
    """A fresh directory for build ``build_id`` (call under :func:`build_lock`): ``builds/.tmp-<id>`` locally
    (renamed when complete); on an object store, which cannot rename a directory, ``builds/<id>`` itself
    (not current, and not listed as published until its scenario_metadata.json exists).

    Parameters
    ----------
    out : Path
        The output directory.
    build_id : str
        A new id (:func:`new_build_id`).

    Returns
    -------
    Path
        The directory to write the build into (created locally).

    Raises
    ------
    FileExistsError
        Locally, when the temporary directory already exists.
    """
    out = location(out)
    if is_remote(out):
        return builds_root(out) / build_id
    tmp = builds_root(out) / f"{TMP_PREFIX}{build_id}"
    tmp.mkdir(parents=True)
    return tmp


def link_file(src: Path, dst: Path) -> None:
    """``dst`` with the content of ``src`` and no bytes moved where the store allows: a hard link locally (a
    copy where the file system has no hard links), a server-side copy on an object store.

    Parameters
    ----------
    src : Path
        An existing file.
    dst : Path
        Where its content goes (same store).
    """
    copy_file(src, dst)


def link_tree(src: Path, dst: Path) -> None:
    """Every file under ``src`` linked at the same relative path under ``dst``.

    Parameters
    ----------
    src : Path
        A directory (a build or a slice).
    dst : Path
        The directory to link into (:func:`link_file` for each file).
    """
    for path in sorted(src.rglob("*")):
        if path.is_file():
            link_file(path, dst / path.relative_to(src))


def publish(out: Path, tmp: Path, keep: int = 2) -> Path:
    """Make the complete build in ``tmp`` current, in one atomic step; then drop builds beyond ``keep``.

    The steps: rename ``builds/.tmp-<id>`` to ``builds/<id>`` (complete, not yet current); replace the
    ``current`` link by a new one pointing at it (the commit point); make the fixed top-level links where
    missing; delete the builds beyond the newest ``keep``. A crash before the ``current`` replacement
    leaves the previous build current; the orphan is removed by the next build. Locally the ``CURRENT``
    file is written (atomic rename) before the ``current`` link; on an object store the build was written in
    place and one PUT of ``CURRENT`` commits it. Call under :func:`build_lock`.

    Parameters
    ----------
    out : Path
        The output directory.
    tmp : Path
        The complete build (:func:`start_build`).
    keep : int, default 2
        Published builds to keep (``performance.keep_builds``).

    Returns
    -------
    Path
        The published build's directory, ``<out>/builds/<id>``.

    Raises
    ------
    ScenarioInputError
        When ``keep`` is below 1.
    """
    if keep < 1:
        raise ScenarioInputError(f"performance.keep_builds must be >= 1, got {keep}")
    out = location(out)
    build_id = tmp.name.removeprefix(TMP_PREFIX)
    final = builds_root(out) / build_id
    if is_remote(out):  # written in place; one PUT of CURRENT commits it
        write_bytes_atomic(out / CURRENT_FILE, build_id.encode())
        prune(out, keep)
        return final
    _fsync_tree(tmp)
    os.rename(tmp, final)
    write_bytes_atomic(out / CURRENT_FILE, build_id.encode())  # the commit point
    atomic_symlink(f"{BUILDS_DIR}/{build_id}", out / CURRENT, tmp_suffix=build_id)  # for humans and tools that know nothing of builds
    _fsync_dir(out)
    ensure_top_level_links(out)
    prune(out, keep)
    return final


def ensure_top_level_links(out: Path) -> None:
    """``<out>/<name> -> current/<name>`` for the seed's file names; a legacy regular file is replaced.

    Parameters
    ----------
    out : Path
        A local output directory.
    """
    for name in PUBLISHED_NAMES:
        path = out / name
        target = f"{CURRENT}/{name}"
        if path.is_symlink() and os.readlink(path) == target:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        atomic_symlink(target, path)


def prune(out: Path, keep: int) -> list[str]:
    """Delete published builds beyond the newest ``keep`` (never the current one), unfinished builds and
    complete builds newer than the current one (a publish that died before its commit point). Call under
    :func:`build_lock`.

    Parameters
    ----------
    out : Path
        The output directory.
    keep : int
        Published builds to keep, counting back from the current one.

    Returns
    -------
    list of str
        The removed directory names.
    """
    out = location(out)
    root = builds_root(out)
    current = current_build_id(out)
    removed = []
    published = published_builds(out)
    keep_ids = set(published[: published.index(current) + 1][-keep:]) if current in published else set(published[-keep:])
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        if path.name == current or path.name in keep_ids:
            continue
        doomed = path
        if is_remote(out):  # unlisted first (its metadata), then the rest: no half build is ever listed
            (path / METADATA_FILE).unlink(missing_ok=True)
        elif not path.name.startswith("."):  # unlisted in one step first: a crash mid-delete leaves no half build
            doomed = root / f"{TMP_PREFIX}{path.name}"
            os.rename(path, doomed)
        remove_tree(doomed)
        removed.append(path.name)
    if not is_remote(out):
        for pattern in (f".{CURRENT}.*", f".{CURRENT_FILE}.*"):  # a publish that died before its rename
            for stray in out.glob(pattern):
                stray.unlink(missing_ok=True)
    return removed


# --- staging: family steps' output before it joins a build --------------------------------------------------

def staging_root(out: str | Path) -> Path:
    """The staging directory of an output directory.

    Parameters
    ----------
    out : str or Path
        The output directory, local or an fsspec URL (:mod:`scenarios_assets.core.library.store`).

    Returns
    -------
    Path
        ``<out>/.staging`` (not created).
    """
    return location(out) / STAGING_DIR


def new_staging(out: str | Path, family: str, severity: str, run_id: str) -> Path:
    """A fresh staging directory for one family x severity slice, owned by Dagster run ``run_id``.

    Parameters
    ----------
    out : str or Path
        The output directory, local or an fsspec URL (:mod:`scenarios_assets.core.library.store`).
    family, severity : str
        The slice.
    run_id : str
        The Dagster run writing it, recorded in ``owner.json`` with this process's pid and host.

    Returns
    -------
    Path
        ``<out>/.staging/<family>.<severity>.<random>``, created.
    """
    path = staging_root(out) / f"{family}.{severity}.{uuid.uuid4().hex[:12]}"
    path.mkdir(parents=True, exist_ok=is_remote(path))
    (path / "owner.json").write_text(json.dumps({"run_id": run_id, "family": family, "severity": severity,
                                                 "pid": os.getpid(), "host": socket.gethostname()}))
    return path


def clean_staging(out: str | Path, keep: set[str], is_live=lambda run_id: False) -> list[str]:
    """Remove staging directories not in ``keep`` (slice ids a later build may still take) whose owner is
    gone: its run is not live (``is_live(run_id)``), or its process on this host has died (a killed run that
    its orchestrator still lists as started).

    Parameters
    ----------
    out : str or Path
        The output directory, local or an fsspec URL (:mod:`scenarios_assets.core.library.store`).
    keep : set of str
        Staging directory names to keep.
    is_live : callable ``(run_id) -> bool``, default: never live
        Whether a run is still running.

    Returns
    -------
    list of str
        The removed directory names.
    """
    root = staging_root(out)
    removed = []
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        if path.name in keep:
            continue
        try:
            owner = json.loads((path / "owner.json").read_text())
        except (OSError, ValueError):
            owner = {}
        if owner.get("run_id") and is_live(owner["run_id"]) and _process_alive(owner):
            continue
        remove_tree(path)
        removed.append(path.name)
    return removed


def remove_run_leftovers(out: str | Path, run_ids: set[str]) -> list[str]:
    """Remove what runs ``run_ids`` (stopped: cancelled or killed) left in ``out``: their staging directories
    (``owner.json`` names the run) and, when no other build is being published (the build lock is free), any
    unfinished ``builds/.tmp-*`` directory. Published builds and other runs' staging are never touched.

    Parameters
    ----------
    out : str or Path
        A local output directory.
    run_ids : set of str
        The stopped runs.

    Returns
    -------
    list of str
        The removed paths, relative to ``out``.
    """
    out = Path(out)
    root = staging_root(out)
    removed = []
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        try:
            owner = json.loads((path / "owner.json").read_text())
        except (OSError, ValueError):
            continue
        if owner.get("run_id") in run_ids:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(f"{STAGING_DIR}/{path.name}")
    if builds_root(out).is_dir():
        try:
            with build_lock(out, wait_seconds=0):
                for tmp in sorted(builds_root(out).glob(f"{TMP_PREFIX}*")):
                    shutil.rmtree(tmp, ignore_errors=True)
                    removed.append(f"builds/{tmp.name}")
        except BuildInProgressError:  # another build is publishing: the next build removes them
            pass
    return removed


def _process_alive(owner: dict) -> bool:
    """False when the owner's process ran on this host and no longer exists (True when unknown)."""
    if owner.get("host") != socket.gethostname() or not owner.get("pid"):
        return True
    try:
        os.kill(int(owner["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_tree(path: Path) -> None:
    """Flush the build's files and directories to disk before it can become current."""
    for p in sorted(path.rglob("*"), reverse=True):
        if p.is_file() and not p.is_symlink():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        elif p.is_dir():
            _fsync_dir(p)
    _fsync_dir(path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
