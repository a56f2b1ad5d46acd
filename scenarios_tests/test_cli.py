"""The command line, end to end through Dagster, and its handling of bad input."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from scenarios_assets.core.data.paths import BUNDLED_OHLCV
from scenarios_tests.library_helpers import snapshot


def run_cli(args, home, timeout=240):
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "scenarios_assets", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    home = tmp_path_factory.mktemp("dagster_home")
    out = tmp_path_factory.mktemp("out")
    proc = run_cli(["--type", "historical", "--severity", "severe", "--output-dir", str(out)], home)
    return home, out, proc


def test_cli_run_writes_catalog_and_records_runs(built):
    home, out, proc = built
    assert proc.returncode == 0, proc.stderr
    assert "severe   historical" in proc.stdout and "Scenario library summary" in proc.stdout
    assert "DEBUG" not in proc.stdout + proc.stderr  # progress lines, not Dagster's logs
    doc = json.loads((out / "scenario_metadata.json").read_text())
    assert {s["severity"] for s in doc["scenarios"]} == {"severe"}
    assert (out / "scenario_timeseries.parquet").exists()
    # One build, current, nothing temporary or staged left behind.
    [build] = [p.name for p in (out / "builds").iterdir()]
    assert os.readlink(out / "current") == f"builds/{build}" and doc["run"]["build_id"] == build
    assert not any((out / ".staging").iterdir())
    # The runs are in the instance at DAGSTER_HOME, so the UI shows them.
    from dagster import DagsterInstance, DagsterRunStatus

    os.environ["DAGSTER_HOME"] = str(home)
    try:
        with DagsterInstance.get() as instance:
            runs = instance.get_runs()
            assert len(runs) == 3 and all(r.status == DagsterRunStatus.SUCCESS for r in runs)
            assert {r.job_name for r in runs} == {"market_data_job", "scenarios_job", "catalog_job"}
            assert any(r.tags.get("dagster/partition") == "severe" for r in runs)
    finally:
        os.environ.pop("DAGSTER_HOME")


def bad_sources(tmp_path):
    df = pd.read_parquet(BUNDLED_OHLCV)
    df = df[df.symbol.isin(["SPX", "AAPL"]) & (df.date >= pd.Timestamp("2019-01-01").date())]
    paths = {}
    paths["missing_column"] = tmp_path / "missing.csv"
    df.drop(columns="close").to_csv(paths["missing_column"], index=False)
    neg = df.copy()
    neg.loc[neg.index[5], "close"] = -1.0
    paths["negative_price"] = tmp_path / "neg.parquet"
    neg.to_parquet(paths["negative_price"])
    paths["duplicate_rows"] = tmp_path / "dup.parquet"
    pd.concat([df, df.iloc[[10]]]).to_parquet(paths["duplicate_rows"])
    return paths


@pytest.mark.parametrize(
    "case, extra, message",
    [
        ("missing_column", None, "missing required column(s) close"),
        ("negative_price", None, "missing, zero, negative or non-finite close (first: AAPL on 2019-01-09"),
        ("duplicate_rows", None, "2 duplicate (symbol, date) row(s)"),
        ("unknown_symbol", ["--symbols", "SPX,FOO"], "unknown symbol(s) FOO"),
        ("end_before_start", ["--start-date", "2020-05-01", "--end-date", "2020-01-01"],
         "--end-date 2020-01-01 is before --start-date 2020-05-01"),
        ("bad_flag", ["--severity", "apocalyptic"], "argument --severity: invalid choice"),
        ("bad_date", ["--start-date", "2020-13-01"], "'2020-13-01' is not a date"),
        ("unknown_config_key", "config", "unknown config key 'scenarios_pipeline.generation.historical.windows'"),
    ],
)
def test_bad_input_fails_cleanly_and_keeps_files(built, tmp_path, case, extra, message):
    home, out, _ = built
    before = snapshot(out)  # every build, link and file, byte for byte
    args = ["--type", "historical", "--severity", "severe", "--output-dir", str(out)]
    if case in ("missing_column", "negative_price", "duplicate_rows"):
        args += ["--market-data", str(bad_sources(tmp_path)[case])]
    elif extra == "config":
        cfg = tmp_path / "bad.yaml"
        cfg.write_text("scenarios_pipeline:\n  generation:\n    historical:\n      windows: 3\n")
        args += ["--config", str(cfg)]
    else:
        args = [a for a in args if a != "severe" and a != "--severity"] + extra if case == "bad_flag" else args + extra
    proc = run_cli(args, home)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert snapshot(out) == before


def test_dry_run_writes_nothing(built, tmp_path):
    home, _, _ = built
    out = tmp_path / "dry"
    proc = run_cli(["--type", "historical", "--severity", "moderate", "--dry-run", "--output-dir", str(out)], home)
    assert proc.returncode == 0, proc.stderr
    assert "dry run" in proc.stdout
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize(
    "args, message",
    [
        (["serve", "--port", "abc"], "scenarios serve: argument --port: invalid int value: 'abc'"),
        (["load-market-data", "--to", "mysql://x"], "--to 'mysql://x' is not a postgresql:// URL"),
        (["load-market-data"], "the following arguments are required: --to"),
    ],
)
def test_subcommands_reject_bad_flags_in_one_line(tmp_path, args, message):
    proc = run_cli(args, tmp_path, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
