"""Running the real Definitions against a temporary instance, the way the CLI and daemon do."""

from dagster import FilesystemIOManager, materialize

from scenarios_assets.core.models.severity import SEVERITIES
from scenarios_assets.definitions import defs
from scenarios_assets.defs.resources import ScenarioSettings
from scenarios_assets.defs.scenarios import family_assets

MARKET = ["market_data/ohlcv", "market_data/economic"]


def family_selection() -> list[str]:
    return [a.key.to_user_string() for a in family_assets]


def materialize_graph(instance, output_dir, storage_dir, severities=SEVERITIES, severities_setting=None, **settings):
    """Market data, every family for each of ``severities``, then the catalog; returns the run results.

    ``severities_setting`` is what the catalog is asked to hold (default: all severities)."""
    resources = {
        "settings": ScenarioSettings(output_dir=str(output_dir), severities=list(severities_setting or []), **settings),
        "io_manager": FilesystemIOManager(base_dir=str(storage_dir)),
    }
    assets = defs.assets
    results = [materialize(assets, instance=instance, resources=resources, selection=MARKET)]
    for severity in severities:
        results.append(
            materialize(assets, instance=instance, resources=resources, selection=family_selection(), partition_key=severity)
        )
    results.append(
        materialize(assets, instance=instance, resources=resources, selection=["scenarios/catalog"], raise_on_error=False)
    )
    return results
