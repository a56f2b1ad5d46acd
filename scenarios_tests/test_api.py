"""The REST API: endpoints through FastAPI's test client, reads of one build at a time while new builds are
published and old ones pruned, a real uvicorn process on loopback (with a real generation run on its Dagster
instance), and schemathesis fuzzing against the API's own OpenAPI schema."""

import atexit
import dataclasses
import io
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
from scenarios_assets.core.library import builds
from scenarios_assets.core.families.historical import generate_historical
from scenarios_assets.core.library.metrics import load_scenario_metrics
from scenarios_assets.core.models.scenario import ScenarioSet
from scenarios_assets.core.library.storage import load_scenarios
from scenarios_assets.core.library.validation import validate_set
from scenarios_tests.library_helpers import publish_sets

COVID = "historical.covid_crash.severe"
GENERATED_AT = "2026-01-02T00:00:00+00:00"
REPORT = "<!doctype html><title>scenario report</title>"


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


def write_report(build_dir: Path) -> None:
    (build_dir / builds.REPORT_FILE).write_text(REPORT)


def publish(sets, out, generated_at=GENERATED_AT, keep=2, **kwargs) -> str:
    """Publish ``sets`` as the next build of ``out`` (the catalog's own path: staged slices, plan, publish);
    returns its id."""
    final, _, _ = publish_sets(out, sets, keep=keep, run={"generated_at": generated_at}, report=write_report, **kwargs)
    return final.name


@pytest.fixture(scope="module")
def catalog_dir(sets, tmp_path_factory):
    out = tmp_path_factory.mktemp("catalog")
    publish(sets, out)
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


def build_of(resp) -> str:
    """The build an answer came from, as its header says; the body (when JSON) must say the same."""
    build = resp.headers["x-scenarios-build"]
    if resp.headers["content-type"].startswith("application/json"):
        body = resp.json()
        assert body["build_id"] == build and body["generated_at"] == resp.headers["x-catalog-generated-at"]
    return build


# --- listing and one scenario ------------------------------------------------------------------------

def test_list_filters_and_pages(client, sets, catalog_dir):
    everything = client.get("/scenarios", params={"limit": 1000}).json()
    assert everything["total"] == sum(len(s) for s in sets) == len(everything["items"])
    assert everything["generated_at"] == GENERATED_AT and everything["next"] is None
    assert everything["build_id"] == builds.current_build_id(catalog_dir)
    assert all(item["active"] for item in everything["items"])

    severe = client.get("/scenarios", params={"severity": "severe", "family": "historical"}).json()
    assert severe["total"] == len(sets[1]) and {i["severity"] for i in severe["items"]} == {"severe"}
    crisis = client.get("/scenarios", params={"type": "crisis", "severity": "severe"}).json()
    assert crisis["total"] > 0 and {i["scenario_type"] for i in crisis["items"]} == {"CRISIS"}
    assert client.get("/scenarios", params={"active": "false"}).json()["total"] == 0
    assert client.get("/scenarios", params={"type": "NO_SUCH_TYPE"}).json()["total"] == 0
    nvda = client.get("/scenarios", params={"symbol": "NVDA", "limit": 1000}).json()["items"]
    assert nvda and all("NVDA" in i["symbols"] for i in nvda)

    first = client.get("/scenarios", params={"limit": 5})
    assert build_of(first) == everything["build_id"]
    first = first.json()
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
    ({"build": "../catalog"}, "query.build"),
])
def test_bad_list_parameters_are_422_json(client, params, where):
    resp = client.get("/scenarios", params=params)
    assert resp.status_code == 422
    body = resp.json()
    assert body["status"] == 422 and body["message"].startswith("invalid parameters: " + where)
    assert body["details"][0]["location"] == where and "Traceback" not in resp.text


