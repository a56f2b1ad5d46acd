"""Schedule, sensor and declarative automation, evaluated against temporary instances (fast, no daemon).

Events are produced three ways: real in-process runs (market data), runless reports (what the REST endpoint
records; also used to stand in for finished family partitions, with the metadata the assets record), and
runs created in the instance but not finished (in progress) or reported failed.
"""

from datetime import datetime
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from dagster import (
    AssetKey,
    AssetMaterialization,
    DagsterInstance,
    DagsterRunStatus,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    FilesystemIOManager,
    RunRequest,
    build_schedule_context,
    build_sensor_context,
    evaluate_automation_conditions,
    instance_for_test,
    materialize,
    validate_run_config,
)
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData

from scenarios_assets.core.data.paths import BUNDLED_OHLCV
from scenarios_assets.core.models.severity import SEVERITIES
from scenarios_assets.definitions import defs
from scenarios_assets.defs import automation
from scenarios_assets.defs.automation import CLI_TAG, DATA_VERSION_TAG
from scenarios_assets.defs.freshness import family_keys, source_market_version
from scenarios_assets.defs.jobs import IN_PROCESS
from scenarios_assets.defs.partitions import severity_partitions
from scenarios_assets.defs.resources import ScenarioSettings
from scenarios_assets.defs.keys import CATALOG_KEY, ECONOMIC_KEY, MARKET_KEY, METRICS_KEY, STAGE1_OHLCV_KEY
from scenarios_assets.defs.schedules import scenarios_daily
from scenarios_assets.defs.sensors import scenarios_after_market_data, scenarios_automation

NY = ZoneInfo("America/New_York")
TICK = datetime(2025, 6, 2, 19, 30, tzinfo=NY)


@pytest.fixture()
def env(tmp_path):
    """A temporary instance, the settings the daemon would use, and helpers to create events in it."""
    with instance_for_test() as instance:
        yield Env(instance, tmp_path)


class Env:
    def __init__(self, instance: DagsterInstance, tmp_path):
        self.instance = instance
        self.tmp = tmp_path
        self.settings = ScenarioSettings(output_dir=str(tmp_path / "out"))
        self.resources = {"settings": self.settings, "io_manager": FilesystemIOManager(base_dir=str(tmp_path / "storage"))}
        self.sensor_cursor = None

    def materialize_market(self, tags=None, settings=None):
        resources = {**self.resources, "settings": settings or self.settings}
        result = materialize(defs.assets, instance=self.instance, resources=resources,
                             selection=["market_data/ohlcv", "market_data/economic"], tags=tags or {})
        assert result.success
        return result.asset_materializations_for_node("market_data__ohlcv")[0].metadata["data_version"].value

    def report_families(self, version, config_hash=None, severities=SEVERITIES, keys=None):
        """Stand-ins for finished family partitions, with the metadata the family assets record."""
        config_hash = config_hash or self.settings.config_hash()
        for key in keys or family_keys():
            for severity in severities:
                self.instance.report_runless_asset_event(AssetMaterialization(
                    key, partition=severity, metadata={"data_version": version, "config_hash": config_hash}))

    def start_run(self, severity, keys=None, tags=None):
        """A scenarios_job run that has started but not finished: its partitions are in progress."""
        job = defs.resolve_job_def("scenarios_job")
        return self.instance.create_run_for_job(
            job_def=job, asset_selection=frozenset(keys or family_keys()), status=DagsterRunStatus.STARTED,
            tags={"dagster/partition": severity, **(tags or {})})

    def finish_run(self, run, ok=True, metadata=None):
        """Finish a started run: materialise its planned partitions and succeed, or fail it."""
        if not ok:
            self.instance.report_run_failed(run)
            return
        severity = run.tags["dagster/partition"]
        for key in run.asset_selection:
            event = DagsterEvent(
                event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value, job_name=run.job_name,
                event_specific_data=StepMaterializationData(AssetMaterialization(key, partition=severity, metadata=metadata or {})))
            self.instance.report_dagster_event(event, run_id=run.run_id)
        self.instance.handle_run_event(
            run.run_id, DagsterEvent(event_type_value=DagsterEventType.RUN_SUCCESS.value, job_name=run.job_name))

    def schedule_tick(self, settings=None, when=TICK):
        context = build_schedule_context(
            instance=self.instance, scheduled_execution_time=when,
            resources={"settings": settings or self.settings}, repository_def=defs.get_repository_def())
        return scenarios_daily.evaluate_tick(context)

    def sensor_tick(self):
        context = build_sensor_context(instance=self.instance, cursor=self.sensor_cursor, definitions=defs,
                                       resources={"settings": self.settings})
        result = scenarios_after_market_data.evaluate_tick(context)
        self.sensor_cursor = result.cursor
        return result


