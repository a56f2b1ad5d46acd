"""The REST API's answers at its doors (issue 15, point 15): bounded request bodies (413), malformed JSON
is a 400 as the README says, no server file path in any answer, and links that never come from the
request's Host header (relative paths, or absolute under a configured public URL)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from scenarios_assets.cli import main as cli
from scenarios_assets.api import MAX_BODY_BYTES, create_app, redact
from scenarios_assets.core.data.paths import PROJECT_ROOT


class RecordingLauncher:
    """Stands in for the background process: records what would have been launched."""

    def __init__(self):
        self.records = []

    def launch(self, record):
        self.records.append(record)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """A small real build (stress, moderate) made through the CLI."""
    import os

    root = tmp_path_factory.mktemp("api")
    previous = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(root / "home")
    try:
        code = cli.main(["--type", "stress", "--severity", "moderate", "--no-save-timeseries",
                         "--output-dir", str(root / "lib")])
    finally:
        if previous is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = previous
    assert code == 0
    return root


def client_for(root, **kwargs) -> tuple[TestClient, RecordingLauncher]:
    launcher = RecordingLauncher()
    app = create_app(root / "lib", root / "home", launcher=launcher, **kwargs)
    return TestClient(app, raise_server_exceptions=False), launcher


def no_server_path(response, *paths) -> None:
    text = response.text
    for path in (PROJECT_ROOT, *paths):
        assert str(path) not in text, text


def test_body_above_the_limit_is_refused_with_413(library):
    client, launcher = client_for(library)
    big = json.dumps({"symbols": ["SPX"] * 20_000}).encode()
    assert len(big) > MAX_BODY_BYTES
    r = client.post("/scenarios/generate", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["message"] == f"the request body is {len(big)} bytes; at most {MAX_BODY_BYTES} are accepted"

    def chunks():  # no Content-Length: counted as it arrives, refused once past the limit
        for _ in range(100):
            yield b" " * 8192

    r = client.post("/scenarios/generate", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and f"passed {MAX_BODY_BYTES} bytes" in r.json()["message"]
    assert launcher.records == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"types": ["historical"', "the request body is not valid JSON: "),
        (b"types=historical", "the request body is not valid JSON: "),
        (b"", "the request body is empty: send a JSON object ({} for the defaults)"),
    ],
)
def test_unreadable_json_is_a_400(library, body, message):
    client, _ = client_for(library)
    r = client.post("/scenarios/generate", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "Bad Request" and r.json()["message"].startswith(message)


def test_a_422_names_the_input_but_not_where_the_server_keeps_it(library):
    client, _ = client_for(library)
    r = client.post("/scenarios/generate", json={"symbols": ["SPX", "NOPE"], "types": ["stress"]})
    assert r.status_code == 422
    assert "unknown symbol(s) NOPE in market data 'ohlcv.parquet' (available: " in r.json()["message"]
    no_server_path(r, library)


def test_503_and_202_carry_no_server_path_and_links_ignore_the_host_header(library):
    client, launcher = client_for(library)
    empty = create_app(library / "nothing-here", library / "home", launcher=RecordingLauncher())
    r = TestClient(empty).get("/catalog")
    assert r.status_code == 503 and "no scenario catalog in 'nothing-here' yet" in r.json()["message"]
    no_server_path(r, library)
    r = client.post("/scenarios/generate", json={"types": ["stress"], "severities": ["moderate"], "dry_run": True},
                    headers={"Host": "attacker.example"})
    assert r.status_code == 202, r.text
    body = r.json()
    assert "output_dir" not in body and launcher.records
    assert body["status_url"] == f"/runs/{body['run_id']}" == r.headers["location"]
    assert "attacker.example" not in r.text + json.dumps(dict(r.headers))
    no_server_path(r, library)
    info = client.get("/catalog")
    assert info.status_code == 200 and "output_dir" not in info.json()
    no_server_path(info, library)


def test_next_link_is_relative_or_under_the_public_url(library):
    client, _ = client_for(library)
    r = client.get("/scenarios?limit=5&family=stress", headers={"Host": "attacker.example"})
    assert r.status_code == 200 and r.json()["total"] == 16
    assert r.json()["next"] == "/scenarios?family=stress&offset=5&limit=5"
    public, _ = client_for(library, public_url="https://scenarios.example.org/")
    r = public.get("/scenarios?limit=5", headers={"Host": "attacker.example"})
    assert r.json()["next"] == "https://scenarios.example.org/scenarios?offset=5&limit=5"
    r = public.post("/scenarios/generate", json={"types": ["stress"], "dry_run": True})
    assert r.json()["status_url"] == f"https://scenarios.example.org/runs/{r.json()['run_id']}"


def test_redact_keeps_urls_and_names_cuts_paths():
    assert redact("market data '/srv/data/ohlcv.parquet': bad") == "market data 'ohlcv.parquet': bad"
    assert redact("see http://127.0.0.1:3000/runs/abc") == "see http://127.0.0.1:3000/runs/abc"
    assert redact("no catalog in '/var/lib/scenarios' yet") == "no catalog in 'scenarios' yet"
    assert redact("ratio 1/2 and 3/4") == "ratio 1/2 and 3/4"
    # the API's own routes are links, not server paths (the 409 of a second generation names its status)
    assert redact("generation abc is still running; follow it at /runs/abc-1") == (
        "generation abc is still running; follow it at /runs/abc-1")
