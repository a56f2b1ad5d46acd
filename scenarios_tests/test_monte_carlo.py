"""Monte Carlo family: GARCH-t stylised facts, correlation structure, severity, reproducibility, and the
projected tariff cycle of the historical family (which runs on the Monte Carlo engine)."""

import zlib

import exchange_calendars as xcals
import numpy as np
import pandas as pd
import pytest

from scenarios_assets.core.families import monte_carlo as mc
from scenarios_assets.core.families import stochastic
from scenarios_assets.core.models.errors import ScenarioInputError
from scenarios_assets.core.families.historical import generate_historical
from scenarios_assets.core.models.scenario import scenario_id
from scenarios_assets.core.models.severity import SEVERITIES, scenario_seed
from scenarios_assets.core.library.storage import timeseries_table
from scenarios_assets.core.library.validation import collect, generate_family, validate_set

N = 40  # paths per severity: enough for stable medians, small enough to stay fast


def overrides(**mc_keys) -> dict:
    return {"generation": {"stochastic": {"monte_carlo": {"num_scenarios": N, **mc_keys}}}}


@pytest.fixture(scope="module")
def garch_sets(make_ctx):
    return {sev: generate_family("monte_carlo", make_ctx(sev, overrides())) for sev in SEVERITIES}


@pytest.fixture(scope="module")
def gbm_moderate(make_ctx):
    return generate_family("monte_carlo", make_ctx("moderate", overrides(return_model="gbm")))


def stacked(ss) -> np.ndarray:
    return np.stack([s.returns for s in ss.scenarios]).astype(np.float64)  # (S, T, N)


def median_symbol_kurtosis(r: np.ndarray) -> float:
    """Excess kurtosis of each symbol's daily returns pooled over paths and days; median over symbols."""
    x = r.reshape(-1, r.shape[-1])
    x = x - x.mean(axis=0)
    return float(np.median((x**4).mean(axis=0) / (x**2).mean(axis=0) ** 2 - 3.0))


def lag1_autocorrelation(r: np.ndarray) -> float:
    """Lag-1 autocorrelation pooled over paths and symbols, each (path, symbol) series demeaned."""
    x = r - r.mean(axis=1, keepdims=True)
    return float((x[:, 1:] * x[:, :-1]).sum() / (x**2).sum())


def historical_correlation(market, ss) -> np.ndarray:
    window = ss.metadata["calibration_window"]
    symbols = ss.scenarios[0].symbols
    close = market.close.loc[window["start"] : window["end"], symbols]
    prev = market.close[symbols].shift().loc[window["start"] : window["end"]]
    rets = (close / prev - 1.0).dropna()
    return np.corrcoef(rets.to_numpy(), rowvar=False)


def stability(hist: np.ndarray, r: np.ndarray) -> float:
    sim = np.corrcoef(r.reshape(-1, r.shape[-1]), rowvar=False)
    off = ~np.eye(len(hist), dtype=bool)
    return float(1.0 - np.abs(sim[off] - hist[off]).mean())


# --- contract --------------------------------------------------------------------------------------

