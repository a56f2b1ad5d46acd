"""Scale-out: the scenario jobs on a dask.distributed cluster (dagster-dask) give the in-process outputs.

The cluster is local and bounded: 2 worker processes, one thread each, loopback only, shut down at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from scenarios_assets.cli.main import build_parser, plan_from_args
from scenarios_assets.core.models.errors import ScenarioInputError
from scenarios_assets.defs.executors import execution_config, local_dask_cluster
from scenarios_tests.pg_helpers import normalised_metadata


def run_cli(args, home, timeout=600):
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONWARNINGS": "ignore"}
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "scenarios_assets", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)
    return proc, time.perf_counter() - started


def test_executor_flags():
    parse = build_parser().parse_args
    assert plan_from_args(parse([])).executor == "in_process"
    assert plan_from_args(parse(["--parallel"])).executor == "multiprocess"
    plan = plan_from_args(parse(["--dask-scheduler", "tcp://127.0.0.1:8786"]))
    assert (plan.executor, plan.dask_scheduler, plan.parallel) == ("dask", "tcp://127.0.0.1:8786", True)
    with pytest.raises(ScenarioInputError, match="--dask-scheduler needs --executor dask"):
        plan_from_args(parse(["--executor", "multiprocess", "--dask-scheduler", "tcp://127.0.0.1:8786"]))
    assert execution_config("dask", 2, "tcp://h:1") == {"dask": {"cluster": {"existing": {"address": "tcp://h:1"}}}}
    # forkserver: step processes fork from one server that imported Dagster and the code location once
    assert execution_config("multiprocess", 3) == {"multiprocess": {"max_concurrent": 3, "start_method": {"forkserver": {}}}}


def test_dask_cluster_run_equals_in_process_run(tmp_path, monkeypatch):
    from dagster import DagsterEventType, DagsterInstance
    from dask.distributed import Client

    args = ["--severity", "all"]
    # Workers open the run's instance from its config, which reads DAGSTER_HOME: they need the same environment.
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home_dask"))
    with local_dask_cluster(workers=2, processes=True, quiet=True) as address:
        assert address.startswith("tcp://127.0.0.1:")
        with Client(address) as client:
            worker_pids = set(client.run(os.getpid).values())
        assert len(worker_pids) == 2
        dask_proc, dask_seconds = run_cli([*args, "--dask-scheduler", address, "--output-dir", str(tmp_path / "dask")],
                                          tmp_path / "home_dask")
    assert dask_proc.returncode == 0, dask_proc.stderr
    local_proc, local_seconds = run_cli([*args, "--output-dir", str(tmp_path / "local")], tmp_path / "home_local")
    assert local_proc.returncode == 0, local_proc.stderr
    print(f"in-process {local_seconds:.1f} s, dask (2 workers) {dask_seconds:.1f} s")

    assert normalised_metadata(tmp_path / "dask" / "scenario_metadata.json") == normalised_metadata(
        tmp_path / "local" / "scenario_metadata.json"
    )
    dask_ts = pq.read_table(tmp_path / "dask" / "scenario_timeseries.parquet")
    assert dask_ts.num_rows > 0 and dask_ts.equals(pq.read_table(tmp_path / "local" / "scenario_timeseries.parquet"))

    # Every family of every severity ran as its own step in a worker process of the cluster.
    with DagsterInstance.get() as instance:
        runs = [r for r in instance.get_runs() if r.job_name == "scenarios_job"]
        assert sorted(r.tags["dagster/partition"] for r in runs) == ["extreme", "moderate", "severe"]
        steps = []
        for run in runs:
            for record in instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_START):
                steps.append((run.tags["dagster/partition"], record.step_key, record.dagster_event.pid))
    families = {step for _, step, _ in steps}
    assert "scenarios__historical" in families
    assert len(steps) == 3 * len(families)
    assert {pid for _, _, pid in steps} <= worker_pids
