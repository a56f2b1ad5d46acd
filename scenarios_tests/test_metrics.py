"""Stage-3 starter metrics: the vectorised core against a plain per-series reference, the metrics computed per
chunk from the arrays against the same core on the long rows, the dataset published with each build, and
the Dagster asset (reads the published build; nothing in a dry run)."""

import json
import time

import numpy as np
import pandas as pd
import pytest
from dagster import build_asset_context
from scipy import stats

from scenarios_assets import load_scenario_metrics
from scenarios_assets.core.library import builds, slices
from scenarios_assets.core.library.metrics import METRIC_COLUMNS, METRICS_FILE, chunk_metrics, compute_metrics
from scenarios_assets.core.models.scenario import Scenario, ScenarioSet
from scenarios_assets.core.library.storage import load_scenarios, timeseries_table
from scenarios_assets.defs.metrics import scenario_metrics
from scenarios_tests.library_helpers import publish_sets


def reference_metrics(r: np.ndarray, dates: pd.DatetimeIndex) -> dict:
    """Straightforward per-series definitions (the documented conventions), one series at a time."""
    wealth = np.concatenate([[1.0], np.cumprod(1 + r)])
    peak = np.maximum.accumulate(wealth)
    dd = wealth / peak - 1
    trough = int(np.argmin(dd))
    mdd = min(dd[trough], 0.0)
    peak_at = max(j for j in range(trough + 1) if wealth[j] >= peak[trough])
    recovery = next((j for j in range(trough + 1, len(wealth)) if wealth[j] >= peak[trough]), None)
    out = {
        "total_return": wealth[-1] - 1,
        "annualised_return": wealth[-1] ** (252 / len(r)) - 1,
        "annualised_volatility": np.std(r, ddof=1) * np.sqrt(252),
        "max_drawdown": mdd,
        "max_drawdown_duration_days": 0 if mdd == 0 else ((recovery if recovery is not None else len(r)) - peak_at),
        "drawdown_recovered": mdd == 0 or recovery is not None,
        "drawdown_trough_date": dates[max(trough - 1, 0)],
        "worst_day_return": r.min(),
        "worst_day_date": dates[int(np.argmin(r))],
        "skew": stats.skew(r),
        "kurtosis": stats.kurtosis(r),
    }
    for label, p in (("95", 0.05), ("99", 0.01)):
        q = np.quantile(r, p)
        out[f"var_{label}"] = -q
        out[f"cvar_{label}"] = -r[r <= q].mean()
    return out


@pytest.fixture(scope="module")
def random_series():
    """Series of different lengths, heavy tails and trends, rows shuffled."""
    rng = np.random.default_rng(7)
    dates = pd.bdate_range("2015-01-02", periods=400)
    frames, truth = [], {}
    for s in range(23):
        for k, sym in enumerate(["AAA", "BBB", "CCC"]):
            n = int(rng.integers(3, 400))
            r = rng.standard_t(3, n) * 0.012 + (0.002 if (s + k) % 3 == 0 else -0.001)
            start = int(rng.integers(0, 400 - n + 1))
            d = dates[start : start + n]
            frames.append(pd.DataFrame({"scenario_id": f"fam.s{s:02d}.severe", "symbol": sym, "date": d, "returns": r}))
            truth[(f"fam.s{s:02d}.severe", sym)] = (r, d)
    frame = pd.concat(frames, ignore_index=True).sample(frac=1.0, random_state=3).reset_index(drop=True)
    return frame, truth


@pytest.mark.parametrize("block_cells", [1_500_000, 700])
def test_vectorised_metrics_match_the_per_series_definitions(random_series, block_cells):
    frame, truth = random_series
    metrics = compute_metrics(frame, block_cells=block_cells)  # 700 cells: many small blocks
    assert len(metrics) == len(truth)
    assert list(metrics[["scenario_id", "symbol"]].itertuples(index=False, name=None)) == sorted(truth)
    for row in metrics.itertuples(index=False):
        r, d = truth[(row.scenario_id, row.symbol)]
        ref = reference_metrics(r, d)
        assert row.num_days == len(r)
        assert row.start_date == d[0] and row.end_date == d[-1]
        for key, expected in ref.items():
            got = getattr(row, key)
            if isinstance(expected, pd.Timestamp) or key in ("drawdown_recovered", "max_drawdown_duration_days"):
                assert got == expected, (row.scenario_id, row.symbol, key, got, expected)
            else:
                assert got == pytest.approx(expected, rel=1e-9, abs=1e-12), (row.scenario_id, row.symbol, key)