def test_scenarios_follow_the_contract(garch_sets, market):
    ss = garch_sets["moderate"]
    assert len(ss) == N and ss.family == "monte_carlo" and ss.data_version == market.data_version
    s = ss.scenarios[7]
    assert s.id == scenario_id("monte_carlo", "garch_0007", "moderate") == "monte_carlo.garch_0007.moderate"
    assert s.scenario_type == "MONTE_CARLO" and s.family == "monte_carlo"
    assert s.seed == scenario_seed(42, "monte_carlo", "moderate", 7)
    assert s.returns.dtype == np.float32 and s.prices.dtype == np.float32 and s.returns.shape == (252, len(s.symbols))
    # dated on the NYSE calendar from the calibration end (changed by issue 10: business days after the
    # data's last date 2025-02-14 before, with NYSE holidays among them)
    expected_dates = xcals.get_calendar("XNYS").sessions_window(pd.Timestamp("2022-12-29"), 252)
    assert np.array_equal(s.dates, expected_dates.to_numpy().astype("datetime64[D]"))
    assert s.start_date == "2022-12-29" and s.end_date == "2023-12-29"
    for holiday in ("2023-01-02", "2023-07-04", "2023-12-25"):  # NYSE closed (New Year observed, July 4, Christmas)
        assert np.datetime64(holiday) not in s.dates
    # paths start at the calibration end with that date's closes (SPX and NVDA run to 2025 in the data)
    state = ss.metadata["start_state"]
    assert state["date"] == "2022-12-28" and state["market_data_end"] == "2025-02-14" and state["closes_before_start_date"] == {}
    last = market.close.loc["2022-12-28", s.symbols].to_numpy()
    np.testing.assert_allclose(s.prices[0], last * (1.0 + s.returns[0].astype(np.float64)), rtol=1e-5)
    np.testing.assert_allclose(s.prices[1:] / s.prices[:-1] - 1.0, s.returns[1:], atol=2e-5)
    assert {"model", "calibration_source", "annualised_volatility"} <= set(s.metadata)
    assert s.metadata["calibration_source"]["data_version"] == market.data_version
    # the calibration window rule: the last session on which at least half of the symbols have data
    window = ss.metadata["calibration_window"]
    assert window["end"] == "2022-12-28" and window["start"] == "2012-12-31"
    assert {"IXIC", "MTUM", "QUAL", "SIZE", "USMV", "VLUE"} == set(window["excluded_symbols"])
    assert {"SPX", "NVDA", "AAPL"} <= set(s.symbols)
    assert ss.metadata["tail_reference"]["exceedance_rate"] > 0.0027  # the history's tails are heavier than normal
    validate_set(ss)
    assert not [n for n, r in ss.validation.items() if r["blocking"] and not r["passed"]]


def test_var_and_cvar_of_the_path_distribution(garch_sets):
    for ss in garch_sets.values():
        totals = np.array([s.expected_return for s in ss.scenarios])
        for level in (0.95, 0.99):
            q = np.quantile(totals, 1 - level)
            assert ss.metadata["value_at_risk"][f"{level:g}"] == pytest.approx(-q)
            assert ss.metadata["conditional_value_at_risk"][f"{level:g}"] == pytest.approx(-totals[totals <= q].mean())
            assert ss.metadata["conditional_value_at_risk"][f"{level:g}"] >= ss.metadata["value_at_risk"][f"{level:g}"]


# --- stylised facts ---------------------------------------------------------------------------------

def test_garch_t_paths_show_the_stylised_facts(garch_sets, gbm_moderate):
    r = stacked(garch_sets["moderate"])
    assert median_symbol_kurtosis(r) > 1.0  # heavy tails
    assert lag1_autocorrelation(np.abs(r)) > 0.08  # volatility clustering (GARCH-t here: about 0.14)
    assert abs(lag1_autocorrelation(r)) < 0.03  # returns themselves nearly uncorrelated
    # the same measures on Gaussian constant-volatility paths show neither (the tests can fail)
    g = stacked(gbm_moderate)
    assert abs(median_symbol_kurtosis(g)) < 0.3
    assert abs(lag1_autocorrelation(np.abs(g))) < 0.03


def test_historical_correlation_structure_is_kept(garch_sets, gbm_moderate, market):
    for ss in (garch_sets["moderate"], gbm_moderate):
        hist = historical_correlation(market, ss)
        measured = stability(hist, stacked(ss))
        assert measured >= 0.8
        assert ss.metadata["correlation_stability"] == pytest.approx(measured, abs=0.02)
        # independent innovations would lose it: 1 - mean historical correlation is far below 0.8
        off = ~np.eye(len(hist), dtype=bool)
        assert 1.0 - np.abs(hist[off]).mean() < 0.7


def test_severity_is_monotone(garch_sets):
    vol = [garch_sets[s].metadata["annualised_volatility_median"] for s in SEVERITIES]
    mdd = [garch_sets[s].metadata["max_drawdown_median"] for s in SEVERITIES]
    assert vol[0] < vol[1] < vol[2]
    assert mdd[0] > mdd[1] > mdd[2]  # drawdowns are negative: deeper at each step
    # the medians in the metadata are those of the scenarios
    for sev in SEVERITIES:
        ss = garch_sets[sev]
        assert ss.metadata["annualised_volatility_median"] == pytest.approx(
            np.median([s.metadata["annualised_volatility"] for s in ss.scenarios]))
        assert ss.metadata["max_drawdown_median"] == pytest.approx(np.median([s.max_drawdown for s in ss.scenarios]))


# --- reproducibility ----------------------------------------------------------------------------------

