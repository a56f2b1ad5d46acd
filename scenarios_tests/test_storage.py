"""Catalog files: exact schema, atomic replacement, one-call loading."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scenarios_assets.core import storage
from scenarios_assets.core.historical import generate_historical
from scenarios_assets.core.storage import CatalogBuild, load_scenarios, write_catalog
from scenarios_assets.core.validation import validate_set


@pytest.fixture(scope="module")
def build(make_ctx):
    sets = [validate_set(generate_historical(make_ctx(sev))) for sev in ("moderate", "severe")]
    return CatalogBuild(sets, sets[0].data_version, sets[0].config_hash, generated_at="2026-01-01T00:00:00+00:00")


def test_files_and_schema(build, tmp_path):
    written = write_catalog(build, tmp_path)
    assert set(written) == {"scenario_metadata.json", "scenario_timeseries.parquet", "scenario_summary.txt"}
    doc = json.loads((tmp_path / "scenario_metadata.json").read_text())
    assert set(doc) >= {"generated_at", "data_version", "config_hash", "scenarios"}
    required = {"id", "name", "family", "scenario_type", "severity", "start_date", "end_date", "symbols",
                "expected_return", "volatility_multiplier", "max_drawdown", "seed", "validation", "metadata"}
    for rec in doc["scenarios"]:
        assert required <= set(rec)
        assert rec["metadata"]["calibration_source"].startswith("replay of market data")
        assert all({"passed", "value"} <= set(v) for v in rec["validation"].values())
    table = pq.read_table(tmp_path / "scenario_timeseries.parquet")
    schema = table.schema
    assert schema.field("returns").type == pa.float32() and schema.field("prices").type == pa.float32()
    assert schema.field("date").type == pa.date32()
    assert {"scenario_id", "scenario_name", "symbol", "date", "returns", "prices"} <= set(schema.names)
    meta = pq.ParquetFile(tmp_path / "scenario_timeseries.parquet").metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    expected_rows = sum(int(np.isfinite(s.prices).sum()) for s in build.scenarios)
    assert table.num_rows == expected_rows
    summary = (tmp_path / "scenario_summary.txt").read_text()
    assert "historical" in summary and "validation failures: 0" in summary and "skipped: 4" in summary


def test_failed_write_keeps_previous_files(build, tmp_path, monkeypatch):
    write_catalog(build, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(storage.pq, "write_table", broken)
    with pytest.raises(OSError, match="disk full"):
        write_catalog(build, tmp_path)
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert after == before  # same files, same bytes, no temporary leftovers


def test_load_scenarios_filters(build, tmp_path):
    write_catalog(build, tmp_path)
    lib = load_scenarios(tmp_path, severity="severe", name="COVID-19 Market Crash", timeseries=True, symbols=["SPX"])
    assert len(lib) == 1 and lib.scenarios.iloc[0]["id"] == "historical.covid_19_market_crash.severe"
    ts = lib.timeseries
    assert set(ts["symbol"]) == {"SPX"} and ts["date"].is_monotonic_increasing
    peak, trough = ts.set_index("date").loc["2020-02-19", "prices"], ts.set_index("date").loc["2020-03-23", "prices"]
    assert trough / peak - 1 == pytest.approx(-0.339, abs=0.005)
    assert len(load_scenarios(tmp_path, family="historical")) == len(build.scenarios)
    with pytest.raises(FileNotFoundError, match="no scenario catalog"):
        load_scenarios(tmp_path / "nowhere")


def test_timeseries_records_its_build(build, tmp_path):
    write_catalog(build, tmp_path)
    doc = json.loads((tmp_path / "scenario_metadata.json").read_text())
    meta = pq.read_schema(tmp_path / "scenario_timeseries.parquet").metadata
    assert meta[b"generated_at"].decode() == doc["generated_at"] == "2026-01-01T00:00:00+00:00"
    assert meta[b"data_version"].decode() == doc["data_version"]
