"""Stage-3 starter metrics: the vectorised core against a plain per-series reference, the file round trip,
and the Dagster asset (written next to the catalog; nothing in a dry run)."""

import json
import time

import numpy as np
import pandas as pd
import pytest
from dagster import build_asset_context
from scipy import stats

from scenarios_assets import load_scenario_metrics
from scenarios_assets.core.metrics import METRICS_FILE, catalog_metrics, compute_metrics, write_metrics
from scenarios_assets.core.scenario import Scenario, ScenarioSet
from scenarios_assets.core.storage import CatalogBuild, write_catalog
from scenarios_assets.defs.metrics import scenario_metrics


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


@pytest.fixture()
def small_catalog(tmp_path):
    rng = np.random.default_rng(5)
    sets = [
        ScenarioSet(fam, sev, [_scenario(f"{fam}.ev{i}.{sev}", fam, sev, rng.normal(-0.002, 0.02, 40 + 10 * i)) for i in range(3)],
                    "dv1", "cfg1")
        for fam in ("historical", "stress") for sev in ("moderate", "severe", "extreme")
    ]
    build = CatalogBuild(sets=sets, data_version="dv1", config_hash="cfg1", generated_at="2025-06-02T23:31:00+00:00")
    out = tmp_path / "lib"
    write_catalog(build, out, save_timeseries=True)
    return out, build


def test_catalog_metrics_written_atomically_and_loaded_with_one_call(small_catalog):
    out, build = small_catalog
    frame, provenance = catalog_metrics(out)
    assert len(frame) == len(build.scenarios) * 2
    assert provenance == {"catalog_generated_at": "2025-06-02T23:31:00+00:00", "data_version": "dv1",
                          "config_hash": "cfg1", "scenarios": 18, "rows": 36}
    # The scenario's own max drawdown (equal-weight portfolio) is no worse than its worst symbol's.
    worst_symbol = frame.groupby("scenario_id")["max_drawdown"].min()
    for s in build.scenarios:
        assert s.max_drawdown >= worst_symbol[s.id] - 1e-6
    path = write_metrics(frame, out, provenance)
    assert path == out / METRICS_FILE and oct(path.stat().st_mode & 0o777) == "0o644"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left behind

    loaded = load_scenario_metrics(out)
    assert loaded.attrs["provenance"]["data_version"] == "dv1"
    pd.testing.assert_frame_equal(loaded, frame, check_dtype=False)
    severe = load_scenario_metrics(out, family="stress", severity=["severe"], symbols=["SPX"])
    assert len(severe) == 3 and set(severe["severity"]) == {"severe"} and set(severe["symbol"]) == {"SPX"}
    assert {"var_95", "cvar_99", "max_drawdown_duration_days", "skew", "kurtosis"} <= set(loaded.columns)


def test_failed_write_keeps_previous_metrics(small_catalog, monkeypatch):
    out, _ = small_catalog
    frame, provenance = catalog_metrics(out)
    write_metrics(frame, out, provenance)
    before = (out / METRICS_FILE).read_bytes()
    import pyarrow.parquet as pq

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken)
    with pytest.raises(OSError):
        write_metrics(frame.head(3), out, provenance)
    assert (out / METRICS_FILE).read_bytes() == before
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_asset_writes_next_to_the_catalog_and_nothing_in_a_dry_run(small_catalog):
    out, _ = small_catalog
    summary = {"output_dir": str(out), "dry_run": False, "generated_at": "2025-06-02T23:31:00+00:00"}
    result = scenario_metrics(build_asset_context(), summary)
    assert result.value["written"] and (out / METRICS_FILE).exists()
    assert result.metadata["rows"].value == 36 and result.metadata["scenarios"].value == 18
    assert "step_peak_rss_mib" in result.metadata

    dry_dir = out.parent / "dry"
    dry = scenario_metrics(build_asset_context(), {"output_dir": str(dry_dir), "dry_run": True})
    assert not dry.value["written"] and "dry run" in dry.value["reason"]
    assert not dry_dir.exists()

    # A catalog rebuilt without time series: the old metrics would describe another build, so they go.
    (out / "scenario_timeseries.parquet").unlink()
    gone = scenario_metrics(build_asset_context(), summary)
    assert not gone.value["written"] and not (out / METRICS_FILE).exists()
    assert json.loads((out / "scenario_metadata.json").read_text())["data_version"] == "dv1"
