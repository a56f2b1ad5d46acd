"""Intraday lows in the scenario metrics and in replays of recorded bars (issue 10, item 5 and beyond).

References, all in the bundled data (data/README.md: S&P 500 OHLC from benchstreet 1.0.1 since 2005-01-31,
which rounds to 0.1 point) and as S&P Dow Jones Indices records them:
- COVID crash: closing high 3,386.15 on 2020-02-19, intraday low 2,191.86 on 2020-03-23 (bundled 2,191.9;
  close 2,237.40): -35.3 % intraday against -33.9 % close to close.
- GFC: closing high 1,565.15 on 2007-10-09, intraday low 666.79 on 2009-03-06 (bundled 666.8): -57.4 %
  against -56.8 % to the 2009-03-09 close 676.53.
- 2022 bear: closing high 4,796.56 on 2022-01-03, intraday low 3,491.58 on 2022-10-13 (the CPI day; the
  closing low 3,577.03 was the day before): -27.2 % against -25.4 %.
- The seed's flash crash: -10 % in 30 minutes, recovered within the day (close -3.8 %).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scenarios_assets.core.families.historical import generate_historical
from scenarios_assets.core.data.market import build_market_data, validate_ohlcv
from scenarios_assets.core.library.metrics import chunk_metrics, compute_metrics
from scenarios_assets.core.families.regime import generate_regimes
from scenarios_assets.core.models.scenario import max_drawdown, portfolio_returns
from scenarios_assets.core.models.severity import SEVERITIES
from scenarios_assets.core.library.storage import timeseries_table
from scenarios_assets.core.families.stress import generate_stress
from scenarios_assets.core.library.validation import non_finite_cells

ONLY = {"generation": {"historical": {"events": ["covid_crash", "global_financial_crisis_2008", "bear_market_2022"]}}}


@pytest.fixture(scope="module")
def replays(make_ctx):
    return {sev: {s.metadata["event_key"]: s for s in generate_historical(make_ctx(sev, ONLY)).scenarios}
            for sev in SEVERITIES}


@pytest.fixture(scope="module")
def flash(make_ctx):
    return {sev: next(s for s in generate_stress(make_ctx(sev)).scenarios if s.metadata["stress_key"] == "flash_crash")
            for sev in SEVERITIES}


def spx_metrics(s) -> pd.Series:
    frame = chunk_metrics([s])
    return frame.loc[frame["symbol"] == "SPX"].iloc[0]


def on(s, day: str, column: str, symbol: str = "SPX") -> float:
    i = int(np.searchsorted(s.dates, np.datetime64(day)))
    assert s.dates[i] == np.datetime64(day)
    series = s.prices if column == "close" else s.extra[column]
    return float(series[i, s.symbols.index(symbol)])


# --- 1. the metrics count intraday lows ------------------------------------------------------------------

@pytest.mark.parametrize(("severity", "depth"), [("moderate", 1 - 0.9**0.5), ("severe", 0.10), ("extreme", 1 - 0.9**1.5)])
def test_flash_crash_metrics_show_the_intraday_low(flash, severity, depth):
    """Before: scenario_metrics.parquet said max_drawdown -3.8 % for the seed's -10 % flash crash (closes only)."""
    s = flash[severity]
    m = chunk_metrics([s])
    assert len(m) == len(s.symbols)
    # every symbol falls by the depth within the first session (the crash is beta-free), whatever its close
    np.testing.assert_allclose(m["worst_intraday_return"], -depth, atol=1e-5)
    assert (m["worst_intraday_date"] == pd.Timestamp(s.dates[0])).all()
    assert (m["max_drawdown"] <= -depth + 1e-5).all()  # the low, or a later close below it
    spx = m.loc[m["symbol"] == "SPX"].iloc[0]
    assert spx["max_drawdown"] == pytest.approx(-depth, abs=1e-5)
    assert spx["drawdown_trough_date"] == pd.Timestamp(s.dates[0]) == spx["drawdown_peak_date"]
    # close to close the first session is the -3.8 % of the seed (SPX: 0.37 of the log depth), not the low
    assert spx["worst_day_return"] > -depth + 0.02
    # the records' per-symbol drawdowns are the same figures
    np.testing.assert_allclose(m["max_drawdown"], s.metadata["max_drawdown_by_symbol"], atol=2e-6)


