"""Validation checks: each passes on a sound input and fails on a deliberately broken one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scenarios_assets.core.models.scenario import Scenario, ScenarioSet, scenario_id
from scenarios_assets.core.library.validation import (
    SET_CHECKS,
    catalog_checks,
    checks_for,
    correlation_stability,
    regime_types_found,
    scenario_checks,
    stats_of,
    statistical_validity,
    validate_set,
)
from scenarios_assets.core.engines.tails import tail_reference

DATES = pd.bdate_range("2021-01-04", periods=60).to_numpy().astype("datetime64[D]")


def make_scenario(returns: np.ndarray, *, family="monte_carlo", key="s0", severity="moderate", dates=None, **kw) -> Scenario:
    returns = np.asarray(returns, dtype=np.float64)
    prices = 100.0 * np.cumprod(1.0 + np.nan_to_num(returns), axis=0)
    prices[np.isnan(returns)] = np.nan
    return Scenario(
        id=scenario_id(family, key, severity),
        name=key,
        family=family,
        scenario_type=kw.pop("scenario_type", "MONTE_CARLO"),
        severity=severity,
        dates=DATES[: len(returns)] if dates is None else dates,
        symbols=[f"S{i}" for i in range(returns.shape[1])],
        returns=returns,
        prices=prices,
        **kw,
    )


def make_set(scenarios, family="monte_carlo", severity="moderate", **metadata) -> ScenarioSet:
    return validate_set(ScenarioSet(family, severity, scenarios, "v1", "c1", metadata=metadata))


def sound_returns(seed=0, shape=(60, 3)):
    return np.random.default_rng(seed).normal(0.0, 0.01, shape)


# --- market constraints ------------------------------------------------------------------------------

def test_sound_scenario_passes_every_market_constraint():
    checks = scenario_checks(make_scenario(sound_returns()))
    assert all(c["passed"] for c in checks.values()), checks


def test_nan_inside_the_data_fails_finite_values_and_blocks():
    s = make_scenario(sound_returns())
    s.returns[10, 1] = np.nan  # the price is there, its return is not
    ss = make_set([s])
    assert not s.validation["finite_values"]["passed"]
    assert s.validation["finite_values"]["value"] == 1
    assert not ss.validation["finite_values"]["passed"] and ss.validation["finite_values"]["blocking"]


def test_negative_price_fails_positive_prices():
    s = make_scenario(sound_returns())
    s.prices[5, 0] = -1.0
    ss = make_set([s])
    assert not s.validation["positive_prices"]["passed"] and s.validation["positive_prices"]["value"] == -1.0
    assert not ss.validation["positive_prices"]["passed"] and ss.validation["positive_prices"]["blocking"]


def test_thirty_percent_coverage_window_fails_coverage():
    r = sound_returns()
    r[18:, 2] = np.nan  # symbol S2 has data on 18 of 60 days
    s = make_scenario(r)
    ss = make_set([s])
    assert s.validation["coverage"]["value"] == pytest.approx(0.30)
    assert not s.validation["coverage"]["passed"]
    assert not ss.validation["coverage"]["passed"] and not ss.validation["coverage"]["blocking"]
    assert s.validation["finite_values"]["passed"]  # missing outside the history is not a NaN error


def test_weekend_date_fails_trading_calendar():
    dates = DATES.copy()
    dates[3] = np.datetime64("2021-01-09")  # a Saturday
    dates = np.sort(dates)
    s = make_scenario(sound_returns(), dates=dates)
    assert not scenario_checks(s)["trading_calendar"]["passed"]
    assert scenario_checks(make_scenario(sound_returns()))["trading_calendar"]["passed"]


def test_negative_volume_multiplier_fails():
    r = sound_returns()
    volume = np.ones_like(r)
    volume[7, 0] = -0.2
    s = make_scenario(r, extra={"volume_multiplier": volume})
    assert not scenario_checks(s)["non_negative_volume"]["passed"]
    volume[7, 0] = 0.2
    assert scenario_checks(s)["non_negative_volume"]["passed"]


def test_non_finite_extra_series_fails_finite_values():
    r = sound_returns()
    spread = np.ones_like(r)
    spread[3, 2] = np.inf
    assert not scenario_checks(make_scenario(r, extra={"spread_multiplier": spread}))["finite_values"]["passed"]


def test_empty_set_fails_non_empty_with_the_reasons():
    ss = validate_set(ScenarioSet("regime", "severe", [], "v1", "c1", skipped=[{"name": "bull regime", "reason": "too short"}]))
    assert not ss.validation["non_empty"]["passed"] and ss.validation["non_empty"]["blocking"]
    assert "too short" in ss.validation["non_empty"]["detail"]


def test_events_accounted_applies_to_stress():
    s = make_scenario(sound_returns(), family="stress", scenario_type="STRESS")
    ok = make_set([s], family="stress", events_in_catalog=1)
    missing = make_set([s], family="stress", events_in_catalog=2)
    assert ok.validation["events_accounted"]["passed"]
    assert not missing.validation["events_accounted"]["passed"]


# --- statistical validity --------------------------------------------------------------------------

def _t_returns(rng, df, shape, scale=0.01):
    return scale * rng.standard_t(df, shape)


def test_statistical_validity_accepts_heavy_tails_like_the_history():
    rng = np.random.default_rng(1)
    reference = tail_reference(_t_returns(rng, 4, (5000, 20)), window=250)
    scenarios = [make_scenario(_t_returns(rng, 4, (250, 20)), key=f"p{i}", dates=pd.bdate_range("2021-01-04", periods=250).to_numpy().astype("datetime64[D]")) for i in range(20)]
    res = statistical_validity(stats_of(ScenarioSet("monte_carlo", "moderate", scenarios, "v", "c", metadata={"tail_reference": reference})))
    assert res["passed"], res["detail"]
    assert 0.005 < res["value"] < 0.03  # heavy tails: far above the normal 0.27 %, and still accepted


def test_statistical_validity_flags_thin_tails_against_a_heavy_tailed_history():
    rng = np.random.default_rng(2)
    reference = tail_reference(_t_returns(rng, 3, (5000, 20)), window=250)
    dates = pd.bdate_range("2021-01-04", periods=250).to_numpy().astype("datetime64[D]")
    scenarios = [make_scenario(rng.normal(0, 0.01, (250, 20)), key=f"p{i}", dates=dates) for i in range(20)]
    res = statistical_validity(stats_of(ScenarioSet("monte_carlo", "moderate", scenarios, "v", "c", metadata={"tail_reference": reference})))
    assert not res["passed"], res["detail"]


def test_statistical_validity_flags_spikes_against_a_normal_history():
    rng = np.random.default_rng(3)
    reference = tail_reference(rng.normal(0, 0.01, (5000, 20)), window=250)
    dates = pd.bdate_range("2021-01-04", periods=250).to_numpy().astype("datetime64[D]")
    scenarios = []
    for i in range(20):
        r = rng.normal(0, 0.01, (250, 20))
        spikes = rng.random(r.shape) < 0.03
        r[spikes] *= 12  # a broken generator: 3 % of days are 12-sigma moves
        scenarios.append(make_scenario(np.clip(r, -0.9, None), key=f"p{i}", dates=dates))
    res = statistical_validity(stats_of(ScenarioSet("monte_carlo", "moderate", scenarios, "v", "c", metadata={"tail_reference": reference})))
    assert not res["passed"], res["detail"]


def test_statistical_validity_without_reference_fits_a_student_t_to_the_set():
    rng = np.random.default_rng(4)
    dates = pd.bdate_range("2021-01-04", periods=400).to_numpy().astype("datetime64[D]")
    heavy = [make_scenario(_t_returns(rng, 4, (400, 10)), key=f"h{i}", dates=dates) for i in range(20)]
    res = statistical_validity(stats_of(ScenarioSet("bootstrap", "moderate", heavy, "v", "c")))
    assert res["passed"] and "Student-t fitted" in res["detail"], res["detail"]
    # bounded returns have no 3-sigma days at all, which no fitted Student-t expects
    flat = [make_scenario(rng.uniform(-0.02, 0.02, (400, 10)), key=f"u{i}", dates=dates) for i in range(30)]
    res = statistical_validity(stats_of(ScenarioSet("bootstrap", "moderate", flat, "v", "c")))
    assert not res["passed"] and res["value"] == 0.0, res["detail"]


def test_statistical_validity_needs_returns():
    res = statistical_validity(stats_of(ScenarioSet("monte_carlo", "moderate", [make_scenario(sound_returns(shape=(10, 2)))], "v", "c")))
    assert not res["passed"] and "need 100" in res["detail"]


def test_tail_reference_of_a_normal_history_is_near_the_normal_rate():
    ref = tail_reference(np.random.default_rng(5).normal(0, 0.01, (20000, 10)))
    assert ref["exceedance_rate"] == pytest.approx(0.0027, abs=0.0007)
    assert ref["student_t_df"] > 20


# --- correlation stability, regime types ---------------------------------------------------------------

@pytest.mark.parametrize(
    ("severity", "value", "passed"),
    [("moderate", 0.91, True), ("moderate", 0.7, False), ("extreme", 0.7, True), ("extreme", 0.3, False)],
)
def test_correlation_stability_bar(severity, value, passed):
    ss = ScenarioSet("monte_carlo", severity, [], "v", "c", metadata={"correlation_stability": value})
    assert correlation_stability(ss)["passed"] is passed


def test_correlation_stability_missing_fails_with_a_clear_detail():
    res = correlation_stability(ScenarioSet("bootstrap", "moderate", [], "v", "c", metadata={}))
    assert not res["passed"] and "no numeric 'correlation_stability'" in res["detail"]


def test_regime_types_found_names_the_missing_type_and_why():
    full = {r: {"segments": 2, "total_days": 200} for r in ("bull", "bear", "high_volatility", "ranging")}
    assert regime_types_found(ScenarioSet("regime", "severe", [], "v", "c", metadata={"regimes": full}))["passed"]
    partial = {**full, "ranging": {"segments": 0, "total_days": 0, "reason": "range never below 8 %"}}
    res = regime_types_found(ScenarioSet("regime", "severe", [], "v", "c", metadata={"regimes": partial}))
    assert not res["passed"] and "range never below 8 %" in res["detail"]


def test_checks_are_registered_for_the_families_they_make_sense_for():
    names = lambda family: {c.name for c in checks_for(family)}  # noqa: E731
    for family in ("monte_carlo", "bootstrap"):
        assert {"statistical_validity", "correlation_stability"} <= names(family)
    for family in ("historical", "regime", "stress"):
        assert not {"statistical_validity", "correlation_stability"} & names(family)
    assert "regime_types_found" in names("regime") and "events_accounted" in names("stress")
    assert {"finite_values", "positive_prices", "trading_calendar", "non_negative_volume", "coverage"} <= names("stress")
    blocking = {c.name for c in SET_CHECKS if c.blocking}
    assert blocking == {"non_empty", "finite_values", "positive_prices", "trading_calendar", "non_negative_volume"}


# --- catalog diversity ---------------------------------------------------------------------------

def _catalog(n_definitions: int, regimes=("bull", "bear", "ranging")) -> list[ScenarioSet]:
    sets = []
    for severity in ("moderate", "severe"):
        scen = [make_scenario(sound_returns(i), family="historical", key=f"e{i}", severity=severity, scenario_type="CRISIS") for i in range(n_definitions - len(regimes))]
        reg = [
            make_scenario(sound_returns(100 + j), family="regime", key=f"spx_{label}_{j}", severity=severity, scenario_type="REGIME", metadata={"regime": label})
            for j, label in enumerate(regimes)
        ]
        sets += [ScenarioSet("historical", severity, scen, "v", "c"), ScenarioSet("regime", severity, reg, "v", "c")]
    return sets


def test_catalog_checks_pass_on_a_diverse_catalog():
    res = catalog_checks(_catalog(50))
    assert all(r["passed"] for r in res.values()), res
    assert res["unique_scenarios"]["value"] == 50  # two severities of one definition count once


def test_catalog_checks_fail_on_too_few_definitions():
    res = catalog_checks(_catalog(49))
    assert not res["unique_scenarios"]["passed"] and not res["unique_scenarios"]["blocking"]


def test_catalog_checks_fail_without_a_neutral_regime():
    res = catalog_checks(_catalog(60, regimes=("bull", "bear", "high_volatility")))
    assert not res["regime_coverage"]["passed"] and "neutral" in res["regime_coverage"]["detail"]


def test_catalog_checks_block_duplicate_ids():
    sets = _catalog(60)
    sets.append(ScenarioSet("historical", "moderate", [sets[0].scenarios[0]], "v", "c"))
    res = catalog_checks(sets)
    assert not res["unique_ids"]["passed"] and res["unique_ids"]["blocking"]
    assert res["unique_scenarios"]["passed"]
