"""The REST API: endpoints through FastAPI's test client, consistency while the catalog is replaced, a real
uvicorn process on loopback (with a real generation run on its Dagster instance), and schemathesis fuzzing
against the API's own OpenAPI schema."""

import atexit
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from scenarios_assets import api
from scenarios_assets.core.historical import generate_historical
from scenarios_assets.core.scenario import Scenario, ScenarioSet
from scenarios_assets.core.storage import CatalogBuild, load_scenarios, write_catalog
from scenarios_assets.core.validation import validate_set

COVID = "historical.covid_crash.severe"
GENERATED_AT = "2026-01-02T00:00:00+00:00"


class RecordingLauncher:
    """Stands in for the subprocess launcher: records the request, starts nothing."""

    def __init__(self, requests: api.RequestLog):
        self.requests = requests
        self.launched: list[dict] = []

    def launch(self, record: dict) -> None:
        self.requests.write(record)
        self.launched.append(record)


@pytest.fixture(scope="module")
def sets(make_ctx):
    return [validate_set(generate_historical(make_ctx(sev))) for sev in ("moderate", "severe", "extreme")]


def write_build(sets, out, generated_at=GENERATED_AT, **kwargs):
    return write_catalog(CatalogBuild(sets, sets[0].data_version, sets[0].config_hash, generated_at=generated_at),
                         out, **kwargs)


@pytest.fixture(scope="module")
def catalog_dir(sets, tmp_path_factory):
    out = tmp_path_factory.mktemp("catalog")
    write_build(sets, out)
    return out


def make_client(out, home, **kwargs):
    requests = api.RequestLog(home)
    launcher = RecordingLauncher(requests)
    app = api.create_app(out, home, launcher=launcher, **kwargs)
    return TestClient(app, raise_server_exceptions=False), launcher


@pytest.fixture()
def client(catalog_dir, tmp_path):
    c, _ = make_client(catalog_dir, tmp_path / "home")
    return c


# --- listing and one scenario ------------------------------------------------------------------------

def test_list_filters_and_pages(client, sets):
    everything = client.get("/scenarios", params={"limit": 1000}).json()
    assert everything["total"] == sum(len(s) for s in sets) == len(everything["items"])
    assert everything["generated_at"] == GENERATED_AT and everything["next"] is None
    assert all(item["active"] for item in everything["items"])

    severe = client.get("/scenarios", params={"severity": "severe", "family": "historical"}).json()
    assert severe["total"] == len(sets[1]) and {i["severity"] for i in severe["items"]} == {"severe"}
    crisis = client.get("/scenarios", params={"type": "crisis", "severity": "severe"}).json()
    assert crisis["total"] > 0 and {i["scenario_type"] for i in crisis["items"]} == {"CRISIS"}
    assert client.get("/scenarios", params={"active": "false"}).json()["total"] == 0
    assert client.get("/scenarios", params={"type": "NO_SUCH_TYPE"}).json()["total"] == 0
    nvda = client.get("/scenarios", params={"symbol": "NVDA", "limit": 1000}).json()["items"]
    assert nvda and all("NVDA" in i["symbols"] for i in nvda)

    first = client.get("/scenarios", params={"limit": 5}).json()
    assert first["count"] == 5 and first["next"].endswith("offset=5&limit=5")
    second = client.get(first["next"]).json()
    assert [i["id"] for i in second["items"]] == [i["id"] for i in everything["items"][5:10]]
    assert client.get("/scenarios", params={"offset": 10_000}).json()["items"] == []


@pytest.mark.parametrize("params, where", [
    ({"severity": "apocalyptic"}, "query.severity"),
    ({"family": "crypto"}, "query.family"),
    ({"limit": 0}, "query.limit"),
    ({"limit": 5000}, "query.limit"),
    ({"offset": -1}, "query.offset"),
    ({"active": "maybe"}, "query.active"),
])
def test_bad_list_parameters_are_422_json(client, params, where):
    resp = client.get("/scenarios", params=params)
    assert resp.status_code == 422
    body = resp.json()
    assert body["status"] == 422 and body["message"].startswith("invalid parameters: " + where)
    assert body["details"][0]["location"] == where and "Traceback" not in resp.text


