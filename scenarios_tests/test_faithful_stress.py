"""Stress paths keep their calibration under noise, and the flash crash's intraday low is in the daily data
(issue 10). Bundled data, default seed; the calibrated figures are the noise-free paths of the same tests,
anchored to the sources in reference/stress_tests.yaml (e.g. Credit Spread Widening: Federal Reserve 2025
severely adverse scenario, equities -50 %)."""

from __future__ import annotations

import exchange_calendars as xcals
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from scenarios_assets.core.models.severity import SEVERITIES
from scenarios_assets.core.library.storage import TIMESERIES_SCHEMA, timeseries_table
from scenarios_assets.core.engines.stress_noise import bounded_noise
from scenarios_assets.core.families.stress import generate_stress

PLAIN = {"generation": {"stress": {"noise": False}}}


@pytest.fixture(scope="module")
def sets(make_ctx):
    return {
        sev: ({s.metadata["stress_key"]: s for s in generate_stress(make_ctx(sev)).scenarios},
              {s.metadata["stress_key"]: s for s in generate_stress(make_ctx(sev, PLAIN)).scenarios})
        for sev in SEVERITIES
    }


def index_lowest(s) -> float:
    """Lowest S&P 500 level of the path against the anchor close, intraday lows included."""
    j = s.symbols.index("SPX")
    levels = s.prices[:, j].astype(np.float64)
    low = s.extra.get("low")
    if low is not None:
        levels = np.fmin(levels, low[:, j])
    return float(np.nanmin(levels) / s.metadata["anchor_prices"]["SPX"] - 1.0)


def portfolio_lowest(s) -> float:
    """Lowest level of the equal-weight daily rebalanced portfolio against its start (closes)."""
    wealth = np.cumprod(1.0 + s.returns.astype(np.float64).mean(axis=1))
    return float(min(wealth.min(), 1.0) - 1.0)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_noise_never_deepens_the_calibrated_trough(sets, severity):
    """Index and portfolio: the deepest point equals the calibrated (noise-free) one and is never below it;
    the max drawdown is within 1 pp. Before issue 10 Credit Spread Widening (severe, -50 %) reached
    -59.5 % for the index and -63.9 % for the portfolio, and other tests went 1-5 pp past their figure."""
    noisy, plain = sets[severity]
    assert set(noisy) == set(plain) and len(noisy) == 16
    for key, s in noisy.items():
        p = plain[key]
        if index_lowest(p) < -0.01:  # a real calibrated trough: never deeper (the flat index of sector_rotation keeps +-1 pp)
            assert index_lowest(s) >= index_lowest(p) - 1e-5, key
        assert index_lowest(s) == pytest.approx(index_lowest(p), abs=0.01), key
        spx = s.symbols.index("SPX")
        assert s.metadata["max_drawdown_by_symbol"][spx] == pytest.approx(p.metadata["max_drawdown_by_symbol"][spx], abs=0.01), key
        assert s.max_drawdown == pytest.approx(p.max_drawdown, abs=0.01), key
        if portfolio_lowest(p) < -0.01:  # a real calibrated trough: never deeper (a flat test keeps +-1 pp)
            assert portfolio_lowest(s) >= portfolio_lowest(p) - 1e-5, key
        assert portfolio_lowest(s) == pytest.approx(portfolio_lowest(p), abs=0.01), key


def test_credit_spread_widening_keeps_the_fed_severely_adverse_figure(sets):
    noisy, plain = sets["severe"]
    s = noisy["credit_spread_widening"]
    assert index_lowest(s) == pytest.approx(-0.50, abs=1e-4)  # Fed 2025 severely adverse: equities -50 %
    assert portfolio_lowest(s) == pytest.approx(portfolio_lowest(plain["credit_spread_widening"]), abs=1e-4)
    assert portfolio_lowest(s) == pytest.approx(-0.489, abs=0.001)  # betas and the financials' extra -10 %
    assert np.std(np.diff(np.log(s.prices[:189, s.symbols.index("SPX")]))) > 0.01  # the noise is still there


