"""Benchmark: market data from PostgreSQL into the in-memory panel.

A synthetic universe of 500 symbols x 2,520 trading days (1.26 M rows; symbol 0 is the SPX reference) is
published with the project's own loader (``core.data.database.write_ohlcv_postgres``: ADBC bulk ingest into a
temporary table, then one upsert) into a throw-away schema, then read back through the one call the
pipeline uses, ``core.data.market.load_market_data("postgresql://...")``: SQL -> Arrow -> validate -> panel.

    load_full      all 1.26 M rows into the panel                                      target <= 3 s
    load_selected  50 symbols x 2 years (filters in SQL; SPX whole history)
    read_only      the SQL -> pandas part alone (ADBC, COPY binary)

Baselines for the driver choice (read only, same query, same rows into a pandas DataFrame):
    pandas.read_sql through SQLAlchemy + psycopg2 (rows as Python tuples), and psycopg2 COPY ... CSV parsed by
    pyarrow. ``--no-baselines`` skips them.

Usage:  python benchmarks/bench_postgres.py [--url postgresql://postgres@127.0.0.1:5432/test] [--repeats 3]
Writes benchmarks/results/bench_postgres.json and prints it. The schema is dropped afterwards.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))

from scenarios_assets.core.data.database import parse_source, read_ohlcv_postgres, select_query  # noqa: E402
from scenarios_assets.core.data.market import load_market_data, validate_ohlcv  # noqa: E402

TARGET_SECONDS = 3.0


def synthetic_ohlcv(n_symbols: int, n_days: int, seed: int = 7) -> pd.DataFrame:
    """Valid long OHLCV rows: correlated heavy-tailed daily returns, consistent open/high/low, volumes."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2015-01-02", periods=n_days)
    market = rng.standard_t(5, n_days) * 0.008
    beta = rng.uniform(0.5, 1.5, n_symbols)
    beta[0] = 1.0
    idio = rng.standard_t(5, (n_days, n_symbols)) * rng.uniform(0.005, 0.02, n_symbols)
    idio[:, 0] = 0.0
    log_ret = np.clip(market[:, None] * beta + idio, -0.5, 0.5)
    close = rng.uniform(20, 400, n_symbols) * np.exp(np.cumsum(log_ret, axis=0))
    open_ = close * np.exp(rng.normal(0, 0.003, close.shape))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.004, close.shape)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.004, close.shape)))
    volume = rng.integers(100_000, 20_000_000, close.shape).astype(np.float64)
    symbols = ["SPX", *[f"S{i:04d}" for i in range(1, n_symbols)]]
    return pd.DataFrame(
        {
            "symbol": np.repeat(symbols, n_days),
            "date": np.tile(dates.to_numpy(), n_symbols),
            **{name: arr.T.ravel() for name, arr in
               (("open", open_), ("high", high), ("low", low), ("close", close), ("volume", volume))},
        }
    )


def timed(fn, repeats: int) -> tuple[list[float], object]:
    seconds, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        seconds.append(round(time.perf_counter() - started, 3))
    return seconds, result


def baseline_read_sql(src, query: str) -> float:
    import sqlalchemy

    engine = sqlalchemy.create_engine(src.dsn.replace("postgresql://", "postgresql+psycopg2://", 1))
    try:
        started = time.perf_counter()
        with engine.connect() as conn:
            frame = pd.read_sql(sqlalchemy.text(query), conn)
        assert len(frame) > 0
        return round(time.perf_counter() - started, 3)
    finally:
        engine.dispose()


