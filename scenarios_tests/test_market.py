"""Market-data contract: every bad input gets its own clear error; good input gets a stable version."""

import numpy as np
import pandas as pd
import pytest

from scenarios_assets.core.models.errors import ScenarioInputError
from scenarios_assets.core.data.market import build_market_data, data_version, validate_ohlcv


def ohlcv_frame(days: int = 30, symbols=("AAA", "BBB")) -> pd.DataFrame:
    dates = pd.bdate_range("2021-01-04", periods=days)
    rows = []
    for k, sym in enumerate(symbols):
        close = 100.0 * (1 + k) * np.exp(np.cumsum(np.full(days, 0.001)))
        rows.append(pd.DataFrame({"symbol": sym, "date": dates, "open": close, "high": close * 1.01,
                                  "low": close * 0.99, "close": close, "volume": 1e6}))
    return pd.concat(rows, ignore_index=True)


def test_bundled_data_loads_with_expected_universe(market):
    assert {"SPX", "AAPL", "NVDA", "IXIC", "MTUM"} <= set(market.symbols)
    assert market.dates[0] == pd.Timestamp("1990-01-02")
    assert market.reference.name == "SPX"
    assert len(market.data_version) == 16


def test_missing_column_is_named():
    with pytest.raises(ScenarioInputError, match=r"'src.csv': missing required column\(s\) close"):
        validate_ohlcv(ohlcv_frame().drop(columns="close"), "src.csv")


@pytest.mark.parametrize("bad", [0.0, -5.0, np.nan])
def test_non_positive_close_is_rejected(bad):
    df = ohlcv_frame()
    df.loc[7, "close"] = bad
    with pytest.raises(ScenarioInputError, match=r"1 row\(s\) with a missing, zero, negative or non-finite close \(first: AAA on 2021-01-13"):
        validate_ohlcv(df, "src")


def test_duplicate_rows_are_rejected():
    df = ohlcv_frame()
    df = pd.concat([df, df.iloc[[3]]], ignore_index=True)
    with pytest.raises(ScenarioInputError, match=r"2 duplicate \(symbol, date\) row\(s\) \(first: AAA on 2021-01-07\)"):
        validate_ohlcv(df, "src")


def test_negative_volume_and_close_outside_range_are_rejected():
    df = ohlcv_frame()
    df.loc[2, "volume"] = -1
    with pytest.raises(ScenarioInputError, match="negative or non-finite volume"):
        validate_ohlcv(df, "src")
    df = ohlcv_frame()
    df.loc[2, "high"] = df.loc[2, "close"] * 0.5
    with pytest.raises(ScenarioInputError, match=r"close lies outside \[low, high\]"):
        validate_ohlcv(df, "src")


def test_absurd_jump_is_rejected():
    df = ohlcv_frame()
    df.loc[10, ["open", "high", "low", "close"]] = df.loc[10, "close"] * 50
    with pytest.raises(ScenarioInputError, match="beyond x10 in one session"):
        validate_ohlcv(df, "src")


def test_unsorted_rows_are_sorted_and_version_is_order_free():
    df = ohlcv_frame()
    shuffled = df.sample(frac=1.0, random_state=3)
    clean_a, rep_a = validate_ohlcv(df, "a")
    clean_b, rep_b = validate_ohlcv(shuffled, "b")
    assert not rep_a["rows_reordered"] and rep_b["rows_reordered"]
    assert data_version(clean_a) == data_version(clean_b)
    changed = df.copy()
    changed.loc[5, "close"] *= 1.0001
    changed.loc[5, "high"] *= 1.0001
    assert data_version(validate_ohlcv(changed, "c")[0]) != data_version(clean_a)


def test_unknown_symbol_and_bad_dates():
    df, _ = validate_ohlcv(ohlcv_frame(), "src")
    with pytest.raises(ScenarioInputError, match=r"unknown symbol\(s\) ZZZ in market data 'src' \(available: AAA, BBB\)"):
        build_market_data(df, "src", symbols=["AAA", "ZZZ"])
    with pytest.raises(ScenarioInputError, match="end date 2021-01-05 is before start date 2021-02-01"):
        build_market_data(df, "src", start_date="2021-02-01", end_date="2021-01-05")
    with pytest.raises(ScenarioInputError, match=r"start date 2030-01-01 is after the last session of market data "
                                                 r"'src' \(2021-01-04\.\.2021-02-12\)"):
        build_market_data(df, "src", start_date="2030-01-01")
    with pytest.raises(ScenarioInputError, match=r"end date 1980-01-01 is before the first session of market data"):
        build_market_data(df, "src", end_date="1980-01-01")  # was "date range 2021-01-04..1980-01-01" (reversed)
    with pytest.raises(ScenarioInputError, match=r"date range 2021-01-09\.\.2021-01-10 holds no trading day"):
        build_market_data(df, "src", start_date="2021-01-09", end_date="2021-01-10")  # a weekend inside the data


def test_short_holes_are_filled_long_gaps_fail():
    df = ohlcv_frame(days=60)
    short = df.drop(index=df.index[(df.symbol == "AAA")][10:13])
    market = build_market_data(validate_ohlcv(short, "s")[0], "s")
    assert market.report["filled_sessions"] == 3
    assert market.close["AAA"].notna().all()
    long = df.drop(index=df.index[(df.symbol == "AAA")][10:20])
    with pytest.raises(ScenarioInputError, match="symbol AAA has a gap of 10 trading days between 2021-01-15 and 2021-02-01"):
        build_market_data(validate_ohlcv(long, "s")[0], "s")


def test_economic_fills_vix_with_realised_volatility(market, economic):
    assert set(economic["vix_source"].unique()) >= {"vix", "realised_vol_proxy"}
    real = economic.loc["2014-01-03":"2019-01-03"]
    assert (real["vix_source"] == "vix").mean() > 0.95
    # The proxy is the annualised 21-session realised volatility of SPX in VIX points.
    day = pd.Timestamp("2008-10-27")
    r = np.log(market.reference).diff().loc[:day].iloc[-21:]
    assert economic.loc[day, "vix_source"] == "realised_vol_proxy"
    assert economic.loc[day, "vix"] == pytest.approx(r.std() * np.sqrt(252) * 100, rel=1e-9)
    assert economic.loc[day, "vix"] > 60  # October 2008: realised volatility above 60 %
    assert economic.loc["2010-06-01", "ust_10y"] == pytest.approx(0.0331, abs=0.002)