def test_one_scenario_with_validation_and_the_builds_metrics(client, sets, catalog_dir):
    resp = client.get(f"/scenarios/{COVID}")
    assert resp.status_code == 200 and resp.headers["x-catalog-generated-at"] == GENERATED_AT
    assert build_of(resp) == builds.current_build_id(catalog_dir)
    body = resp.json()
    scenario = next(s for s in sets[1].scenarios if s.id == COVID)
    assert body["name"] == scenario.name and body["symbols"] == scenario.symbols
    assert set(body["validation"]) >= {"finite_values", "coverage"} and body["validation"]["coverage"]["passed"]
    assert body["metadata"]["calibration_source"].startswith("replay of market data")
    metrics = body["metrics"]
    assert metrics["source"] == "scenario_metrics.parquet" and metrics["note"] == ""
    assert metrics["portfolio"]["max_drawdown"] == pytest.approx(scenario.max_drawdown, abs=1e-6)
    expected = load_scenario_metrics(catalog_dir, scenario_id=COVID)
    assert [m["symbol"] for m in metrics["by_symbol"]] == list(expected["symbol"]) and len(expected) == len(scenario.symbols)
    spx = next(m for m in metrics["by_symbol"] if m["symbol"] == "SPX")
    row = expected[expected["symbol"] == "SPX"].iloc[0]
    assert spx["max_drawdown"] == pytest.approx(row["max_drawdown"]) and spx["var_95"] == pytest.approx(row["var_95"])
    assert spx["drawdown_trough_date"] == row["drawdown_trough_date"].date().isoformat()
    assert not {"scenario_id", "scenario_name", "scenario_type", "family", "severity"} & set(spx)


def test_metrics_are_computed_from_the_record_in_a_build_without_time_series(sets, tmp_path):
    out = tmp_path / "cat"
    publish(sets[1:2], out, save_timeseries=False)
    c, _ = make_client(out, tmp_path / "home")
    metrics = c.get(f"/scenarios/{COVID}").json()["metrics"]
    scenario = next(s for s in sets[1].scenarios if s.id == COVID)
    assert metrics["source"] == "catalog_record" and "not present" in metrics["note"]
    assert metrics["portfolio"]["max_drawdown"] == pytest.approx(scenario.max_drawdown, abs=1e-6)
    assert {m["symbol"] for m in metrics["by_symbol"]} == set(scenario.symbols)


def test_unknown_ids_and_routes_are_404_json(client):
    for path in ("/scenarios/nope", "/scenarios/nope/timeseries", "/runs/nope",
                 "/runs/00000000-0000-4000-8000-000000000000", "/nothing/here", "/scenarios?build=nope",
                 f"/scenarios/{COVID}?build=nope", f"/scenarios/{COVID}/timeseries?build=nope"):
        resp = client.get(path)
        assert resp.status_code == 404, path
        assert resp.json()["status"] == 404 and resp.json()["message"] and "Traceback" not in resp.text


def test_no_catalog_is_503_and_health_says_so(tmp_path):
    c, _ = make_client(tmp_path / "empty", tmp_path / "home")
    resp = c.get("/scenarios")
    assert resp.status_code == 503 and "no scenario catalog" in resp.json()["message"]
    assert c.get("/health").json() == {"status": "ok", "catalog": False, "build_id": None, "generated_at": None}
    assert c.get("/builds").json() == {"current": None, "builds": []}


def test_internal_errors_are_500_json_without_trace(catalog_dir, tmp_path, monkeypatch):
    c, _ = make_client(catalog_dir, tmp_path / "home")

    def broken(self, build=None):
        raise RuntimeError("secret internals /etc/passwd")

    monkeypatch.setattr(api.CatalogStore, "snapshot", broken)
    resp = c.get("/scenarios")
    assert resp.status_code == 500
    assert resp.json() == {"status": 500, "error": "Internal Server Error",
                           "message": "internal error; the server log has the details"}


