"""The asset keys of the graph, their owners, and the key of each registered family: one place for each.

Every other module (assets, jobs, automation, freshness, sensors, schedule, the CLI) imports them from here.
"""

from __future__ import annotations

from dagster import AssetKey

from scenarios_assets.core.families.registry import FamilySpec

MARKET_KEY = AssetKey(["market_data", "ohlcv"])
ECONOMIC_KEY = AssetKey(["market_data", "economic"])
CATALOG_KEY = AssetKey(["scenarios", "catalog"])
METRICS_KEY = AssetKey(["metrics", "scenario_metrics"])
# The stage-1 asset our market data depends on across code locations (see stage1_example/).
STAGE1_OHLCV_KEY = AssetKey(["stage1", "ohlcv"])
FAMILY_PREFIX = "scenarios"

# Who answers for the assets in the UI's catalog and alerts (Dagster owners: "team:<name>" or an e-mail).
OWNERS = ["team:scenarios"]


def family_key(spec: FamilySpec) -> AssetKey:
    """``scenarios/<asset_name>`` of a registered family (``FamilySpec.asset_name``)."""
    return AssetKey([FAMILY_PREFIX, spec.asset_name])
