"""Operator experience: progress of family steps, where a build's and a command's time went."""

import io
import json
import re

import pytest

from scenarios_assets.cli import main as cli
from scenarios_assets.service.progress import BarDisplay, PlainDisplay, StepState, make_display
from scenarios_assets.core.library.builds import METADATA_FILE, REPORT_FILE, SUMMARY_FILE
from scenarios_assets.core.families.registry import family_stream
from scenarios_assets.core.library.slices import SliceProgress, write_slice
from scenarios_tests.operator_helpers import publish_build

GBM_30_BY_7 = {
    "generation": {"stochastic": {"monte_carlo": {"num_scenarios": 30, "return_model": "gbm"}}},
    "performance": {"paths_per_chunk": 7},
}


def test_write_slice_reports_every_chunk_of_a_stream(make_ctx, tmp_path):
    seen: list[SliceProgress] = []
    ctx = make_ctx("severe", GBM_30_BY_7)
    (tmp_path / "mc").mkdir()
    manifest = write_slice(family_stream("monte_carlo", ctx), tmp_path / "mc", True, progress=seen.append)
    assert [p.done for p in seen] == [7, 14, 21, 28, 30]
    assert {p.total for p in seen} == {30} and {(p.family, p.severity) for p in seen} == {("monte_carlo", "severe")}
    rows = [p.rows for p in seen]
    assert rows == sorted(rows) and rows[-1] == manifest.rows > 0
    # one chunk of a whole set (stress): its size is known, the one report is the whole set
    stress: list[SliceProgress] = []
    count = write_slice(family_stream("stress", make_ctx("severe")), None, progress=stress.append).count
    assert [(p.done, p.total, p.rows) for p in stress] == [(count, count, 0)] and count == 16


def test_progress_lines_read_back_exactly():
    for p in (SliceProgress("monte_carlo", "extreme", 378, 1000, 9_525_600, 12.3),
              SliceProgress("historical", "moderate", 12, None, 0, 0.4)):
        assert SliceProgress.parse(p.message()) == p
    assert SliceProgress.parse("catalog: report") is None
    assert SliceProgress.parse("progress x[y]: 3 of scenarios, 1 rows, 2 s") is None


@pytest.fixture(scope="module")
def published(make_ctx, tmp_path_factory):
    """A build of historical and stress at severe, assembled from real slices with the real report."""
    return publish_build(tmp_path_factory.mktemp("library"), make_ctx, seconds={"historical": 1.25, "stress": 0.5},
                         run={"timings": {"historical/severe": 1.25, "stress/severe": 0.5},
                              "time": {"market_data": 0.75}})


def test_build_records_where_its_steps_time_went(published):
    final, phases = published
    assert (final / REPORT_FILE).is_file()  # the report, written before the metadata, found its build
    run = json.loads((final / METADATA_FILE).read_text())["run"]
    assert run["timings"] == {"historical/severe": 1.25, "stress/severe": 0.5}
    assert run["time"]["market_data"] == 0.75
    assert run["time"]["families"] == {"historical": 1.25, "stress": 0.5}
    assert list(run["time"]["catalog"]) == ["link_files", "report"]  # what was done when the file was written
    assert list(phases.seconds) == ["link_files", "report", "metadata", "summary", "publish"]
    assert phases.seconds["report"] > 0.05 and run["time"]["catalog"]["report"] == phases.seconds["report"]


def test_summary_ends_with_the_time_of_each_family_and_catalog_part(published):
    final, phases = published
    text = (final / SUMMARY_FILE).read_text()
    total = float(re.search(r"time in the steps that made this build: ([\d.]+) s", text)[1])
    rows = re.findall(r"^  (market data|historical|stress|catalog)\s+([\d.]+) s", text, re.M)
    assert [name for name, _ in rows] == ["market data", "historical", "stress", "catalog"]
    assert dict(rows)["historical"] == "1.25" and dict(rows)["market data"] == "0.75"
    assert total == pytest.approx(sum(float(s) for _, s in rows), abs=0.02)
    catalog = re.search(r"^  catalog .*$", text, re.M)[0]
    assert "link files" in catalog and "report" in catalog and "metadata" in catalog


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def step(name="monte_carlo", **kw) -> StepState:
    return StepState(key=f"scenarios__{name}", name=name, severity="severe", started=0.0, **kw)


def test_terminal_gets_a_bar_per_step_and_a_result_line():
    out = Terminal()
    display = make_display(out)
    assert isinstance(display, BarDisplay) and isinstance(make_display(io.StringIO()), PlainDisplay)
    s = step()
    display.start(s)
    for done in (250, 1000):
        s.progress = SliceProgress("monte_carlo", "severe", done, 1000, done * 5544, done / 100)
        display.progress(s)
    s.seconds, s.count, s.checks = 10.5, 1000, [("non_empty", True), ("coverage", False)]
    display.finish(s)
    text = out.getvalue()
    assert "250/1000" in text and "100%" in text and "1000/1000" in text
    assert text.rstrip().endswith("severe   monte_carlo   1000 scenarios, 0 skipped, checks 1/2 passed "
                                  "(failed: coverage), 10.50 s")


@pytest.fixture(scope="module")
def cli_output(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_HOME", str(tmp / "home"))
        out = io.StringIO()
        mp.setattr("sys.stdout", out)
        code = cli.main(["--type", "historical", "--severity", "severe", "--output-dir", str(tmp / "lib"), "--dry-run"])
    return code, out.getvalue()


def test_cli_shows_each_step_as_it_starts_and_ends(cli_output):
    code, text = cli_output
    assert code == 0
    lines = text.splitlines()
    start = lines.index("  severe   historical   started")
    assert re.fullmatch(r"  severe   historical      13 scenarios, 2 skipped, checks 7/7 passed, [\d.]+ s", lines[start + 1])
    assert lines.index("  catalog               started") > start


def test_dry_run_prints_totals(cli_output):
    _, text = cli_output
    assert re.search(r"^historical\s+13\s+13$", text, re.M)  # severe column, then the total
    assert "dry run: 13 scenarios generated and checked, 2 skipped, 0 check(s) failed; nothing written" in text


def test_cli_accounts_for_its_wall_time(cli_output):
    _, text = cli_output
    wall = float(re.search(r"^wall time ([\d.]+) s, where it went:$", text, re.M)[1])
    block = text.split("where it went:\n", 1)[1]
    rows = dict(re.findall(r"^  (\S.*?)\s+([\d.]+) s", block, re.M))
    assert {"preflight", "market data", "historical", "catalog", "Dagster and CLI"} <= set(rows)
    assert sum(float(v) for v in rows.values()) == pytest.approx(wall, abs=0.05 * len(rows))
