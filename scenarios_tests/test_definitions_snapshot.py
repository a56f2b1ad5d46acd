"""The code location as Dagster loads it: a committed snapshot of every definition (so a lost dependency,
check, automation condition, job, schedule or sensor fails here), `dg check defs`, and the environment
variables `dg list envs` reports.

After an intended change of the graph: ``.venv/bin/python -m scenarios_tests.graph_snapshot --update``, then
review ``git diff scenarios_tests/data/definitions_snapshot.json`` like code (README, "Tests").
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scenarios_assets.defs import automation, resources
from scenarios_tests.graph_snapshot import SNAPSHOT_FILE, current_snapshot

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "scenarios_assets"
SETTINGS_YAML = PACKAGE / "defs" / "settings" / "defs.yaml"
UPDATE = "python -m scenarios_tests.graph_snapshot --update"


@pytest.fixture(scope="module")
def snapshot():
    for name in ("SCENARIOS_AUTOMATION", "SCENARIOS_SENSOR_INTERVAL_SECONDS"):
        if name in os.environ:
            pytest.skip(f"{name} is set: it changes the default statuses and intervals the snapshot records")
    return current_snapshot()


def test_definitions_match_the_committed_snapshot(snapshot):
    committed = json.loads(SNAPSHOT_FILE.read_text())
    for section in ("assets", "jobs", "schedules", "sensors"):
        assert sorted(snapshot[section]) == sorted(committed[section]), f"{section} added or lost; if intended: {UPDATE}"
        for name, node in committed[section].items():
            assert snapshot[section][name] == node, f"{section} {name} changed; if intended: {UPDATE}"
    assert snapshot == committed, f"definitions changed; if intended: {UPDATE}"


def test_snapshot_holds_the_facts_the_pipeline_depends_on(snapshot):
    """Spot checks of the committed facts themselves, so an --update that drops one is caught in review and here."""
    assets = snapshot["assets"]
    catalog = assets["scenarios/catalog"]
    families = [k for k, v in assets.items() if v["partitions"] == ["moderate", "severe", "extreme"]]
    assert {d["key"] for d in catalog["deps"]} == {"market_data/ohlcv", *families}
    assert {d["partition_mapping"] for d in catalog["deps"] if d["key"] in families} == {"AllPartitionMapping"}
    assert catalog["automation_condition"]["label"] == "eager_after_all_families"
    assert {"name": "complete_and_current", "blocking": True} in catalog["checks"]
    assert assets["metrics/scenario_metrics"]["deps"][0]["key"] == "scenarios/catalog"
    assert {d["key"] for d in assets["market_data/ohlcv"]["deps"]} == {"stage1/ohlcv"}
    assert snapshot["external_assets"] == ["stage1/ohlcv"]
    assert all(v["owners"] == ["team:scenarios"] and v["kinds"] for v in assets.values())
    assert set(snapshot["sensors"]) == {"scenarios_after_market_data", "scenarios_automation", "scenarios_dead_runs"}
    assert snapshot["schedules"]["scenarios_daily"]["cron"] == "30 19 * * *"
    assert snapshot["resources"] == ["io_manager", "settings"] and snapshot["executor"] == "scenarios_executor"


def test_dg_check_defs_passes():
    env = {**os.environ, "DAGSTER_DISABLE_TELEMETRY": "1"}
    dg = Path(sys.executable).with_name("dg")
    proc = subprocess.run([str(dg), "check", "defs"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "All definitions loaded successfully" in proc.stdout + proc.stderr


def test_settings_component_declares_every_environment_variable_the_code_location_reads():
    declared = yaml.safe_load(SETTINGS_YAML.read_text())["requirements"]["env"]
    env_vars = [*resources.SETTINGS_ENV, automation.AUTOMATION_ENV, automation.SENSOR_INTERVAL_ENV]
    assert sorted(declared) == sorted(v.env_var_name for v in env_vars)
    # every SCENARIOS_* name in the code the location runs (defs and core) is declared; core/library/footprint.py (the
    # memory and disk limits) is read by the CLI's and the API's preflight only, never by the code location
    preflight_only = PACKAGE / "core" / "library" / "footprint.py"
    defs_files = list((PACKAGE / "defs").rglob("*.py"))
    assert not any("footprint" in path.read_text() for path in defs_files)
    read = {m for path in [*defs_files, *(PACKAGE / "core").rglob("*.py")] if path != preflight_only
            for m in re.findall(r"\bSCENARIOS_[A-Z_]+\b", path.read_text())}
    assert read <= set(declared), f"read but not declared in {SETTINGS_YAML.name}: {sorted(read - set(declared))}"