def skip_message(result) -> str:
    assert not result.run_requests, result.run_requests
    return result.skip_message or ""


def assert_three_severity_requests(requests: list[RunRequest], version: str):
    assert [r.partition_key for r in requests] == list(SEVERITIES)
    assert len({r.run_key for r in requests}) == 3
    for request in requests:
        assert set(request.asset_selection) == set(family_keys())
        assert request.tags[DATA_VERSION_TAG] == version


# --- wiring -----------------------------------------------------------------------------------------

def test_schedule_and_sensors_are_wired_and_on_by_default():
    schedule = defs.resolve_schedule_def("scenarios_daily")
    assert schedule.cron_schedule == "30 19 * * *" and schedule.execution_timezone == "America/New_York"
    assert schedule.default_status == DefaultScheduleStatus.RUNNING
    for name in ("scenarios_after_market_data", "scenarios_automation"):
        assert defs.resolve_sensor_def(name).default_status == DefaultSensorStatus.RUNNING
    graph = defs.resolve_asset_graph()
    # Built from the family registry: the schedule's job holds the market data and every family asset.
    job = defs.resolve_job_def(schedule.job_name)
    assert set(job.asset_layer.executable_asset_keys) == set(family_keys()) | {MARKET_KEY, ECONOMIC_KEY}
    assert {a.key for a in defs.assets if getattr(a, "partitions_def", None) == severity_partitions} == set(family_keys())
    assert graph.get(CATALOG_KEY).automation_condition is not None
    metrics = graph.get(METRICS_KEY)
    assert metrics.group_name == "metrics" and metrics.partitions_def is None
    assert graph.get(MARKET_KEY).parent_keys == {STAGE1_OHLCV_KEY}  # cross-location dependency on stage 1
    assert METRICS_KEY in defs.resolve_job_def("catalog_job").asset_layer.asset_graph.get_all_asset_keys()
    assert scenarios_automation.asset_selection.resolve(graph) >= {CATALOG_KEY, METRICS_KEY, MARKET_KEY}


def test_automation_can_start_stopped(monkeypatch):
    monkeypatch.setenv(automation.AUTOMATION_ENV, "off")
    assert automation.default_sensor_status() == DefaultSensorStatus.STOPPED
    assert automation.default_schedule_status() == DefaultScheduleStatus.STOPPED
    monkeypatch.setenv(automation.SENSOR_INTERVAL_ENV, "5")
    assert automation.sensor_interval_seconds() == 5


# --- schedule ---------------------------------------------------------------------------------------

def test_schedule_requests_three_severity_runs_then_skips_on_the_same_data_version(env):
    # No market data yet: the tick refreshes it (one run, never mixed with the partitioned families).
    first = env.schedule_tick().run_requests
    assert len(first) == 1 and set(first[0].asset_selection) == {MARKET_KEY, ECONOMIC_KEY}
    assert first[0].run_key == "2025-06-02|market_data" and first[0].run_config == IN_PROCESS

    version = env.materialize_market()
    assert source_market_version(env.settings)[0] == version  # the tick's hash is the asset's data version
    requests = env.schedule_tick().run_requests
    assert_three_severity_requests(requests, version)
    assert [r.run_key for r in requests] == [f"2025-06-02|{s}" for s in SEVERITIES]
    job = defs.resolve_job_def(scenarios_daily.job_name)
    for request in requests:  # resolved as the daemon launches them: partition tag, valid run config
        assert request.tags["dagster/partition"] == request.partition_key
        assert request.run_config == IN_PROCESS and validate_run_config(job, request.run_config)

    # Those runs under way: the next evaluation does not ask again.
    runs = [env.start_run(s) for s in SEVERITIES]
    assert "already under way" in skip_message(env.schedule_tick())
    for run in runs:
        env.finish_run(run, metadata={"data_version": version, "config_hash": env.settings.config_hash()})

    # Next evening, same data: skipped with the reason.
    message = skip_message(env.schedule_tick(when=datetime(2025, 6, 3, 19, 30, tzinfo=NY)))
    assert "unchanged since the last successful scenario build" in message and version in message

    # Another config (e.g. a changed seed) is not the same build: the severities are requested again.
    other = ScenarioSettings(output_dir=env.settings.output_dir, overrides_json='{"seed": 7}')
    assert len(env.schedule_tick(settings=other).run_requests) == 3


