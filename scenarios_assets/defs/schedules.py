"""The evening schedule: 19:30 America/New_York, every family at all three severities, nothing twice.

A run can't hold the unpartitioned market data and the severity-partitioned families at once, so each
tick asks for exactly one kind of work:

1. The source's content hash (core.data.market read + validate + hash, ~0.3 s on the bundled data) differs
   from the stored ``market_data/ohlcv`` (or that one came from elsewhere: a report, a CLI run, another
   source):
   one market-data run (run key ``<day>|market_data``). Its materialisation fires the sensor
   ``scenarios_after_market_data``, which requests the severity runs.
2. The stored market data is current but some (family, severity) partitions were not built from it
   (and the config): one run per such severity (run key ``<day>|<severity>``, partition = severity).
   Normally that is all three severities x every family.
3. Everything is built from this data version and config: skipped, with the reason. Runs already
   under way for it: skipped, with the reason.
"""


from datetime import datetime
from zoneinfo import ZoneInfo

from dagster import AssetSelection, RunRequest, ScheduleEvaluationContext, SkipReason, schedule

from scenarios_assets.defs.automation import default_schedule_status
from scenarios_assets.defs.freshness import (
    build_state,
    catalog_note,
    family_keys,
    market_state,
    run_tags,
    source_market_version,
)
from scenarios_assets.defs.jobs import IN_PROCESS
from scenarios_assets.defs.resources import ScenarioSettings
from scenarios_assets.defs.keys import ECONOMIC_KEY, MARKET_KEY

CRON = "30 19 * * *"
TIMEZONE = "America/New_York"


@schedule(
    name="scenarios_daily",
    cron_schedule=CRON,
    execution_timezone=TIMEZONE,
    target=AssetSelection.assets(MARKET_KEY, ECONOMIC_KEY, *family_keys()),
    default_status=default_schedule_status(),
    description="Every evening at 19:30 New York time: refresh the market data if the source changed "
    "(the sensor then requests the scenario runs), else one run per severity for every family partition "
    "not yet built from the current data version and config; skipped with the reason when all are.",
)
def scenarios_daily(context: ScheduleEvaluationContext, settings: ScenarioSettings):
    when = context.scheduled_execution_time or datetime.now(ZoneInfo(TIMEZONE))
    day = when.astimezone(ZoneInfo(TIMEZONE)).date().isoformat()
    version, source = source_market_version(settings)  # a broken source fails the tick, with the reason
    config_hash = settings.config_hash()
    stored = market_state(context.instance)

    if stored is None or stored.reported or stored.from_cli or stored.data_version != version or stored.source != source:
        why = (
            "no market data materialised yet" if stored is None
            else "the latest market data event was reported from outside" if stored.reported
            else "the stored market data came from a CLI run" if stored.from_cli
            else f"the stored market data is from {stored.source}" if stored.source != source
            else f"the source changed: {stored.data_version} -> {version}"
        )
        context.log.info(f"{why}; refreshing market data (the sensor then requests the scenario runs)")
        return RunRequest(
            run_key=f"{day}|market_data",
            asset_selection=[MARKET_KEY, ECONOMIC_KEY],
            run_config=IN_PROCESS,
            tags=run_tags("schedule", version, config_hash),
        )

    state = build_state(context.instance, version, config_hash)
    if state.up_to_date:
        return SkipReason(
            f"market data unchanged since the last successful scenario build: data version {version} and "
            f"config {config_hash} are what every family partition was built from; "
            f"{catalog_note(context.instance, version)}. Nothing to recompute."
        )
    if not state.stale_severities:
        return SkipReason(f"scenario runs for data version {version} are already under way ({state.describe()})")
    context.log.info(f"data version {version}: {state.describe()}")
    return [
        RunRequest(
            run_key=f"{day}|{severity}",
            partition_key=severity,
            asset_selection=state.stale[severity],
            run_config=IN_PROCESS,
            tags=run_tags("schedule", version, config_hash),
        )
        for severity in state.stale_severities
    ]
