"""Jobs: market data, the severity-partitioned scenario families, and the catalog with what follows it."""

from typing import Any

from dagster import AssetSelection, define_asset_job

from scenarios_assets.defs.keys import CATALOG_KEY, ECONOMIC_KEY, MARKET_KEY
from scenarios_assets.defs.scenarios import family_assets

# Light workloads run fastest in process; the CLI's --parallel switches to the multiprocess executor.
IN_PROCESS: dict[str, Any] = {"execution": {"config": {"in_process": {}}}}

market_data_job = define_asset_job(
    "market_data_job",
    selection=AssetSelection.assets(MARKET_KEY, ECONOMIC_KEY),
    description="Load and validate the market data and the economic series.",
    config=IN_PROCESS,
)

scenarios_job = define_asset_job(
    "scenarios_job",
    selection=AssetSelection.assets(*family_assets),
    description="Every scenario family for one severity partition.",
    config=IN_PROCESS,
)

catalog_job = define_asset_job(
    "catalog_job",
    selection=AssetSelection.assets(CATALOG_KEY).downstream(),
    description="Assemble, validate and write the scenario catalog, then the downstream assets.",
    config=IN_PROCESS,
)

ALL_JOBS = [market_data_job, scenarios_job, catalog_job]
