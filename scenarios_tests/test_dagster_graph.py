"""The real Dagster graph on the bundled data: structure, checks, files, reproducibility."""

import json

import pyarrow.parquet as pq
import pytest
from dagster import AssetKey, instance_for_test

from scenarios_assets.core.library import builds
from scenarios_assets.definitions import defs
from scenarios_tests.dagster_helpers import materialize_graph
from scenarios_tests.library_helpers import snapshot


def test_graph_structure():
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"market_data/ohlcv", "market_data/economic", "scenarios/historical", "scenarios/catalog"} <= keys
    historical = graph.get(AssetKey(["scenarios", "historical"]))
    assert historical.partitions_def.get_partition_keys() == ["moderate", "severe", "extreme"]
    assert graph.get(AssetKey(["scenarios", "catalog"])).partitions_def is None
    assert graph.get(AssetKey(["market_data", "ohlcv"])).group_name == "market_data"
    assert historical.group_name == "scenarios"
    for name in ("market_data_job", "scenarios_job", "catalog_job"):
        assert defs.resolve_job_def(name) is not None


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory):
    outs = []
    for k in range(2):
        out = tmp_path_factory.mktemp(f"out{k}")
        with instance_for_test() as instance:
            results = materialize_graph(instance, out, tmp_path_factory.mktemp(f"storage{k}"))
        outs.append((out, results))
    return outs


def test_whole_graph_materialises_with_all_checks_passing(two_builds):
    out, results = two_builds[0]
    assert all(r.success for r in results)
    evaluations = [e for r in results for e in r.get_asset_check_evaluations()]
    assert evaluations and all(e.passed for e in evaluations), [e.check_name for e in evaluations if not e.passed]
    assert {e.check_name for e in evaluations} >= {"finite_values", "positive_prices", "coverage", "complete_and_current"}
    assert {p.name for p in out.iterdir()} == {  # the report: test_report.py
        "scenario_metadata.json", "scenario_timeseries.parquet", "scenario_summary.txt", "scenario_metrics.parquet",
        "scenario_report.html", "CURRENT", "current", "builds", ".staging", ".lock",
    }
    assert [p.name for p in (out / "builds").iterdir()] == [builds.current_build_id(out)]
    assert not any((out / ".staging").iterdir())  # every staged slice went into the build
    doc = json.loads((out / "scenario_metadata.json").read_text())
    severities = {s["severity"] for s in doc["scenarios"]}
    assert severities == {"moderate", "severe", "extreme"}
    assert {s["family"] for s in doc["scenarios"]} >= {"historical"}


def test_same_data_config_seed_give_identical_outputs(two_builds):
    (a, _), (b, _) = two_builds
    doc_a = json.loads((a / "scenario_metadata.json").read_text())
    doc_b = json.loads((b / "scenario_metadata.json").read_text())
    for doc in (doc_a, doc_b):
        doc.pop("generated_at")
        run = doc.pop("run")  # build id, staged slice ids, timings: facts of the run
        assert set(run["timings"]) == set(doc["families"]) and run["previous_build"] is None
    assert doc_a == doc_b
    assert pq.read_table(a / "scenario_timeseries.parquet").equals(pq.read_table(b / "scenario_timeseries.parquet"))
    assert pq.read_table(a / "scenario_metrics.parquet").equals(pq.read_table(b / "scenario_metrics.parquet"))
    slices_a, slices_b = (sorted((d / "current" / "slices").rglob("records.jsonl")) for d in (a, b))
    assert len(slices_a) == 15 and [p.read_bytes() for p in slices_a] == [p.read_bytes() for p in slices_b]


def test_catalog_refuses_half_finished_or_stale_sets_and_keeps_files(tmp_path):
    """Missing partitions or sets built with another config fail the catalog visibly; files stay as they were."""
    out, storage = tmp_path / "out", tmp_path / "storage"
    # Left by killed runs: a family step's half-written slice (its run is not live) and a build never published.
    killed = builds.new_staging(out, "historical", "severe", "not-a-live-run")
    (killed / "records.jsonl").write_text('{"id": "historical.killed.severe"}\n')
    dead = builds.start_build(out, builds.new_build_id())
    (dead / "scenario_metadata.json").write_text("{}")
    with instance_for_test() as instance:
        ok = materialize_graph(instance, out, storage, severities=["severe"], severities_setting=["severe"])
        assert ok[-1].success
        assert not killed.exists() and not dead.exists()  # removed by the build, never published
        assert not any((out / ".staging").iterdir())
        assert [p.name for p in (out / "builds").iterdir()] == [builds.current_build_id(out)]
        before = snapshot(out)

        # Only `severe` exists, but the catalog is asked for all three severities.
        half = materialize_graph(instance, out, storage, severities=[], severities_setting=[])
        assert not half[-1].success
        failed = [e for e in half[-1].get_asset_check_evaluations() if not e.passed]
        assert failed and "historical[moderate] has not been materialised" in failed[0].metadata["detail"].value

        # Market data re-selected (another config) while the scenario sets are from the old one.
        stale = materialize_graph(
            instance, out, storage, severities=[], severities_setting=["severe"],
            overrides_json='{"data": {"symbols_universe": ["SPX", "AAPL"]}}',
        )
        assert not stale[-1].success
        detail = [e for e in stale[-1].get_asset_check_evaluations() if not e.passed][0].metadata["detail"].value
        assert "historical[severe] was built from data version" in detail or "historical[severe] was built with config" in detail
    assert snapshot(out) == before


def test_severity_is_monotone_for_every_family(two_builds):
    """Severity is monotone: median annualised volatility rises moderate → severe → extreme for every family; so does
    the median loss for crisis replays, the stochastic families and stress tests."""
    import statistics

    out, _ = two_builds[0]
    records = json.loads((out / "scenario_metadata.json").read_text())["scenarios"]
    order = ("moderate", "severe", "extreme")

    def medians(family, field, scenario_type=None):
        return [
            statistics.median(
                (r["metadata"]["annualised_volatility"] if field == "vol" else r["max_drawdown"])
                for r in records
                if r["family"] == family and r["severity"] == sev and scenario_type in (None, r["scenario_type"])
            )
            for sev in order
        ]

    families = {r["family"] for r in records}
    assert families == {"historical", "regime", "monte_carlo", "bootstrap", "stress"}
    for family in families:
        vol = medians(family, "vol")
        assert vol[0] < vol[1] < vol[2], (family, vol)
    for family, scenario_type in [("historical", "CRISIS"), ("monte_carlo", None), ("bootstrap", None), ("stress", None)]:
        loss = medians(family, "drawdown", scenario_type)
        assert loss[0] > loss[1] > loss[2], (family, loss)  # drawdowns are negative: deeper is smaller
