"""Limits and cancel (issue 15, point 11): a request's memory and disk are estimated before anything runs
(core/library/footprint.py) and one that cannot fit is refused in one line (CLI exit 2, API 422) with nothing started
and the current build intact; each factor of the estimate is re-measured here against the code it stands for;
a running API generation can be cancelled (its process group killed, its Dagster runs CANCELED, its staging
removed, the slot free at once)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from scenarios_assets.cli import main as cli
from scenarios_assets.api import create_app
from scenarios_assets.core.library import footprint
from scenarios_assets.core.library.builds import current_build_id
from scenarios_assets.core.data.config_file import load_config
from scenarios_assets.core.data.paths import BUNDLED_OHLCV
from scenarios_tests.library_helpers import snapshot

REFUSAL = re.compile(
    r"^error: the request needs about [\d.]+ (GiB|MiB) of (memory|disk)( in \S+)? \(largest: [^)]+\), above the limit of "
    r"[\d.]+ (GiB|MiB) \([^)]+\); raise it with --(memory|disk)-limit GIB \(env SCENARIOS_(MEMORY|DISK)_LIMIT_GIB, config "
    r"performance\.(memory|disk)_limit_gib\)(; and .*)?; or (ask for|read) less \(.*\)$")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A real small build with time series: Monte Carlo and bootstrap, 100 paths, moderate, via the CLI."""
    root = tmp_path_factory.mktemp("limits")
    previous = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(root / "home")
    try:
        code = cli.main(["--type", "stochastic", "--severity", "moderate", "--num-scenarios", "100",
                         "--output-dir", str(root / "lib")])
    finally:
        if previous is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = previous
    assert code == 0
    return root


def _tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def test_disk_estimate_and_parquet_bytes_per_row_match_a_real_build(built):
    """Disk: the estimate of the build's own request against the bytes it wrote (within 25 %); Parquet bytes per
    time-series row of each family against TIMESERIES_BYTES_PER_ROW (within 25 %)."""
    from scenarios_assets.core.data.market import load_market_data

    build = built / "lib" / "builds" / current_build_id(built / "lib")
    for family in ("monte_carlo", "bootstrap"):
        parts = list((build / "scenario_timeseries.parquet" / f"family={family}").rglob("*.parquet"))
        rows = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
        per_row = sum(p.stat().st_size for p in parts) / rows
        assert per_row == pytest.approx(footprint.TIMESERIES_BYTES_PER_ROW, rel=0.25), (family, per_row)
    config = load_config(None, {"generation": {"stochastic": {"monte_carlo": {"num_scenarios": 100},
                                                              "bootstrap": {"num_scenarios": 100}}}})
    market = load_market_data(BUNDLED_OHLCV)
    sizes = footprint.market_sizes(market, config, footprint.source_rows(BUNDLED_OHLCV))
    assert sizes.universe == {"monte_carlo": 22, "bootstrap": 27}  # the families' own universes (README)
    est = footprint.estimate(config, ["monte_carlo", "bootstrap"], ["moderate"], sizes, save_timeseries=True)
    written = _tree_bytes(build)
    assert est.disk == pytest.approx(written, rel=0.25), (est.disk_parts, written)


def test_source_rows_are_counted_before_reading(tmp_path):
    """Parquet: the footer's exact count; CSV: its lines counted."""
    exact = pq.ParquetFile(BUNDLED_OHLCV).metadata.num_rows
    assert footprint.source_rows(BUNDLED_OHLCV) == exact
    csv = tmp_path / "ohlcv.csv"
    pq.read_table(BUNDLED_OHLCV).to_pandas().to_csv(csv, index=False)
    assert footprint.source_rows(csv) == exact
    assert footprint.source_rows(tmp_path) == exact  # a directory: its files
    assert footprint.source_rows("postgresql://u@h/db") is None


LOAD = r'''
import gc, json, threading, time
import psutil
import exchange_calendars
from scenarios_assets.core.data.market import load_market_data
from scenarios_assets.core.data.paths import BUNDLED_OHLCV
exchange_calendars.get_calendar("XNYS")
gc.collect()
me = psutil.Process()
base = peak = me.memory_info().rss
done = False
def sample():  # the current RSS every 2 ms: the load's own peak, whatever the imports' peak was
    global peak
    while not done:
        peak = max(peak, me.memory_info().rss)
        time.sleep(0.002)
watcher = threading.Thread(target=sample)
watcher.start()
load_market_data(BUNDLED_OHLCV)
done = True
watcher.join()
print(json.dumps({"load": peak - base}))
'''

