"""Code location `stage1`: publishes the daily OHLCV file the scenarios pipeline reads.

The asset key is ``stage1/ohlcv``: two code locations may not define the same key, so the scenarios
location only *depends* on it (``deps``), and ``market_data/ohlcv`` stays the scenarios location's asset.

Environment: ``STAGE1_SOURCE`` (where the upstream extract is; default: the bundled sample data) and
``STAGE1_OUTPUT`` (where the published file goes; default ``data/stage1/ohlcv.parquet``). Point the scenarios
location's ``SCENARIOS_MARKET_DATA`` at ``STAGE1_OUTPUT``.
"""

import hashlib
import os
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
from dagster import AssetExecutionContext, DataVersion, Definitions, MaterializeResult, MetadataValue, asset

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REQUIRED_COLUMNS = ("symbol", "date", "open", "high", "low", "close", "volume")


def source_path() -> Path:
    return Path(os.environ.get("STAGE1_SOURCE") or PROJECT_ROOT / "data" / "market" / "ohlcv.parquet")


def output_path() -> Path:
    return Path(os.environ.get("STAGE1_OUTPUT") or PROJECT_ROOT / "data" / "stage1" / "ohlcv.parquet")


@asset(
    key=["stage1", "ohlcv"],
    group_name="stage1",
    description="Daily OHLCV of the universe (the stage-1 output contract: symbol, date, open, high, low, close, "
    "volume), published atomically to STAGE1_OUTPUT. Its data version is the SHA-256 of the file.",
)
def stage1_ohlcv(context: AssetExecutionContext) -> MaterializeResult:
    table = pq.read_table(source_path())
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise ValueError(f"stage-1 extract {source_path()} lacks column(s) {', '.join(missing)}")
    table = table.select(list(REQUIRED_COLUMNS))
    out = output_path()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)  # readers never see a half-written file
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    digest = hashlib.sha256(out.read_bytes()).hexdigest()[:16]
    dates = table.column("date")
    return MaterializeResult(
        data_version=DataVersion(digest),
        metadata={
            "path": MetadataValue.path(str(out)),
            "rows": table.num_rows,
            "symbols": len(set(table.column("symbol").to_pylist())),
            "last_date": str(max(dates.to_pylist())),
            "sha256": digest,
        },
    )


defs = Definitions(assets=[stage1_ohlcv])
