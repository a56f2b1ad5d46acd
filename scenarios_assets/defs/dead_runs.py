"""Runs whose process died (SIGKILL, out of memory, a native abort) are marked failed.

A CLI run executes in the CLI's own process (``dagster.execute_job``); when that process dies, nothing
reports the run's end and it stays STARTED for ever: the UI shows it running, the freshness rules count its
partitions as in progress, and every such run takes one of the daemon's ``max_concurrent_runs`` slots, so
after three of them the run queue launches nothing more. Dagster's own run monitoring cannot see these
processes (the default run launcher has no worker health check, and CLI runs are not launched by it).

So every CLI run carries the identity of its process (tags ``scenarios/pid``, ``scenarios/host``,
``scenarios/process_start``: pid, host name and the process's start time, which tells a reused pid apart).
``mark_dead_runs`` finds unfinished runs with those tags on this host whose process is gone, and reports
them failed with the reason. It runs at the start of every CLI run and in the sensor ``scenarios_dead_runs``
of the daemon (every ``SCENARIOS_SENSOR_INTERVAL_SECONDS``).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

import psutil
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter, SensorEvaluationContext, SkipReason, sensor

from scenarios_assets.defs.automation import default_sensor_status, sensor_interval_seconds

PID_TAG, HOST_TAG, START_TAG = "scenarios/pid", "scenarios/host", "scenarios/process_start"
UNFINISHED = [DagsterRunStatus.STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.CANCELING]
# Start times are compared to this many seconds (psutil gives them in seconds since the epoch, as float).
START_TOLERANCE_SECONDS = 1.0


def process_tags() -> dict[str, str]:
    """The tags that identify this process in its runs."""
    return {
        PID_TAG: str(os.getpid()),
        HOST_TAG: socket.gethostname(),
        START_TAG: f"{psutil.Process().create_time():.2f}",
    }


def process_gone(tags: Mapping[str, str]) -> str | None:
    """Why the process named by a run's tags is gone (None: alive, or not ours to judge: another host, or
    no such tags)."""
    if tags.get(HOST_TAG) != socket.gethostname() or PID_TAG not in tags:
        return None
    try:
        pid = int(tags[PID_TAG])
        started = float(tags.get(START_TAG, "nan"))
    except ValueError:
        return None
    try:
        process = psutil.Process(pid)
        if abs(process.create_time() - started) > START_TOLERANCE_SECONDS:
            return f"its process {pid} ended (the pid now belongs to another process)"
        if process.status() == psutil.STATUS_ZOMBIE:
            return f"its process {pid} ended"
    except psutil.NoSuchProcess:
        return f"its process {pid} ended without reporting the run's end (killed, out of memory or crashed)"
    except psutil.AccessDenied:
        return None
    return None


def mark_dead_runs(instance: DagsterInstance) -> list[str]:
    """Report every unfinished run of this host whose process is gone as failed; returns their run ids."""
    marked = []
    for record in instance.get_run_records(filters=RunsFilter(statuses=UNFINISHED)):
        run = record.dagster_run
        reason = process_gone(run.tags)
        if reason is None:
            continue
        instance.report_run_failed(run, message=f"run marked failed: {reason}")
        marked.append(run.run_id)
    return marked


@sensor(
    name="scenarios_dead_runs",
    minimum_interval_seconds=sensor_interval_seconds(),
    default_status=default_sensor_status(),
    description="Marks failed the unfinished runs whose process died (a killed or crashed CLI run), so they "
    "no longer count as running: not in the UI, not in the freshness rules, not against max_concurrent_runs.",
)
def scenarios_dead_runs(context: SensorEvaluationContext):
    marked = mark_dead_runs(context.instance)
    if marked:
        context.log.info(f"marked {len(marked)} dead run(s) failed: {', '.join(marked)}")
        return SkipReason(f"marked {len(marked)} dead run(s) failed: {', '.join(marked)}")
    return SkipReason("no run with a dead process")
