"""Where the project's bundled inputs and default outputs live."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[3]
BUNDLED_MARKET_DIR = PROJECT_ROOT / "data" / "market"
BUNDLED_OHLCV = BUNDLED_MARKET_DIR / "ohlcv.parquet"
BUNDLED_ECONOMIC = BUNDLED_MARKET_DIR / "economic.parquet"
DEFAULT_OUTPUT_DIR = PROJECT_ROOT / "data" / "scenarios"
DEFAULT_DAGSTER_HOME = PROJECT_ROOT / ".dagster_home"
# The local instance config, copied into DAGSTER_HOME as dagster.yaml (SQLite storage).
INSTANCE_TEMPLATE = PROJECT_ROOT / "dagster.sqlite.yaml"
