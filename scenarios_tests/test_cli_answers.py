"""What the command line answers (issue 15, points 4, 9, 10, 12, 14): a failed blocking check names the
asset, the check and the reason; a bad output directory or PostgreSQL URL is refused before anything runs;
a database password never reaches the Dagster instance; the state of the library is reported as it is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scenarios_assets.cli import main as cli
from scenarios_assets.service.run import RUN_LOCK
from scenarios_assets.core.library.builds import current_build_id
from scenarios_assets.core.data.database import PASSWORD_ENV, parse_source, split_password

CASES = Path(__file__).parent / "data" / "cases"


def run_cli(args, home, timeout=300):
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONWARNINGS": "ignore"}
    env.pop(PASSWORD_ENV, None)
    return subprocess.run([sys.executable, "-m", "scenarios_assets", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def one_error_line(code: int, err: str, expected_code: int = 2) -> str:
    assert code == expected_code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# --- 4. a failed blocking check, in the one line --------------------------------------------------------

def test_failed_blocking_check_names_asset_check_and_reason(tmp_path):
    out = tmp_path / "lib"
    proc = run_cli(["--type", "monte_carlo", "--severity", "moderate", "--output-dir", str(out),
                    "--market-data", str(CASES / "short-history" / "ohlcv.csv")], tmp_path / "home")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    first, state = proc.stderr.strip().splitlines()
    assert "error: scenarios [moderate] failed (run " in first
    assert ("1 blocking check(s) failed: scenarios/monte_carlo check non_empty: 0 scenario(s); all skipped: monte_carlo: "
            "cannot calibrate the Monte Carlo model: the calibration window 2012-12-23..2022-12-23 holds 120 sessions "
            "(at least 250 needed)") in first
    assert state == f"the library in {out} is unchanged (current build: none)"
    # the step's own progress line names the check and its reason too, not Dagster's bare "…ERROR severity:"
    step = next(line for line in proc.stdout.splitlines() if "monte_carlo" in line and "failed after" in line)
    assert ": blocking check non_empty: 0 scenario(s); all skipped: monte_carlo: cannot calibrate" in step, step
    assert "ERROR severity" not in proc.stdout + proc.stderr


# --- 9. the output directory, before anything runs -----------------------------------------------------

@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "--output-dir is empty (give the library's directory, e.g. data/scenarios)"),
        ("FILE", "is a file, not a directory"),
        ("FILE/sub", "is a file, so the directory cannot be created"),
        ("/proc/scenarios-library", "is not writable (its nearest existing parent '/proc')"),
    ],
)
def test_bad_output_dir_is_refused_before_anything_runs(tmp_path, monkeypatch, capsys, value, message):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    (tmp_path / "FILE").write_text("not a directory")
    value = value.replace("FILE", str(tmp_path / "FILE"))
    code = cli.main(["--type", "stress", "--severity", "moderate", "--output-dir", value])
    line = one_error_line(code, capsys.readouterr().err)
    assert message in line
    assert not (tmp_path / "home").exists()  # no Dagster run was even prepared
    assert not Path("data/scenarios-library").exists()


def test_empty_output_dir_environment_variable_is_refused(monkeypatch, capsys):
    monkeypatch.setenv("SCENARIOS_OUTPUT_DIR", " ")
    line = one_error_line(cli.main(["--dry-run"]), capsys.readouterr().err)
    assert "SCENARIOS_OUTPUT_DIR is empty" in line


# --- 10. PostgreSQL URLs with a bad host or port ------------------------------------------------------------

@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://ana:s3cret@db:abc/prices", "market data URL 'postgresql://ana:***@db:abc/prices': port 'abc' is not a number from 1 to 65535"),
        ("postgresql://ana:s3cret@db:99999/prices", "port '99999' is not a number from 1 to 65535"),
        ("postgresql://ana:s3cret@[::1/prices", "the host is not a valid IPv6 address in brackets, e.g. [::1]"),
        ("postgresql://db:0/prices?password=s3cret", "port 0 is not a number from 1 to 65535"),
    ],
)
def test_bad_postgres_urls_get_one_line_without_the_password(capsys, url, message):
    line = one_error_line(cli.main(["--market-data", url, "--dry-run"]), capsys.readouterr().err)
    assert message in line and "s3cret" not in line
    line = one_error_line(cli.main(["load-market-data", "--to", url]), capsys.readouterr().err)
    assert message in line and "s3cret" not in line


# --- 12. a database password stays out of the Dagster instance ---------------------------------------------

def test_password_moves_from_the_url_to_the_environment(monkeypatch):
    assert split_password("postgresql://ana:s3%2Fcret@db:6543/prices?sslmode=require&table=a.b") == (
        "postgresql://ana@db:6543/prices?sslmode=require&table=a.b", "s3/cret")
    assert split_password("postgresql://db/prices?password=x&table=a.b") == ("postgresql://db/prices?table=a.b", "x")
    monkeypatch.setenv(PASSWORD_ENV, "s3/cret")
    src = parse_source("postgresql://ana@db:6543/prices?table=a.b")
    assert src.dsn == "postgresql://ana:s3%2Fcret@db:6543/prices"  # what libpq gets
    assert src.name == "postgresql://ana:***@db:6543/prices?table=a.b"  # the same name as with the URL's password
    plan = cli.plan_from_args(cli.build_parser().parse_args(
        ["--market-data", "postgresql://ana:pw1@db/prices", "--dry-run"]))
    assert plan.settings["market_data"] == "postgresql://ana@db/prices" and plan.secrets == {PASSWORD_ENV: "pw1"}
    assert "pw1" not in repr(plan)


def test_password_never_reaches_the_dagster_instance(tmp_path):
    from scenarios_tests.pg_helpers import temporary_database

    password = "Pw-" + os.urandom(6).hex()
    home, out = tmp_path / "home", tmp_path / "lib"
    with temporary_database() as url:
        from scenarios_assets.cli.db import load_market_data_main

        assert load_market_data_main(["--to", url, "--from", str(CASES / "constant-price" / "ohlcv.csv.gz")]) == 0
        user, _, host = url.partition("://")[2].rpartition("@")
        secret_url = f"postgresql://{user}:{password}@{host}" if user else f"postgresql://postgres:{password}@{host}"
        proc = run_cli(["--type", "stress", "--severity", "moderate", "--no-save-timeseries", "--output-dir", str(out),
                        "--market-data", secret_url], home)
    assert proc.returncode == 0, proc.stderr
    assert password not in proc.stdout + proc.stderr
    scanned = 0
    for root in (home, out):
        for path in root.rglob("*"):
            if path.is_file():
                scanned += 1
                assert password.encode() not in path.read_bytes(), path
    assert scanned > 5 and (home / "history" / "runs.db").exists()


# --- 14. the library's state after a failure, as it is ---------------------------------------------------

def test_failure_after_the_catalog_published_says_so(tmp_path, monkeypatch, capsys):
    import scenarios_assets.defs.metrics as metrics_defs

    def broken(*args, **kwargs):
        raise RuntimeError("metrics storage unavailable")

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(metrics_defs, "load_scenario_metrics", broken)
    out = tmp_path / "lib"
    code = cli.main(["--type", "stress", "--severity", "moderate", "--output-dir", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1, err
    assert "catalog failed" in err[0] and "metrics storage unavailable" in err[0]
    build = current_build_id(out)
    assert build is not None
    assert err[1] == f"build {build} was published in {out} before the failure and is current (there was no build before it)"


# --- 13. one run at a time per instance and output directory ------------------------------------------------

def test_a_second_run_is_refused_up_front_naming_the_first(tmp_path, monkeypatch, capsys):
    from scenarios_assets.core.library.locks import exclusive

    home, out = tmp_path / "home", tmp_path / "lib"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    first = "pid 4242: families stress, severities moderate, output /elsewhere"
    with exclusive(home / RUN_LOCK, first, "unused"):
        code = cli.main(["--type", "stress", "--severity", "moderate", "--output-dir", str(out)])
        line = one_error_line(code, capsys.readouterr().err)
    assert line.startswith(f"error: the Dagster instance {home} is in use by another scenarios run ({first}, since ")
    assert not (out / "builds").exists() and not (home / "history").exists()  # no Dagster run started
    with exclusive(out / RUN_LOCK, first, "unused"):
        code = cli.main(["--type", "stress", "--severity", "moderate", "--output-dir", str(out)])
        line = one_error_line(code, capsys.readouterr().err)
    assert f"the output directory {out} is in use by another scenarios run ({first}" in line
    # A dry run writes nothing into the output directory, so only the instance is locked for it.
    with exclusive(out / RUN_LOCK, first, "unused"):
        assert cli.main(["--type", "stress", "--severity", "moderate", "--output-dir", str(out), "--dry-run"]) == 0


def test_the_lock_of_a_killed_run_is_free_at_once(tmp_path):
    import signal
    import time

    lock = tmp_path / RUN_LOCK
    code = (f"from pathlib import Path; from scenarios_assets.core.library.locks import exclusive; import time\n"
            f"with exclusive(Path({str(lock)!r}), 'pid x', 'it'):\n    print('held', flush=True); time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        from scenarios_assets.core.library.locks import LockHeldError, exclusive

        with pytest.raises(LockHeldError, match=r"it is in use by another scenarios run \(pid x, since "):
            with exclusive(lock, "me", "it"):
                pass
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        time.sleep(0.1)
        with exclusive(lock, "me", "it"):
            pass
    finally:
        if child.poll() is None:
            child.kill()


# --- 11. runs of killed processes are marked failed -----------------------------------------------------------

def _start_and_kill_cli(home: Path, out: Path) -> str:
    """Start a CLI run, SIGKILL it while one of its Dagster runs is STARTED; return that run's id."""
    import signal
    import time

    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

    from scenarios_assets.defs.dead_runs import PID_TAG

    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONWARNINGS": "ignore"}
    child = subprocess.Popen([sys.executable, "-m", "scenarios_assets", "--type", "stress", "--severity", "all",
                              "--output-dir", str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if (home / "history" / "runs.db").exists():
                with DagsterInstance.from_config(str(home)) as instance:
                    runs = instance.get_runs(filters=RunsFilter(statuses=[DagsterRunStatus.STARTED],
                                                                tags={PID_TAG: str(child.pid)}))
                if runs:
                    child.send_signal(signal.SIGKILL)
                    child.wait(timeout=30)
                    return runs[0].run_id
            time.sleep(0.05)
        raise AssertionError("the CLI run never reached STARTED")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_killed_cli_runs_are_marked_failed_and_free_the_queue(tmp_path, monkeypatch):
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter, build_sensor_context

    from scenarios_assets.defs.dead_runs import scenarios_dead_runs

    home, out = tmp_path / "home", tmp_path / "lib"
    monkeypatch.setenv("DAGSTER_HOME", str(home))  # the instance config (dagster.yaml) reads it
    from scenarios_assets.service.instance import ensure_dagster_home

    ensure_dagster_home()
    with DagsterInstance.from_config(str(home)):
        pass  # the instance's schema exists before the test polls it beside a child (no concurrent migration)
    killed = [_start_and_kill_cli(home, out) for _ in range(3)]
    in_progress = RunsFilter(statuses=[DagsterRunStatus.STARTED, DagsterRunStatus.STARTING])
    with DagsterInstance.from_config(str(home)) as instance:
        # Each CLI run marked the run its killed predecessor left STARTED; the last one is left to the sensor
        # (without either, three dead runs would hold all of the daemon's max_concurrent_runs: 3 slots).
        assert [r.run_id for r in instance.get_runs(filters=in_progress)] == killed[-1:]
        result = scenarios_dead_runs(build_sensor_context(instance=instance))
        assert result.skip_message == f"marked 1 dead run(s) failed: {killed[-1]}"
        assert instance.get_runs(filters=in_progress) == []
        assert scenarios_dead_runs(build_sensor_context(instance=instance)).skip_message == "no run with a dead process"
        for run_id in killed:
            run = instance.get_run_by_id(run_id)
            assert run.status == DagsterRunStatus.FAILURE
            failure = instance.all_logs(run_id)[-1]
            assert "run marked failed: its process" in failure.message and "ended without reporting" in failure.message
    # The next run goes through, and the library is whole.
    proc = run_cli(["--type", "stress", "--severity", "moderate", "--output-dir", str(out)], home)
    assert proc.returncode == 0, proc.stderr
    assert current_build_id(out) is not None