def test_openapi_and_docs(client):
    schema = client.get("/openapi.json").json()
    assert {"/scenarios", "/scenarios/{scenario_id}", "/scenarios/{scenario_id}/timeseries", "/scenarios/generate",
            "/runs/{run_id}", "/catalog", "/health", "/report", "/builds"} <= set(schema["paths"])
    assert client.get("/docs").status_code == 200


def test_catalog_health_and_report_name_their_build(client, catalog_dir, sets):
    build = builds.current_build_id(catalog_dir)
    info = client.get("/catalog")
    assert build_of(info) == build
    info = info.json()
    assert info["scenario_count"] == sum(len(s) for s in sets)
    assert info["counts"] == {"historical": {s.severity: len(s) for s in sets}}
    assert info["families"]["historical/severe"]["origin"] == "new"
    assert {"scenario_metadata.json", "scenario_timeseries.parquet", "scenario_metrics.parquet",
            "scenario_report.html"} <= set(info["files"]) and "slices" not in info["files"]
    assert client.get("/health").json() == {"status": "ok", "catalog": True, "build_id": build,
                                            "generated_at": GENERATED_AT}
    report = client.get("/report")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert report.text == REPORT and report.headers["x-scenarios-build"] == build


# --- time series -------------------------------------------------------------------------------------

def test_timeseries_json_default_matches_the_catalog(client, catalog_dir):
    resp = client.get(f"/scenarios/{COVID}/timeseries", params={"symbol": "SPX"})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/json")
    assert build_of(resp) == builds.current_build_id(catalog_dir)
    body = resp.json()
    expected = load_scenarios(catalog_dir, scenario_id=COVID, timeseries=True, symbols=["SPX"]).timeseries
    assert body["row_count"] == len(expected) == len(body["rows"])
    assert body["columns"][:4] == ["symbol", "date", "returns", "prices"]
    got = pd.DataFrame(body["rows"])
    assert list(got["date"]) == [d.date().isoformat() for d in expected["date"]]
    np.testing.assert_array_equal(got["prices"].to_numpy(np.float32), expected["prices"].to_numpy())
    assert got.loc[got["date"] == "2020-03-23", "prices"].item() == 2237.4  # the float32 value, shortest form

    two = client.get(f"/scenarios/{COVID}/timeseries", params={"symbol": "AAPL,SPX"}).json()
    assert [r["symbol"] for r in two["rows"]] == ["AAPL"] * len(expected) + ["SPX"] * len(expected)  # file order


def test_timeseries_formats_by_accept_and_parameter(client, catalog_dir):
    rows = len(load_scenarios(catalog_dir, scenario_id=COVID, timeseries=True).timeseries)
    csv = client.get(f"/scenarios/{COVID}/timeseries", headers={"Accept": "text/csv"})
    assert csv.headers["content-type"].startswith("text/csv") and build_of(csv)
    frame = pd.read_csv(io.StringIO(csv.text))
    assert len(frame) == rows and list(frame.columns[:5]) == ["scenario_id", "symbol", "date", "returns", "prices"]

    for kwargs in ({"params": {"format": "parquet"}}, {"headers": {"Accept": "application/vnd.apache.parquet"}},
                   {"headers": {"Accept": "text/html;q=0.9, application/x-parquet"}}):
        resp = client.get(f"/scenarios/{COVID}/timeseries", **kwargs)
        assert resp.headers["content-type"] == "application/vnd.apache.parquet"
        table = pq.read_table(io.BytesIO(resp.content))
        assert table.num_rows == rows and table.schema.field("prices").type == pa.float32()
        assert table.schema.metadata[b"generated_at"] == GENERATED_AT.encode()
        assert table.schema.metadata[b"build_id"].decode() == build_of(resp)

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
    publish(sets[1:2], out, save_timeseries=False)
    c, _ = make_client(out, tmp_path / "home")
    resp = c.get(f"/scenarios/{COVID}/timeseries")
    assert resp.status_code == 404 and "--no-save-timeseries" in resp.json()["message"]


