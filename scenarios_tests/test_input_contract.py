"""The market-data input contract (README "Market data") on inputs shaped like real exports (issue 15):
mixed trading calendars, constant-price instruments, unadjusted splits, the date forms exports write,
directory sources and column names. Every rejection is one line naming the input and the fix; every
accepted input gives the figures a correct reading gives. Cases: scenarios_tests/data/cases/README.md."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scenarios_assets.cli import main as cli
from scenarios_assets.service.preflight import input_notes
from scenarios_assets.core.data.source_calendars import fold_to_calendar, market_calendar, weekday
from scenarios_assets.core.models.config import config_hash
from scenarios_assets.core.data.config_file import load_config
from scenarios_assets.core.models.errors import ScenarioInputError
from scenarios_assets.core.library.validation import generate_family
from scenarios_assets.core.families.context import GenerationContext
from scenarios_assets.core.data.market import (
    build_economic,
    build_market_data,
    load_market_data,
    read_ohlcv,
    validate_ohlcv,
)
from scenarios_assets.core.data.paths import BUNDLED_OHLCV
from scenarios_assets.core.models.severity import SEVERITIES

CASES = Path(__file__).parent / "data" / "cases"
MIXED = CASES / "mixed-calendar" / "spx_and_btc.csv.gz"
CONSTANT = CASES / "constant-price" / "ohlcv.csv.gz"
SPLIT = CASES / "unadjusted-split" / "ohlcv.csv"


def ctx_for(market, severity: str, overrides: dict | None = None) -> GenerationContext:
    config = load_config(None, overrides)
    return GenerationContext(market, build_economic(market, None), config, config_hash(config), severity)


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


def bdays_frame(symbol: str, start: str, days: int, close0: float = 100.0, step: float = 0.001, freq="B") -> pd.DataFrame:
    dates = pd.date_range(start, periods=days, freq=freq)
    close = close0 * np.exp(np.cumsum(np.full(days, step)))
    return pd.DataFrame({"symbol": symbol, "date": dates.strftime("%Y-%m-%d"), "open": close, "high": close,
                         "low": close, "close": close, "volume": 1e6})


def rejected(argv: list[str], capsys) -> str:
    """Run the CLI; it must exit 2 with exactly one line on stderr, which is returned."""
    code = cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("error: ") and "\n" not in err, err
    return err


# --- 1. mixed calendars -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mixed_markets(tmp_path_factory):
    spx_only = tmp_path_factory.mktemp("spx") / "spx_only.csv"
    with gzip.open(MIXED, "rt") as fh:
        rows = pd.read_csv(fh)
    rows[rows["symbol"] == "SPX"].to_csv(spx_only, index=False)
    return load_market_data(MIXED), load_market_data(spx_only), rows


def test_seven_day_symbol_adds_no_session_and_spx_is_read_as_alone(mixed_markets):
    mixed, spx_only, rows = mixed_markets
    assert mixed.report["seven_day_symbols"] == ["BTC-USD"]
    # The panel's sessions are SPX's own 2,766 (2012-01-03..2022-12-28): no weekend, no filled SPX session.
    assert mixed.dates.equals(spx_only.dates) and len(mixed.dates) == 2766
    assert (weekday(mixed.dates) < 5).all()
    assert mixed.report["filled_sessions"] == 0
    pd.testing.assert_series_equal(mixed.close["SPX"], spx_only.close["SPX"])
    # Every BTC row that is not an SPX session (weekends, US holidays) is folded into the next session.
    btc = rows[rows["symbol"] == "BTC-USD"]
    btc_dates = pd.to_datetime(btc["date"])
    assert mixed.report["off_calendar_rows"] == int((~btc_dates.isin(mixed.dates)).sum()) == 939
    # The Monday return spans the weekend: Friday 2022-12-23 close to Tuesday 2022-12-27 (Monday a holiday).
    closes = btc.set_index(btc_dates)["close"]
    r = np.log(mixed.close["BTC-USD"]).diff()
    assert r.loc["2022-12-27"] == pytest.approx(np.log(closes.loc["2022-12-27"] / closes.loc["2022-12-23"]), rel=1e-12)
    assert mixed.data_version != spx_only.data_version  # the rows differ; the SPX panel does not


def test_monte_carlo_spx_figures_do_not_depend_on_a_crypto_symbol_in_the_file(mixed_markets):
    mixed, spx_only, _ = mixed_markets
    overrides = {"generation": {"stochastic": {"monte_carlo": {"num_scenarios": 20}}}}
    a = generate_family("monte_carlo", ctx_for(mixed, "moderate", overrides))
    b = generate_family("monte_carlo", ctx_for(spx_only, "moderate", overrides))

    def spx_vol(ss) -> float:
        i = ss.scenarios[0].symbols.index("SPX")
        r = np.stack([s.returns[:, i] for s in ss.scenarios]).astype(np.float64)
        return float(np.median(r.std(axis=1, ddof=1)) * np.sqrt(252))

    # BTC-USD covers 83 % of the 10-year window (from 2014-09-17), under min_coverage 0.95: SPX alone.
    assert a.metadata["calibration_window"]["excluded_symbols"] == {"BTC-USD": pytest.approx(0.83, abs=0.01)}
    assert spx_vol(a) == spx_vol(b)
    # The window's realised SPX volatility is 0.177 (S&P 500 closes, 2012-12-31..2022-12-28); the simulated
    # volatility pooled over the paths is near it (0.159 with these 20 paths, 0.170 with 200; the median of
    # per-path volatilities sits lower, 0.146, as GARCH paths' volatilities are right-skewed). Before the fix,
    # forward-filled weekends diluted the median to 0.060 with BTC in the file (0.149 without).
    realised = np.log(spx_only.close["SPX"]).diff().loc["2012-12-29":].std() * np.sqrt(252)
    assert realised == pytest.approx(0.177, abs=0.001)
    i = a.scenarios[0].symbols.index("SPX")
    pooled = np.stack([s.returns[:, i] for s in a.scenarios]).astype(np.float64).std(ddof=1) * np.sqrt(252)
    assert pooled == pytest.approx(realised, rel=0.15)


def test_historical_replay_of_the_mixed_file_stays_on_weekdays(mixed_markets):
    mixed, _, _ = mixed_markets
    ss = generate_family("historical", ctx_for(mixed, "severe"))
    assert ss.scenarios
    for s in ss.scenarios:
        assert (weekday(s.dates) < 5).all(), s.name
        assert s.validation["trading_calendar"]["passed"]


def test_crypto_only_file_keeps_its_weekdays_and_folds_weekends():
    rows = bdays_frame("ETH", "2022-01-03", 70, freq="D")
    ohlcv, report = validate_ohlcv(rows, "eth.csv")
    assert report["seven_day_symbols"] == ["ETH"]
    market = build_market_data(ohlcv, "eth.csv")
    assert len(market.dates) == 50 and (weekday(market.dates) < 5).all()  # 10 weeks of Mondays..Fridays
    # A Monday's log return holds Saturday and Sunday too: three daily steps of 0.001.
    r = np.log(market.close["ETH"]).diff()
    assert r.loc["2022-01-10"] == pytest.approx(0.003, rel=1e-9) and r.loc["2022-01-11"] == pytest.approx(0.001, rel=1e-9)


def test_sessions_shifted_onto_sundays_are_refused_with_symbol_and_first_date(tmp_path, capsys):
    # A Tokyo session at local midnight written in UTC lands on the previous day: Monday -> Sunday.
    spx = bdays_frame("SPX", "2022-01-03", 40)
    jp = bdays_frame("7203.T", "2022-01-03", 40)
    jp["date"] = (pd.to_datetime(jp["date"]) - pd.Timedelta(days=1)).dt.strftime("%Y-%m-%d")
    path = write_csv(tmp_path / "asia.csv", pd.concat([spx, jp]))
    err = rejected(["--market-data", str(path), "--dry-run"], capsys)
    assert "symbol 7203.T has sessions on Sundays (89% of its weeks, first 2022-01-02) but none on Friday/Saturday" in err
    assert "time-zone conversion" in err


def test_stray_weekend_row_of_an_equity_is_folded_not_a_session():
    rows = pd.concat([bdays_frame("AAA", "2022-01-03", 20), bdays_frame("AAA", "2022-01-08", 1, close0=123.0, freq="D")])
    ohlcv, report = validate_ohlcv(rows, "x")
    assert "seven_day_symbols" not in report
    sessions = market_calendar(ohlcv, [])
    assert pd.Timestamp("2022-01-08") not in sessions
    folded, fold_report = fold_to_calendar(ohlcv, sessions)
    assert fold_report == {"off_calendar_rows": 1, "rows_after_last_session": 0}


# --- 2. constant-price instruments --------------------------------------------------------------------

@pytest.fixture(scope="module")
def constant_market():
    return load_market_data(CONSTANT)


def cashx(ss) -> np.ndarray:
    """Every CASHX price of every scenario of the set, concatenated (paths may differ in length)."""
    return np.concatenate([s.prices[:, s.symbols.index("CASHX")] for s in ss.scenarios]).astype(np.float64)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_stress_keeps_a_constant_price_at_its_close(constant_market, severity):
    ss = generate_family("stress", ctx_for(constant_market, severity))
    assert len(ss.scenarios) == 16
    assert np.all(cashx(ss) == 1.0)  # no noise, no beta shock, no flash crash, no sector shock
    assert "CASHX" in ss.metadata["constant_price_symbols"]
    for s in ss.scenarios:
        assert s.metadata["symbol_full_shock"]["CASHX"] == 0.0
    # SPX is still stressed: the flash crash takes the index down on session 1.
    flash = next(s for s in ss.scenarios if s.metadata["stress_key"] == "flash_crash")
    assert flash.metadata["symbol_full_shock"]["SPX"] < 0 and flash.returns[0, flash.symbols.index("SPX")] < -0.01


@pytest.mark.parametrize("model", ["garch", "gbm", "historical_distribution"])
def test_monte_carlo_gives_a_constant_price_zero_volatility(constant_market, model):
    overrides = {"generation": {"stochastic": {"monte_carlo": {"num_scenarios": 8, "return_model": model}}}}
    for severity in ("moderate", "extreme"):
        ss = generate_family("monte_carlo", ctx_for(constant_market, severity, overrides))
        assert np.all(cashx(ss) == 1.0), (model, severity)
        spx = np.stack([s.returns[:, s.symbols.index("SPX")] for s in ss.scenarios])
        assert spx.std() > 0.003
        assert ss.metadata["model_parameters"]["constant_price_symbols"] == ["CASHX"]


def test_bootstrap_and_replays_keep_a_constant_price(constant_market):
    overrides = {"generation": {"stochastic": {"bootstrap": {"num_scenarios": 8}}}}
    for family in ("bootstrap", "historical"):
        ss = generate_family(family, ctx_for(constant_market, "extreme", overrides))
        assert ss.scenarios and np.all(cashx(ss) == 1.0), family


# --- 3. unadjusted splits ---------------------------------------------------------------------------------

def test_unadjusted_ten_for_one_split_is_refused_with_symbol_date_and_ratio(tmp_path, capsys):
    out = tmp_path / "library"
    out.mkdir()
    (out / "yesterday.txt").write_text("kept")
    err = rejected(["--type", "bootstrap", "--market-data", str(SPLIT), "--output-dir", str(out)], capsys)
    assert "NVDA on 2024-06-10 closes at 121.79 after 1208.88 (factor 0.1007)" in err
    assert "likely an unadjusted 10-for-1 split" in err and "--accept-move NVDA:2024-06-10" in err
    assert [p.name for p in out.iterdir()] == ["yesterday.txt"]


def test_an_accepted_move_passes_and_is_reported():
    market = load_market_data(SPLIT, accepted_moves=["NVDA:2024-06-10"])
    assert market.report["accepted_moves"] == ["NVDA:2024-06-10"]
    # The x10 rule alone lets this one through (0.1007 > 0.1): only the split-ratio test catches it.
    assert load_market_data(SPLIT, split_check=False).report.get("accepted_moves") is None


@pytest.mark.parametrize(
    ("factor", "expected"),
    [(0.5, "2-for-1 split"), (1 / 3 * 1.04, "3-for-1 split"), (0.0502, "20-for-1 split"), (7.0, "1-for-7 reverse split"),
     (10.3, "1-for-10 reverse split"), (0.02, "beyond x10 in one session")],
)
def test_common_split_ratios_and_reverse_splits_are_named(factor, expected):
    rows = bdays_frame("AAA", "2021-01-04", 30)
    rows.loc[15:, ["open", "high", "low", "close"]] *= factor
    with pytest.raises(ScenarioInputError, match=expected):
        validate_ohlcv(rows, "x")


def test_a_three_for_two_sized_move_is_not_called_a_split():
    rows = bdays_frame("AAA", "2021-01-04", 30)
    rows.loc[15:, ["open", "high", "low", "close"]] *= 2 / 3
    validate_ohlcv(rows, "x")


def test_bundled_data_needs_its_two_documented_real_moves():
    # data/README.md "Known quirks": Apple -52 % on 2000-09-29 (a profit warning), RRC -67 % on 1990-04-10.
    raw = read_ohlcv(BUNDLED_OHLCV)
    with pytest.raises(ScenarioInputError, match=r"AAPL on 2000-09-29 .*factor 0\.4815\) \(2 such moves\): likely an unadjusted 2-for-1"):
        validate_ohlcv(raw, "bundled", accepted_moves=[])
    _, report = validate_ohlcv(raw, "bundled")
    assert report["accepted_moves"] == ["AAPL:2000-09-29", "RRC:1990-04-10"]


def test_accept_move_flag_is_checked_and_added_to_the_config(capsys):
    err = rejected(["--accept-move", "NVDA", "--dry-run"], capsys)
    assert "--accept-move: 'NVDA' is not SYMBOL:YYYY-MM-DD" in err
    plan = cli.plan_from_args(cli.build_parser().parse_args(["--accept-move", "NVDA:2024-06-10"]))
    assert plan.config["data"]["accepted_moves"] == ["AAPL:2000-09-29", "RRC:1990-04-10", "NVDA:2024-06-10"]


# --- 5. date columns ------------------------------------------------------------------------------------

def test_dst_offsets_read_like_the_time_zone_aware_parquet():
    csv = load_market_data(CASES / "dst-offsets" / "ohlcv.csv")
    parquet = load_market_data(CASES / "dst-offsets" / "ohlcv_tzaware.parquet")
    assert csv.data_version == parquet.data_version
    assert csv.dates[0] == pd.Timestamp("2022-01-03") and len(csv.dates) == 260
    assert pd.Timestamp("2022-06-16") in csv.dates  # written 2022-06-16 00:00:00-04:00


def test_day_first_column_decided_by_a_day_above_twelve():
    market = load_market_data(CASES / "day-first" / "ohlcv.csv")
    assert list(market.dates) == [pd.Timestamp("2022-01-03"), pd.Timestamp("2022-01-13")]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["03/01/2022", "04/01/2022"], "'03/01/2022' could be 3 January 2022 or 1 March 2022"),
        (["13/01/2022", "01/14/2022"], "mixes day-first and month-first dates ('13/01/2022' and '01/14/2022')"),
        (["44564", "44565"], "'44564' is a number, not a date"),
        (["2022-01-03", "2022-02-30"], "'2022-02-30' is not a calendar date"),
        (["03/01/22", "04/01/22"], "'03/01/22' has a two-digit year"),
        (["2022-01-03", "Jan 4, 2022"], "'Jan 4, 2022' is not in the form of the column's first value"),
        (["yesterday", "today"], "'yesterday' is not a date"),
    ],
)
def test_unreadable_dates_get_one_line_with_column_value_and_form(tmp_path, capsys, values, message):
    rows = bdays_frame("SPX", "2022-01-03", len(values))
    rows["date"] = values
    path = write_csv(tmp_path / "dates.csv", rows)
    err = rejected(["--market-data", str(path), "--dry-run"], capsys)
    assert f"market data '{path}': column 'date'" in err and message in err and "YYYY-MM-DD" in err


def test_compact_and_named_month_forms_are_read(tmp_path):
    rows = bdays_frame("SPX", "2022-01-03", 3)
    expected = pd.to_datetime(rows["date"]).to_numpy()
    for form in (["20220103", "20220104", "20220105"], [20220103, 20220104, 20220105],
                 ["3 Jan 2022", "4 Jan 2022", "5 Jan 2022"], ["2022/1/3", "2022/1/4", "2022/1/5"]):
        rows["date"] = form
        ohlcv, _ = validate_ohlcv(rows, "x")
        assert (ohlcv["date"].to_numpy() == expected).all(), form
    # A YYYYMMDD number is never read as nanoseconds since 1970 (what pandas.to_datetime does with it).
    rows["date"] = [20220103, 20220104, 20220105]
    path = write_csv(tmp_path / "compact.csv", rows)
    assert load_market_data(path).dates[0] == pd.Timestamp("2022-01-03")


# --- 6. directory sources ---------------------------------------------------------------------------------

@pytest.fixture
def directory(tmp_path):
    d = tmp_path / "ohlcv"
    (d / "sub").mkdir(parents=True)
    (d / ".ipynb_checkpoints").mkdir()
    write_csv(d / "a.csv", bdays_frame("AAA", "2021-01-04", 30))
    write_csv(d / "sub" / "B.CSV", bdays_frame("BBB", "2021-01-04", 30))
    write_csv(d / ".ipynb_checkpoints" / "a-checkpoint.csv", bdays_frame("AAA", "2021-01-04", 30))
    write_csv(d / ".hidden.csv", bdays_frame("ZZZ", "2021-01-04", 30))
    (d / "_SUCCESS").write_text("")
    (d / "notes.txt").write_text("not data")
    return d


def test_directory_reports_files_read_and_skipped(directory, capsys):
    market = load_market_data(directory)
    assert market.symbols == ["AAA", "BBB"]
    assert market.report["files_read"] == ["a.csv", "sub/B.CSV"]
    assert market.report["files_skipped"] == [
        ".hidden.csv (hidden)", ".ipynb_checkpoints (hidden)", "_SUCCESS (hidden)", "notes.txt (not .parquet/.csv/.csv.gz)",
    ]
    notes = input_notes(market.report)
    assert notes[0].startswith("read 2 file(s): a.csv, sub/B.CSV; skipped 4: .hidden.csv (hidden)")


def test_bad_and_duplicate_rows_name_their_files(directory, capsys):
    write_csv(directory / "c.csv", bdays_frame("AAA", "2021-01-06", 1))  # AAA 2021-01-06 again
    err = rejected(["--market-data", str(directory), "--dry-run"], capsys)
    assert "2 duplicate (symbol, date) row(s) (first: AAA on 2021-01-06 in a.csv and c.csv)" in err
    bad = bdays_frame("CCC", "2021-01-04", 3)
    bad.loc[1, "close"] = -1.0
    write_csv(directory / "c.csv", bad)
    err = rejected(["--market-data", str(directory), "--dry-run"], capsys)
    assert "(first: CCC on 2021-01-05, close=-1.0 in c.csv)" in err


# --- 7. column names -------------------------------------------------------------------------------------

def test_column_names_differing_only_in_case_are_read_and_reported():
    rows = bdays_frame("AAA", "2021-01-04", 5).rename(columns={"symbol": "Symbol", "date": " Date", "close": "CLOSE"})
    ohlcv, report = validate_ohlcv(rows, "x")
    assert list(ohlcv.columns) == ["symbol", "date", "open", "high", "low", "close", "volume"]
    assert report["columns_renamed"] == {"Symbol": "symbol", " Date": "date", "CLOSE": "close"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("symbol;date;open;high;low;close;volume\nA;2021-01-04;1;1;1;1;1\n",
         "the header 'symbol;date;open;high;low;close;volume' is separated by semicolons; expected a comma-separated file"),
        ("symbol,date,open,high,low,close,close,volume\nA,2021-01-04,1,1,1,1,1,1\n",
         "column 'close' appears twice (columns 6 and 7)"),
        ("symbol,date,open,high,low,Close,close,volume\nA,2021-01-04,1,1,1,1,1,1\n",
         "columns 'Close' and 'close' both name column 'close'"),
        ("Date,Open,High,Low,Close,Adj Close,Volume\n2021-01-04,1,1,1,1,1,1\n",
         "missing required column(s) symbol (found: Date, Open, High, Low, Close, Adj Close, Volume; expected symbol, date"),
        ("", "is empty (expected a header line symbol,date,open,high,low,close,volume)"),
    ],
)
def test_column_problems_get_one_line_with_found_and_expected(tmp_path, capsys, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    err = rejected(["--market-data", str(path), "--dry-run"], capsys)
    assert message in err, err


def test_symbols_padded_with_spaces_are_read_as_written_without_them(tmp_path, capsys):
    """Fixed-width exports pad symbol values ('SPX   '): read as SPX (the reference index is found, --symbols SPX
    matches), reported, with the clean file's data version; an empty symbol is refused in one line."""
    clean = pd.concat([bdays_frame("SPX", "2021-01-04", 300), bdays_frame("AAA", "2021-01-04", 300, step=0.002)])
    padded = clean.assign(symbol=clean["symbol"].map({"SPX": "SPX   ", "AAA": " AAA"}))
    a = load_market_data(write_csv(tmp_path / "clean.csv", clean))
    b = load_market_data(write_csv(tmp_path / "padded.csv", padded), symbols=["SPX"])
    assert b.symbols == ["SPX"] and b.reference.name == "SPX"
    assert load_market_data(tmp_path / "padded.csv").data_version == a.data_version
    assert load_market_data(tmp_path / "padded.csv").report["symbols_stripped"] == {" AAA": "AAA", "SPX   ": "SPX"}
    assert input_notes(load_market_data(tmp_path / "padded.csv").report) == [
        "symbols read without surrounding spaces: ' AAA' -> AAA, 'SPX   ' -> SPX"]
    blank = clean.assign(symbol=clean["symbol"].where(clean.index != 5, "  "))
    err = rejected(["--type", "stress", "--market-data", str(write_csv(tmp_path / "blank.csv", blank)),
                    "--output-dir", str(tmp_path / "lib")], capsys)
    assert err == f"error: market data '{tmp_path / 'blank.csv'}': 2 row(s) have an empty symbol"