def test_bounded_noise_stays_in_the_band():
    rng = np.random.default_rng(3)
    t = np.arange(1, 101, dtype=np.float64)[:, None]
    det = np.hstack([-0.5 * np.minimum(t / 60, 1.0), 0.1 * t / 100, 0.0 * t])  # falling, rising, flat
    noise = np.cumsum(rng.normal(0, 0.05, size=(100, 3)), axis=0)
    out = det + bounded_noise(det, noise, tolerance=0.01)
    assert out[:, 0].min() >= -0.5 - 1e-12 and out[:, 0].max() <= 0.01 + 1e-12
    assert out[:, 1].min() >= -0.005 - 1e-12 and out[:, 1].max() <= 0.105 + 1e-12
    assert np.abs(out[:, 2]).max() <= 0.005 + 1e-12
    small = bounded_noise(det, noise * 1e-4, tolerance=0.01)  # far from the edges the noise is unchanged
    np.testing.assert_allclose(small[5:55, 0], noise[5:55, 0] * 1e-4, rtol=0.01)


@pytest.mark.parametrize(("severity", "depth"), [("moderate", 1 - 0.9**0.5), ("severe", 0.10), ("extreme", 1 - 0.9**1.5)])
def test_flash_crash_low_is_in_the_daily_data_and_the_drawdown(sets, severity, depth):
    """Before issue 10 the -10 % in 30 minutes lived only in metadata.intraday; the daily series showed -3.8 %
    and max_drawdown said -3.8 %."""
    s = sets[severity][0]["flash_crash"]
    anchor = np.array([s.metadata["anchor_prices"][sym] for sym in s.symbols])
    np.testing.assert_allclose(s.extra["low"][0], anchor * (1 - depth), rtol=1e-5)  # every symbol, beta-free
    np.testing.assert_allclose(s.extra["high"][0], anchor, rtol=1e-5)  # opens at the previous close
    assert np.isnan(s.extra["low"][1:]).all() and np.isnan(s.extra["high"][1:]).all()
    assert s.prices[0, 0] / anchor[0] - 1 == pytest.approx(np.expm1(0.37 * np.log(1 - depth)), abs=1e-4)  # the close
    assert s.max_drawdown == pytest.approx(-depth, abs=1e-4)
    assert s.metadata["max_drawdown_by_symbol"][s.symbols.index("SPX")] == pytest.approx(-depth, abs=1e-4)
    assert s.validation == {} or s.validation["finite_values"]["passed"]


def test_named_flash_crash_low_is_6_may_2010(sets):
    s = sets["severe"][1]["flash_crash_scenario"]  # noise-free: the recorded bar
    j = s.symbols.index("SPX")
    anchor = s.metadata["anchor_prices"]["SPX"]
    assert s.extra["low"][0, j] / anchor == pytest.approx(1065.8 / 1165.9, abs=0.001)  # bundled SPX 2010-05-06
    assert s.prices[0, j] / anchor == pytest.approx(1128.2 / 1165.9, abs=0.002)
    # a beta-1.57 symbol falls further intraday as well, in proportion to its log shock
    amd = s.symbols.index("AMD")
    amd_low = s.extra["low"][0, amd] / s.metadata["anchor_prices"]["AMD"]
    assert amd_low == pytest.approx(np.exp(1.57 * np.log(s.extra["low"][0, j] / anchor)), rel=1e-3)
    assert s.metadata["symbol_full_shock"]["AMD"] < s.metadata["symbol_full_shock"]["SPX"]


def test_bar_columns_in_the_time_series(sets):
    s = sets["severe"][0]["flash_crash"]
    other = sets["severe"][0]["credit_spread_widening"]
    table = timeseries_table([s, other])
    assert table.schema == TIMESERIES_SCHEMA
    assert TIMESERIES_SCHEMA.field("low").type == pa.float32() and TIMESERIES_SCHEMA.field("low").nullable
    frame = table.to_pandas()
    crash = frame[frame["scenario_id"] == s.id]
    first = crash[crash["date"] == pd.Timestamp(s.dates[0]).date()]
    assert len(first) == len(s.symbols) and first["low"].notna().all() and (first["low"] < first["prices"]).all()
    assert crash.loc[crash["date"] != pd.Timestamp(s.dates[0]).date(), "low"].isna().all()
    assert frame.loc[frame["scenario_id"] == other.id, ["high", "low"]].isna().all().all()


def test_stress_dates_follow_the_nyse_calendar(sets):
    s = sets["severe"][0]["credit_spread_widening"]
    expected = xcals.get_calendar("XNYS").sessions_window(pd.Timestamp("2022-12-29"), 252)
    assert np.array_equal(s.dates, expected.to_numpy().astype("datetime64[D]"))
    assert np.datetime64("2023-01-02") not in s.dates and np.datetime64("2023-04-07") not in s.dates  # Good Friday