def test_one_scenario_with_validation_and_computed_metrics(client, sets):
    resp = client.get(f"/scenarios/{COVID}")
    assert resp.status_code == 200 and resp.headers["x-catalog-generated-at"] == GENERATED_AT
    body = resp.json()
    scenario = next(s for s in sets[1].scenarios if s.id == COVID)
    assert body["name"] == scenario.name and body["symbols"] == scenario.symbols
    assert set(body["validation"]) >= {"finite_values", "coverage"} and body["validation"]["coverage"]["passed"]
    assert body["metadata"]["calibration_source"].startswith("replay of market data")
    metrics = body["metrics"]
    assert metrics["source"] == "catalog_record" and "not present" in metrics["note"]
    assert metrics["portfolio"]["max_drawdown"] == pytest.approx(scenario.max_drawdown, abs=1e-6)
    assert {m["symbol"] for m in metrics["by_symbol"]} == set(scenario.symbols)


def metrics_file(out, generated_at):
    table = pa.table({"scenario_id": [COVID, COVID, "other"], "symbol": ["SPX", "AAPL", "SPX"],
                      "var_95": [0.05, 0.06, float("nan")], "max_drawdown": [-0.34, -0.31, -0.1]})
    provenance = {"catalog_generated_at": generated_at}
    pq.write_table(table.replace_schema_metadata({b"scenarios_metrics": json.dumps(provenance).encode()}),
                   out / api.METRICS_FILE)


def test_metrics_from_the_metrics_file_only_when_it_matches_the_catalog(sets, tmp_path):
    out = tmp_path / "cat"
    write_build(sets[1:2], out)
    c, _ = make_client(out, tmp_path / "home")
    metrics_file(out, GENERATED_AT)
    metrics = c.get(f"/scenarios/{COVID}").json()["metrics"]
    assert metrics["source"] == "scenario_metrics.parquet"
    assert metrics["by_symbol"] == [{"symbol": "SPX", "var_95": 0.05, "max_drawdown": -0.34},
                                    {"symbol": "AAPL", "var_95": 0.06, "max_drawdown": -0.31}]
    metrics_file(out, "2025-12-31T00:00:00+00:00")  # yesterday's metrics next to today's catalog
    metrics = c.get(f"/scenarios/{COVID}").json()["metrics"]
    assert metrics["source"] == "catalog_record" and "another catalog build" in metrics["note"]


def test_unknown_ids_and_routes_are_404_json(client):
    for path in ("/scenarios/nope", "/scenarios/nope/timeseries", "/runs/nope",
                 "/runs/00000000-0000-4000-8000-000000000000", "/nothing/here"):
        resp = client.get(path)
        assert resp.status_code == 404, path
        assert resp.json()["status"] == 404 and resp.json()["message"] and "Traceback" not in resp.text


def test_no_catalog_is_503_and_health_says_so(tmp_path):
    c, _ = make_client(tmp_path / "empty", tmp_path / "home")
    resp = c.get("/scenarios")
    assert resp.status_code == 503 and "no scenario catalog" in resp.json()["message"]
    assert c.get("/health").json() == {"status": "ok", "catalog": False, "generated_at": None}


def test_internal_errors_are_500_json_without_trace(catalog_dir, tmp_path, monkeypatch):
    c, _ = make_client(catalog_dir, tmp_path / "home")

    def broken(self):
        raise RuntimeError("secret internals /etc/passwd")

    monkeypatch.setattr(api.CatalogStore, "snapshot", broken)
    resp = c.get("/scenarios")
    assert resp.status_code == 500
    assert resp.json() == {"status": 500, "error": "Internal Server Error",
                           "message": "internal error; the server log has the details"}