def test_schedule_refreshes_market_data_when_the_source_changes_and_rebuilds_only_what_is_stale(env):
    version = env.materialize_market()
    env.report_families(version)
    assert "unchanged" in skip_message(env.schedule_tick())

    # The source gets one more day: a refresh run (the sensor then takes over), not the scenario runs.
    raw = pd.read_parquet(BUNDLED_OHLCV)
    last = raw[raw["date"] == raw["date"].max()].copy()
    last["date"] = pd.Timestamp(raw["date"].max()) + pd.offsets.BDay(1)
    changed = env.tmp / "ohlcv.parquet"
    pd.concat([raw, last]).to_parquet(changed)
    moved = ScenarioSettings(output_dir=env.settings.output_dir, market_data=str(changed))
    requests = env.schedule_tick(settings=moved).run_requests
    assert len(requests) == 1 and set(requests[0].asset_selection) == {MARKET_KEY, ECONOMIC_KEY}

    # One failed partition of yesterday: only that severity is requested.
    new_version = env.materialize_market(settings=moved)
    assert new_version != version
    env.report_families(new_version, severities=["moderate", "extreme"])
    requests = env.schedule_tick(settings=moved).run_requests
    assert [r.partition_key for r in requests] == ["severe"]


# --- sensor -----------------------------------------------------------------------------------------

def test_sensor_requests_three_runs_once_per_materialisation(env):
    assert skip_message(env.sensor_tick()).startswith("No new materialization")
    version = env.materialize_market()
    result = env.sensor_tick()
    assert_three_severity_requests(result.run_requests, version)
    assert {r.job_name for r in result.run_requests} == {"scenarios_job"}
    assert result.cursor  # the event's storage id, stored with the sensor's state in the instance

    # Re-evaluated with its cursor: nothing new, nothing requested (also after a daemon restart).
    assert not env.sensor_tick().run_requests
    assert not env.sensor_tick().run_requests


def test_sensor_skips_the_same_data_version_and_cli_runs_and_refreshes_after_a_report(env):
    version = env.materialize_market()
    env.sensor_tick()
    env.report_families(version)

    # The same data materialised again (e.g. stage 1 re-ran): nothing to do, and it says why.
    env.materialize_market()
    message = skip_message(env.sensor_tick())
    assert "unchanged" in message and version in message

    # A CLI run builds its own partitions and catalog: the sensor stays out of the way.
    env.materialize_market(tags={CLI_TAG: "1"})
    assert "CLI" in skip_message(env.sensor_tick())

    # Stage 1 reports new data through the REST endpoint (a runless event): refresh the market data first.
    env.instance.report_runless_asset_event(AssetMaterialization(MARKET_KEY))
    result = env.sensor_tick()
    assert len(result.run_requests) == 1 and result.run_requests[0].job_name == "market_data_job"
    assert not env.sensor_tick().run_requests

    # Partitions in progress are not requested twice.
    env.materialize_market(settings=ScenarioSettings(output_dir=env.settings.output_dir, overrides_json='{"seed": 9}'))
    run = env.start_run("severe")
    other = ScenarioSettings(output_dir=env.settings.output_dir, overrides_json='{"seed": 9}')
    env.settings = other
    requests = env.sensor_tick().run_requests
    assert [r.partition_key for r in requests] == ["moderate", "extreme"]
    env.finish_run(run, ok=False)


