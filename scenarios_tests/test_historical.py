"""Historical replays reproduce recorded moves at `severe` and scale as documented."""

import numpy as np
import pandas as pd
import pytest

from scenarios_assets.core.engines.replay import replay_window
from scenarios_assets.core.families.historical import generate_historical, load_events
from scenarios_assets.core.data.market import build_market_data, validate_ohlcv
from scenarios_assets.core.models.scenario import max_drawdown
from scenarios_assets.core.library.validation import validate_set


def spx_drawdown(scenario) -> float:
    """The S&P 500's close-to-close max drawdown of the replay (the records' figure counts intraday lows)."""
    return float(max_drawdown(scenario.prices[:, scenario.symbols.index("SPX")].astype(np.float64)))


def by_key(ss, key):
    return next(s for s in ss.scenarios if s.metadata["event_key"] == key)


@pytest.fixture(scope="module")
def sets(make_ctx):
    return {sev: validate_set(generate_historical(make_ctx(sev))) for sev in ("moderate", "severe", "extreme")}


def test_covid_and_gfc_drawdowns_at_severe(sets):
    covid = by_key(sets["severe"], "covid_crash")
    assert covid.start_date <= "2020-02-19" and covid.end_date >= "2020-03-23"
    assert spx_drawdown(covid) == pytest.approx(-0.339, abs=0.005)
    gfc = by_key(sets["severe"], "global_financial_crisis_2008")
    assert spx_drawdown(gfc) == pytest.approx(-0.568, abs=0.005)
    # the records count the recorded intraday lows (2,191.9 on 2020-03-23, 666.8 on 2009-03-06; test_faithful_bars.py)
    assert covid.metadata["max_drawdown_by_symbol"][covid.symbols.index("SPX")] == pytest.approx(-0.353, abs=0.001)
    assert gfc.metadata["max_drawdown_by_symbol"][gfc.symbols.index("SPX")] == pytest.approx(-0.574, abs=0.001)


def test_severe_replay_is_the_recorded_close(sets, market):
    covid = by_key(sets["severe"], "covid_19_market_crash")
    j = covid.symbols.index("SPX")
    dates = pd.DatetimeIndex(covid.dates)
    recorded = market.close["SPX"].reindex(dates).to_numpy()
    np.testing.assert_allclose(covid.prices[:, j], recorded, rtol=1e-6)


def test_moderate_and_extreme_scale_excess_log_returns(sets, market):
    # Changed by issue 10: the scaled moves are charged their volatility drag, (k^2 - 1) v / 2 a session,
    # so the arithmetic mean return is kept (before, the excess log path was scaled alone)
    drift = market.long_run_drift()["SPX"]
    paths = {}
    for sev in ("moderate", "severe", "extreme"):
        s = by_key(sets[sev], "global_financial_crisis_2008")
        log_p = np.log(s.prices[:, s.symbols.index("SPX")].astype(np.float64))
        steps = np.arange(1, len(log_p) + 1)
        base = np.log(market.close["SPX"]).loc[: pd.Timestamp(s.dates[0])].iloc[-2]
        paths[sev] = log_p - base - drift * steps  # excess log-price around the drift
        if sev == "severe":
            v = np.var(np.diff(np.concatenate([[base], log_p])), ddof=1)  # the window's daily log-return variance
    steps = np.arange(1, len(paths["severe"]) + 1)
    for k, sev in ((0.5, "moderate"), (1.5, "extreme")):
        np.testing.assert_allclose(paths[sev], k * paths["severe"] - (k**2 - 1) * v / 2 * steps, atol=2e-6 * 50)
    dd = {sev: spx_drawdown(by_key(sets[sev], "global_financial_crisis_2008")) for sev in sets}
    assert dd["moderate"] > dd["severe"] > dd["extreme"]
    assert dd["extreme"] < -0.70 and -0.40 < dd["moderate"] < -0.25


def test_each_event_is_one_scenario_per_severity_or_reported(sets):
    events = load_events(include_full_cycles=False)
    for ss in sets.values():
        names = {s.name for s in ss.scenarios} | {sk["name"] for sk in ss.skipped}
        assert names == {e.name for e in events}
        assert len({s.id for s in ss.scenarios}) == len(ss.scenarios)
        assert all(s.metadata["coverage"][sym] >= 0.95 for s in ss.scenarios for sym in s.symbols)
    skipped = {sk["key"]: sk["reason"] for sk in sets["severe"].skipped}
    assert "none of its symbols (GME, AMC, BB, NOK)" in skipped["gme_squeeze"]
    assert "no symbol covers at least 95%" in skipped["manufacturing_renaissance_2025"]
    assert sets["severe"].validation["events_accounted"]["passed"]


def test_event_outside_the_data_is_reported_not_faked(make_ctx, market):
    raw = market.close.loc[:"2019-12-31"].stack().dropna().rename("close").reset_index()
    raw.columns = ["date", "symbol", "close"]
    raw = raw.assign(open=np.nan, high=np.nan, low=np.nan, volume=np.nan)
    truncated = build_market_data(validate_ohlcv(raw, "trunc")[0], "trunc")
    ss = validate_set(generate_historical(make_ctx("severe", market_data=truncated)))
    reasons = {sk["key"]: sk["reason"] for sk in ss.skipped}
    assert "lies outside the market data (1990-01-02..2019-12-31)" in reasons["covid_crash"]
    assert "svb_collapse" in reasons and "ai_boom_2023" in reasons
    assert not any(s.metadata["event_key"] == "covid_crash" for s in ss.scenarios)


def test_full_cycles_are_opt_in(make_ctx):
    ss = generate_historical(make_ctx("severe", {"generation": {"historical": {"include_full_cycles": True}}}))
    types = {s.scenario_type for s in ss.scenarios}
    assert "FULL_CYCLE" in types
    gfc = next(s for s in ss.scenarios if s.metadata["event_key"] == "gfc_2008_2009")
    assert gfc.end_date >= "2013-03-28"


def test_partial_listing_keeps_nan_before_first_close(market):
    drift = market.long_run_drift()
    replay = replay_window(market.close, pd.Timestamp("1999-01-04"), pd.Timestamp("1999-12-31"), 1.0, drift,
                           min_coverage=0.9)
    j = replay.symbols.index("NVDA")  # listed 1999-01-22
    assert np.isnan(replay.prices[0, j]) and np.isfinite(replay.prices[-1, j])
    first = np.argmax(np.isfinite(replay.prices[:, j]))
    assert replay.returns[first, j] == 0.0
