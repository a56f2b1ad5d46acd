"""Libraries on an fsspec store: builds written to and read from ``memory://`` exactly as from a local directory,
the commit point as one ``CURRENT`` object, ``file://`` URLs as local paths, and bad stores or schedulers
refused up front (exit 2, one line naming the address, the current build untouched).

The same code on a real S3-compatible server (moto's server mode) with a dask cluster: test_s3_dask.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from scenarios_assets.cli.builds import describe_builds
from scenarios_assets.service.plan import check_output_dir
from scenarios_assets.core.library import builds
from scenarios_assets.core.models.errors import ScenarioInputError
from scenarios_assets.core.library.validation import generate_family
from scenarios_assets.core.library.metrics import load_scenario_metrics
from scenarios_assets.core.library.storage import load_scenarios
from scenarios_assets.core.library.store import location, remove_tree
from scenarios_tests.library_helpers import publish_sets, snapshot

SMALL = {"generation": {"stochastic": {"monte_carlo": {"num_scenarios": 4}, "bootstrap": {"num_scenarios": 4}}}}


@pytest.fixture(scope="module")
def small_sets(make_ctx_module):
    return {(f, s): generate_family(f, make_ctx_module(s, SMALL)) for f in ("stress", "monte_carlo") for s in ("moderate", "severe")}


@pytest.fixture(scope="module")
def make_ctx_module(market, economic):
    from scenarios_assets.core.models.config import config_hash
    from scenarios_assets.core.data.config_file import load_config
    from scenarios_assets.core.families.context import GenerationContext

    def make(severity, overrides=None):
        config = load_config(None, overrides)
        return GenerationContext(market, economic, config, config_hash(config), severity)

    return make


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


def test_a_memory_store_holds_the_same_library_as_a_local_directory(small_sets, tmp_path):
    url = "memory://scenarios-test/lib"
    remove_tree(location(url))
    first = [small_sets["stress", "moderate"], small_sets["monte_carlo", "moderate"]]
    local_build, _, _ = publish_sets(tmp_path / "local", first)
    remote_build, _, _ = publish_sets(url, first)
    assert str(remote_build).startswith("memory://") and not (tmp_path / "memory:").exists()
    assert location(url).joinpath("CURRENT").read_text() == remote_build.name  # the commit point: the build's id
    here, there = load_scenarios(tmp_path / "local", timeseries=True), load_scenarios(url, timeseries=True)
    assert there.records == here.records and len(there.records) > 0
    assert there.timeseries.equals(here.timeseries) and len(there.timeseries) > 0
    assert load_scenario_metrics(url).equals(load_scenario_metrics(tmp_path / "local"))

    # A partial build carries the other slices over: server-side copies, byte for byte.
    second, _, plan = publish_sets(url, [small_sets["stress", "severe"]], carry_over=True)
    origins = {s.manifest.key: s.origin for s in plan.sources}
    assert origins == {"monte_carlo/moderate": "carried", "stress/moderate": "carried", "stress/severe": "new"}
    carried = "scenario_timeseries.parquet/family=monte_carlo/severity=moderate/part-00000.parquet"
    assert (second / carried).read_bytes() == (remote_build / carried).read_bytes()
    assert builds.current_build_id(url) == second.name
    assert builds.published_builds(url) == sorted([remote_build.name, second.name])
    listed = describe_builds(location(url))
    assert [(r["build_id"], r["current"]) for r in listed] == [(second.name, True), (remote_build.name, False)]
    assert load_scenarios(url, build=remote_build.name).records == here.records
    # keep=1: the older build goes, the current one stays readable
    third, _, _ = publish_sets(url, [small_sets["stress", "severe"]], carry_over=True, keep=1)
    assert builds.published_builds(url) == [third.name]
    assert len(load_scenarios(url).records) == len(there.records) + len(small_sets["stress", "severe"].scenarios)


def test_the_api_reads_a_library_by_url(small_sets):
    from fastapi.testclient import TestClient

    from scenarios_assets.api import create_app

    url = "memory://scenarios-test/api"
    remove_tree(location(url))
    final, _, _ = publish_sets(url, [small_sets["monte_carlo", "severe"]])
    with TestClient(create_app(url)) as client:
        listed = client.get("/scenarios").json()
        ids = [s["id"] for s in listed["items"]]
        assert ids == [s.id for s in small_sets["monte_carlo", "severe"].scenarios]
        series = client.get(f"/scenarios/{ids[0]}/timeseries", params={"format": "json"})
        assert series.status_code == 200, series.text
        assert client.get("/builds").json()["current"] == final.name


def test_a_file_url_is_the_local_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert check_output_dir(f"file://{tmp_path}/lib") == tmp_path / "lib"
    assert check_output_dir(f"file://localhost{tmp_path}/a%20b") == tmp_path / "a b"
    assert not (tmp_path / "file:").exists()
    with pytest.raises(ScenarioInputError, match="unknown storage scheme 'nosuch://'"):
        check_output_dir("nosuch://bucket/lib")
    with pytest.raises(ScenarioInputError, match="not host 'elsewhere'"):
        check_output_dir("file://elsewhere/lib")


def run_cli(args, env, cwd):
    return subprocess.run([sys.executable, "-m", "scenarios_assets", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def s3_env(tmp_path, port: int, credentials: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(DAGSTER_HOME=str(tmp_path / "home"), PYTHONWARNINGS="ignore", AWS_EC2_METADATA_DISABLED="true",
               AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
               AWS_ENDPOINT_URL_S3=f"http://127.0.0.1:{port}", AWS_DEFAULT_REGION="us-east-1")
    if credentials:
        env.update(AWS_ACCESS_KEY_ID="scenarios-test-key", AWS_SECRET_ACCESS_KEY="scenarios-test-secret-0123")
    return env


@pytest.mark.parametrize("credentials", [True, False], ids=["unreachable", "no-credentials"])
def test_a_store_that_cannot_be_used_is_refused_before_anything_runs(credentials, tmp_path):
    port = closed_port()
    proc = run_cli(["--type", "stress", "--output-dir", "s3://scenarios-test/lib"], s3_env(tmp_path, port, credentials),
                   tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --output-dir 's3://scenarios-test/lib': "), proc.stderr
    if credentials:
        assert f"cannot be reached at http://127.0.0.1:{port}" in lines[0]
    else:
        assert "no credentials for the store: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in lines[0]
    assert "scenarios-test-secret" not in proc.stderr + proc.stdout
    assert not (tmp_path / "home").exists() or not list((tmp_path / "home").rglob("runs.db"))  # no Dagster run


def test_an_unreachable_scheduler_is_refused_before_anything_runs(small_sets, tmp_path):
    out = tmp_path / "lib"
    publish_sets(out, [small_sets["stress", "moderate"]])
    before = snapshot(out)
    address = f"tcp://127.0.0.1:{closed_port()}"
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "PYTHONWARNINGS": "ignore"}
    proc = run_cli(["--type", "stress", "--dask-scheduler", address, "--output-dir", str(out)], env, tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"error: --dask-scheduler {address}: cannot reach the dask scheduler (timed out after 10 s); "
                     "start it (dask scheduler) or fix the address"], proc.stderr
    assert snapshot(out) == before