def test_drawdown_duration_and_recovery_on_a_known_path():
    # +10 %, then down to -20 % from that peak over two days, then back above the peak on day 5.
    r = np.array([0.10, -0.10, -1 / 9, 0.10, 0.20, 0.01])
    dates = pd.bdate_range("2024-01-01", periods=len(r))
    m = compute_metrics(pd.DataFrame({"scenario_id": "x", "symbol": "A", "date": dates, "returns": r})).iloc[0]
    assert m["max_drawdown"] == pytest.approx(-0.2)
    assert m["drawdown_peak_date"] == dates[0]
    assert m["drawdown_trough_date"] == dates[2]
    assert m["drawdown_recovery_date"] == dates[4]
    assert m["max_drawdown_duration_days"] == 4 and bool(m["drawdown_recovered"])
    assert m["worst_day_return"] == pytest.approx(-1 / 9) and m["worst_day_date"] == dates[2]

    flat = compute_metrics(pd.DataFrame({"scenario_id": "y", "symbol": "B", "date": dates, "returns": 0.0})).iloc[0]
    assert flat["max_drawdown"] == 0 and flat["max_drawdown_duration_days"] == 0 and bool(flat["drawdown_recovered"])
    assert flat["annualised_volatility"] == 0 and np.isnan(flat["skew"]) and np.isnan(flat["kurtosis"])
    assert pd.isna(flat["drawdown_recovery_date"])


def test_metrics_scale_vectorised():
    """500 scenarios x 10 symbols x 252 days (1.26 M rows) in a few seconds: no per-series Python loop."""
    rng = np.random.default_rng(1)
    n_s, n_sym, n_d = 500, 10, 252
    dates = pd.bdate_range("2020-01-01", periods=n_d)
    frame = pd.DataFrame({
        "scenario_id": pd.Categorical(np.repeat([f"mc.{i:04d}.extreme" for i in range(n_s)], n_sym * n_d)),
        "symbol": pd.Categorical(np.tile(np.repeat([f"S{j}" for j in range(n_sym)], n_d), n_s)),
        "date": np.tile(dates.to_numpy(), n_s * n_sym),
        "returns": rng.normal(0, 0.01, n_s * n_sym * n_d).astype(np.float32),
    })
    started = time.perf_counter()
    metrics = compute_metrics(frame)
    seconds = time.perf_counter() - started
    print(f"metrics of {len(frame):,} rows ({n_s * n_sym} series): {seconds:.2f} s")
    assert len(metrics) == n_s * n_sym
    assert metrics["annualised_volatility"].between(0.12, 0.20).all()
    assert seconds < 15


def _scenario(sid: str, family: str, severity: str, returns: np.ndarray, symbols=("SPX", "AAPL")) -> Scenario:
    dates = pd.bdate_range("2020-02-03", periods=len(returns)).to_numpy().astype("datetime64[D]")
    block = np.column_stack([returns * (k + 1) for k in range(len(symbols))]).astype(np.float32)
    prices = (100 * np.cumprod(1 + block.astype(np.float64), axis=0)).astype(np.float32)
    return Scenario(sid, sid.split(".")[1], family, "CRISIS", severity, dates, list(symbols), block, prices)


def _sets(rng) -> list[ScenarioSet]:
    return [
        ScenarioSet(fam, sev, [_scenario(f"{fam}.ev{i}.{sev}", fam, sev, rng.normal(-0.002, 0.02, 40 + 10 * i)) for i in range(3)],
                    "dv1", "cfg1")
        for fam in ("historical", "stress") for sev in ("moderate", "severe", "extreme")
    ]


@pytest.fixture()
def small_catalog(tmp_path):
    sets = _sets(np.random.default_rng(5))
    out = tmp_path / "lib"
    final, header, _ = publish_sets(out, sets)
    return out, sets, final, header


def test_chunk_metrics_from_arrays_equal_the_metrics_of_the_long_rows():
    """chunk_metrics reads the arrays (stacked, full scenarios) and the long rows (scenarios with missing
    cells): both give exactly what compute_metrics gives on the written time series, in scenario order."""
    rng = np.random.default_rng(11)
    full = [_scenario(f"monte_carlo.p{i}.severe", "monte_carlo", "severe", rng.standard_t(4, 60) * 0.01,
                      symbols=("SPX", "AAPL", "MSFT")) for i in range(5)]
    short = _scenario("monte_carlo.short.severe", "monte_carlo", "severe", rng.normal(0, 0.01, 30))
    gappy = _scenario("historical.gap.severe", "historical", "severe", rng.normal(0, 0.02, 50))
    gappy.returns[:12, 1] = np.nan  # AAPL starts inside the window
    gappy.prices[:12, 1] = np.nan
    chunk = [full[0], gappy, *full[1:3], short, *full[3:]]
    frame = chunk_metrics(chunk, block_cells=200)  # several blocks per length group
    expected_order = [(s.id, sym) for s in chunk for sym in s.symbols]
    assert list(frame[["scenario_id", "symbol"]].itertuples(index=False, name=None)) == expected_order
    assert list(frame.columns) == ["scenario_id", "scenario_name", "scenario_type", "symbol", *METRIC_COLUMNS]
    assert frame.loc[frame.scenario_id == "historical.gap.severe", "num_days"].tolist() == [50, 38]
    long = timeseries_table(chunk).select(["scenario_id", "symbol", "date", "returns"]).to_pandas()
    reference = compute_metrics(long).set_index(["scenario_id", "symbol"]).loc[expected_order].reset_index()
    pd.testing.assert_frame_equal(frame.drop(columns=["scenario_name", "scenario_type"]), reference,
                                  check_dtype=False, check_categorical=False, rtol=1e-12, atol=1e-15)