def test_metrics_of_the_written_rows_count_the_lows_too(flash, replays):
    """The long-row path (time series as written: prices and low columns) gives the chunk's figures."""
    chunk = [flash["severe"], replays["severe"]["covid_crash"]]
    frame = chunk_metrics(chunk)
    long = timeseries_table(chunk).select(["scenario_id", "symbol", "date", "returns", "prices", "low"]).to_pandas()
    reference = compute_metrics(long).set_index(["scenario_id", "symbol"]).loc[
        list(frame[["scenario_id", "symbol"]].itertuples(index=False, name=None))].reset_index()
    pd.testing.assert_frame_equal(frame.drop(columns=["scenario_name", "scenario_type"]), reference,
                                  check_dtype=False, check_categorical=False, rtol=1e-9, atol=1e-12)
    without = compute_metrics(long.drop(columns=["low"]))  # closes only: the old -3.8 %
    spx = without[(without["scenario_id"] == flash["severe"].id) & (without["symbol"] == "SPX")].iloc[0]
    assert spx["max_drawdown"] == pytest.approx(np.expm1(0.37 * np.log(0.9)), abs=2e-3)
    assert np.isnan(spx["worst_intraday_return"])


def test_a_crash_recovered_within_the_day_is_dated_and_recovered_that_day():
    dates = pd.bdate_range("2024-01-01", periods=4)
    r = np.array([0.01, -0.02, 0.03, 0.0])
    prices = 100 * np.cumprod(1 + r)
    low = np.array([np.nan, prices[0] * 0.85, np.nan, np.nan])  # -15 % from the peak close of day 0
    frame = pd.DataFrame({"scenario_id": "x", "symbol": "A", "date": dates, "returns": r, "prices": prices, "low": low})
    m = compute_metrics(frame).iloc[0]
    assert m["max_drawdown"] == pytest.approx(-0.15)
    assert m["drawdown_peak_date"] == dates[0] and m["drawdown_trough_date"] == dates[1]
    assert m["drawdown_recovery_date"] == dates[2] and m["max_drawdown_duration_days"] == 2
    assert m["worst_intraday_return"] == pytest.approx(-0.15) and m["worst_day_return"] == pytest.approx(-0.02)
    # a low that recovers to a new closing high the same day: recovered on the trough's own session
    low2 = np.array([np.nan, np.nan, prices[1] * 0.9, np.nan])
    m2 = compute_metrics(frame.assign(low=low2)).iloc[0]
    assert m2["max_drawdown"] == pytest.approx(prices[1] * 0.9 / prices[0] - 1)
    assert m2["drawdown_trough_date"] == m2["drawdown_recovery_date"] == dates[2]
    assert m2["drawdown_peak_date"] == dates[0] and m2["max_drawdown_duration_days"] == 2


# --- 2. replays carry the recorded bars -------------------------------------------------------------------

@pytest.mark.parametrize(("event", "peak", "low_day", "low", "close_trough"), [
    ("covid_crash", 3386.15, "2020-03-23", 2191.86, -0.339),
    ("global_financial_crisis_2008", 1565.15, "2009-03-06", 666.79, -0.568),
    ("bear_market_2022", 4796.56, "2022-10-13", 3491.58, -0.254),
])
def test_severe_replay_shows_the_recorded_intraday_low(replays, event, peak, low_day, low, close_trough):
    s = replays["severe"][event]
    assert on(s, low_day, "low") == pytest.approx(low, abs=0.06)  # bundled rounds to 0.1 point
    assert "SPX" in s.metadata["bar_symbols"]
    spx = spx_metrics(s)
    assert spx["max_drawdown"] == pytest.approx(low / peak - 1, abs=5e-5)
    assert spx["drawdown_trough_date"] == pd.Timestamp(low_day)
    assert spx["max_drawdown"] < close_trough - 0.005  # deeper than the close-to-close figure
    j = s.symbols.index("SPX")
    assert s.metadata["max_drawdown_by_symbol"][j] == pytest.approx(spx["max_drawdown"], abs=2e-6)
    # the portfolio's record stays on closes: its symbols' lows do not fall in the same minute
    wealth = np.cumprod(1.0 + portfolio_returns(s.returns))
    assert s.max_drawdown == pytest.approx(float(max_drawdown(np.r_[1.0, wealth])), abs=1e-9)