# --- builds: the current one, the kept ones, new ones published and old ones pruned under the readers -----

def scaled(sets: list[ScenarioSet], factor: float) -> list[ScenarioSet]:
    """The same scenarios with prices scaled, so two builds are told apart by their values."""
    return [dataclasses.replace(ss, scenarios=[dataclasses.replace(s, prices=s.prices * np.float32(factor))
                                               for s in ss.scenarios]) for ss in sets]


def spx_on(body, day="2020-03-23"):
    return next(r["prices"] for r in body["rows"] if r["symbol"] == "SPX" and r["date"] == day)


def test_a_new_build_is_picked_up_and_the_older_one_stays_readable_by_id(sets, tmp_path):
    out = tmp_path / "cat"
    first = publish(sets[1:2], out)
    c, _ = make_client(out, tmp_path / "home")
    assert spx_on(c.get(f"/scenarios/{COVID}/timeseries").json()) == 2237.4

    second = publish(scaled(sets[1:2], 2.0), out, generated_at="2026-01-03T00:00:00+00:00")
    resp = c.get(f"/scenarios/{COVID}/timeseries")
    assert build_of(resp) == second and resp.json()["generated_at"] == "2026-01-03T00:00:00+00:00"
    assert spx_on(resp.json()) == pytest.approx(2 * 2237.4, rel=1e-6)
    assert build_of(c.get("/scenarios")) == build_of(c.get(f"/scenarios/{COVID}")) == second

    old = c.get(f"/scenarios/{COVID}/timeseries", params={"build": first})
    assert build_of(old) == first and old.json()["generated_at"] == GENERATED_AT and spx_on(old.json()) == 2237.4
    assert build_of(c.get(f"/scenarios/{COVID}", params={"build": first})) == first
    listing = c.get("/scenarios", params={"build": first, "limit": 3})
    assert build_of(listing) == first and listing.json()["next"].endswith(f"build={first}&offset=3&limit=3")

    third = publish(scaled(sets[1:2], 3.0), out, generated_at="2026-01-04T00:00:00+00:00")  # keep 2: `first` goes
    gone = c.get(f"/scenarios/{COVID}/timeseries", params={"build": first})
    assert gone.status_code == 404
    assert f"no build '{first}'" in gone.json()["message"] and f"kept builds: {second}, {third}" in gone.json()["message"]
    assert spx_on(c.get(f"/scenarios/{COVID}/timeseries", params={"build": second}).json()) == pytest.approx(2 * 2237.4)


def test_builds_lists_the_kept_builds_newest_first(sets, tmp_path):
    out = tmp_path / "cat"
    c, _ = make_client(out, tmp_path / "home")
    ids = [publish(sets[1:2], out, generated_at=f"2026-01-0{n}T00:00:00+00:00", keep=2) for n in (2, 3, 4)]
    body = c.get("/builds").json()
    assert body["current"] == ids[2] == builds.current_build_id(out)
    assert [b["build_id"] for b in body["builds"]] == [ids[2], ids[1]]  # the first one was pruned
    newest = body["builds"][0]
    assert newest == {"build_id": ids[2], "generated_at": "2026-01-04T00:00:00+00:00",
                      "data_version": sets[1].data_version, "config_hash": sets[1].config_hash,
                      "scenario_count": len(sets[1]), "current": True}
    assert body["builds"][1]["current"] is False and body["builds"][1]["generated_at"] == "2026-01-03T00:00:00+00:00"
    # The same figures as the build's own answers.
    assert c.get("/catalog", params={"build": ids[1]}).json()["scenario_count"] == len(sets[1])


