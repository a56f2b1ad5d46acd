"""Market regimes on the bundled S&P 500 history, smoothing, severity scaling and the no-segment case."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from scenarios_assets.core.models.config import ScenarioConfig, default_config
from scenarios_assets.core.data.market import build_market_data, read_ohlcv, validate_ohlcv
from scenarios_assets.core.data.paths import BUNDLED_OHLCV
from scenarios_assets.core.engines.regime_detection import (
    REGIME_TYPES,
    classify,
    fill_gaps,
    find_segments,
    min_segment_days,
    regime_features,
    smooth_mask,
)
from scenarios_assets.core.families.regime import generate_regimes, regime_definitions
from scenarios_assets.core.library.validation import validate_set

CFG = ScenarioConfig.from_mapping(default_config()).generation.regime
MIN_DAYS = CFG.min_regime_days


@pytest.fixture(scope="module")
def regime_sets(make_ctx):
    return {sev: validate_set(generate_regimes(make_ctx(sev))) for sev in ("moderate", "severe", "extreme")}


def _segments(ss, regime=None):
    return [
        (pd.Timestamp(s.metadata["segment_start"]), pd.Timestamp(s.metadata["segment_end"]), s)
        for s in ss.scenarios
        if regime is None or s.metadata["regime"] == regime
    ]


def _covering(ss, regimes, day):
    day = pd.Timestamp(day)
    return [s for a, b, s in _segments(ss) if s.metadata["regime"] in regimes and a <= day <= b]


def test_crises_are_bear_and_high_volatility_segments(regime_sets):
    ss = regime_sets["severe"]
    # 2008-2009: the GFC is both a bear market and a high-volatility period
    assert _covering(ss, {"bear"}, "2008-10-10")
    assert _covering(ss, {"high_volatility"}, "2008-11-20")
    assert _covering(ss, {"bear", "high_volatility"}, "2009-03-02")
    # 2020: the COVID crash (the S&P 500 low of 2020-03-23)
    assert _covering(ss, {"bear", "high_volatility"}, "2020-03-23")
    # and no bull market is detected in the middle of a crash
    assert not _covering(ss, {"bull"}, "2008-11-20") and not _covering(ss, {"bull"}, "2020-03-23")


def test_long_bull_markets_of_2013_2019(regime_sets):
    bulls = [(a, b, s) for a, b, s in _segments(regime_sets["severe"], "bull") if a >= pd.Timestamp("2013-01-01") and b <= pd.Timestamp("2019-12-31")]
    lengths = sorted((s.metadata["segment_days"] for _, _, s in bulls), reverse=True)
    assert lengths and lengths[0] >= 250, lengths  # at least one bull market longer than a year
    sessions_2013_2019 = 7 * 252
    assert sum(lengths) > 0.5 * sessions_2013_2019  # most of 2013-2019 is bull
    # a bull segment rises: the S&P 500 went up over every one of them
    assert all(s.metadata["index_return"] > 0 for _, _, s in bulls)


def test_every_segment_meets_its_minimum_length_and_types_are_reported(regime_sets):
    ss = regime_sets["severe"]
    assert ss.validation["regime_types_found"]["passed"], ss.validation["regime_types_found"]["detail"]
    for s in ss.scenarios:
        # drawdown bears have no minimum length (issue 10: COVID's 24 sessions); the others the seed's
        assert len(s.dates) == s.metadata["segment_days"] >= min_segment_days(CFG, s.metadata["regime"]), s.id
        assert s.scenario_type == "REGIME" and s.family == "regime" and s.metadata["source"]
    summary = ss.metadata["regimes"]
    for regime in REGIME_TYPES:
        mine = [s for s in ss.scenarios if s.metadata["regime"] == regime]
        assert summary[regime]["segments"] == len(mine) > 0
        assert summary[regime]["total_days"] == sum(len(s.dates) for s in mine)
    assert all(r["passed"] for r in ss.validation.values()), {k: v["detail"] for k, v in ss.validation.items() if not v["passed"]}


def test_trend_regimes_do_not_overlap(regime_sets):
    trend = sorted((a, b) for a, b, s in _segments(regime_sets["severe"]) if s.metadata["regime"] != "high_volatility")
    assert all(prev[1] < nxt[0] for prev, nxt in zip(trend, trend[1:]))


def test_severity_scales_the_replay_like_historical(regime_sets, market):
    severe = {s.id.rsplit(".", 1)[0]: s for s in regime_sets["severe"].scenarios}
    assert {s.id.rsplit(".", 1)[0] for s in regime_sets["moderate"].scenarios} == set(severe)
    # the GFC bear is dated from the 2007-10-09 peak (issue 10; the trend rule started it 2008-06-20)
    gfc = next(s for s in regime_sets["severe"].scenarios if s.metadata["regime"] == "bear" and s.metadata["segment_start"].startswith("2007"))
    spx = gfc.symbols.index("SPX")
    recorded = market.close["SPX"].loc[gfc.metadata["segment_start"]: gfc.metadata["segment_end"]].to_numpy()
    # severe is the record itself
    np.testing.assert_allclose(gfc.prices[:, spx], recorded, rtol=1e-5)
    vols = {sev: np.median([s.metadata["annualised_volatility"] for s in regime_sets[sev].scenarios]) for sev in regime_sets}
    assert vols["moderate"] < vols["severe"] < vols["extreme"]
    key = gfc.id.rsplit(".", 1)[0]
    mdd = [next(s for s in regime_sets[sev].scenarios if s.id.startswith(key + ".")).max_drawdown for sev in ("moderate", "severe", "extreme")]
    assert mdd[0] > mdd[1] > mdd[2]


def test_smoothing_merges_single_day_flips_and_drops_short_runs():
    mask = np.zeros(300, dtype=bool)
    mask[10:110] = True
    mask[60] = False  # a one-day flip inside a 100-day run
    mask[200:204] = True  # a 4-day blip, shorter than the persistence
    mask[250:290] = True  # a 40-day run, shorter than the minimum
    out = smooth_mask(mask, min_days=45, max_gap=15, min_persistence=5)
    assert out[10:110].all() and out.sum() == 100
    # two long runs separated by a 20-session interruption stay apart (longer than max_gap)
    two = np.zeros(300, dtype=bool)
    two[0:100] = True
    two[120:220] = True
    assert fill_gaps(two, 15).sum() == 200 and fill_gaps(two, 20).sum() == 220


def test_synthetic_bull_then_crash_is_classified():
    rng = np.random.default_rng(0)
    calm = 0.001 + rng.normal(0, 0.006, 500)  # steady rise (~25 % a year), ~10 % volatility
    crash = -0.004 + rng.normal(0, 0.03, 200)  # falling, ~48 % volatility, frequent 2 % moves
    close = pd.Series(100 * np.exp(np.cumsum(np.concatenate([calm, crash]))), index=pd.bdate_range("2000-01-03", periods=700))
    _, smoothed = classify(regime_features(close, None, CFG), CFG)
    assert smoothed["bull"].iloc[250:500].mean() > 0.8
    assert not smoothed["bull"].iloc[560:].any()
    assert smoothed["bear"].iloc[560:].mean() > 0.6
    assert smoothed["high_volatility"].iloc[520:].mean() > 0.8
    assert not smoothed["high_volatility"].iloc[:500].any()


def test_no_segment_is_reported_with_the_reason(make_ctx):
    long = {r: 5000 for r in REGIME_TYPES}
    # the trend rule for bears: drawdown bears have no minimum length (their case is below)
    ss = validate_set(generate_regimes(make_ctx("severe", {"generation": {"regime": {"min_regime_days": long, "bear_rule": "trend"}}})))
    assert len(ss) == 0
    assert {s["key"] for s in ss.skipped} == set(REGIME_TYPES)
    assert all("no " in s["reason"] and "5000" in s["reason"] for s in ss.skipped)
    assert "no_segments_reason" in ss.metadata
    assert not ss.validation["non_empty"]["passed"] and "5000" in ss.validation["non_empty"]["detail"]
    assert not ss.validation["regime_types_found"]["passed"]


def test_too_short_history_says_so(make_ctx, market):
    short = replace(market, reference=market.reference.iloc[-150:])
    ss = generate_regimes(make_ctx("severe", market_data=short))
    assert len(ss) == 0 and "fewer than the 200" in ss.metadata["no_segments_reason"]


def test_configured_index_is_classified_too(make_ctx):
    ss = generate_regimes(make_ctx("severe", {"generation": {"regime": {"indices": ["IXIC"]}}}))
    by_index = {s.metadata["index"] for s in ss.scenarios}
    assert by_index == {"SPX", "IXIC"}
    assert len({s.id for s in ss.scenarios}) == len(ss)
    # the dot-com bust shows on the NASDAQ Composite
    assert any(s.metadata["index"] == "IXIC" and s.metadata["regime"] == "bear" and s.metadata["segment_start"][:4] in ("2000", "2001") for s in ss.scenarios)


def test_date_selection_clips_the_replays(make_ctx):
    ohlcv, _ = validate_ohlcv(read_ohlcv(BUNDLED_OHLCV), "bundled")
    window = build_market_data(ohlcv, "bundled", start_date="2015-01-01", end_date="2019-12-31")
    ss = generate_regimes(make_ctx("severe", market_data=window))
    assert len(ss) > 0 and ss.metadata["segments_outside_date_range"] > 0
    assert all("2015-01-01" <= s.start_date and s.end_date <= "2019-12-31" for s in ss.scenarios)


def test_regime_catalog_matches_the_config():
    assert set(regime_definitions()) == set(REGIME_TYPES) == set(MIN_DAYS)
    segments, diagnostics = find_segments(pd.Series([100.0] * 50, index=pd.bdate_range("2020-01-01", periods=50)), None, CFG, "FLAT")
    assert segments == [] and all("reason" in d for d in diagnostics.values())


def test_no_drawdown_bear_is_reported_with_the_reason(make_ctx):
    deep = validate_set(generate_regimes(make_ctx("severe", {"generation": {"regime": {"bear_min_decline": 0.9}}})))
    reason = next(sk["reason"] for sk in deep.skipped if sk["key"] == "bear")
    assert "no bear market in SPX" in reason and "90%" in reason
