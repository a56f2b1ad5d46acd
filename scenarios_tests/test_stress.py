"""Stress tests from the last market state: calibration, severity, intraday flash crash, factor paths."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scenarios_assets.core.models.errors import ScenarioInputError
from scenarios_assets.core.models.severity import SEVERITIES
from scenarios_assets.core.engines.shocks import intraday_path
from scenarios_assets.core.engines.stress_noise import correlated_noise, pin_bridge
from scenarios_assets.core.families.stress import (
    StressDefinition,
    build_scenario,
    generate_stress,
    load_stress_tests,
    prepare_inputs,
    symbol_exposures,
)
from scenarios_assets.core.library.validation import validate_set

NO_NOISE = {"generation": {"stress": {"noise": False}}}
PARAMETRIC = {"flash_crash", "correlation_breakdown", "liquidity_crisis", "sector_rotation"}
NAMED = {
    "Credit Spread Widening", "Derivatives Market Disruption", "Flash Crash Scenario", "Geopolitical Crisis",
    "Market Liquidity Crisis", "Rate Shock +500bp", "Stagflation Environment", "Systemic Cyber Attack",
    "Tariff Implementation 2025", "Tech Bubble 2.0 Burst", "USD Crisis", "Volatility Spike",
}


@pytest.fixture(scope="module")
def stress_sets(make_ctx):
    return {sev: validate_set(generate_stress(make_ctx(sev))) for sev in SEVERITIES}


@pytest.fixture(scope="module")
def plain_sets(make_ctx):
    """Without noise: the deterministic shock paths."""
    return {sev: validate_set(generate_stress(make_ctx(sev, NO_NOISE))) for sev in SEVERITIES}


def _by_key(ss):
    return {s.metadata["stress_key"]: s for s in ss.scenarios}


def _at(s, symbol, day):
    """Price of ``symbol`` at session ``day`` relative to the anchor close."""
    return s.prices[day - 1, s.symbols.index(symbol)] / s.metadata["anchor_prices"][symbol]


def test_catalog_has_the_seed_scenarios_and_the_twelve_named_tests():
    definitions = load_stress_tests()
    assert {d.key for d in definitions if d.kind == "parametric"} == PARAMETRIC
    assert {d.name for d in definitions if d.kind == "named"} == NAMED
    for d in definitions:  # every calibrated number says where it comes from
        assert d.sources and all(isinstance(v, str) and len(v) > 10 for v in d.sources.values()), d.key


def test_every_stress_at_every_severity_has_finite_positive_prices(stress_sets):
    for severity, ss in stress_sets.items():
        assert len(ss) == 16
        assert all(r["passed"] for r in ss.validation.values()), {k: v["detail"] for k, v in ss.validation.items() if not v["passed"]}
        for s in ss.scenarios:
            assert np.isfinite(s.prices).all() and (s.prices > 0).all(), s.id
            assert np.isfinite(s.returns).all()
            assert s.prices.dtype == np.float32 and s.returns.dtype == np.float32
            assert s.family == "stress" and s.scenario_type == "STRESS" and s.severity == severity
            assert s.metadata["source"].startswith("reference/stress_tests.yaml:")


def test_paths_start_from_the_last_market_state(stress_sets, market):
    s = _by_key(stress_sets["severe"])["credit_spread_widening"]
    # 25 symbols end 2022-12-28, IXIC 2018-12-31: the anchor is 2022-12-28 without IXIC
    assert s.metadata["anchor_date"] == "2022-12-28"
    assert "IXIC" not in s.symbols and len(s.symbols) == 27
    assert s.metadata["excluded_symbols"] == {"IXIC": "2018-12-31"}
    assert s.start_date == "2022-12-29" and len(s.dates) == 252
    for sym in ("SPX", "NVDA", "AAPL"):  # SPX and NVDA continue to 2025 but start from 2022-12-28 too
        assert s.metadata["anchor_prices"][sym] == pytest.approx(market.close.loc["2022-12-28", sym], rel=1e-6)
    # the first return is relative to the anchor close
    spx = s.symbols.index("SPX")
    assert s.returns[0, spx] == pytest.approx(s.prices[0, spx] / s.metadata["anchor_prices"]["SPX"] - 1, rel=1e-4)


def test_severity_is_monotone_in_loss_and_volatility(stress_sets):
    keyed = {sev: _by_key(ss) for sev, ss in stress_sets.items()}
    for key in keyed["severe"]:
        loss = [keyed[sev][key].max_drawdown for sev in SEVERITIES]
        vol = [keyed[sev][key].metadata["annualised_volatility"] for sev in SEVERITIES]
        assert loss[0] > loss[1] > loss[2], (key, loss)
        assert vol[0] < vol[1] < vol[2], (key, vol)


@pytest.mark.parametrize(
    ("key", "day", "severe"),
    [
        ("credit_spread_widening", 189, -0.50),  # Fed 2025 severely adverse
        ("tech_bubble_burst", 252, -0.491),  # dot-com
        ("market_liquidity_crisis", 11, -0.247),  # March 2020
        ("geopolitical_crisis", 62, -0.199),  # Gulf War 1990
    ],
)
def test_severe_reproduces_its_anchor_and_the_scale_brackets_it(plain_sets, key, day, severe):
    moves = {sev: _at(_by_key(plain_sets[sev])[key], "SPX", day) - 1 for sev in SEVERITIES}  # SPX: beta 1
    assert moves["severe"] == pytest.approx(severe, abs=1e-4)
    assert moves["moderate"] == pytest.approx((1 + severe) ** 0.5 - 1, abs=1e-4)
    assert moves["extreme"] == pytest.approx((1 + severe) ** 1.5 - 1, abs=1e-4)


def test_noise_is_pinned_at_the_trough_and_the_end(stress_sets, plain_sets):
    # Changed by issue 10: the index and the equal-weight portfolio are pinned (every symbol was before);
    # the other symbols carry the common correction that removes the portfolio's rebalancing return.
    noisy, plain = _by_key(stress_sets["severe"])["credit_spread_widening"], _by_key(plain_sets["severe"])["credit_spread_widening"]
    spx = noisy.symbols.index("SPX")
    np.testing.assert_allclose(noisy.prices[[188, -1], spx], plain.prices[[188, -1], spx], rtol=1e-5)
    for day in (188, 251):  # the portfolio's wealth on the pinned sessions
        assert np.prod(1 + noisy.returns[: day + 1].astype(np.float64).mean(axis=1)) == pytest.approx(
            np.prod(1 + plain.returns[: day + 1].astype(np.float64).mean(axis=1)), rel=1e-4)
    correction = noisy.metadata["noise"]["portfolio_correction_max"]
    assert 0 < correction < 0.09  # measured 0.080 (log): the rebalancing return the dispersion earns
    np.testing.assert_allclose(noisy.prices[188], plain.prices[188], rtol=np.expm1(correction) + 1e-4)
    assert np.abs(noisy.prices[100] / plain.prices[100] - 1).max() > 1e-3  # and moves in between
    assert noisy.seed is not None and plain.seed is None


def test_common_noise_across_severities_and_reproducible(make_ctx, stress_sets):
    seeds = {sev: _by_key(ss)["usd_crisis"].seed for sev, ss in stress_sets.items()}
    assert len(set(seeds.values())) == 1
    again = generate_stress(make_ctx("extreme"))
    for a, b in zip(stress_sets["extreme"].scenarios, again.scenarios):
        assert a.id == b.id and np.array_equal(a.prices, b.prices)
    own = _by_key(generate_stress(make_ctx("extreme", {"generation": {"stress": {"common_noise": False}}})))
    assert own["usd_crisis"].seed != seeds["extreme"]


def test_flash_crash_intraday_path(plain_sets):
    for severity, depth in (("moderate", 1 - 0.9**0.5), ("severe", 0.10), ("extreme", 1 - 0.9**1.5)):
        s = _by_key(plain_sets[severity])["flash_crash"]
        intra = s.metadata["intraday"]
        path = np.array(intra["path"])
        assert len(path) == 391 and intra["minutes"] == 390
        assert int(np.argmin(path)) == intra["trough_minute"] == 30
        assert path[0] == 1.0 and path[30] == pytest.approx(1 - depth, abs=1e-6)
        assert np.all(np.diff(path[:31]) < 0) and np.all(np.diff(path[30:]) >= 0)  # falls, then only recovers
        assert path[60] > path[30] + 0.5 * (path[-1] - path[30])  # most of the rebound within 30 minutes
        recovered = np.log(path[-1] / path[30]) / -np.log(path[30])
        assert recovered == pytest.approx(0.63, abs=1e-3)  # within the day
        assert intra["daily_bar"] == pytest.approx({"open": 1.0, "high": 1.0, "low": 1 - depth, "close": path[-1]}, abs=1e-6)
        # the daily series: day 1 is the bar's close, day 2 back at the previous close (within 24 hours)
        for sym in ("SPX", "NVDA", "KO"):  # all symbols alike, whatever their beta
            assert _at(s, sym, 1) == pytest.approx(path[-1], rel=1e-5)
            assert _at(s, sym, 2) == pytest.approx(1.0, rel=1e-5)


def test_named_flash_crash_follows_6_may_2010(plain_sets):
    s = _by_key(plain_sets["severe"])["flash_crash_scenario"]
    path = np.array(s.metadata["intraday"]["path"])
    assert int(np.argmin(path)) == 317 and path.min() == pytest.approx(1 - 0.086, abs=1e-6)
    assert path[-1] == pytest.approx(1128.2 / 1165.9, abs=0.002)  # the recorded close
    assert _at(s, "SPX", 1) == pytest.approx(1128.2 / 1165.9, abs=0.002)
    assert _at(s, "SPX", 40) == pytest.approx(1 - 0.119, abs=1e-4)


def test_intraday_path_rejects_an_impossible_timing():
    with pytest.raises(ScenarioInputError):
        intraday_path(0.1, 30, 30, 0.5, 10)


def test_liquidity_crisis_carries_volume_and_spread_multipliers(plain_sets):
    for severity, volume, spread in (("moderate", 0.2**0.5, 5**0.5), ("severe", 0.2, 5.0), ("extreme", 0.2**1.5, 5**1.5)):
        s = _by_key(plain_sets[severity])["liquidity_crisis"]
        vm, sm = s.extra["volume_multiplier"], s.extra["spread_multiplier"]
        assert vm.shape == sm.shape == s.prices.shape
        np.testing.assert_allclose(vm[:10], volume, rtol=1e-5)  # sessions 1-10
        np.testing.assert_allclose(sm[:10], spread, rtol=1e-5)
        assert np.all(np.diff(vm[9:20, 0]) > 0) and np.allclose(vm[19:], 1.0) and np.allclose(sm[19:], 1.0)
        assert s.metadata["factor_paths"]["volume_multiplier"][:10] == pytest.approx([volume] * 10, rel=1e-5)
        assert s.validation["non_negative_volume"]["passed"]
    spx = _by_key(plain_sets["severe"])["liquidity_crisis"]
    assert _at(spx, "SPX", 10) == pytest.approx(0.90, abs=1e-4)


def test_sector_rotation_moves_technology_into_the_defensive_proxy(plain_sets):
    s = _by_key(plain_sets["severe"])["sector_rotation"]
    assert s.metadata["shocks"]["rotation"]["to"] == ["consumer_staples"]  # no utility in the universe
    for sym in ("AAPL", "MSFT", "NVDA", "AMD"):
        assert _at(s, sym, 20) == pytest.approx(0.85, abs=1e-4)
    for sym in ("KO", "PEP", "PG", "WMT"):
        assert _at(s, sym, 20) == pytest.approx(1.15, abs=1e-4)
    for sym in ("JPM", "XOM", "JNJ"):
        assert _at(s, sym, 20) == pytest.approx(1.0, abs=1e-6)
    assert _at(s, "AAPL", 10) == pytest.approx(0.85**0.5, abs=1e-4)  # gradual over 20 sessions


def test_rate_credit_and_vix_paths_are_in_the_metadata(plain_sets):
    s = _by_key(plain_sets["severe"])["credit_spread_widening"]
    paths = s.metadata["factor_paths"]
    assert paths["ust_10y_change_bp"][188] == pytest.approx(-330)
    assert paths["bbb_spread_change_bp"][188] == pytest.approx(400)
    assert max(paths["vix"]) == pytest.approx(65) and paths["vix"][188] == pytest.approx(65)
    assert len(paths["vix"]) == len(s.dates)
    ext = _by_key(plain_sets["extreme"])["rate_shock_500bp"].metadata["factor_paths"]
    assert ext["ust_10y_change_bp"][-1] == pytest.approx(750) and ext["ust_2y_change_bp"][-1] == pytest.approx(750)


def test_correlation_breakdown_turns_the_cross_correlation_negative(plain_sets):
    rng = np.random.default_rng(0)
    n, horizon = 6, 40_000
    groups = np.array([0, 0, 0, 1, 1, 1])
    z = correlated_noise(rng, horizon, np.eye(n), np.ones(horizon), np.full(horizon, 0.7), np.full(horizon, -0.3), groups)
    c = np.corrcoef(z.T)
    assert c[0, 1] == pytest.approx(0.7, abs=0.02) and c[3, 4] == pytest.approx(0.7, abs=0.02)
    assert c[0, 4] == pytest.approx(-0.3, abs=0.02)
    # blended half way with an identity history
    z = correlated_noise(rng, horizon, np.eye(n), np.full(horizon, 0.5), np.full(horizon, 0.7), np.full(horizon, 0.7), groups)
    assert np.corrcoef(z.T)[0, 4] == pytest.approx(0.35, abs=0.02)
    applied = _by_key(plain_sets["severe"])["correlation_breakdown"].metadata["shocks"]["correlation"]
    assert applied == {"within": 0.7, "across_during_breakdown": -0.3, "breakdown_sessions": [6, 10]}


def test_pin_bridge_is_zero_at_the_pins():
    cum = np.cumsum(np.random.default_rng(1).normal(size=(30, 4)), axis=0)
    out = pin_bridge(cum, 10)
    assert np.allclose(out[9], 0) and np.allclose(out[-1], 0)
    np.testing.assert_allclose(np.diff(out[10:], axis=0), np.diff(cum[10:], axis=0) - (-cum[9] + cum[-1]) / 20, atol=1e-12)


def test_extreme_shocks_keep_prices_positive(make_ctx):
    ctx = make_ctx("extreme")
    crash = StressDefinition.from_record({
        "key": "wipeout", "name": "Wipeout", "kind": "named", "description": "test", "horizon_days": 10,
        "profile": [[0, 0.0], [5, 1.0]], "equity": {"market": -0.999, "sectors": {"energy": -0.99}},
        "volatility_multiplier": 20.0, "correlation": 0.9, "sources": {"equity.market": "test only"},
    })
    inputs = prepare_inputs(ctx, [crash])
    s = build_scenario(crash, "extreme", inputs, ctx.settings.generation.stress, ctx.seed)
    assert np.isfinite(s.prices).all() and (s.prices > 0).all() and (s.returns > -1).all()


def test_configured_anchor_and_bad_inputs(make_ctx):
    ss = generate_stress(make_ctx("severe", {"generation": {"stress": {"anchor_date": "2018-06-30", "include": ["volatility_spike"]}}}))
    (s,) = ss.scenarios
    assert s.metadata["anchor_date"] == "2018-06-29" and "IXIC" in s.symbols and len(s.symbols) == 28
    with pytest.raises(ScenarioInputError, match="unknown stress test"):
        generate_stress(make_ctx("severe", {"generation": {"stress": {"include": ["no_such_test"]}}}))
    with pytest.raises(ScenarioInputError, match="before the market data"):
        generate_stress(make_ctx("severe", {"generation": {"stress": {"anchor_date": "1980-01-01"}}}))


def test_unknown_symbols_take_the_documented_default(market):
    log_returns = market.log_returns().copy()
    log_returns["NEWCO"] = log_returns["SPX"] * 2.0
    ex = symbol_exposures(["AAPL", "NEWCO", "SPX"], log_returns, market.reference)
    assert ex.defaults == ["NEWCO"] and ex.sectors == ["information_technology", "unclassified", "index"]
    assert ex.betas[0] == 1.17 and ex.betas[1] == pytest.approx(2.0, abs=0.01)
    assert ex.weights["information_technology"].tolist() == [1.0, 0.0, 0.0]  # SPX is the market itself
    short = pd.DataFrame({"TINY": log_returns["SPX"].iloc[-100:]})
    assert symbol_exposures(["TINY"], short, market.reference).betas[0] == 1.0  # too short: fallback beta
