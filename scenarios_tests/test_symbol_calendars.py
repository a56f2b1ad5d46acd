"""Per-symbol trading calendars in the simulated families (issue 10, item 7: "per symbol where calendars
differ"; core/data/session_layout.py). Input: the shared mixed-calendar case (S&P 500 closes of the bundled data
and a synthetic seven-day BTC-USD; scenarios_tests/data/cases/README.md). Calendars: exchange_calendars
XNYS and XLON (2023: NYSE closed 2023-01-02, 2023-11-23 Thanksgiving; London closed 2023-05-08, the
coronation bank holiday, and open on Thanksgiving)."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from scenarios_assets.core.data.exchange_calendar import sessions_between
from scenarios_assets.core.data.source_calendars import weekday
from scenarios_assets.core.models.config import config_hash
from scenarios_assets.core.data.config_file import load_config
from scenarios_assets.core.models.errors import ScenarioInputError
from scenarios_assets.core.library.validation import generate_family
from scenarios_assets.core.families.context import GenerationContext
from scenarios_assets.core.data.market import build_economic, build_market_data, load_market_data, validate_ohlcv
from scenarios_assets.core.data.session_layout import SessionLayout
from scenarios_assets.core.library.storage import summary_text, timeseries_table

from scenarios_tests.test_input_contract import MIXED

FOLDED = {"data": {"symbol_calendars": {"BTC-USD": "XNYS"}}}  # the business-day convention, for comparison
SMALL = {"generation": {"stochastic": {"monte_carlo": {"num_scenarios": 6}, "bootstrap": {"num_scenarios": 6}}}}


def ctx_for(market, overrides: dict | None = None, severity: str = "moderate") -> GenerationContext:
    merged = {**SMALL, **(overrides or {})}
    config = load_config(None, merged)
    return GenerationContext(market, build_economic(market, None), config, config_hash(config), severity)


@pytest.fixture(scope="module")
def mixed():
    return load_market_data(MIXED)


@pytest.fixture(scope="module")
def mixed_2015():
    """The mixed file from 2015: BTC-USD covers the Monte Carlo window, so the model simulates it too."""
    with gzip.open(MIXED, "rt") as fh:
        rows = pd.read_csv(fh)
    ohlcv, report = validate_ohlcv(rows, "mixed")
    return build_market_data(ohlcv, "mixed", start_date="2015-01-01", report=report)


def rows_of(s, symbol: str) -> pd.DatetimeIndex:
    frame = timeseries_table([s]).to_pandas()
    return pd.DatetimeIndex(frame.loc[frame["symbol"] == symbol, "date"])


@pytest.mark.parametrize("family", ["bootstrap", "stress"])
def test_equities_keep_their_sessions_and_the_seven_day_symbol_gets_its_weekends(mixed, family):
    ss = generate_family(family, ctx_for(mixed))
    assert ss.metadata["symbol_calendars"] == {"BTC-USD": "24/7"} and ss.metadata["trading_calendar"] == "XNYS"
    assert all(res["passed"] for res in ss.validation.values()), ss.validation
    for s in ss.scenarios:
        spx, btc = rows_of(s, "SPX"), rows_of(s, "BTC-USD")
        first, last = spx[0], spx[-1]
        assert (weekday(spx) < 5).all()  # no equity row on a weekend
        assert spx.equals(pd.DatetimeIndex(sessions_between(first, last, "XNYS")))  # exactly the NYSE's sessions
        assert btc.equals(pd.date_range(first, last, freq="D")), s.id  # every calendar day, weekends included
        assert s.validation["trading_calendar"]["passed"] and s.validation["coverage"]["value"] == 1.0
    if family == "bootstrap":
        assert len(rows_of(ss.scenarios[0], "BTC-USD")) == 366 and len(rows_of(ss.scenarios[0], "SPX")) == 252


def test_equity_paths_are_those_of_the_business_day_convention(mixed):
    """The layout changes nothing for SPX (bit for bit), and BTC's closes on the NYSE sessions (so its
    Friday-to-Friday and session-to-session moves) are the simulated ones; only the days between are added."""
    own = generate_family("bootstrap", ctx_for(mixed)).scenarios
    folded = generate_family("bootstrap", ctx_for(mixed, FOLDED)).scenarios
    for a, b in zip(own, folded):
        assert a.calendars == {"BTC-USD": "24/7", "SPX": "XNYS"} and b.calendars is None
        steps = np.isin(a.dates, b.dates)
        assert steps.sum() == len(b.dates)
        j, k = a.symbols.index("SPX"), b.symbols.index("SPX")
        np.testing.assert_array_equal(a.returns[steps, j], b.returns[:, k])
        np.testing.assert_array_equal(a.prices[steps, j], b.prices[:, k])
        assert np.isnan(a.prices[~steps, j]).all()
        jb, kb = a.symbols.index("BTC-USD"), b.symbols.index("BTC-USD")
        np.testing.assert_allclose(a.prices[steps, jb], b.prices[:, kb], rtol=1e-6)
        assert np.isfinite(a.prices[:, jb]).all()
    spx_vol = [float(np.std(s.returns[np.isfinite(s.returns[:, s.symbols.index("SPX")]), s.symbols.index("SPX")],
                            ddof=1)) for s in own]
    folded_vol = [float(np.std(s.returns[:, s.symbols.index("SPX")], ddof=1)) for s in folded]
    assert spx_vol == folded_vol


def test_monte_carlo_simulates_the_seven_day_symbol_on_its_calendar(mixed_2015):
    own = generate_family("monte_carlo", ctx_for(mixed_2015))
    folded = generate_family("monte_carlo", ctx_for(mixed_2015, FOLDED))
    assert own.scenarios[0].symbols == ["BTC-USD", "SPX"] and own.metadata["symbol_calendars"] == {"BTC-USD": "24/7"}
    assert all(res["passed"] for res in own.validation.values()), own.validation
    for a, b in zip(own.scenarios, folded.scenarios):
        assert a.seed == b.seed
        steps = np.isin(a.dates, b.dates)
        np.testing.assert_array_equal(a.returns[steps, 1], b.returns[:, 1])  # SPX: the same path
        assert (weekday(rows_of(a, "SPX")) < 5).all() and (weekday(rows_of(a, "BTC-USD")) >= 5).sum() == 104
    again = generate_family("monte_carlo", ctx_for(mixed_2015))  # the bridge draws come from the seeds
    np.testing.assert_array_equal(again.scenarios[3].prices, own.scenarios[3].prices)


def test_the_bridge_spreads_a_weekend_with_the_paths_volatility(mixed):
    """BTC's Saturday + Sunday + Monday log returns add up to the simulated Monday step; over many weekends
    the days in between carry their share of the variance (neither zero, as a forward fill, nor more)."""
    ss = generate_family("bootstrap", ctx_for(mixed, {"generation": {"stochastic": {"bootstrap": {"num_scenarios": 40}}}}))
    folded = generate_family("bootstrap", ctx_for(mixed, {**FOLDED, "generation": {"stochastic": {"bootstrap": {"num_scenarios": 40}}}}))
    weekend, weekday_steps = [], []
    for a, b in zip(ss.scenarios, folded.scenarios):
        j = a.symbols.index("BTC-USD")
        log_r = np.log1p(a.returns[:, j].astype(np.float64))
        days = weekday(a.dates)
        weekend.append(log_r[days >= 5])
        weekday_steps.append(log_r[(days >= 1) & (days <= 4)])
        mondays = np.flatnonzero((days == 0) & np.isin(a.dates, b.dates))[1:]
        mondays = mondays[np.isin(a.dates[mondays - 3], b.dates)]  # NYSE Friday -> weekend -> NYSE Monday
        step = np.log1p(b.returns[:, b.symbols.index("BTC-USD")].astype(np.float64))
        monday_steps = step[np.searchsorted(b.dates, a.dates[mondays])]
        np.testing.assert_allclose(log_r[mondays] + log_r[mondays - 1] + log_r[mondays - 2], monday_steps, atol=2e-6)
    ratio = np.std(np.concatenate(weekend)) / np.std(np.concatenate(weekday_steps))
    assert 0.3 < ratio < 1.2, ratio


def test_an_exchange_holiday_folds_into_the_next_session_and_the_other_exchange_s_session_is_bridged():
    start = pd.Timestamp("2023-04-28")
    steps = sessions_between("2023-05-01", "2023-11-30", "XNYS")
    layout = SessionLayout.build(start, steps, ["SPX", "VOD.L"], {"SPX": "XNYS", "VOD.L": "XLON"})
    rng = np.random.default_rng(3)
    r = rng.normal(0, 0.01, (2, len(steps), 2)).astype(np.float32)
    last = np.array([4169.48, 96.0])
    p = (last * np.cumprod(1 + r.astype(np.float64), axis=1)).astype(np.float32)
    out_r, out_p, _ = layout.apply(r, p, last, [11, 12])
    dates = pd.DatetimeIndex(layout.dates)
    vod = pd.DatetimeIndex(layout.dates[np.isfinite(out_p[0, :, 1])])
    assert vod.equals(pd.DatetimeIndex(sessions_between("2023-05-01", "2023-11-30", "XLON")))
    assert pd.Timestamp("2023-05-08") not in vod and pd.Timestamp("2023-11-23") in vod
    assert pd.Timestamp("2023-11-23") not in pd.DatetimeIndex(layout.dates[np.isfinite(out_p[0, :, 0])])
    # coronation Monday: NYSE step, no London row; Tuesday's London return spans Friday 05-05 to Tuesday 05-09
    i5, i9 = dates.get_loc("2023-05-05"), dates.get_loc("2023-05-09")
    s5, s8, s9 = (int(np.searchsorted(steps, np.datetime64(d))) for d in ("2023-05-05", "2023-05-08", "2023-05-09"))
    assert np.isnan(out_p[:, dates.get_loc("2023-05-08"), 1]).all()
    np.testing.assert_allclose(out_r[:, i9, 1], p[:, s9, 1].astype(np.float64) / p[:, s5, 1] - 1, rtol=1e-5)
    np.testing.assert_allclose(1 + out_r[:, i9, 1], (1 + r[:, s8, 1]) * (1 + r[:, s9, 1]), rtol=1e-5)
    np.testing.assert_array_equal(out_p[:, i5, 1], p[:, s5, 1])
    np.testing.assert_array_equal(out_r[:, np.isin(layout.dates, steps), 0], r[:, :, 0])  # SPX as simulated


def test_a_single_calendar_universe_is_left_as_it_is(make_ctx):
    ss = generate_family("bootstrap", make_ctx("moderate", SMALL))
    assert ss.metadata["symbol_calendars"] == {} and ss.metadata["session_layout"] == "single calendar"
    assert all(s.calendars is None for s in ss.scenarios)


def test_an_unknown_symbol_calendar_is_refused_in_one_line():
    with pytest.raises(ScenarioInputError) as err:
        load_config(None, {"data": {"symbol_calendars": {"VOD.L": "London"}}})
    assert str(err.value) == ("config key 'scenarios_pipeline.data.symbol_calendars.VOD.L': 'London' is not an "
                              "exchange_calendars calendar (e.g. XNYS, XNAS, XLON, XTKS) or '24/7' (every calendar day)")
    assert load_config(None, {"data": {"symbol_calendars": {"BTC-USD": "24/7", "VOD.L": "XLON"}}})["data"][
        "symbol_calendars"] == {"BTC-USD": "24/7", "VOD.L": "XLON"}


def test_summary_names_the_own_calendars():
    slices = {"bootstrap/moderate": {"count": 1, "origin": "new", "validation": {}, "skipped": [],
                                     "metadata": {"trading_calendar": "XNYS", "symbol_calendars": {"BTC-USD": "24/7"}}}}
    text = summary_text({"families": slices, "generated_at": "now", "data_version": "d", "config_hash": "c"}, {})
    assert "own trading calendars: bootstrap: BTC-USD 24/7 (other symbols XNYS)" in text


def test_a_noise_free_stress_path_is_straight_between_the_closes_on_the_days_between(mixed):
    ss = generate_family("stress", ctx_for(mixed, {"generation": {"stress": {"noise": False}}}))
    s = next(x for x in ss.scenarios if x.metadata["stress_key"] == "credit_spread_widening")
    j = s.symbols.index("BTC-USD")
    log_p = np.log(s.prices[:, j].astype(np.float64))
    days = pd.DatetimeIndex(s.dates)
    for saturday in np.flatnonzero(days.dayofweek == 5):
        friday, monday = saturday - 1, saturday + 2
        if days[monday].dayofweek == 0 and days[friday].dayofweek == 4:
            expected = log_p[friday] + (log_p[monday] - log_p[friday]) / 3
            assert log_p[saturday] == pytest.approx(expected, abs=1e-6)
