"""Sensors: scenario runs after each new market-data materialisation, and the automation-condition sensor
that rebuilds the catalog (and what follows it) once every family partition is done."""


from dagster import (
    AssetSelection,
    AutomationConditionSensorDefinition,
    EventLogEntry,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    asset_sensor,
)

from scenarios_assets.defs.dead_runs import scenarios_dead_runs
from scenarios_assets.defs.automation import TRIGGER_TAG, default_sensor_status, sensor_interval_seconds
from scenarios_assets.defs.freshness import build_state, catalog_note, event_state, run_tags
from scenarios_assets.defs.jobs import market_data_job, scenarios_job
from scenarios_assets.defs.resources import ScenarioSettings
from scenarios_assets.defs.keys import MARKET_KEY


@asset_sensor(
    asset_key=MARKET_KEY,
    name="scenarios_after_market_data",
    jobs=[market_data_job, scenarios_job],
    minimum_interval_seconds=sensor_interval_seconds(),
    default_status=default_sensor_status(),
    description="On each new materialisation of market_data/ohlcv: one scenarios_job run per severity, for "
    "the families whose partition is not yet built from that data version and config (none: skipped with "
    "the reason). A materialisation reported from outside (REST) first refreshes market_data from the "
    "source. The cursor (the event's storage id) lives in the instance, so it survives restarts.",
)
def scenarios_after_market_data(context: SensorEvaluationContext, asset_event: EventLogEntry, settings: ScenarioSettings):
    market = event_state(context.instance, asset_event)
    if market.reported or market.data_version is None:
        # Stage 1 said "new data" (POST /report_asset_materialization/...): no value was stored, so the
        # scenario runs would read the previous one. Load it first; that run's event brings us back here.
        context.log.info(f"market data reported from outside ({market.event_key}): refreshing it from the source")
        yield RunRequest(
            job_name=market_data_job.name,
            run_key=f"{market.event_key}|market_data",
            tags={TRIGGER_TAG: "sensor:reported"},
        )
        return
    if market.from_cli:
        yield SkipReason(
            f"market data {market.data_version} was materialised by a `scenarios` CLI run ({market.run_id}), "
            "which builds its own scenario partitions and catalog"
        )
        return
    config_hash = settings.config_hash()
    state = build_state(context.instance, market.data_version, config_hash)
    if state.up_to_date:
        yield SkipReason(
            f"market data {market.data_version} unchanged for the scenarios: every family partition is already "
            f"built from it with config {config_hash}; {catalog_note(context.instance, market.data_version)}"
        )
        return
    if not state.stale_severities:
        yield SkipReason(f"scenario runs for market data {market.data_version} are already under way ({state.describe()})")
        return
    context.log.info(f"market data {market.data_version}: {state.describe()}")
    for severity in state.stale_severities:
        yield RunRequest(
            job_name=scenarios_job.name,
            run_key=f"{market.event_key}|{severity}",
            partition_key=severity,
            asset_selection=state.stale[severity],
            tags=run_tags("sensor", market.data_version, config_hash),
        )


scenarios_automation = AutomationConditionSensorDefinition(
    "scenarios_automation",
    target=AssetSelection.all(),
    default_status=default_sensor_status(),
    minimum_interval_seconds=sensor_interval_seconds(),
    run_tags={TRIGGER_TAG: "automation"},
    description="Evaluates the assets' automation conditions: scenarios/catalog once all family partitions "
    "are done (none missing, in progress or failed), metrics/scenario_metrics with it, and market_data/ohlcv "
    "after the stage-1 asset stage1/ohlcv (another code location) materialises.",
)

ALL_SENSORS = [scenarios_after_market_data, scenarios_automation, scenarios_dead_runs]