def test_openapi_and_docs(client):
    schema = client.get("/openapi.json").json()
    assert {"/scenarios", "/scenarios/{scenario_id}", "/scenarios/{scenario_id}/timeseries", "/scenarios/generate",
            "/runs/{run_id}", "/catalog", "/health", "/report"} <= set(schema["paths"])
    assert client.get("/docs").status_code == 200


# --- time series -------------------------------------------------------------------------------------

def test_timeseries_json_default_matches_the_catalog(client, catalog_dir):
    resp = client.get(f"/scenarios/{COVID}/timeseries", params={"symbol": "SPX"})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    expected = load_scenarios(catalog_dir, scenario_id=COVID, timeseries=True, symbols=["SPX"]).timeseries
    assert body["row_count"] == len(expected) == len(body["rows"])
    assert body["columns"][:4] == ["symbol", "date", "returns", "prices"]
    got = pd.DataFrame(body["rows"])
    assert list(got["date"]) == [d.date().isoformat() for d in expected["date"]]
    np.testing.assert_array_equal(got["prices"].to_numpy(np.float32), expected["prices"].to_numpy())
    assert got.loc[got["date"] == "2020-03-23", "prices"].item() == 2237.4  # the float32 value, shortest form


def test_timeseries_formats_by_accept_and_parameter(client, catalog_dir):
    rows = len(load_scenarios(catalog_dir, scenario_id=COVID, timeseries=True).timeseries)
    csv = client.get(f"/scenarios/{COVID}/timeseries", headers={"Accept": "text/csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    frame = pd.read_csv(io.StringIO(csv.text))
    assert len(frame) == rows and list(frame.columns[:5]) == ["scenario_id", "symbol", "date", "returns", "prices"]

    for kwargs in ({"params": {"format": "parquet"}}, {"headers": {"Accept": "application/vnd.apache.parquet"}},
                   {"headers": {"Accept": "text/html;q=0.9, application/x-parquet"}}):
        resp = client.get(f"/scenarios/{COVID}/timeseries", **kwargs)
        assert resp.headers["content-type"] == "application/vnd.apache.parquet"
        table = pq.read_table(io.BytesIO(resp.content))
        assert table.num_rows == rows and table.schema.field("prices").type == pa.float32()
        assert table.schema.metadata[b"generated_at"] == GENERATED_AT.encode()

    json_anyway = client.get(f"/scenarios/{COVID}/timeseries", params={"format": "json"},
                             headers={"Accept": "text/csv"})
    assert json_anyway.json()["row_count"] == rows
    refused = client.get(f"/scenarios/{COVID}/timeseries", headers={"Accept": "text/html"})
    assert refused.status_code == 406 and "format=" in refused.json()["message"]
    bad = client.get(f"/scenarios/{COVID}/timeseries", params={"format": "xlsx"})
    assert bad.status_code == 422
    unknown = client.get(f"/scenarios/{COVID}/timeseries", params={"symbol": "SPX,GME"})
    assert unknown.status_code == 404 and "GME" in unknown.json()["message"]


def test_timeseries_of_a_catalog_without_time_series_is_404(sets, tmp_path):
    out = tmp_path / "cat"
    write_build(sets[1:2], out, save_timeseries=False)
    c, _ = make_client(out, tmp_path / "home")
    resp = c.get(f"/scenarios/{COVID}/timeseries")
    assert resp.status_code == 404 and "--no-save-timeseries" in resp.json()["message"]


# --- consistency while the daily build replaces the files ---------------------------------------------

def scaled(sets: list[ScenarioSet], factor: float) -> list[ScenarioSet]:
    """The same scenarios with prices scaled, so two builds are told apart by their values."""
    def copy(s: Scenario) -> Scenario:
        return Scenario(s.id, s.name, s.family, s.scenario_type, s.severity, s.dates, s.symbols, s.returns,
                        s.prices * factor, seed=s.seed, metadata=dict(s.metadata), validation=s.validation)

    return [ScenarioSet(ss.family, ss.severity, [copy(s) for s in ss.scenarios], ss.data_version, ss.config_hash,
                        validation=ss.validation) for ss in sets]


def spx_on(body, day="2020-03-23"):
    return next(r["prices"] for r in body["rows"] if r["symbol"] == "SPX" and r["date"] == day)


def test_new_build_is_picked_up_and_never_mixed_with_the_old_one(sets, tmp_path):
    out, staging = tmp_path / "cat", tmp_path / "staging"
    write_build(sets[1:2], out)
    c, _ = make_client(out, tmp_path / "home")
    assert spx_on(c.get(f"/scenarios/{COVID}/timeseries").json()) == 2237.4

    # The next build, caught between its renames: new metadata, yesterday's Parquet file still in place.
    time.sleep(0.01)
    write_build(scaled(sets[1:2], 2.0), staging, generated_at="2026-01-03T00:00:00+00:00")
    os.replace(staging / api.METADATA_FILE, out / api.METADATA_FILE)
    finisher = threading.Timer(0.15, os.replace, (staging / api.TIMESERIES_FILE, out / api.TIMESERIES_FILE))
    finisher.start()
    resp = c.get(f"/scenarios/{COVID}/timeseries")
    finisher.join()
    assert resp.headers["x-catalog-generated-at"] == "2026-01-03T00:00:00+00:00"
    assert resp.json()["generated_at"] == "2026-01-03T00:00:00+00:00"
    assert spx_on(resp.json()) == pytest.approx(2 * 2237.4, rel=1e-6)  # the new values, not yesterday's
    assert c.get("/scenarios").json()["generated_at"] == "2026-01-03T00:00:00+00:00"


def test_an_open_time_series_keeps_reading_its_own_build(sets, tmp_path):
    out = tmp_path / "cat"
    write_build(sets[1:2], out)
    store = api.CatalogStore(out)
    source, snap = store.open_timeseries(store.snapshot())
    time.sleep(0.01)
    write_build(scaled(sets[1:2], 3.0), out, generated_at="2026-01-04T00:00:00+00:00")  # renamed over it
    import pyarrow.dataset as ds

    fragment = ds.ParquetFileFormat().make_fragment(source)
    table = fragment.to_table(schema=fragment.physical_schema).to_pandas()
    spx = table[(table["scenario_id"] == COVID) & (table["symbol"] == "SPX")]
    assert spx.set_index("date").loc[pd.Timestamp("2020-03-23").date(), "prices"] == np.float32(2237.4)
    assert snap.generated_at == GENERATED_AT and store.snapshot().generated_at == "2026-01-04T00:00:00+00:00"
    source.close()


# --- generation ---------------------------------------------------------------------------------------

def test_generate_validates_and_launches(catalog_dir, tmp_path):
    c, launcher = make_client(catalog_dir, tmp_path / "home", dagster_ui_url="http://127.0.0.1:3000")
    resp = c.post("/scenarios/generate", json={"types": ["historical"], "severities": ["severe"],
                                              "symbols": ["SPX", "AAPL"], "start_date": "2015-01-01"})
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["families"] == ["historical"] and body["severities"] == ["severe"]
    assert body["status_url"] == f"http://testserver/runs/{body['run_id']}" == resp.headers["location"]
    assert body["dagster_ui_url"].startswith("http://127.0.0.1:3000/runs?q%5B%5D=tag%3Ascenarios%2Frequest_id%3D")
    [record] = launcher.launched
    assert record["request"]["symbols"] == ["SPX", "AAPL"] and record["output_dir"] == str(catalog_dir.resolve())
    status = c.get(f"/runs/{body['run_id']}").json()
    assert status["kind"] == "generation" and status["state"] == "queued" and status["dagster_runs"] == []
    # One generation at a time.
    again = c.post("/scenarios/generate", json={})
    assert again.status_code == 409 and body["run_id"] in again.json()["message"]


@pytest.mark.parametrize("payload, message", [
    ({"types": ["crypto"]}, "body.types.0"),
    ({"severities": ["apocalyptic"]}, "body.severities.0"),
    ({"symbols": ["SPX", "not a symbol"]}, "body.symbols.1"),
    ({"symbols": ["SPX", "FOO"]}, "unknown symbol(s) FOO"),
    ({"start_date": "2020-05-01", "end_date": "2020-01-01"}, "--end-date 2020-01-01 is before --start-date 2020-05-01"),
    ({"start_date": "2020-13-01"}, "body.start_date"),
    ({"num_scenarios": 0}, "body.num_scenarios"),
    ({"windows": 3}, "body.windows"),
    ({"types": []}, "body.types"),
])
def test_generate_rejects_bad_configs_with_422(catalog_dir, tmp_path, payload, message):
    c, launcher = make_client(catalog_dir, tmp_path / "home")
    resp = c.post("/scenarios/generate", json=payload)
    assert resp.status_code == 422, resp.text
    assert message in resp.json()["message"] and "Traceback" not in resp.text
    assert launcher.launched == []


def test_run_status_reports_failures_and_dead_workers(catalog_dir, tmp_path):
    home = tmp_path / "home"
    c, _ = make_client(catalog_dir, home)
    requests = api.RequestLog(home)
    # A request that fails in the worker (validated again there) ends as `failure` with the reason.
    failing = {"id": "11111111-1111-4111-8111-111111111111", "state": "queued", "created_at": api._utc(),
               "request": {"start_date": "2020-05-01", "end_date": "2020-01-01"}, "output_dir": str(tmp_path / "o")}
    requests.write(failing)
    assert api._worker_main(["run-request", str(requests.path(failing["id"]))]) == 2
    status = c.get(f"/runs/{failing['id']}").json()
    assert status["state"] == "failure" and "--end-date 2020-01-01 is before" in status["error"]
    assert status["started_at"] and status["finished_at"]
    # A worker that died without a word is reported as failed, not `running` forever.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    requests.write({"id": "22222222-2222-4222-8222-222222222222", "state": "running", "pid": dead.pid,
                    "created_at": api._utc(), "request": {}})
    status = c.get("/runs/22222222-2222-4222-8222-222222222222").json()
    assert status["state"] == "failure" and "exited unexpectedly" in status["error"]
    assert api._worker_main(["bogus"]) == 2


