"""PostgreSQL as market-data source and as Dagster storage, against a real server (a throw-away database).

Failing to reach the server fails these tests: `.ci/run` and `make test-all` start PostgreSQL first (marked `postgres`: `make test` leaves them out).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pandas as pd
import pyarrow.parquet as pq
import pytest

from scenarios_assets.cli import main as cli
from scenarios_assets.core.data.database import parse_source, read_ohlcv_postgres, select_query, source_name
from scenarios_assets.core.models.errors import ScenarioInputError
from scenarios_assets.core.data.market import load_market_data, read_ohlcv, select_rows, validate_ohlcv
from scenarios_assets.core.data.paths import BUNDLED_OHLCV, PROJECT_ROOT
from scenarios_tests.pg_helpers import (
    dagster_pg_env,
    execute,
    normalised_metadata,
    query,
    temporary_database,
)
from scenarios_tests.library_helpers import snapshot


@pytest.fixture(scope="module")
def bundled_rows() -> pd.DataFrame:
    return validate_ohlcv(read_ohlcv(BUNDLED_OHLCV), "bundled")[0]


@pytest.fixture(scope="module")
def pg(bundled_rows):
    """A throw-away database whose market_data.ohlcv holds the bundled data, seeded by the load command."""
    with temporary_database() as url:
        out = io.StringIO()
        from scenarios_assets.cli.db import load_market_data_main

        assert load_market_data_main(["--to", url], out=out) == 0, out.getvalue()
        assert f"{len(bundled_rows)} inserted" in out.getvalue()
        yield url


def run_cli(args, home, env=None, timeout=300):
    full_env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.run([sys.executable, "-m", "scenarios_assets", *args], env=full_env, capture_output=True,
                          text=True, timeout=timeout)


# --- the source URL ------------------------------------------------------------------------------------

def test_url_names_table_and_hides_password():
    src = parse_source("postgresql://ana:s3cret@db.example:6543/prod?sslmode=require&table=staging.prices")
    assert (src.schema, src.table) == ("staging", "prices")
    assert src.dsn == "postgresql://ana:s3cret@db.example:6543/prod?sslmode=require"
    assert src.name == "postgresql://ana:***@db.example:6543/prod?sslmode=require&table=staging.prices"
    assert "s3cret" not in source_name("postgres://u:s3cret@h/db?password=s3cret")
    assert parse_source("postgresql://h/db").label == "market_data.ohlcv"
    for bad in ("x;drop", "a.b.c", "1abc"):
        with pytest.raises(ScenarioInputError, match="is not schema.table"):
            parse_source(f"postgresql://h/db?table={bad}")


def test_selection_query_quotes_literals():
    src = parse_source("postgresql://h/db")
    sql = select_query(src, ["AAPL", "O'NEIL"], pd.Timestamp("2020-01-01"), None, "SPX")
    assert "\"symbol\" IN ('AAPL', 'O''NEIL', 'SPX')" in sql
    assert "(\"date\" >= DATE '2020-01-01') OR \"symbol\" = 'SPX'" in sql
    assert "WHERE" not in select_query(src)


# --- publishing ------------------------------------------------------------------------------------------

def test_load_command_creates_keyed_table_and_upserts(pg, bundled_rows, tmp_path, capsys):
    target = f"{pg}?table=upsert_case.ohlcv"
    assert cli.main(["load-market-data", "--to", target]) == 0
    assert f"{len(bundled_rows)} inserted, 0 updated, 0 unchanged" in capsys.readouterr().out
    key = query(pg, """SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_constraint c
                       JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey)
                       WHERE c.conrelid = 'upsert_case.ohlcv'::regclass AND c.contype = 'p'""")
    assert key == [(["symbol", "date"],)]
    assert cli.main(["load-market-data", "--to", target]) == 0  # same data again: nothing changes
    assert f"0 inserted, 0 updated, {len(bundled_rows)} unchanged" in capsys.readouterr().out

    # A team's own file: three corrected closes and a new symbol.
    fix = bundled_rows[bundled_rows.symbol == "AAPL"].tail(3).copy()
    fix["close"] *= 1.001
    fix["high"] = fix[["high", "close"]].max(axis=1)
    new = fix.assign(symbol="NEWCO", close=10.0, open=10.0, high=10.5, low=9.5).head(2)
    team = tmp_path / "team.csv"
    pd.concat([fix, new]).assign(date=lambda d: d.date.dt.date).to_csv(team, index=False)
    assert cli.main(["load-market-data", "--to", target, "--from", str(team)]) == 0
    assert "2 inserted, 3 updated, 0 unchanged" in capsys.readouterr().out
    stored = query(pg, "SELECT close FROM upsert_case.ohlcv WHERE symbol = 'AAPL' ORDER BY date DESC LIMIT 3")
    assert sorted(v for (v,) in stored) == sorted(fix["close"].tolist())

    # Invalid input is refused before anything is written.
    bad = tmp_path / "bad.csv"
    fix.assign(close=-1.0).to_csv(bad, index=False)
    assert cli.main(["load-market-data", "--to", target, "--from", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "missing, zero, negative or non-finite close" in err and err.count("\n") == 1
    assert query(pg, "SELECT count(*) FROM upsert_case.ohlcv") == [(len(bundled_rows) + 2,)]
    execute(pg, "DROP SCHEMA upsert_case CASCADE")


# --- reading -------------------------------------------------------------------------------------------

SELECTIONS = {
    "everything": {},
    "symbols_without_reference_and_dates": {"symbols": ["AAPL", "MSFT", "NVDA"], "start_date": "2005-01-01",
                                            "end_date": "2015-06-30"},
    "start_only": {"start_date": "2010-01-01"},
    "lookback": {"symbols": ["SPX", "JPM"], "lookback_years": 3},
}


@pytest.mark.parametrize("selection", SELECTIONS.values(), ids=SELECTIONS.keys())
def test_file_and_postgres_give_the_same_panel_and_version(pg, selection):
    from_file = load_market_data(BUNDLED_OHLCV, **selection)
    from_db = load_market_data(pg, **selection)
    assert from_db.data_version == from_file.data_version
    pd.testing.assert_frame_equal(from_db.close, from_file.close)
    pd.testing.assert_frame_equal(from_db.volume, from_file.volume)
    pd.testing.assert_series_equal(from_db.reference, from_file.reference)
    assert from_db.reference.name == "SPX" and from_db.reference.index[0] == pd.Timestamp("1990-01-02")
    assert from_db.report["rows"] == from_file.report["rows"]
    assert from_db.source == source_name(pg) and "table=market_data.ohlcv" in from_db.source


def test_unknown_symbol_error_matches_files(pg):
    messages = []
    for source in (BUNDLED_OHLCV, pg):
        with pytest.raises(ScenarioInputError) as info:
            load_market_data(source, symbols=["AAPL", "FOO", "BAR"])
        messages.append(str(info.value).replace(str(source) if source == BUNDLED_OHLCV else source_name(pg), "SRC"))
    assert messages[0] == messages[1]
    assert messages[0].startswith("unknown symbol(s) FOO, BAR in market data 'SRC' (available: AAPL, AMD,")


def test_selection_is_filtered_in_sql(pg, bundled_rows):
    """Rows outside the selection never leave the server: invalid ones there do not even fail the load."""
    execute(
        pg,
        "CREATE SCHEMA pushdown",
        "CREATE TABLE pushdown.ohlcv AS SELECT * FROM market_data.ohlcv WHERE symbol IN ('SPX', 'AAPL', 'MSFT')",
        "INSERT INTO pushdown.ohlcv VALUES ('BROKEN', '2019-05-01', 1, 1, 1, -1, 0), ('BROKEN', '2019-05-01', 1, 1, 1, 1, 0)",
    )
    try:
        url = f"{pg}?table=pushdown.ohlcv"
        start, end = pd.Timestamp("2019-01-01"), pd.Timestamp("2019-12-31")
        raw = read_ohlcv_postgres(url, ["AAPL"], start, end, "SPX")
        expected = select_rows(bundled_rows, ["AAPL"], start, end, "SPX")
        assert len(raw) == len(expected) == (bundled_rows.symbol == "SPX").sum() + 252
        assert set(raw.symbol) == {"AAPL", "SPX"}
        assert raw.loc[raw.symbol == "AAPL", "date"].between(start, end).all()
        market = load_market_data(url, symbols=["AAPL"], start_date="2019-01-01", end_date="2019-12-31")
        assert market.symbols == ["AAPL"] and market.reference.name == "SPX"
        with pytest.raises(ScenarioInputError, match=r"close \(first: BROKEN on 2019-05-01"):
            load_market_data(url)
    finally:
        execute(pg, "DROP SCHEMA pushdown CASCADE")


@pytest.fixture(scope="module")
def bad_tables(pg):
    aapl = "SELECT * FROM market_data.ohlcv WHERE symbol = 'AAPL' AND date >= '2020-01-01'"
    execute(
        pg,
        "CREATE SCHEMA bad",
        "CREATE TABLE bad.no_volume AS SELECT symbol, date, open, high, low, close FROM market_data.ohlcv LIMIT 10",
        "CREATE TABLE bad.text_close AS SELECT symbol, date, open, high, low, close::text AS close, volume "
        "FROM market_data.ohlcv LIMIT 10",
        f"CREATE TABLE bad.null_close AS {aapl}",
        "ALTER TABLE bad.null_close ALTER COLUMN close DROP NOT NULL",
        "UPDATE bad.null_close SET close = NULL WHERE date = '2020-03-16'",
        f"CREATE TABLE bad.duplicates AS {aapl}",
        "INSERT INTO bad.duplicates SELECT * FROM bad.duplicates WHERE date = '2020-03-17'",
    )
    yield pg
    execute(pg, "DROP SCHEMA bad CASCADE")


BAD_CASES = {
    "missing_table": ("nowhere.ohlcv", "table nowhere.ohlcv does not exist"),
    "missing_column": ("bad.no_volume", "table bad.no_volume lacks column(s) volume"),
    "wrong_type": ("bad.text_close", "table bad.text_close has wrong column type(s): close is text, expected a number"),
    "null_close": ("bad.null_close", "1 row(s) with a missing, zero, negative or non-finite close (first: AAPL on 2020-03-16"),
    "duplicate_keys": ("bad.duplicates", "2 duplicate (symbol, date) row(s) (first: AAPL on 2020-03-17)"),
}


@pytest.mark.parametrize("table, message", BAD_CASES.values(), ids=BAD_CASES.keys())
def test_bad_database_input_is_one_clear_line(bad_tables, table, message):
    url = f"{bad_tables}?table={table}"
    with pytest.raises(ScenarioInputError) as info:
        load_market_data(url)
    text = str(info.value)
    assert message in text and f"'{source_name(url)}'" in text and "\n" not in text


def test_unreachable_server_and_cli_exit(bad_tables, tmp_path):
    with pytest.raises(ScenarioInputError, match=r"'postgresql://postgres@127.0.0.1:1/x\?table=market_data.ohlcv': "
                                                 r"cannot connect to PostgreSQL: .*refused"):
        load_market_data("postgresql://postgres@127.0.0.1:1/x")
    out = tmp_path / "out"
    proc = run_cli(["--market-data", f"{bad_tables}?table=bad.text_close", "--output-dir", str(out)], tmp_path / "home")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "close is text, expected a number" in proc.stderr
    assert not out.exists()


# --- the Dagster graph and the CLI -------------------------------------------------------------------------

def test_graph_from_postgres_equals_graph_from_files(pg, tmp_path):
    """Same data through Parquet or PostgreSQL: identical scenario ids, metadata and time series."""
    from dagster import instance_for_test

    from scenarios_tests.dagster_helpers import materialize_graph

    outputs = {}
    for label, source in (("file", str(BUNDLED_OHLCV)), ("postgres", pg)):
        out = tmp_path / label
        with instance_for_test() as instance:
            results = materialize_graph(instance, out, tmp_path / f"storage_{label}", severities=("severe",),
                                        severities_setting=["severe"], market_data=source)
        assert all(r.success for r in results), label
        outputs[label] = out
    # Equal but for where the data came from (named in each scenario's calibration_source).
    file_doc = normalised_metadata(outputs["file"] / "scenario_metadata.json", str(BUNDLED_OHLCV))
    db_doc = normalised_metadata(outputs["postgres"] / "scenario_metadata.json", source_name(pg))
    assert [s["id"] for s in db_doc["scenarios"]] == [s["id"] for s in file_doc["scenarios"]]
    assert db_doc == file_doc
    file_ts = pq.read_table(outputs["file"] / "scenario_timeseries.parquet")
    db_ts = pq.read_table(outputs["postgres"] / "scenario_timeseries.parquet")
    assert db_ts.num_rows > 0 and db_ts.equals(file_ts)


FAULTS = [
    "CREATE SCHEMA faults",
    "CREATE SEQUENCE faults.reads",
    # Reading the SPX row of 2020-03-02 a second time kills the server process serving the query, mid-COPY.
    """CREATE FUNCTION faults.die_on_second_read() RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
    BEGIN
      IF nextval('faults.reads') >= 2 THEN
        PERFORM pg_terminate_backend(pg_backend_pid());
      END IF;
      RETURN true;
    END $$""",
    """CREATE VIEW faults.ohlcv AS SELECT * FROM market_data.ohlcv t
      WHERE CASE WHEN t.symbol = 'SPX' AND t.date = DATE '2020-03-02' THEN faults.die_on_second_read() ELSE true END""",
]


def test_cli_on_postgres_instance_and_lost_connection(pg, tmp_path):
    """Runs, events and schedules in PostgreSQL (dagster.postgres.yaml); market data from PostgreSQL; a connection
    lost during the run fails it and leaves the previous catalog untouched."""
    with temporary_database() as dagster_db:
        home = tmp_path / "home"
        home.mkdir()
        (home / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.postgres.yaml").read_text())
        env = dagster_pg_env(dagster_db)
        out = tmp_path / "out"
        args = ["--type", "historical", "--severity", "severe", "--output-dir", str(out)]
        proc = run_cli([*args, "--market-data", pg], home, env)
        assert proc.returncode == 0, proc.stderr
        assert "severe   historical" in proc.stdout
        runs = query(dagster_db, "SELECT pipeline_name, status FROM runs ORDER BY create_timestamp")
        assert runs == [("market_data_job", "SUCCESS"), ("scenarios_job", "SUCCESS"), ("catalog_job", "SUCCESS")]
        materialized = "SELECT count(*) > 0 FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'"
        assert query(dagster_db, materialized) == [(True,)]
        assert {"runs", "event_logs", "jobs", "job_ticks"} <= {t for (t,) in query(
            dagster_db, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert not (home / "history").exists()  # nothing went to SQLite
        before = snapshot(out)

        execute(pg, *FAULTS)  # the first read (the CLI's check) passes, the run's read loses its connection
        try:
            proc = run_cli([*args, "--market-data", f"{pg}?table=faults.ohlcv"], home, env)
        finally:
            execute(pg, "DROP SCHEMA faults CASCADE")
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "market data failed" in proc.stderr and "connection lost" in proc.stderr
        assert f"the library in {out} is unchanged (current build: {os.readlink(out / 'current').split('/')[-1]})" in proc.stderr
        assert snapshot(out) == before
        last = query(dagster_db, "SELECT pipeline_name, status FROM runs ORDER BY create_timestamp DESC LIMIT 1")
        assert last == [("market_data_job", "FAILURE")]
