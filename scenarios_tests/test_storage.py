"""Library files: exact schema of a published build, a failed build changes nothing, one-call loading."""

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from scenarios_assets.core.library import builds, storage
from scenarios_assets.core.families.historical import generate_historical
from scenarios_assets.core.library.storage import TIMESERIES_SCHEMA, load_scenarios
from scenarios_tests.library_helpers import publish_sets, snapshot

SEVERITIES = ("moderate", "severe")


@pytest.fixture(scope="module")
def sets(make_ctx):
    return [generate_historical(make_ctx(sev)) for sev in SEVERITIES]


@pytest.fixture(scope="module")
def published(sets, tmp_path_factory):
    out = tmp_path_factory.mktemp("lib")
    final, header, _ = publish_sets(out, sets)
    return out, final, header


def parts(out):
    return sorted((builds.current_build(out) / "scenario_timeseries.parquet").rglob("part-*.parquet"))


def test_files_and_schema(sets, published):
    out, final, header = published
    assert builds.current_build(out) == final and final.parent == out / "builds"
    for name in builds.PUBLISHED_NAMES:  # the seed's names, resolved through `current`
        assert (out / name).is_symlink() and str((out / name).readlink()) == f"current/{name}"
    doc = json.loads((out / "scenario_metadata.json").read_text())
    assert set(doc) >= {"generated_at", "data_version", "config_hash", "families", "run", "scenarios"}
    assert doc["run"]["build_id"] == final.name and doc["generated_at"] == header["generated_at"]
    assert set(doc["families"]) == {"historical/moderate", "historical/severe"}
    required = {"id", "name", "family", "scenario_type", "severity", "start_date", "end_date", "symbols",
                "expected_return", "volatility_multiplier", "max_drawdown", "seed", "validation", "metadata"}
    assert [r["id"] for r in doc["scenarios"]] == [s.id for ss in sets for s in ss.scenarios]
    for rec in doc["scenarios"]:
        assert required <= set(rec)
        assert rec["metadata"]["calibration_source"].startswith("replay of market data")
        assert all({"passed", "value"} <= set(v) for v in rec["validation"].values())
    # One part per slice (the historical sets are one chunk each), hive partitions family/severity.
    assert [str(p.relative_to(final / "scenario_timeseries.parquet")) for p in parts(out)] == [
        f"family=historical/severity={sev}/part-00000.parquet" for sev in ("moderate", "severe")]
    for part in parts(out):
        assert pq.read_schema(part).remove_metadata().equals(TIMESERIES_SCHEMA)
        meta = pq.ParquetFile(part).metadata
        assert meta.row_group(0).column(0).compression == "ZSTD"
    expected_rows = sum(int(np.isfinite(s.prices).sum()) for ss in sets for s in ss.scenarios)
    assert sum(pq.read_metadata(p).num_rows for p in parts(out)) == expected_rows
    assert sum(fam["rows"] for fam in doc["families"].values()) == expected_rows
    summary = (out / "scenario_summary.txt").read_text()
    assert "historical" in summary and "validation failures: 0" in summary and "skipped: 4" in summary
    assert f"build: {final.name}" in summary and "new slices: historical/moderate, historical/severe" in summary


def test_timeseries_dataset_reads_with_pandas_and_pyarrow(sets, published):
    """The published dataset is today's columns plus the hive partition columns family and severity, for
    any reader of <out>/scenario_timeseries.parquet."""
    out, _, _ = published
    path = out / "scenario_timeseries.parquet"
    expected_rows = sum(int(np.isfinite(s.prices).sum()) for ss in sets for s in ss.scenarios)
    frame = pd.read_parquet(path)
    assert list(frame.columns) == [*TIMESERIES_SCHEMA.names, "family", "severity"]
    assert len(frame) == expected_rows
    assert frame.groupby(frame["severity"].astype(str)).size().to_dict() == {
        ss.severity: sum(int(np.isfinite(s.prices).sum()) for s in ss.scenarios) for ss in sets}
    assert set(frame["family"].astype(str)) == {"historical"}

    dataset = ds.dataset(path, format="parquet", partitioning="hive")
    assert dataset.schema.names == [*TIMESERIES_SCHEMA.names, "family", "severity"]
    for name in TIMESERIES_SCHEMA.names:
        assert dataset.schema.field(name).type == TIMESERIES_SCHEMA.field(name).type
    severe = dataset.to_table(filter=ds.field("severity") == "severe")
    covid = [s for s in sets[1].scenarios if s.name == "COVID-19 Market Crash"][0]
    rows = severe.filter(pa.compute.equal(severe["scenario_id"].cast(pa.string()), covid.id))
    assert rows.num_rows == int(np.isfinite(covid.prices).sum())
    spx = covid.symbols.index("SPX")
    got = rows.filter(pa.compute.equal(rows["symbol"].cast(pa.string()), "SPX"))["prices"].to_numpy()
    np.testing.assert_array_equal(got, covid.prices[:, spx][np.isfinite(covid.prices[:, spx])])


def test_failed_build_keeps_previous_files(sets, tmp_path, monkeypatch):
    out = tmp_path / "lib"
    publish_sets(out, sets)
    before = {k: v for k, v in snapshot(out).items() if not k.startswith(".staging")}

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(storage.pq, "write_table", broken)  # the family step cannot write its parts
    with pytest.raises(OSError, match="disk full"):
        publish_sets(out, sets)
    after = {k: v for k, v in snapshot(out).items() if not k.startswith(".staging")}
    assert after == before  # same build, same links, same bytes; nothing half-built next to it
    monkeypatch.undo()
    final, _, _ = publish_sets(out, sets)  # the next build takes over and publishes
    assert builds.current_build(out) == final and len(load_scenarios(out)) == sum(len(ss) for ss in sets)


def test_load_scenarios_filters(sets, published):
    out, final, _ = published
    lib = load_scenarios(out, severity="severe", name="COVID-19 Market Crash", timeseries=True, symbols=["SPX"])
    assert len(lib) == 1 and lib.scenarios.iloc[0]["id"] == "historical.covid_19_market_crash.severe"
    assert lib.build_id == final.name
    ts = lib.timeseries
    assert set(ts["symbol"]) == {"SPX"} and ts["date"].is_monotonic_increasing
    peak, trough = ts.set_index("date").loc["2020-02-19", "prices"], ts.set_index("date").loc["2020-03-23", "prices"]
    assert trough / peak - 1 == pytest.approx(-0.339, abs=0.005)
    assert len(load_scenarios(out, family="historical")) == sum(len(ss) for ss in sets)
    both = load_scenarios(out, name="COVID-19 Market Crash", timeseries=True, symbols=["SPX"])
    assert sorted(both.timeseries["scenario_id"].unique()) == [
        "historical.covid_19_market_crash.moderate", "historical.covid_19_market_crash.severe"]
    with pytest.raises(FileNotFoundError, match="no scenario catalog"):
        load_scenarios(out / "nowhere")
    with pytest.raises(FileNotFoundError, match="no build 'nope'"):
        load_scenarios(out, build="nope")


def test_build_without_timeseries(sets, tmp_path):
    out = tmp_path / "lib"
    final, _, _ = publish_sets(out, sets[:1], save_timeseries=False)
    assert len(load_scenarios(out)) == len(sets[0])
    assert not (final / "scenario_timeseries.parquet").exists() and not (final / "scenario_metrics.parquet").exists()
    with pytest.raises(FileNotFoundError, match="--save-timeseries"):
        load_scenarios(out, timeseries=True)
