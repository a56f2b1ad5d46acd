"""Generation requests of the API: the service's plan (``scenarios_assets.service``) run as Dagster runs in a
background worker process, recorded under $DAGSTER_HOME/scenarios_api/requests, and cancelled on demand.

``python -m scenarios_assets.api run-request FILE`` is the worker (``worker_main``).
"""

from __future__ import annotations

import fcntl
import io
import json
import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import Mapping
from contextlib import redirect_stderr
from datetime import datetime, timezone
from pathlib import Path

from scenarios_assets.api.dagster_runs import REQUEST_TAG
from scenarios_assets.core.data.dates import parse_iso_date
from scenarios_assets.core.library import builds
from scenarios_assets.core.library.atomic import atomic_write_text
from scenarios_assets.core.library.store import location
from scenarios_assets.core.models.errors import ScenarioInputError
from scenarios_assets.service.plan import GenerationRequest, Plan, build_plan
from scenarios_assets.service.run import EXIT_OK, run_plan

log = logging.getLogger("scenarios_assets.api")


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second (the request records' timestamps)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def generation_request(config: Mapping, output_dir: Path | str) -> GenerationRequest:
    """The service's request of a generation body (``GenerateRequest`` dumped as JSON: lists of types and
    severities, ISO dates) into ``output_dir``. Raises ScenarioInputError for a date that is not YYYY-MM-DD."""
    dates = {}
    for key in ("start_date", "end_date"):
        if config.get(key):
            try:
                dates[key] = parse_iso_date(str(config[key])).isoformat()
            except ValueError as exc:
                raise ScenarioInputError(f"--{key.replace('_', '-')}: {exc}") from None
    symbols = config.get("symbols")
    return GenerationRequest(
        types=tuple(config.get("types") or ("all",)), severities=tuple(config.get("severities") or ("all",)),
        num_scenarios=config.get("num_scenarios"), symbols=tuple(symbols) if symbols else None,
        start_date=dates.get("start_date"), end_date=dates.get("end_date"),
        include_full_cycles=bool(config.get("include_full_cycles")), seed=config.get("seed"),
        save_timeseries=bool(config.get("save_timeseries", True)), dry_run=bool(config.get("dry_run")),
        output_dir=str(output_dir),
    )


def resolve_plan(config: Mapping, output_dir: Path | str) -> Plan:
    """The service's plan of a generation body (``service.plan.build_plan``): validated exactly as the CLI
    validates its flags. Raises ScenarioInputError naming the problem (the API's 422)."""
    return build_plan(generation_request(config, output_dir))


def execute_plan(plan: Plan, request_id: str) -> None:
    """Run the plan exactly as the CLI does (``service.run.run_plan``: market data, each severity's families,
    the catalog, as Dagster runs on the instance in DAGSTER_HOME), every run tagged with the request id.
    Raises RuntimeError with the run's one-line reason when a run fails."""

    class Tee(io.TextIOBase):
        def __init__(self, *streams):
            self.streams = streams

        def write(self, text):
            for stream in self.streams:
                stream.write(text)
            return len(text)

    errors = io.StringIO()
    with redirect_stderr(Tee(sys.stderr, errors)):
        code = run_plan(plan, out=sys.stdout, tags={"scenarios/api": "1", REQUEST_TAG: request_id})
    if code != EXIT_OK:
        reasons = [line.removeprefix("error: ") for line in errors.getvalue().splitlines() if line.startswith("error: ")]
        raise RuntimeError(reasons[0] if reasons else f"the run failed (exit {code})")


class RequestLog:
    """Generation requests as JSON files under $DAGSTER_HOME/scenarios_api/requests (atomic writes), so
    their state survives an API restart and the worker process reports into it."""

    FINAL = ("success", "failure", "canceled")

    def __init__(self, dagster_home: Path):
        self.dir = Path(dagster_home) / "scenarios_api" / "requests"

    def path(self, request_id: str) -> Path:
        return self.dir / f"{request_id}.json"

    def read(self, request_id: str) -> dict | None:
        if not re.fullmatch(r"[0-9a-f-]{36}", request_id):
            return None
        try:
            return json.loads(self.path(request_id).read_text())
        except (FileNotFoundError, ValueError):
            return None

    def write(self, record: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path(record["id"]), json.dumps(record, indent=2))

    def update(self, request_id: str, **changes) -> dict:
        record = self.read(request_id) or {"id": request_id}
        record.update(changes)
        self.write(record)
        return record

    def active(self) -> list[dict]:
        if not self.dir.exists():
            return []
        records = [self.read(p.stem) for p in self.dir.glob("*.json")]
        return [r for r in records if r and r.get("state") not in self.FINAL and worker_alive(r)]


def worker_alive(record: dict) -> bool:
    pid = record.get("pid")
    if pid is None:  # not started yet: alive for a minute at most
        created = record.get("created_at")
        try:
            return (datetime.now(timezone.utc) - datetime.fromisoformat(str(created))).total_seconds() < 60
        except (TypeError, ValueError):
            return False
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


class LaunchLock:
    """One generation launch at a time across the threads and the worker processes of one server."""

    def __init__(self, path: Path):
        self.path = path
        self._threads = threading.Lock()
        self._fh = None

    def __enter__(self):
        self._threads.acquire()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a")
            fcntl.flock(self._fh, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise
        return self

    def __exit__(self, *exc):
        self._fh.close()  # releases the flock
        self._threads.release()


class SubprocessLauncher:
    """Runs each generation request in a background `python -m scenarios_assets.api run-request FILE`."""

    def __init__(self, requests: RequestLog, dagster_home: Path):
        self.requests = requests
        self.dagster_home = Path(dagster_home)
        self._children: dict[str, subprocess.Popen] = {}

    def pid_of(self, request_id: str) -> int | None:
        """The pid of the worker this launcher started for ``request_id`` (None: not started here)."""
        child = self._children.get(request_id)
        return child.pid if child is not None else None

    def launch(self, record: dict) -> None:
        self.requests.write(record)
        logfile = self.requests.dir / f"{record['id']}.log"
        env = {**os.environ, "DAGSTER_HOME": str(self.dagster_home), "PYTHONWARNINGS": "ignore"}
        with open(logfile, "ab") as out:
            child = subprocess.Popen(
                [sys.executable, "-m", "scenarios_assets.api", "run-request", str(self.requests.path(record["id"]))],
                env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self._children[record["id"]] = child
        # Reap it when it ends (no zombie). It runs in its own session and outlives a stopped server, so
        # its Dagster runs finish and report their state.
        threading.Thread(target=child.wait, daemon=True).start()


def worker_main(argv: list[str]) -> int:
    """`python -m scenarios_assets.api run-request FILE`: execute one generation request."""
    if len(argv) != 2 or argv[0] != "run-request":
        print("usage: python -m scenarios_assets.api run-request FILE", file=sys.stderr)
        return 2
    path = Path(argv[1])
    requests = RequestLog(path.parent.parent.parent)
    record = json.loads(path.read_text())
    request_id = record["id"]
    if record.get("state") == "canceled":  # canceled before this process started
        return 0
    requests.update(request_id, state="running", pid=os.getpid(), started_at=utc_now())
    try:
        plan = resolve_plan(record["request"], location(record["output_dir"]))
        execute_plan(plan, request_id)
    except ScenarioInputError as exc:
        requests.update(request_id, state="failure", finished_at=utc_now(), error=str(exc))
        return 2
    except Exception as exc:  # reported through GET /runs/{id}; the traceback goes to the request's log
        log.exception("generation request %s failed", request_id)
        requests.update(request_id, state="failure", finished_at=utc_now(), error=str(exc).splitlines()[0][:2000])
        return 1
    requests.update(request_id, state="success", finished_at=utc_now())
    return 0


# Seconds a cancelled generation's processes get to disappear after SIGKILL before the cancel answers 500.
CANCEL_WAIT_SECONDS = 15.0


def _generation_processes(record: dict, requests: RequestLog, launched_pid: int | None) -> list:
    """The request's worker process and its descendants (psutil.Process), or [] when none is alive. The worker
    is recognised by its command line (``run-request <the request's file>``), so a reused pid is never taken."""
    import psutil

    pid = record.get("pid") or launched_pid
    if not pid:
        return []
    try:
        worker = psutil.Process(int(pid))
        if str(requests.path(record["id"])) not in worker.cmdline() or worker.status() == psutil.STATUS_ZOMBIE:
            return []
        return [worker, *worker.children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return []


def stop_generation(record: dict, requests: RequestLog, instance, output_dir: Path,
                    launched_pid: int | None = None) -> dict:
    """Cancel generation ``record``: SIGKILL its worker's process group (the worker runs in a session of its own:
    the Dagster runs execute in it, with the GARCH fit workers and any step processes), report its unfinished
    Dagster runs CANCELED in ``instance``, remove their staging and unfinished build directories from
    ``output_dir`` (builds.remove_run_leftovers; the current build is never touched) and record the request as
    ``canceled``. The kernel releases the run's locks (flock) with the process. Returns the updated record;
    one that ended before it could be stopped keeps its final state. Raises RuntimeError when a process
    outlives CANCEL_WAIT_SECONDS."""
    import signal

    import psutil
    from dagster import RunsFilter

    from scenarios_assets.defs.dead_runs import UNFINISHED

    processes = _generation_processes(record, requests, launched_pid)
    if processes:
        with _suppress_gone():
            os.killpg(processes[0].pid, signal.SIGKILL)
        for proc in processes[1:]:  # a descendant that left the group (none today) is stopped too
            with _suppress_gone():
                proc.kill()
        _, alive = psutil.wait_procs(processes, timeout=CANCEL_WAIT_SECONDS)
        if alive:
            raise RuntimeError(f"process(es) {', '.join(str(p.pid) for p in alive)} of generation {record['id']} "
                               f"did not stop within {CANCEL_WAIT_SECONDS:.0f} s")
    current = requests.read(record["id"]) or record
    if current.get("state") in ("success", "failure"):
        return current
    run_ids: set[str] = set()
    if instance is not None:
        for run in instance.get_runs(filters=RunsFilter(tags={REQUEST_TAG: record["id"]})):
            run_ids.add(run.run_id)
            if run.status in UNFINISHED:
                instance.report_run_canceled(run, message=f"canceled through the API (generation {record['id']})")
    removed = builds.remove_run_leftovers(output_dir, run_ids) if run_ids else []
    return requests.update(record["id"], state="canceled", finished_at=utc_now(), error=None,
                           canceled={"dagster_runs": sorted(run_ids), "removed": removed})


class _suppress_gone:
    """Ignore a process that is already gone when it is signalled."""

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        import psutil

        return kind is not None and issubclass(kind, (ProcessLookupError, psutil.NoSuchProcess))


