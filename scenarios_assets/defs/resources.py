"""Run settings shared by every asset: where the data is, where the catalog goes, which config."""


import json
import os
from pathlib import Path

from dagster import ConfigurableResource

from scenarios_assets.core.config import config_hash, load_config
from scenarios_assets.core.families import FAMILY_SPECS
from scenarios_assets.core.market import MarketData, load_configured_market_data, market_source
from scenarios_assets.core.paths import BUNDLED_ECONOMIC, DEFAULT_OUTPUT_DIR
from scenarios_assets.core.severity import SEVERITIES
from scenarios_assets.core.store import location

DEFAULT_API_URL = "http://127.0.0.1:8000"  # `scenarios serve` without flags (make ui starts it there)


class ScenarioSettings(ConfigurableResource):
    """Empty fields fall back to the environment (SCENARIOS_MARKET_DATA, SCENARIOS_OUTPUT_DIR,
    SCENARIOS_CONFIG), then to the bundled data, ``data/scenarios`` and the shipped config."""

    market_data: str = ""
    economic_data: str = ""
    output_dir: str = ""  # a local directory or an fsspec URL (s3://bucket/prefix, file:///dir, memory://name)
    config_file: str = ""
    # Overrides of config keys (JSON of a partial `scenarios_pipeline` mapping), set by the CLI flags.
    overrides_json: str = "{}"
    # What the catalog holds: empty means every registered family and all severities.
    families: list[str] = []
    severities: list[str] = []
    dry_run: bool = False
    # Base URL of `scenarios serve` (the REST API), which serves the report and its charts to the Dagster UI
    # (the catalog's metadata shows the charts from it). Empty: $SCENARIOS_API_URL, else the API's default address.
    api_url: str = ""

    def market_data_source(self) -> str:
        return market_source(self.market_data)

    def load_market_data(self) -> MarketData:
        """The validated panel the configured source and selection give (what market_data/ohlcv holds)."""
        return load_configured_market_data(self.market_data_source(), self.pipeline_config()["data"])

    def economic_data_source(self) -> str:
        return self.economic_data or os.environ.get("SCENARIOS_ECONOMIC_DATA") or str(BUNDLED_ECONOMIC)

    def api_base_url(self) -> str:
        return (self.api_url or os.environ.get("SCENARIOS_API_URL") or DEFAULT_API_URL).rstrip("/")

    def output_path(self) -> Path:
        """The library: a local directory or an fsspec URL (``s3://bucket/prefix``, ``file:///dir``,
        ``memory://name``; core/store.py), as a pathlib-like path."""
        return location(self.output_dir or os.environ.get("SCENARIOS_OUTPUT_DIR") or DEFAULT_OUTPUT_DIR)

    def pipeline_config(self) -> dict:
        path = self.config_file or os.environ.get("SCENARIOS_CONFIG") or None
        return load_config(path, json.loads(self.overrides_json))

    def config_hash(self) -> str:
        return config_hash(self.pipeline_config())

    def catalog_families(self) -> list[str]:
        return self.families or list(FAMILY_SPECS)

    def catalog_severities(self) -> list[str]:
        return self.severities or list(SEVERITIES)