def test_close_only_symbols_have_no_bar_and_keep_their_close_drawdown(replays):
    s = replays["severe"]["covid_crash"]
    assert set(s.metadata["bar_symbols"]) == {"SPX", "NVDA"}  # the skfolio large caps and ETFs: closes only
    j = s.symbols.index("AAPL")
    assert np.isnan(s.extra["low"][:, j]).all() and np.isnan(s.extra["high"][:, j]).all()
    m = chunk_metrics([s]).set_index("symbol")
    assert np.isnan(m.loc["AAPL", "worst_intraday_return"])
    closes = np.r_[s.prices[0, j] / (1 + s.returns[0, j]), s.prices[:, j]].astype(np.float64)
    assert m.loc["AAPL", "max_drawdown"] == pytest.approx(float(max_drawdown(closes)), abs=1e-6)


def test_replayed_bars_scale_with_severity_and_stay_around_the_close(replays):
    day = "2020-03-16"  # the worst day since 1990: open 2508.6, high 2563.0, low 2380.9, close 2386.1
    severe = replays["severe"]["covid_crash"]
    assert on(severe, day, "high") == pytest.approx(2563.0, abs=0.01)
    gap = np.log(on(severe, day, "low") / on(severe, day, "close"))
    for sev, k in (("moderate", 0.5), ("extreme", 1.5)):
        s = replays[sev]["covid_crash"]
        assert np.log(on(s, day, "low") / on(s, day, "close")) == pytest.approx(k * gap, rel=1e-4)
    for s in (r["covid_crash"] for r in replays.values()):
        has = np.isfinite(s.extra["low"])
        assert (s.extra["low"][has] <= s.prices[has] * (1 + 1e-6)).all()
        assert (s.extra["high"][has] >= s.prices[has] * (1 - 1e-6)).all()
        assert non_finite_cells(s) == 0


def test_regime_replays_carry_the_bars(make_ctx):
    ss = generate_regimes(make_ctx("severe"))
    bear = next(s for s in ss.scenarios if s.metadata["regime"] == "bear" and s.metadata["segment_start"] == "2020-02-19")
    assert on(bear, "2020-03-23", "low") == pytest.approx(2191.86, abs=0.06)
    assert spx_metrics(bear)["max_drawdown"] == pytest.approx(2191.86 / 3386.15 - 1, abs=5e-5)
    old = next(s for s in ss.scenarios if s.metadata["segment_start"] < "2004-12-31")
    assert "low" not in old.extra or not np.isfinite(old.extra["low"][:, old.symbols.index("SPX")]).any()


# --- the panel: float32 bars, folded seven-day bars ------------------------------------------------------

def test_market_panel_keeps_bars_as_float32_with_nan_for_close_only(market):
    assert market.low.dtypes.eq(np.float32).all() and market.high.shape == market.close.shape
    assert market.low.index.equals(market.close.index) and list(market.low.columns) == market.symbols
    assert market.low["AAPL"].isna().all()  # skfolio closes only
    spx = market.low["SPX"]
    assert spx.loc[:"2005-01-28"].isna().all() and spx.loc["2005-01-31":"2025-01-31"].notna().all()
    assert market.low.loc["2010-05-06", "SPX"] == pytest.approx(1065.8, abs=0.01)


def test_a_folded_seven_day_bar_spans_its_rows():
    days = pd.date_range("2022-01-03", periods=21, freq="D")  # three weeks, Monday to Sunday
    close = 100 + np.arange(21.0)
    rows = pd.DataFrame({"symbol": "ETH", "date": days.strftime("%Y-%m-%d"), "open": close, "high": close + 1,
                         "low": close - 1, "close": close, "volume": 1.0})
    rows.loc[12, "low"] = 50.0  # Saturday 2022-01-15
    spx = rows.assign(symbol="SPX")[days.dayofweek < 5]
    ohlcv, report = validate_ohlcv(pd.concat([spx, rows]), "x")
    market = build_market_data(ohlcv, "x", reference_symbol="SPX")
    monday = pd.Timestamp("2022-01-17")
    assert market.low.loc[monday, "ETH"] == 50.0  # Saturday's low folded into Monday
    assert market.high.loc[monday, "ETH"] == close[14] + 1  # Monday's own high is the highest of the three
    assert market.close.loc[monday, "ETH"] == close[14]
