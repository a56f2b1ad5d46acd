"""Run settings shared by every asset (where the data is, where the library goes, which config), and the
component that gives the code location its resources and executor (``defs/settings/defs.yaml``).

The ``SCENARIOS_*`` environment variables are read through :class:`dagster.EnvVar` at run time, when a
field is empty (run config and the CLI's flags set the fields). ``defs/settings/defs.yaml`` declares them
as the component's ``requirements.env``, so ``dg list envs`` lists them; a test keeps that list equal to
:data:`SETTINGS_ENV` plus the automation switches.
"""


import json
from pathlib import Path

import dagster as dg
from dagster import ConfigurableResource, EnvVar, FilesystemIOManager

from scenarios_assets.core.models.config import ScenarioConfig, config_hash
from scenarios_assets.core.data.config_file import load_config
from scenarios_assets.core.families.registry import FAMILY_SPECS
from scenarios_assets.core.data.market import MarketData, load_configured_market_data, market_source
from scenarios_assets.core.data.paths import BUNDLED_ECONOMIC, DEFAULT_OUTPUT_DIR
from scenarios_assets.core.models.severity import SEVERITIES
from scenarios_assets.core.library.store import location
from scenarios_assets.defs.executors import scenarios_executor

DEFAULT_API_URL = "http://127.0.0.1:8000"  # `scenarios serve` without flags (make ui starts it there)

# The settings' environment variables (README, "Configuration"); empty fields fall back to them.
MARKET_DATA_ENV = EnvVar("SCENARIOS_MARKET_DATA")
ECONOMIC_DATA_ENV = EnvVar("SCENARIOS_ECONOMIC_DATA")
OUTPUT_DIR_ENV = EnvVar("SCENARIOS_OUTPUT_DIR")
CONFIG_ENV = EnvVar("SCENARIOS_CONFIG")
API_URL_ENV = EnvVar("SCENARIOS_API_URL")
# Read by core.data.database when a PostgreSQL URL has no password.
MARKET_DATA_PASSWORD_ENV = EnvVar("SCENARIOS_MARKET_DATA_PASSWORD")
SETTINGS_ENV = (MARKET_DATA_ENV, ECONOMIC_DATA_ENV, OUTPUT_DIR_ENV, CONFIG_ENV, API_URL_ENV, MARKET_DATA_PASSWORD_ENV)


class ScenarioSettings(ConfigurableResource):
    """Empty fields fall back to the environment (SCENARIOS_MARKET_DATA, SCENARIOS_ECONOMIC_DATA,
    SCENARIOS_OUTPUT_DIR, SCENARIOS_CONFIG, SCENARIOS_API_URL), then to the bundled data, ``data/scenarios``,
    the shipped config and the API's default address."""

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
        return market_source(self.market_data or MARKET_DATA_ENV.get_value())

    def load_market_data(self) -> MarketData:
        """The validated panel the configured source and selection give (what market_data/ohlcv holds)."""
        return load_configured_market_data(self.market_data_source(), ScenarioConfig.from_mapping(self.pipeline_config()).data)

    def economic_data_source(self) -> str:
        return self.economic_data or ECONOMIC_DATA_ENV.get_value() or str(BUNDLED_ECONOMIC)

    def api_base_url(self) -> str:
        return (self.api_url or API_URL_ENV.get_value() or DEFAULT_API_URL).rstrip("/")

    def output_path(self) -> Path:
        """The library: a local directory or an fsspec URL (``s3://bucket/prefix``, ``file:///dir``,
        ``memory://name``; core/library/store.py), as a pathlib-like path."""
        return location(self.output_dir or OUTPUT_DIR_ENV.get_value() or DEFAULT_OUTPUT_DIR)

    def pipeline_config(self) -> dict:
        path = self.config_file or CONFIG_ENV.get_value() or None
        return load_config(path, json.loads(self.overrides_json))

    def config_hash(self) -> str:
        return config_hash(self.pipeline_config())

    def catalog_families(self) -> list[str]:
        return self.families or list(FAMILY_SPECS)

    def catalog_severities(self) -> list[str]:
        return self.severities or list(SEVERITIES)


class ScenarioResources(dg.Component, dg.Model, dg.Resolvable):
    """The code location's resources and executor, loaded from ``defs/settings/defs.yaml``.

    ``settings``: :class:`ScenarioSettings` (empty fields: the environment, see the module doc);
    ``io_manager``: asset values pickled under the instance's storage directory (``$DAGSTER_HOME/storage``),
    so runs of the CLI, the UI and the daemon pass them to one another. The executor runs in process (the
    jobs' default), multiprocess (CLI ``--parallel``) or on Dask (CLI ``--executor dask``), chosen per run.
    """

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        return dg.Definitions(
            resources={"settings": ScenarioSettings(), "io_manager": FilesystemIOManager()},
            executor=scenarios_executor,
        )
