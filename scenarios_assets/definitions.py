"""The code location: `from scenarios_assets.definitions import defs` (workspace.yaml points here)."""

from dagster import Definitions, FilesystemIOManager, multi_or_in_process_executor

from scenarios_assets.defs.jobs import ALL_JOBS, catalog_job, market_data_job, scenarios_job
from scenarios_assets.defs.market_data import economic, ohlcv
from scenarios_assets.defs.resources import ScenarioSettings
from scenarios_assets.defs.scenarios import catalog, family_assets

defs = Definitions(
    assets=[ohlcv, economic, *family_assets, catalog],
    jobs=ALL_JOBS,
    resources={
        "settings": ScenarioSettings(),
        # Asset values are pickled under the instance's storage directory ($DAGSTER_HOME/storage), so
        # runs of the CLI, the UI and the daemon pass them to one another.
        "io_manager": FilesystemIOManager(),
    },
    executor=multi_or_in_process_executor,
)


# Module-level job factories, so that `dagster.reconstructable` can rebuild the jobs in other processes.
def market_data_job_def():
    return defs.resolve_job_def(market_data_job.name)


def scenarios_job_def():
    return defs.resolve_job_def(scenarios_job.name)


def catalog_job_def():
    return defs.resolve_job_def(catalog_job.name)