def test_reads_never_mix_builds_while_builds_are_published_and_pruned(sets, tmp_path):
    out = tmp_path / "cat"
    factors = {GENERATED_AT: 1.0}
    publish(sets[1:2], out)
    variants = [scaled(sets[1:2], float(n)) for n in (2, 3, 4)]
    c, _ = make_client(out, tmp_path / "home")
    done, failures = threading.Event(), []

    def publisher():
        try:
            for n in range(9):
                generated_at = f"2026-02-01T00:00:{n:02d}+00:00"
                factors[generated_at] = float(2 + n % 3)  # known before the build can be seen
                publish(variants[n % 3], out, generated_at=generated_at, keep=2)
        except BaseException as exc:  # noqa: BLE001
            failures.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=publisher)
    thread.start()
    seen: dict[str, str] = {}
    reads = 0
    try:
        while not done.is_set() or reads < 10:
            detail = c.get(f"/scenarios/{COVID}")
            series = c.get(f"/scenarios/{COVID}/timeseries", params={"symbol": "SPX"})
            assert detail.status_code == series.status_code == 200, (detail.text, series.text)
            for resp in (detail, series):
                build, generated_at = build_of(resp), resp.json()["generated_at"]
                assert seen.setdefault(build, generated_at) == generated_at  # one build, one generated_at
            body = series.json()
            assert body["row_count"] == len(body["rows"]) > 0 and {r["symbol"] for r in body["rows"]} == {"SPX"}
            assert spx_on(body) == pytest.approx(2237.4 * factors[body["generated_at"]], rel=1e-6)
            reads += 1
    finally:
        thread.join()
    assert not failures, failures
    assert len(seen) >= 3 and reads >= 10


@pytest.mark.parametrize("cached", [True, False], ids=["parsed-before-pruning", "pruned-before-parsing"])
def test_a_build_pruned_under_a_request_is_read_again_from_the_current_one(sets, tmp_path, monkeypatch, cached):
    out = tmp_path / "cat"
    old = publish(sets[1:2], out)
    c, _ = make_client(out, tmp_path / "home")
    if cached:
        assert build_of(c.get(f"/scenarios/{COVID}")) == old
    old_path = builds.current_build(out)
    new = publish(scaled(sets[1:2], 2.0), out, generated_at="2026-01-03T00:00:00+00:00", keep=1)
    assert not old_path.exists()  # pruned

    # The request resolved `current` just before the publish: it reads the old build, which is gone.
    resolve = builds.resolve
    resolved = []

    def late(out_dir, build=None):
        resolved.append(build)
        return old_path if len(resolved) == 1 else resolve(out_dir, build)

    monkeypatch.setattr(builds, "resolve", late)
    resp = c.get(f"/scenarios/{COVID}/timeseries", params={"symbol": "SPX"})
    assert resp.status_code == 200 and build_of(resp) == new and len(resolved) == 2
    assert spx_on(resp.json()) == pytest.approx(2 * 2237.4, rel=1e-6)
    resolved.clear()
    detail = c.get(f"/scenarios/{COVID}")
    assert detail.status_code == 200 and build_of(detail) == new
    resolved.clear()
    assert c.get("/report").headers["x-scenarios-build"] == new
    # A request that named the deleted build is not answered from another one.
    resolved.clear()
    pinned = c.get(f"/scenarios/{COVID}/timeseries", params={"build": old})
    assert pinned.status_code == 404 and new in pinned.json()["message"]


# --- generation ---------------------------------------------------------------------------------------

