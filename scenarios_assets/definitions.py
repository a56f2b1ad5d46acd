"""The code location: every definition under ``scenarios_assets/defs`` autoloaded (``dg`` project layout).

``workspace.yaml``, ``dg dev`` ([tool.dg.project] in pyproject.toml) and ``dagster dev`` load ``defs`` from
here. Assets, checks, jobs, schedules and sensors are module-level objects of the ``defs`` modules; the
resources and the executor come from the ``ScenarioResources`` component (``defs/settings/defs.yaml``).
"""

from pathlib import Path

from dagster import load_from_defs_folder

defs = load_from_defs_folder(path_within_project=Path(__file__).parent)


# Module-level job factories, so that `dagster.reconstructable` can rebuild the jobs in other processes.
def market_data_job_def():
    return defs.resolve_job_def("market_data_job")


def scenarios_job_def():
    return defs.resolve_job_def("scenarios_job")


def catalog_job_def():
    return defs.resolve_job_def("catalog_job")