def test_a_failed_dagster_run_fails_the_request_with_the_cli_reason(monkeypatch):
    from scenarios_assets import cli

    def failing_run_plan(plan, out=None, tags=None):
        assert tags == {"scenarios/api": "1", api.REQUEST_TAG: "rid"}
        print("error: catalog failed (run abc): the catalog was not rebuilt", file=sys.stderr)
        return cli.EXIT_RUN_FAILED

    monkeypatch.setattr(cli, "run_plan", failing_run_plan)
    with pytest.raises(RuntimeError, match=r"^catalog failed \(run abc\): the catalog was not rebuilt$"):
        api.execute_plan(object(), "rid")


def test_generate_rejects_a_non_json_body(client):
    resp = client.post("/scenarios/generate", content=b"{not json", headers={"content-type": "application/json"})
    assert resp.status_code == 422 and resp.json()["status"] == 422


# --- a real server on loopback --------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def live_server(catalog_dir, tmp_path):
    out, home = tmp_path / "out", tmp_path / "dagster_home"
    shutil.copytree(catalog_dir, out)
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONWARNINGS": "ignore"}
    env.pop("SCENARIOS_DAGSTER_UI_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "scenarios_assets", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--output-dir", str(out), "--log-level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {proc.stdout.read().decode(errors='replace')}")
            time.sleep(0.2)
        yield base, out, home
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_live_server_serves_and_runs_a_generation_on_dagster(live_server, monkeypatch):
    base, out, home = live_server
    with httpx.Client(base_url=base, timeout=30) as http:
        listing = http.get("/scenarios", params={"severity": "severe"}).json()
        assert listing["total"] > 0 and listing["generated_at"] == GENERATED_AT
        with http.stream("GET", f"/scenarios/{COVID}/timeseries", headers={"Accept": "text/csv"}) as resp:
            assert resp.status_code == 200 and resp.headers.get("transfer-encoding") == "chunked"
            text = b"".join(resp.iter_bytes()).decode()
        assert text.startswith('"scenario_id","symbol","date","returns","prices"')
        assert http.get("/scenarios/nope").status_code == 404

        accepted = http.post("/scenarios/generate", json={
            "types": ["historical"], "severities": ["severe"], "symbols": ["SPX", "AAPL"], "start_date": "2015-01-01",
        })
        assert accepted.status_code == 202, accepted.text
        run_id = accepted.json()["run_id"]
        deadline = time.monotonic() + 240
        while True:
            status = http.get(f"/runs/{run_id}").json()
            if status["state"] in ("success", "failure") or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        log = (home / "scenarios_api" / "requests" / f"{run_id}.log")
        assert status["state"] == "success", (status, log.read_text() if log.exists() else "")
        runs = status["dagster_runs"]
        assert [r["job_name"] for r in runs] == ["market_data_job", "scenarios_job", "catalog_job"]
        assert all(r["status"] == "SUCCESS" for r in runs) and runs[1]["partition"] == "severe"
        # A Dagster run id is followed too.
        assert http.get(f"/runs/{runs[0]['run_id']}").json()["kind"] == "dagster_run"

        # The server now serves the new build: only `severe`, only SPX and AAPL, from 2015.
        listing = http.get("/scenarios", params={"limit": 1000}).json()
        assert listing["generated_at"] != GENERATED_AT
        assert {i["severity"] for i in listing["items"]} == {"severe"}
        assert set().union(*(i["symbols"] for i in listing["items"])) <= {"SPX", "AAPL"}
        report = http.get("/report")
        assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")

    from dagster import DagsterInstance, RunsFilter

    monkeypatch.setenv("DAGSTER_HOME", str(home))  # the project's dagster.yaml reads it
    with DagsterInstance.from_config(str(home)) as instance:  # the runs are on the project's instance
        tagged = instance.get_runs(filters=RunsFilter(tags={api.REQUEST_TAG: run_id}))
        assert len(tagged) == 3


