"""The visual report: charts generic over the families in the build, written into the build before it is
published, the catalog asset's metadata, and the page rendered by a real headless Chromium."""

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from scenarios_assets.core.library import builds
from scenarios_assets.core.library import report as rpt
from scenarios_assets.core.families.historical import generate_historical
from scenarios_assets.core.models.scenario import Scenario, ScenarioSet
from scenarios_assets.core.library.storage import load_scenarios
from scenarios_tests.library_helpers import publish_sets

ROOT = Path(__file__).resolve().parents[1]
SEVERITY_SCALE = {"moderate": 0.008, "severe": 0.016, "extreme": 0.024}
ALL_CHARTS = {"overview", "historical_drawdowns", "regime_paths", "monte_carlo_fan", "bootstrap_bands", "stress_paths"}


def synthetic_set(family: str, types: list[str], severity: str, n: int, days: int, names=None, seed: int = 0):
    """Stand-ins for the families being built elsewhere (same Scenario model, same file format)."""
    rng = np.random.default_rng(seed)
    symbols = ["SPX", "AAPL", "MSFT"]
    dates = np.busday_offset("2024-01-02", np.arange(days), roll="forward")
    scenarios = []
    for i in range(n):
        returns = rng.normal(0.0002, SEVERITY_SCALE[severity], size=(days, len(symbols))).astype(np.float32)
        prices = 100.0 * np.cumprod(1.0 + returns, axis=0)
        name = names[i] if names else f"{family} path {i}"
        scenarios.append(Scenario(f"{family}.{i:04d}.{severity}", name, family, types[i % len(types)], severity,
                                  dates, symbols, returns, prices, seed=i, metadata={"calibration_source": "test"}))
    return ScenarioSet(family, severity, scenarios, "dv", "ch")


def synthetic_sets() -> list[ScenarioSet]:
    sets = []
    for k, sev in enumerate(("moderate", "severe", "extreme")):
        sets += [
            synthetic_set("regime", ["BULL", "BEAR", "HIGH_VOLATILITY", "RANGING"], sev, 8, 60, seed=10 + k),
            synthetic_set("monte_carlo", ["MONTE_CARLO"], sev, 120, 126, seed=20 + k),
            synthetic_set("bootstrap", ["BOOTSTRAP"], sev, 60, 63, seed=30 + k),
            synthetic_set("stress", ["STRESS"], sev, 3, 40, names=["Rate shock", "Equity crash", "Liquidity"],
                          seed=40 + k),
        ]
    return sets


@pytest.fixture(scope="module")
def historical_sets(make_ctx):
    return [generate_historical(make_ctx(sev)) for sev in ("moderate", "severe", "extreme")]


def publish_with_report(out: Path, sets, save_timeseries: bool = True):
    """Publish ``sets`` as one build whose report is written into the build before the commit point, as the
    catalog does. Returns (published build directory, report, names of the written report files)."""
    made = {}

    def report(build_dir):
        made["report"], written = rpt.write_report(build_dir)
        made["names"] = set(written)
        assert all(p.parent == build_dir for p in written.values())  # into the unpublished build only

    sets = [replace(ss, data_version="dv", config_hash="ch") for ss in sets]
    final, _, _ = publish_sets(out, sets, report=report, save_timeseries=save_timeseries)
    return final, made["report"], made["names"]


def img_sources(page: str) -> list[str]:
    return re.findall(r'<img class="chart"[^>]*src="([^"]+)"', page)


def test_report_covers_every_family_present(historical_sets, tmp_path):
    final, report, written = publish_with_report(tmp_path, historical_sets + synthetic_sets())
    assert {c.key for c in report.charts} == ALL_CHARTS
    assert report.notes == []
    for chart in report.charts:
        assert chart.png.startswith(b"\x89PNG\r\n\x1a\n") and len(chart.png) > 10_000
        assert (final / chart.filename).read_bytes() == chart.png
    page = (tmp_path / rpt.REPORT_FILE).read_text()  # <out>/scenario_report.html -> current/
    assert page == report.html and (final / rpt.REPORT_FILE).read_text() == page
    assert written == {rpt.REPORT_FILE, *(c.filename for c in report.charts)}
    sources = img_sources(page)
    assert len(sources) == len(ALL_CHARTS) and all(s.startswith("data:image/png;base64,") for s in sources)
    # Self-contained: nothing for a browser to fetch.
    assert not re.search(r'(src|href)="(?!data:)', page) and "http://" not in page and "https://" not in page
    assert "Monte Carlo fan charts" in page or "monte_carlo_fan" in page
    # The build was published whole: no temporary build or staged slice is left behind.
    assert not [p.name for p in (tmp_path / "builds").iterdir() if p.name.startswith(".")]
    assert not any((tmp_path / builds.STAGING_DIR).iterdir())
    # Big families are summarised, small ones listed.
    assert "monte_carlo: 360 scenarios, summarised" in page and "historical.covid_crash.severe" in page


def test_absent_families_are_skipped_and_stale_charts_removed(historical_sets, tmp_path):
    first, _, _ = publish_with_report(tmp_path, historical_sets + synthetic_sets())
    final, report, _ = publish_with_report(tmp_path, historical_sets)  # the next day: only the historical family
    assert {c.key for c in report.charts} == {"overview", "historical_drawdowns"}
    assert report.notes == ["Not in this catalog (no chart): regime, monte_carlo, bootstrap, stress."]
    assert len(list(first.glob("scenario_report_*.png"))) == len(ALL_CHARTS)  # the previous build is kept as it was
    pngs = {p.name for p in (tmp_path / "current").glob("scenario_report_*.png")}
    assert pngs == {"scenario_report_overview.png", "scenario_report_historical_drawdowns.png"}
    assert len(img_sources((tmp_path / rpt.REPORT_FILE).read_text())) == 2