# --- catalog automation -----------------------------------------------------------------------------

class Automation:
    def __init__(self, instance, definitions=defs):
        self.instance, self.cursor, self.defs = instance, None, definitions

    def tick(self) -> set[AssetKey]:
        result = evaluate_automation_conditions(defs=self.defs, instance=self.instance, cursor=self.cursor)
        self.cursor = result.cursor
        return {r.key for r in result.results if r.true_subset.size}


def plain_eager_defs():
    """The same definitions with a plain AutomationCondition.eager() on the catalog, for comparison."""
    from dagster import AutomationCondition, Definitions

    assets = [
        a.map_asset_specs(lambda spec: spec.replace_attributes(automation_condition=AutomationCondition.eager()))
        if CATALOG_KEY in a.keys else a
        for a in defs.assets
    ]
    return Definitions(assets=assets, resources=defs.resources)


def test_catalog_builds_once_after_every_partition_and_never_from_a_failed_set(env):
    auto = Automation(env.instance)
    plain = Automation(env.instance, plain_eager_defs())
    assert auto.tick() == set() and plain.tick() == set()
    for key in (MARKET_KEY, ECONOMIC_KEY):
        env.instance.report_runless_asset_event(AssetMaterialization(key))
    assert auto.tick() == set()  # market data alone never rebuilds the catalog
    plain.tick()

    # Day 1: families finish one severity at a time; missing partitions hold the catalog back.
    env.report_families("v1", severities=["moderate"])
    assert auto.tick() == set()
    env.report_families("v1", severities=["severe"])
    assert auto.tick() == set()
    env.report_families("v1", severities=["extreme"])
    assert auto.tick() == {CATALOG_KEY, METRICS_KEY}  # one run: the catalog and the metrics after it
    assert auto.tick() == set()

    # Day 2: three severity runs in progress; the catalog waits for the last one, then fires exactly once.
    runs = {s: env.start_run(s) for s in SEVERITIES}
    assert auto.tick() == set()
    env.finish_run(runs["moderate"])
    assert auto.tick() == set()
    env.finish_run(runs["extreme"])
    assert auto.tick() == set()
    env.finish_run(runs["severe"])
    assert auto.tick() == {CATALOG_KEY, METRICS_KEY}
    assert auto.tick() == set()

    # Day 3: one severity run fails. The catalog is not requested (yesterday's files stay; the failed run
    # is what the UI shows) ...
    runs = {s: env.start_run(s) for s in SEVERITIES}
    env.finish_run(runs["moderate"])
    env.finish_run(runs["severe"], ok=False)
    env.finish_run(runs["extreme"])
    assert env.instance.get_status_by_partition(family_keys()[0], ["severe"], severity_partitions)["severe"].value == "FAILED"
    assert auto.tick() == set()
    assert CATALOG_KEY in plain.tick()  # plain eager would have started the catalog on a half-finished set
    assert auto.tick() == set()
    # ... until the failed partition is rebuilt; then once.
    env.finish_run(env.start_run("severe"))
    assert auto.tick() == {CATALOG_KEY, METRICS_KEY}
    assert auto.tick() == set()


def test_cli_builds_do_not_trigger_the_catalog(env):
    auto = Automation(env.instance)
    auto.tick()
    for key in (MARKET_KEY, ECONOMIC_KEY):
        env.instance.report_runless_asset_event(AssetMaterialization(key))
    env.report_families("v1")
    assert auto.tick() == {CATALOG_KEY, METRICS_KEY}
    # The CLI runs its own catalog right after its severity runs.
    for severity in SEVERITIES:
        env.finish_run(env.start_run(severity, tags={CLI_TAG: "1"}))
    assert auto.tick() == set()


def test_stage1_asset_refreshes_market_data_and_nothing_else(env):
    auto = Automation(env.instance)
    assert auto.tick() == set()  # no stage-1 data yet: market data is not requested on its own
    env.instance.report_runless_asset_event(AssetMaterialization(STAGE1_OHLCV_KEY))
    assert auto.tick() == {MARKET_KEY}  # the sensor takes over from that materialisation
    assert auto.tick() == set()
