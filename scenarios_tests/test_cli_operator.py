"""The command line for an operator: what --help says, flags that do nothing say so, quiet step processes."""

import subprocess
import sys

import pytest

from scenarios_assets.cli import main as cli
from scenarios_assets.service.run import stderr_to


def test_help_lists_the_commands_first(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    head = "\n".join(capsys.readouterr().out.splitlines()[:8])  # before the long option list
    for command in ("serve", "load-market-data", "builds"):
        assert f"scenarios {command}" in head, head
    assert "Slower on 2 cores" in " ".join(cli.build_parser().format_help().split())


def test_workers_without_a_multiprocess_executor_says_it_does_nothing():
    parse = cli.build_parser().parse_args
    assert cli.plan_from_args(parse(["--workers", "4"])).notes == [
        "note: --workers 4 has no effect: the steps run in this process; add --parallel (or --executor "
        "multiprocess/dask) to run them on 4 processes"]
    assert cli.plan_from_args(parse(["--workers", "4", "--parallel"])).notes == []
    assert cli.plan_from_args(parse(["--parallel"])).workers == 2


def test_step_processes_console_goes_to_the_log_file(tmp_path, capfd):
    log = tmp_path / "logs" / "steps.log"
    code = "import sys; sys.stderr.write('DEBUG - Executing step in subprocess\\n')"
    with stderr_to(log):
        subprocess.run([sys.executable, "-c", code], check=True)  # inherits file descriptor 2, like a step process
    subprocess.run([sys.executable, "-c", code.replace("DEBUG", "after")], check=True)
    assert log.read_text() == "DEBUG - Executing step in subprocess\n"
    assert capfd.readouterr().err == "after - Executing step in subprocess\n"
    with stderr_to(None):  # --verbose or in process: untouched
        subprocess.run([sys.executable, "-c", code], check=True)
    assert "DEBUG" in capfd.readouterr().err


def test_a_window_ending_before_the_data_says_why(make_ctx):
    """The projected tariff cycle's window ends on SPX's last date (2025-01-31 in the bundled data) while the market
    data, and so the run header, runs to NVDA's 2025-02-14: the skip reason names both and why."""
    from scenarios_assets.core.library.validation import generate_family
    from scenarios_assets.core.data.market import load_configured_market_data
    from scenarios_assets.core.data.paths import BUNDLED_OHLCV

    overrides = {"generation": {"historical": {"include_full_cycles": True}}, "data": {"start_date": "2024-12-01"}}
    ctx = make_ctx("severe", overrides)
    ctx = make_ctx("severe", overrides, load_configured_market_data(BUNDLED_OHLCV, ctx.settings.data))
    [reason] = [s["reason"] for s in generate_family("historical", ctx).skipped if s["key"] == "tariff_cycle_2025_2026"]
    assert ("the calibration window 2015-01-31..2025-01-31 holds 41 sessions (at least 250 needed); the market data "
            "starts 2024-12-02") in reason
    assert reason.endswith("the observed part ends 2025-01-31, the last date every symbol of the event has data "
                           "(SPX's last; the market data runs to 2025-02-14)")
