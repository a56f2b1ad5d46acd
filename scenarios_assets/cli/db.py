"""`scenarios load-market-data`: publish an OHLCV dataset into the PostgreSQL table of the input contract (README, "Market data").

    scenarios load-market-data --to postgresql://user@host:5432/db [--from FILE_OR_DIR]

The input (default: the bundled data) is validated with ``core.data.market.validate_ohlcv`` first; then the schema
and table (primary key (symbol, date)) are created when missing and the rows upserted in one transaction.
``?table=schema.table`` in the URL targets another table than ``market_data.ohlcv``.
"""

from __future__ import annotations

import argparse
import sys
import time

from scenarios_assets.core.models.errors import ScenarioInputError

EXIT_OK, EXIT_BAD_INPUT = 0, 2


def build_parser() -> argparse.ArgumentParser:
    from scenarios_assets.service.arguments import OneLineParser
    from scenarios_assets.core.data.paths import BUNDLED_OHLCV

    p = OneLineParser(
        prog="scenarios load-market-data",
        description="Validate an OHLCV dataset and upsert it into PostgreSQL (table market_data.ohlcv by default).",
    )
    p.add_argument("--to", required=True, metavar="URL",
                   help="postgresql://user[:password]@host[:port]/db[?table=schema.table]")
    p.add_argument("--from", dest="source", default=str(BUNDLED_OHLCV), metavar="SOURCE",
                   help="OHLCV Parquet/CSV file or directory, or a postgresql:// URL (default: the bundled data)")
    return p


def load_market_data_main(argv: list[str] | None = None, out=None) -> int:
    out = out or sys.stdout
    try:
        args = build_parser().parse_args(argv)
        from scenarios_assets.core.data.database import is_postgres_url, source_name, write_ohlcv_postgres
        from scenarios_assets.core.data.market import read_ohlcv, validate_ohlcv

        if not is_postgres_url(args.to):
            raise ScenarioInputError(f"--to '{args.to}' is not a postgresql:// URL")
        started = time.perf_counter()
        name = source_name(args.source) if is_postgres_url(args.source) else args.source
        ohlcv, report = validate_ohlcv(read_ohlcv(args.source), name)
        result = write_ohlcv_postgres(ohlcv, args.to)
    except ScenarioInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    seconds = time.perf_counter() - started
    print(
        f"loaded {result['rows']} rows ({ohlcv['symbol'].nunique()} symbols, "
        f"{ohlcv['date'].min().date()}..{ohlcv['date'].max().date()}) from {name} into {result['target']}: "
        f"{result['inserted']} inserted, {result['updated']} updated, {result['unchanged']} unchanged "
        f"({seconds:.1f} s)",
        file=out,
    )
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(load_market_data_main())