def test_metrics_published_with_the_build_and_loaded_with_one_call(small_catalog):
    out, sets, final, header = small_catalog
    loaded = load_scenario_metrics(out)
    assert len(loaded) == 18 * 2 and loaded["scenario_id"].nunique() == 18
    provenance = dict(loaded.attrs["provenance"])
    assert {k: v["origin"] for k, v in provenance.pop("slices").items()} == {
        f"{ss.family}/{ss.severity}": "new" for ss in sets}
    assert provenance == {"build_id": final.name, "catalog_generated_at": header["generated_at"],
                          "data_version": "dv1", "config_hash": "cfg1"}
    # One part per slice, published inside the build (hive partitions family/severity).
    parts = sorted(p.relative_to(final / METRICS_FILE).as_posix() for p in (final / METRICS_FILE).rglob("*.parquet"))
    assert parts == [f"family={f}/severity={s}/part-00000.parquet"
                     for f in ("historical", "stress") for s in ("extreme", "moderate", "severe")]
    # The same figures as the metrics of the published time series, computed from the long rows.
    series = load_scenarios(out, timeseries=True).timeseries
    reference = compute_metrics(series)
    got = loaded.sort_values(["scenario_id", "symbol"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got[reference.columns], reference, check_dtype=False, rtol=1e-12)
    # The scenario's own max drawdown (equal-weight portfolio) is no worse than its worst symbol's.
    worst_symbol = loaded.groupby("scenario_id")["max_drawdown"].min()
    for s in (s for ss in sets for s in ss.scenarios):
        assert s.max_drawdown >= worst_symbol[s.id] - 1e-6
    severe = load_scenario_metrics(out, family="stress", severity=["severe"], symbols=["SPX"])
    assert len(severe) == 3 and set(severe["severity"]) == {"severe"} and set(severe["symbol"]) == {"SPX"}
    assert set(severe["family"]) == {"stress"}
    assert {"var_95", "cvar_99", "max_drawdown_duration_days", "skew", "kurtosis"} <= set(loaded.columns)
    assert not list((out / "builds").glob(".tmp-*")) and not any((out / ".staging").iterdir())


def test_failed_build_keeps_previous_metrics(small_catalog, monkeypatch):
    out, sets, final, _ = small_catalog
    before = load_scenario_metrics(out)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(slices, "chunk_metrics", broken)
    with pytest.raises(OSError, match="disk full"):
        publish_sets(out, _sets(np.random.default_rng(6)))
    after = load_scenario_metrics(out)
    assert builds.current_build(out) == final and after.attrs == before.attrs
    pd.testing.assert_frame_equal(after, before)
    assert not list((out / "builds").glob(".tmp-*"))


def test_asset_reads_the_published_build_and_nothing_in_a_dry_run(small_catalog):
    out, _, final, header = small_catalog
    summary = {"output_dir": str(out), "dry_run": False, "build_id": final.name, "generated_at": header["generated_at"]}
    result = scenario_metrics(build_asset_context(), summary)
    assert result.value["written"] and result.value["path"] == str(final / METRICS_FILE)
    assert result.value["build_id"] == final.name and result.value["data_version"] == "dv1"
    assert result.metadata["rows"].value == 36 and result.metadata["scenarios"].value == 18
    assert result.metadata["build_id"].value == final.name
    assert "step_peak_rss_mib" in result.metadata

    dry_dir = out.parent / "dry"
    dry = scenario_metrics(build_asset_context(), {"output_dir": str(dry_dir), "dry_run": True, "build_id": ""})
    assert not dry.value["written"] and "dry run" in dry.value["reason"]
    assert not dry_dir.exists()

    # A build without time series has no metrics: the asset says so and reads nothing of the older build.
    bare, _, _ = publish_sets(out, _sets(np.random.default_rng(5)), save_timeseries=False)
    gone = scenario_metrics(build_asset_context(), {**summary, "build_id": bare.name})
    assert not gone.value["written"] and bare.name in gone.value["reason"]
    assert not (bare / METRICS_FILE).exists() and (final / METRICS_FILE).is_dir()  # the previous build is kept
    with pytest.raises(FileNotFoundError):
        load_scenario_metrics(out)
    assert json.loads((out / "scenario_metadata.json").read_text())["run"]["build_id"] == bare.name