# --- fuzzing the API against its own OpenAPI schema ------------------------------------------------------
# The schema is loaded from the app at import (it does not depend on the catalog); the catalog the app
# serves is written into FUZZ_DIR by a fixture before the fuzz test runs. (schemathesis' from_fixture does
# not work with pytest 9.)

FUZZ_DIR = Path(tempfile.mkdtemp(prefix="scenarios-api-fuzz-"))
atexit.register(shutil.rmtree, FUZZ_DIR, True)
FUZZ_APP = api.create_app(FUZZ_DIR / "out", FUZZ_DIR / "home",
                          launcher=RecordingLauncher(api.RequestLog(FUZZ_DIR / "home")))
# A generation config can be schema-valid yet meaningless (end date before start date, a symbol not in the
# market data, --num-scenarios without a stochastic family): JSON Schema cannot say so, the API answers 422.
FUZZ_CONFIG = schemathesis.Config.from_dict({"operations": [{
    "include-path": "/scenarios/generate",
    "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "409", "422"]}},
}]})
fuzz_schema = schemathesis.openapi.from_asgi("/openapi.json", FUZZ_APP, config=FUZZ_CONFIG)


@pytest.fixture(scope="module")
def fuzz_catalog(sets):
    write_build(sets, FUZZ_DIR / "out")
    return FUZZ_DIR / "out"


# Bounded (about 20 s here) and reproducible; SCENARIOS_FUZZ_EXAMPLES=500 fuzzes deeper, with fresh randomness.
FUZZ_EXAMPLES = int(os.environ.get("SCENARIOS_FUZZ_EXAMPLES", "60"))


@fuzz_schema.parametrize()
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize="SCENARIOS_FUZZ_EXAMPLES" not in os.environ,
          database=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_schema(fuzz_catalog, case):
    case.call_and_validate()
