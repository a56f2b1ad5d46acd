"""The code location: `from scenarios_assets.definitions import defs` (workspace.yaml points here)."""

from dagster import Definitions, FilesystemIOManager

from scenarios_assets.defs.automation import with_stage1_upstream
from scenarios_assets.defs.executors import scenarios_executor
from scenarios_assets.defs.jobs import ALL_JOBS, catalog_job, market_data_job, scenarios_job
from scenarios_assets.defs.market_data import economic, ohlcv
from scenarios_assets.defs.metrics import scenario_metrics
from scenarios_assets.defs.resources import ScenarioSettings
from scenarios_assets.defs.scenarios import catalog, family_assets
from scenarios_assets.defs.schedules import scenarios_daily
from scenarios_assets.defs.sensors import ALL_SENSORS

defs = Definitions(
    # market_data/ohlcv also depends on stage1/ohlcv, defined by the stage-1 code location (README, Automation).
    assets=[with_stage1_upstream(ohlcv), economic, *family_assets, catalog, scenario_metrics],
    jobs=ALL_JOBS,
    schedules=[scenarios_daily],
    sensors=ALL_SENSORS,
    resources={
        "settings": ScenarioSettings(),
        # Asset values are pickled under the instance's storage directory ($DAGSTER_HOME/storage), so
        # runs of the CLI, the UI and the daemon pass them to one another.
        "io_manager": FilesystemIOManager(),
    },
    # In process (the jobs' default), multiprocess (--parallel) or Dask (--executor dask), chosen per run.
    executor=scenarios_executor,
)


# Module-level job factories, so that `dagster.reconstructable` can rebuild the jobs in other processes.
def market_data_job_def():
    return defs.resolve_job_def(market_data_job.name)


def scenarios_job_def():
    return defs.resolve_job_def(scenarios_job.name)


def catalog_job_def():
    return defs.resolve_job_def(catalog_job.name)