def test_generate_validates_and_launches(catalog_dir, tmp_path):
    c, launcher = make_client(catalog_dir, tmp_path / "home", dagster_ui_url="http://127.0.0.1:3000")
    resp = c.post("/scenarios/generate", json={"types": ["historical"], "severities": ["severe"],
                                              "symbols": ["SPX", "AAPL"], "start_date": "2015-01-01"})
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["families"] == ["historical"] and body["severities"] == ["severe"]
    # relative: never built from the request's Host header (a --public-url makes it absolute)
    assert body["status_url"] == f"/runs/{body['run_id']}" == resp.headers["location"]
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
    failing = {"id": "11111111-1111-4111-8111-111111111111", "state": "queued", "created_at": api.utc_now(),
               "request": {"start_date": "2020-05-01", "end_date": "2020-01-01"}, "output_dir": str(tmp_path / "o")}
    requests.write(failing)
    assert api.worker_main(["run-request", str(requests.path(failing["id"]))]) == 2
    status = c.get(f"/runs/{failing['id']}").json()
    assert status["state"] == "failure" and "--end-date 2020-01-01 is before" in status["error"]
    assert status["started_at"] and status["finished_at"]
    # A worker that died without a word is reported as failed, not `running` forever.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    requests.write({"id": "22222222-2222-4222-8222-222222222222", "state": "running", "pid": dead.pid,
                    "created_at": api.utc_now(), "request": {}})
    status = c.get("/runs/22222222-2222-4222-8222-222222222222").json()
    assert status["state"] == "failure" and "exited unexpectedly" in status["error"]
    assert api.worker_main(["bogus"]) == 2


def test_a_failed_dagster_run_fails_the_request_with_the_cli_reason(monkeypatch):
    from scenarios_assets.api import generation
    from scenarios_assets.service import run

    def failing_run_plan(plan, out=None, tags=None):
        assert tags == {"scenarios/api": "1", api.REQUEST_TAG: "rid"}
        print("error: catalog failed (run abc): the catalog was not rebuilt", file=sys.stderr)
        return run.EXIT_RUN_FAILED

    monkeypatch.setattr(generation, "run_plan", failing_run_plan)
    with pytest.raises(RuntimeError, match=r"^catalog failed \(run abc\): the catalog was not rebuilt$"):
        api.execute_plan(object(), "rid")


def test_generate_rejects_a_non_json_body(client):
    resp = client.post("/scenarios/generate", content=b"{not json", headers={"content-type": "application/json"})
    assert resp.status_code == 400 and resp.json()["status"] == 400


# --- a real server on loopback --------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def live_server(catalog_dir, tmp_path):
    out, home = tmp_path / "out", tmp_path / "dagster_home"
    shutil.copytree(catalog_dir, out, symlinks=True)  # `current` and the top-level names stay links
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
        first = listing["build_id"]
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

        # The server now serves the new build: `severe` regenerated (only SPX and AAPL, from 2015), the other
        # severities carried over from the first build; that one is still kept and readable by its id.
        listing = http.get("/scenarios", params={"limit": 1000}).json()
        assert listing["generated_at"] != GENERATED_AT and listing["build_id"] != first
        severe = [i for i in listing["items"] if i["severity"] == "severe"]
        assert severe and set().union(*(i["symbols"] for i in severe)) <= {"SPX", "AAPL"}
        families = http.get("/catalog").json()["families"]
        assert families["historical/severe"]["origin"] == "new" and families["historical/moderate"]["origin"] == "carried"
        kept = http.get("/builds").json()
        assert kept["current"] == listing["build_id"] and [b["build_id"] for b in kept["builds"]] == [kept["current"], first]
        old = http.get("/scenarios", params={"severity": "severe", "build": first})
        assert old.headers["x-scenarios-build"] == first and old.json()["generated_at"] == GENERATED_AT
        report = http.get("/report")
        assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
        assert report.headers["x-scenarios-build"] == kept["current"] and "<html" in report.text.lower()

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
    publish(sets, FUZZ_DIR / "out")
    return FUZZ_DIR / "out"


# Bounded (about 20 s here) and reproducible; SCENARIOS_FUZZ_EXAMPLES=500 fuzzes deeper, with fresh randomness.
FUZZ_EXAMPLES = int(os.environ.get("SCENARIOS_FUZZ_EXAMPLES", "60"))


@fuzz_schema.parametrize()
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize="SCENARIOS_FUZZ_EXAMPLES" not in os.environ,
          database=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_schema(fuzz_catalog, case):
    case.call_and_validate()