def test_without_time_series_only_record_charts(historical_sets, tmp_path):
    _, report, _ = publish_with_report(tmp_path, historical_sets[:1], save_timeseries=False)
    assert [c.key for c in report.charts] == ["overview"]
    assert any("--no-save-timeseries" in n for n in report.notes)


def test_paths_agree_with_the_records(historical_sets, tmp_path):
    """The charted portfolio path is the scenario's own: its end is the recorded total return, its worst
    drawdown the recorded one, whether read from the directory or from load_scenarios()."""
    sets = historical_sets + [ss for ss in synthetic_sets() if ss.family == "regime"]
    final, _, _ = publish_with_report(tmp_path, sets)
    from_dir = rpt.from_directory(tmp_path)
    assert rpt.from_directory(final).records == from_dir.records
    from_lib = rpt.from_library(load_scenarios(tmp_path, timeseries=True))
    assert from_dir.wealth.keys() == from_lib.wealth.keys() == {r["id"] for r in from_dir.records}
    for rec in from_dir.records:
        path = from_dir.wealth[rec["id"]]
        np.testing.assert_allclose(path, from_lib.wealth[rec["id"]], rtol=1e-9)
        assert path[0] == 1.0 and len(path) == rec["num_days"] + 1
        assert path[-1] - 1.0 == pytest.approx(rec["expected_return"], abs=2e-5)
        drawdown = (path / np.maximum.accumulate(path) - 1.0).min()
        assert drawdown == pytest.approx(rec["max_drawdown"], abs=2e-5)


def test_catalog_asset_writes_report_and_shows_charts(tmp_path):
    from dagster import AssetKey, instance_for_test

    from scenarios_tests.dagster_helpers import materialize_graph

    out, dry = tmp_path / "out", tmp_path / "dry"
    with instance_for_test() as instance:
        results = materialize_graph(instance, out, tmp_path / "storage", severities=["severe"],
                                    severities_setting=["severe"])
        assert results[-1].success
        [mat] = [m for m in results[-1].asset_materializations_for_node("scenarios__catalog")
                 if m.asset_key == AssetKey(["scenarios", "catalog"])]
        charts = {k: v.value for k, v in mat.metadata.items() if k.startswith("chart_")}
        families = {r["family"] for r in json.loads((out / "scenario_metadata.json").read_text())["scenarios"]}
        assert "historical" in families  # and whichever other families are registered: one chart each
        assert set(charts) == {"chart_overview", *(f"chart_{rpt.chart_key(f)}" for f in families)}
        build = builds.current_build(out)
        assert build.name == mat.metadata["build_id"].value
        # Shown in place by the Dagster UI (Markdown under 1,000 characters): a thumbnail from the REST API, which
        # links to the whole chart of this build (test_api_operator.py checks what the API serves).
        api = "http://127.0.0.1:8000/report/charts"
        assert all(len(md) < rpt.INLINE_MARKDOWN_LIMIT and "base64" not in md for md in charts.values())
        assert all(f"({api}/{key.removeprefix('chart_')}.png?build={build.name}&width=560)]" in md
                   for key, md in charts.items())
        assert Path(mat.metadata["report"].value).is_file()
        assert Path(mat.metadata["report"].value).read_bytes() == (out / rpt.REPORT_FILE).read_bytes()
        assert (out / rpt.REPORT_FILE).exists() and (build / "scenario_report_overview.png").exists()

        dry_run = materialize_graph(instance, dry, tmp_path / "storage", severities=[], severities_setting=["severe"],
                                    dry_run=True)
        assert dry_run[-1].success
    assert not dry.exists() or not any(dry.iterdir())


def chromium_or_skip() -> str:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from screenshot_report import find_chromium
    finally:
        sys.path.pop(0)
    found = find_chromium()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI (.ci/run installs it)")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return found


def test_report_renders_in_headless_chromium(historical_sets, tmp_path):
    chromium_or_skip()
    _, report, _ = publish_with_report(tmp_path, historical_sets + synthetic_sets())
    shot, dom = tmp_path / "shot.png", tmp_path / "dom.html"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "screenshot_report.py"), "--report", str(tmp_path / rpt.REPORT_FILE),
         "--output", str(shot), "--dump-dom", str(dom), "--width", "1200", "--height", "1600"],
        capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    page = dom.read_text()
    n = len(report.charts)
    # The page loaded, its script ran, and the browser decoded every embedded chart.
    assert f'data-charts-loaded="{n}/{n}"' in page
    assert len(re.findall(r'<img class="chart"', page)) == n
    from matplotlib.image import imread

    pixels = imread(str(shot))
    assert pixels.shape[:2] == (1600, 1200)
    assert shot.stat().st_size > 50_000
    colours = np.unique((pixels[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 200 and pixels[..., :3].std() > 0.05  # charts, not a blank or error page


def test_screenshot_script_rejects_a_missing_report(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "screenshot_report.py"), "--report",
                           str(tmp_path / "missing.html"), "--output", str(tmp_path / "x.png")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    assert not (tmp_path / "x.png").exists()


def test_chart_markdown_embeds_png():
    chart = rpt.Chart("k", "Title", "Caption.", b"\x89PNG\r\n\x1a\nxyz")
    md = chart.markdown()
    assert md.startswith("**Title**") and "![Title](data:image/png;base64,iVBORw0KGgp4eXo=)" in md
    assert json.dumps(md)  # plain text, storable as Dagster metadata