MEASURE = r'''
import gc, json, sys, tempfile, threading, time, tracemalloc
import psutil
from pathlib import Path
from scenarios_assets.core.models.config import config_hash
from scenarios_assets.core.data.config_file import load_config
from scenarios_assets.core.families.context import GenerationContext
from scenarios_assets.core.data.market import build_economic, load_market_data, read_economic
from scenarios_assets.core.families.monte_carlo import stream_monte_carlo
from scenarios_assets.core.data.paths import BUNDLED_ECONOMIC, BUNDLED_OHLCV
from scenarios_assets.core.library.slices import write_slice

def growth(work):
    """The peak RSS growth while ``work()`` runs over the RSS just before (sampled every 2 ms): the step's own
    peak, whatever an earlier phase of the process (imports, the load, the fits) peaked at."""
    me = psutil.Process()
    base = peak = me.memory_info().rss
    done = False
    def sample():
        nonlocal peak
        while not done:
            peak = max(peak, me.memory_info().rss)
            time.sleep(0.002)
    watcher = threading.Thread(target=sample)
    watcher.start()
    try:
        work()
    finally:
        done = True
        watcher.join()
    return max(peak, me.memory_info().rss) - base

out = {}
market = load_market_data(BUNDLED_OHLCV)
economic = build_economic(market, read_economic(BUNDLED_ECONOMIC))

def run(n, per_chunk, traced=False):
    cfg = load_config(None, {"generation": {"stochastic": {"monte_carlo": {"num_scenarios": n}}},
                             "performance": {"paths_per_chunk": per_chunk}})
    stream = stream_monte_carlo(GenerationContext(market, economic, cfg, config_hash(cfg), "moderate"))
    gc.collect()
    if traced:
        tracemalloc.start()
    if traced:
        write_slice(stream, Path(tempfile.mkdtemp()), True)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak
    return growth(lambda: write_slice(stream, Path(tempfile.mkdtemp()), True))

run(50, 50)  # the fits (cached in the process) and the first allocations
out["rss_chunk"] = run(2000, int(sys.argv[1]))  # one process per chunk size: freed arenas would be reused
if sys.argv[1] == "100":
    out["traced_few"] = run(1000, 100, traced=True)
    out["traced_many"] = run(3000, 100, traced=True)
print(json.dumps(out))
'''


def test_memory_factors_match_measured_allocations():
    """In a fresh process on the bundled data: the peak RSS growth of loading the market data against
    MARKET_LOAD_* (within 35 %); of a 2,000-path chunk over a 100-path one (Monte Carlo GJR-GARCH-t, 22
    symbols x 252 days) against CHUNK_BYTES_PER_CELL (within 35 %); and the traced growth per path of a slice's
    checks (3,000 against 1,000 paths) against SCENARIO_STATS_BYTES (within 35 %)."""
    measured = {}
    for per_chunk in (100, 2000):
        done = subprocess.run([sys.executable, "-c", MEASURE, str(per_chunk)], capture_output=True, text=True,
                              timeout=600, env={**os.environ, "PYTHONWARNINGS": "ignore", "OPENBLAS_NUM_THREADS": "1"})
        assert done.returncode == 0, done.stderr[-2000:]
        measured[per_chunk] = json.loads(done.stdout.strip().splitlines()[-1])
    done = subprocess.run([sys.executable, "-c", LOAD], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    measured["load"] = json.loads(done.stdout.strip().splitlines()[-1])
    m = {**measured[100], **measured["load"], "rss_small_chunk": measured[100]["rss_chunk"],
         "rss_large_chunk": measured[2000]["rss_chunk"]}
    rows = pq.ParquetFile(BUNDLED_OHLCV).metadata.num_rows
    assert m["load"] == pytest.approx(footprint.MARKET_LOAD_FIXED_BYTES + rows * footprint.MARKET_LOAD_BYTES_PER_ROW,
                                      rel=0.35), m
    per_cell = (m["rss_large_chunk"] - m["rss_small_chunk"]) / (1900 * 252 * 22)
    assert per_cell == pytest.approx(footprint.CHUNK_BYTES_PER_CELL, rel=0.35), m
    per_path = (m["traced_many"] - m["traced_few"]) / 2000
    assert per_path == pytest.approx(footprint.SCENARIO_STATS_BYTES, rel=0.35), m


def test_a_wide_long_panel_is_refused_on_its_load():
    """2,000 symbols x 9,000 sessions (18 M rows): measured here, the process peaked at 4,499.5 MiB while loading
    (the family steps at most 1,938 MiB); the estimate covers that peak (within 1.6x) and names the load, and
    with 4 GiB available the request is refused before the data is read."""
    sizes = footprint.Sizes(18_000_000, 9_000, 2_000)
    config = load_config(None)
    est = footprint.estimate(config, ["historical", "regime", "monte_carlo", "bootstrap", "stress"], ["moderate"],
                             sizes, save_timeseries=True)
    measured = 4499.5 * footprint.MIB
    assert measured <= est.memory <= 1.6 * measured
    assert est.memory_driver == "loading 18,000,000 market-data rows"
    line = footprint.refusal(est, footprint.Limits(int(0.8 * 4 * footprint.GIB), 10**15, "0.8 of the 4.0 GiB available",
                                                   "x"), Path("/lib"))
    assert REFUSAL.match("error: " + line), line
    assert "or read less (a smaller --market-data source)" in line


def _runs(home: Path) -> int:
    from dagster import DagsterInstance

    previous = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)  # the project's dagster.yaml reads it
    try:
        with DagsterInstance.from_config(str(home)) as instance:
            return len(instance.get_run_records())
    finally:
        if previous is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = previous