def test_same_seed_same_paths_and_chunking_does_not_matter(make_ctx, monkeypatch):
    ctx = make_ctx("severe", overrides())
    whole = collect(mc.stream_monte_carlo(ctx, indices=range(20)))
    again = collect(mc.stream_monte_carlo(ctx, indices=range(20)))
    monkeypatch.setattr(stochastic, "CHUNK_ELEMENTS", 3 * 252 * 30)  # chunks of 3 paths instead of all at once
    parts = collect(mc.stream_monte_carlo(ctx, indices=range(10))).scenarios + collect(mc.stream_monte_carlo(ctx, indices=range(10, 20))).scenarios
    assert [s.id for s in parts] == [s.id for s in whole.scenarios]
    for a, b, c in zip(whole.scenarios, again.scenarios, parts):
        assert a.seed == b.seed == c.seed
        assert np.array_equal(a.returns, b.returns) and np.array_equal(a.returns, c.returns)
        assert np.array_equal(a.prices, c.prices)
        assert a.record() == c.record()
    other = collect(mc.stream_monte_carlo(make_ctx("severe", {**overrides(), "seed": 43}), indices=range(2)))
    assert not np.array_equal(other.scenarios[0].returns, whole.scenarios[0].returns)


def test_other_models_and_bad_config(make_ctx):
    fhs = generate_family("monte_carlo", make_ctx("moderate", overrides(return_model="historical_distribution", num_scenarios=20)))
    assert len(fhs) == 20 and fhs.scenarios[0].id == "monte_carlo.fhs_0000.moderate"
    assert median_symbol_kurtosis(stacked(fhs)) > 1.0 and fhs.metadata["correlation_stability"] >= 0.8
    with pytest.raises(ScenarioInputError, match="return_model"):
        generate_family("monte_carlo", make_ctx("moderate", overrides(return_model="levy")))
    with pytest.raises(ScenarioInputError, match="correlation_matrix"):
        generate_family("monte_carlo", make_ctx("moderate", overrides(correlation_matrix="rolling_sometimes")))
    disabled = generate_family("monte_carlo", make_ctx("moderate", overrides(enabled=False)))
    assert len(disabled) == 0 and disabled.metadata["disabled"]


# --- projected tariff cycle ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tariff(make_ctx):
    out = {}
    for sev in ("moderate", "severe"):
        ss = generate_historical(make_ctx(sev, {"generation": {"historical": {"include_full_cycles": True}}}))
        out[sev] = next(s for s in ss.scenarios if s.metadata["event_key"] == "tariff_cycle_2025_2026")
    return out


def test_projected_tariff_cycle(tariff, market, make_ctx):
    for sev, s in tariff.items():
        data_end = min(market.close[sym].last_valid_index() for sym in s.symbols)
        assert sorted(s.symbols) == ["NVDA", "SPX"]
        assert s.metadata["observed_until"] == str(data_end.date()) == "2025-01-31"
        assert s.projected is not None and s.projected.dtype == bool
        assert np.array_equal(s.projected, s.dates > np.datetime64(data_end.date()))
        assert s.projected.sum() > 400 and s.end_date == "2026-12-31"
        assert np.isfinite(s.prices).all() and (s.prices > 0).all() and np.isfinite(s.returns).all()
        assert s.returns[s.projected].std() > 0.005  # simulated moves, not a flat extension
        assert s.seed is None and s.metadata["projection_seed"] == scenario_seed(
            42, "historical", sev, zlib.crc32(b"tariff_cycle_2025_2026"))
    # at severe the observed part is the recorded closes, the projection starts from the last one
    severe = tariff["severe"]
    observed = ~severe.projected
    recorded = market.close.loc[pd.DatetimeIndex(severe.dates[observed]), severe.symbols].to_numpy()
    np.testing.assert_allclose(severe.prices[observed], recorded, rtol=1e-5)
    first = int(np.argmax(severe.projected))
    np.testing.assert_allclose(severe.prices[first], recorded[-1] * (1 + severe.returns[first]), rtol=1e-5)
    # written as the projected column, and absent without full cycles
    table = timeseries_table([severe])
    assert table.column("projected").to_numpy().sum() == severe.projected.sum() * len(severe.symbols)
    default = generate_historical(make_ctx("severe"))
    assert all(s.metadata["event_key"] != "tariff_cycle_2025_2026" for s in default.scenarios)
