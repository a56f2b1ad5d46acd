"""Past one machine, for real: the whole library built on a dask.distributed cluster of 2 worker processes, its
Monte Carlo and bootstrap chunks as tasks, written to an S3-compatible server (moto's server mode, a separate
process on loopback), equals the in-process build in a local directory, value for value; and a store that
refuses writes is refused up front. The test starts the server and the cluster and stops both.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from scenarios_assets.core.library import builds
from scenarios_assets.core.library.metrics import load_scenario_metrics
from scenarios_assets.core.library.storage import load_scenarios
from scenarios_assets.core.library.store import location
from scenarios_assets.defs.executors import local_dask_cluster
from scenarios_tests.pg_helpers import normalised_metadata

BUCKET = "scenarios-ci"
KEY, SECRET = "scenarios-test-key", "scenarios-test-secret-4242"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def s3_server(tmp_path, monkeypatch):
    """moto's S3 server on a free loopback port (``python -m moto.server``), the AWS settings pointing at it in this
    process's environment (which the cluster's workers and the CLI inherit), and a bucket; stopped at the end."""
    import boto3

    port = free_port()
    log = open(tmp_path / "moto.log", "wb")
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"moto server did not start: {(tmp_path / 'moto.log').read_text()}") from None
                time.sleep(0.2)
        endpoint = f"http://127.0.0.1:{port}"
        for name, value in {"AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": "us-east-1",
                            "AWS_ENDPOINT_URL_S3": endpoint, "AWS_EC2_METADATA_DISABLED": "true"}.items():
            monkeypatch.setenv(name, value)
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def run_cli(args, home, timeout=900):
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONWARNINGS": "ignore"}
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "scenarios_assets", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)
    return proc, time.perf_counter() - started


def chunk_tasks_run(address: str) -> int:
    """Chunk tasks the cluster's scheduler has run to completion (task prefix ``chunk``: a prefix counts the
    transitions of its tasks into each state, so the tasks that reached memory, once each)."""
    from dask.distributed import Client

    def count(dask_scheduler):
        return {name: p.state_counts.get("memory", 0) for name, p in dask_scheduler.task_prefixes.items()}

    with Client(address) as client:
        prefixes = client.run_on_scheduler(count)
    return sum(n for name, n in prefixes.items() if name.startswith("chunk"))


def test_a_library_on_s3_built_on_two_dask_workers_equals_the_local_in_process_build(s3_server, tmp_path, monkeypatch):
    config = tmp_path / "small.yaml"
    config.write_text("scenarios_pipeline:\n  performance:\n    paths_per_chunk: 5\n")
    args = ["--severity", "all", "--num-scenarios", "12", "--config", str(config)]
    url = f"s3://{BUCKET}/libraries/nightly"
    home = tmp_path / "home_dask"
    monkeypatch.setenv("DAGSTER_HOME", str(home))  # the workers open the run's instance from DAGSTER_HOME
    with local_dask_cluster(workers=2, processes=True, quiet=True) as address:
        dask_proc, dask_seconds = run_cli([*args, "--dask-scheduler", address, "--output-dir", url], home)
        assert dask_proc.returncode == 0, dask_proc.stderr
        # 2 stochastic families x 3 severities x 3 chunks (5 + 5 + 2 paths), each one task
        assert chunk_tasks_run(address) == 18
    local_proc, local_seconds = run_cli([*args, "--output-dir", str(tmp_path / "local")], tmp_path / "home_local")
    assert local_proc.returncode == 0, local_proc.stderr
    print(f"in process, local directory: {local_seconds:.1f} s; 2 dask workers, S3 server: {dask_seconds:.1f} s")

    store = location(url)
    build_id = (store / builds.CURRENT_FILE).read_text()
    assert builds.current_build_id(url) == build_id and builds.published_builds(url) == [build_id]
    assert not (store / "current").exists()  # no symbolic links on an object store: CURRENT is the commit point
    copied = tmp_path / "s3_metadata.json"
    copied.write_bytes((store / "builds" / build_id / builds.METADATA_FILE).read_bytes())
    assert normalised_metadata(copied) == normalised_metadata(tmp_path / "local" / builds.METADATA_FILE)

    remote, local = load_scenarios(url, timeseries=True), load_scenarios(tmp_path / "local", timeseries=True)
    assert remote.records == local.records and len(remote.records) > 100
    assert remote.timeseries.equals(local.timeseries) and len(remote.timeseries) > 1_000_000
    assert load_scenario_metrics(url).equals(load_scenario_metrics(tmp_path / "local"))
    listed = subprocess.run([sys.executable, "-m", "scenarios_assets", "builds", "--output-dir", url], capture_output=True,
                            text=True, timeout=120)
    assert listed.returncode == 0 and listed.stdout.startswith(f"* {build_id}"), listed.stderr

    # A partial rebuild carries the other slices over with server-side copies; the first build stays readable.
    partial, _ = run_cli(["--type", "stress", "--severity", "moderate", "--num-scenarios", "12", "--config", str(config),
                          "--output-dir", url], home)
    assert partial.returncode == 0, partial.stderr
    second = builds.current_build_id(url)
    assert second != build_id and builds.published_builds(url) == [build_id, second]
    part = "scenario_timeseries.parquet/family=monte_carlo/severity=extreme/part-00002.parquet"
    assert (store / "builds" / second / part).read_bytes() == (store / "builds" / build_id / part).read_bytes()
    assert load_scenarios(url, build=build_id).records == local.records


def test_a_read_only_store_is_refused_before_anything_runs(tmp_path):
    """Credentials whose IAM policy allows reading only (moto enforces IAM when the server is told to)."""
    import boto3

    from scenarios_tests.library_helpers import snapshot

    port = free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "4"}  # then every request is authenticated and authorised
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "moto server did not start"
                time.sleep(0.2)
        admin = {"endpoint_url": endpoint, "aws_access_key_id": "admin", "aws_secret_access_key": "admin",
                 "region_name": "us-east-1"}  # any key: these first requests are not authenticated
        boto3.client("s3", **admin).create_bucket(Bucket=BUCKET)
        iam = boto3.client("iam", **admin)
        iam.create_user(UserName="reader")
        iam.put_user_policy(UserName="reader", PolicyName="read", PolicyDocument=(
            '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], '
            '"Resource": "*"}]}'))
        key = iam.create_access_key(UserName="reader")["AccessKey"]  # the 4th and last unauthenticated request
        run_env = {**os.environ, "AWS_ENDPOINT_URL_S3": endpoint, "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
                   "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"], "DAGSTER_HOME": str(tmp_path / "home"),
                   "PYTHONWARNINGS": "ignore"}
        url = f"s3://{BUCKET}/lib"
        before = snapshot(tmp_path)
        proc = subprocess.run([sys.executable, "-m", "scenarios_assets", "--type", "stress", "--output-dir", url],
                              env=run_env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip().splitlines() == [
            f"error: --output-dir '{url}': the store refuses writes (access denied): give the run's credentials write "
            "access, or pick another prefix"], proc.stderr
        assert key["SecretAccessKey"] not in proc.stderr + proc.stdout
        assert snapshot(tmp_path) == before  # not even a Dagster instance was created
    finally:
        server.terminate()
        server.wait(timeout=30)