def test_cli_refuses_a_million_paths_before_any_run(built, tmp_path):
    """--num-scenarios 1000000: exit 2, the one refusal line (disk here: about 313 GiB of time series), no
    Dagster run started, the current build untouched."""
    home, lib = built / "home", built / "lib"
    before, runs = snapshot(lib), _runs(home)
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONWARNINGS": "ignore"}
    env.pop("SCENARIOS_DISK_LIMIT_GIB", None)
    done = subprocess.run([sys.executable, "-m", "scenarios_assets", "--num-scenarios", "1000000", "--output-dir",
                           str(lib)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and REFUSAL.match(lines[0]), done.stderr
    assert "of disk" in lines[0] and "1,000,000 paths x 252 days" in lines[0]
    # the memory of a million paths' checks alone is named when the memory limit is the one passed
    done = subprocess.run([sys.executable, "-m", "scenarios_assets", "--num-scenarios", "1000000", "--type",
                           "monte_carlo", "--severity", "moderate", "--no-save-timeseries", "--memory-limit", "2",
                           "--output-dir", str(lib)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2
    line = done.stderr.strip()
    assert REFUSAL.match(line) and "of memory" in line and "checks of 1,000,000 paths" in line, line
    assert "above the limit of 2.0 GiB (2 GiB)" in line
    assert runs > 0 and _runs(home) == runs and snapshot(lib) == before


class RecordingLauncher:
    def __init__(self):
        self.records = []

    def launch(self, record):
        self.records.append(record)


def test_api_refuses_what_does_not_fit_with_422(built, monkeypatch):
    """100,000 paths through the API with a 10 GiB disk limit (SCENARIOS_DISK_LIMIT_GIB): 422 with the one line,
    nothing launched, no server path in the answer."""
    monkeypatch.setenv("SCENARIOS_DISK_LIMIT_GIB", "10")
    launcher = RecordingLauncher()
    client = TestClient(create_app(built / "lib", built / "home", launcher=launcher), raise_server_exceptions=False)
    r = client.post("/scenarios/generate", json={"num_scenarios": 100_000})
    assert r.status_code == 422, r.text
    message = r.json()["message"]
    assert REFUSAL.match("error: " + message.replace(" in lib ", " in lib ")), message
    assert "above the limit of 10.0 GiB (10 GiB)" in message and "100,000 paths" in message
    assert str(built) not in r.text and launcher.records == []
    monkeypatch.setenv("SCENARIOS_DISK_LIMIT_GIB", "ten")
    r = client.post("/scenarios/generate", json={"types": ["stress"]})
    assert r.status_code == 422 and r.json()["message"] == \
        "SCENARIOS_DISK_LIMIT_GIB='ten' is not a number of GiB (e.g. SCENARIOS_DISK_LIMIT_GIB=16)"


def _wait(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_cancel_stops_a_running_generation_and_frees_the_slot(built):
    """A real generation (20,000 Monte Carlo paths, a background process running Dagster runs) is cancelled
    once its family step writes staging: the process group is gone, the request reads `canceled`, its
    unfinished Dagster runs are CANCELED, its staging is removed, the build is unchanged, and a second
    generation is accepted at once and succeeds."""
    from dagster import DagsterInstance, RunsFilter

    home, lib = built / "home", built / "lib"
    before, build = snapshot(lib / "builds" / current_build_id(lib)), current_build_id(lib)
    app = create_app(lib, home)
    client = TestClient(app, raise_server_exceptions=False)
    r = client.post("/scenarios/generate", json={"types": ["monte_carlo"], "severities": ["moderate"],
                                                 "num_scenarios": 20_000, "save_timeseries": True})
    assert r.status_code == 202, r.text
    request_id = r.json()["run_id"]
    staging = lib / ".staging"
    _wait(lambda: any(staging.glob("monte_carlo.moderate.*/timeseries/part-*.parquet")), 300, "the first chunk")
    pid = json.loads((home / "scenarios_api" / "requests" / f"{request_id}.json").read_text())["pid"]
    group = [pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))]

    r = client.post(f"/runs/{request_id}/cancel")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["state"] == "canceled"
    assert not [p for p in group if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    statuses = {run["job_name"]: run["status"] for run in body["dagster_runs"]}
    assert statuses["scenarios_job"] == "CANCELED" and "STARTED" not in statuses.values(), statuses
    assert not list(staging.glob("monte_carlo.moderate.*"))
    assert current_build_id(lib) == build and snapshot(lib / "builds" / build) == before
    assert client.get(f"/runs/{request_id}").json()["state"] == "canceled"
    again = client.post(f"/runs/{request_id}/cancel")
    assert again.status_code == 200 and again.json()["state"] == "canceled"
    assert client.post("/runs/00000000-0000-0000-0000-000000000000/cancel").status_code == 404

    second = client.post("/scenarios/generate", json={"types": ["stress"], "severities": ["moderate"],
                                                      "save_timeseries": False})
    assert second.status_code == 202, second.text  # the slot is free at once
    second_id = second.json()["run_id"]
    final = _wait(lambda: (s := client.get(f"/runs/{second_id}").json())["state"] in ("success", "failure") and s,
                  300, "the second generation")
    assert final["state"] == "success", final
    assert client.post(f"/runs/{second_id}/cancel").status_code == 409
    with DagsterInstance.from_config(str(home)) as instance:
        unfinished = instance.get_run_records(filters=RunsFilter(statuses=[
            s for s in __import__("dagster").DagsterRunStatus if s.value in ("STARTED", "STARTING", "QUEUED")]))
    assert unfinished == []


@pytest.mark.parametrize(("args", "env", "config", "message"), [
    (["--memory-limit", "0"], {}, None, "error: scenarios: argument --memory-limit: must be a positive number of GiB, got 0"),
    (["--disk-limit", "inf"], {}, None, "error: scenarios: argument --disk-limit: must be a positive number of GiB, got inf"),
    ([], {"SCENARIOS_MEMORY_LIMIT_GIB": "abc"}, None,
     "error: SCENARIOS_MEMORY_LIMIT_GIB='abc' is not a number of GiB (e.g. SCENARIOS_MEMORY_LIMIT_GIB=16)"),
    ([], {"SCENARIOS_DISK_LIMIT_GIB": "inf"}, None, "error: SCENARIOS_DISK_LIMIT_GIB=inf must be a positive number of GiB"),
    ([], {}, "memory_limit_fraction: 2",
     "error: config key 'scenarios_pipeline.performance.memory_limit_fraction' must be above 0 and at most 1, got 2"),
    ([], {}, "disk_limit_gib: .inf",
     "error: config key 'scenarios_pipeline.performance.disk_limit_gib' must be above 0 and finite (GiB), got inf"),
])
def test_bad_limits_are_one_line_before_anything_runs(tmp_path, monkeypatch, capsys, args, env, config, message):
    for key in ("SCENARIOS_MEMORY_LIMIT_GIB", "SCENARIOS_DISK_LIMIT_GIB"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    if config is not None:
        (tmp_path / "c.yaml").write_text(f"scenarios_pipeline:\n  performance:\n    {config}\n")
        args = [*args, "--config", str(tmp_path / "c.yaml")]
    assert cli.main([*args, "--type", "stress", "--severity", "moderate", "--output-dir", str(tmp_path / "lib")]) == 2
    assert capsys.readouterr().err.strip() == message
    assert not (tmp_path / "home").exists() and not (tmp_path / "lib").exists()


def test_an_object_store_has_no_free_space_figure_so_only_an_explicit_disk_limit_bounds_it():
    from scenarios_assets.core.library.store import location

    store = location("memory://footprint-test/library")
    unbounded = footprint.limits({}, store)
    assert unbounded.disk == sys.maxsize and "object store" in unbounded.disk_source
    assert footprint.limits({}, store, disk_gib=3).disk == 3 * footprint.GIB