def baseline_copy_csv(src, query: str) -> float:
    import psycopg2
    import pyarrow as pa
    import pyarrow.csv as pacsv

    started = time.perf_counter()
    conn = psycopg2.connect(src.dsn)
    try:
        buf = io.BytesIO()
        conn.cursor().copy_expert(f"COPY ({query}) TO STDOUT WITH (FORMAT csv)", buf)
    finally:
        conn.close()
    buf.seek(0)
    names = ["symbol", "date", "open", "high", "low", "close", "volume"]
    types = {"symbol": pa.string(), "date": pa.date32(), **{c: pa.float64() for c in names[2:]}}
    table = pacsv.read_csv(buf, read_options=pacsv.ReadOptions(column_names=names),
                           convert_options=pacsv.ConvertOptions(column_types=types))
    frame = table.to_pandas()
    assert len(frame) > 0
    return round(time.perf_counter() - started, 3)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default=os.environ.get("SCENARIOS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    p.add_argument("--symbols", type=int, default=500)
    p.add_argument("--days", type=int, default=2520)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-baselines", action="store_true")
    args = p.parse_args()

    from scenarios_assets.core.data.database import connect, write_ohlcv_postgres

    schema = f"scenarios_bench_{os.getpid()}"
    url = f"{args.url}{'&' if '?' in args.url else '?'}table={schema}.ohlcv"
    src = parse_source(url)
    frame = synthetic_ohlcv(args.symbols, args.days)
    ohlcv, _ = validate_ohlcv(frame, "synthetic")
    result: dict = {
        "benchmark": "postgres_market_data",
        "rows": len(ohlcv),
        "symbols": args.symbols,
        "days": args.days,
        "driver": "adbc-driver-postgresql (COPY binary -> Arrow), filters as SQL literals",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "target_seconds": TARGET_SECONDS,
    }
    try:
        started = time.perf_counter()
        publish = write_ohlcv_postgres(ohlcv, url)
        result["publish_seconds"] = round(time.perf_counter() - started, 3)
        result["publish"] = {k: publish[k] for k in ("inserted", "updated", "unchanged")}
        with connect(src) as conn, conn.cursor() as cur:
            cur.execute(f"ANALYZE {src.qualified}")

        load_market_data(url)  # warm the server's cache and the imports once
        seconds, market = timed(lambda: load_market_data(url), args.repeats)
        assert market.close.shape == (args.days, args.symbols)
        result["load_full_seconds"] = seconds
        result["load_full_best"] = min(seconds)
        result["load_full_median"] = statistics.median(seconds)
        result["passed"] = result["load_full_median"] <= TARGET_SECONDS
        result["panel_shape"] = list(market.close.shape)
        result["data_version"] = market.data_version

        seconds, raw = timed(lambda: read_ohlcv_postgres(url), args.repeats)
        result["read_only_seconds"] = seconds
        assert len(raw) == len(ohlcv)

        chosen = [f"S{i:04d}" for i in range(1, min(args.symbols, 51))]
        end = ohlcv["date"].max()
        start = end - pd.DateOffset(years=2)
        seconds, selected = timed(
            lambda: load_market_data(url, symbols=chosen, start_date=str(start.date()), end_date=str(end.date())),
            args.repeats,
        )
        result["load_selected"] = {"symbols": len(chosen), "years": 2, "rows": selected.report["rows"],
                                   "seconds": seconds}

        file_path = RESULTS / f".bench_postgres_{os.getpid()}.parquet"
        RESULTS.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(file_path)
        try:
            seconds, from_file = timed(lambda: load_market_data(file_path), args.repeats)
        finally:
            file_path.unlink(missing_ok=True)
        result["parquet_file_load_seconds"] = seconds
        result["same_data_version_as_parquet"] = from_file.data_version == market.data_version

        if not args.no_baselines:
            query = select_query(src)
            result["baselines_read_only_seconds"] = {
                "adbc_copy_binary": min(result["read_only_seconds"]),
                "psycopg2_copy_csv_pyarrow": baseline_copy_csv(src, query),
                "pandas_read_sql_psycopg2": baseline_read_sql(src, query),
            }
    finally:
        with connect(src) as conn, conn.cursor() as cur:
            cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "bench_postgres.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if result.get("passed") else 1


if __name__ == "__main__":
    raise SystemExit(main())
