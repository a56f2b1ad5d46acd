"""Declarative automation of the unattended pipeline: the conditions of the catalog, the metrics and the
market data, the run tags, and the switches (on/off, sensor interval).

How the evening runs (README, "Automation"):
- ``market_data/ohlcv`` materialises (the daily schedule refreshes it when the source's content hash
  changed, stage 1 reports it, or someone materialises it) ->
- the sensor ``scenarios_after_market_data`` requests one run per severity, each of every family whose
  partition is not current for that data version and config ->
- ``scenarios/catalog`` rebuilds once, when no family partition is missing, in progress or failed
  (``catalog_condition``, evaluated by the automation-condition sensor) -> ``metrics/scenario_metrics``
  follows in the same run.
"Same data version => no work" is decided in defs/freshness.py. This module imports no asset module
(defs/scenarios.py imports it for the catalog's condition).
"""

from __future__ import annotations

from dagster import AssetSelection, AutomationCondition, DefaultScheduleStatus, DefaultSensorStatus, EnvVar

from scenarios_assets.defs.keys import ECONOMIC_KEY, MARKET_KEY

# Run tags: who asked for a run and for which data version/config (the UI filters on them).
CLI_TAG = "scenarios/cli"  # set by the `scenarios` command line on its runs
TRIGGER_TAG = "scenarios/trigger"
DATA_VERSION_TAG = "scenarios/data_version"
CONFIG_HASH_TAG = "scenarios/config_hash"

# Environment switches (documented in the README).
AUTOMATION_ENV = EnvVar("SCENARIOS_AUTOMATION")  # "off": schedule and sensors start stopped
SENSOR_INTERVAL_ENV = EnvVar("SCENARIOS_SENSOR_INTERVAL_SECONDS")  # both sensors' minimum interval, default 30


def automation_enabled() -> bool:
    return (AUTOMATION_ENV.get_value() or "on").strip().lower() not in ("off", "0", "false", "no", "stopped")


def default_sensor_status() -> DefaultSensorStatus:
    return DefaultSensorStatus.RUNNING if automation_enabled() else DefaultSensorStatus.STOPPED


def default_schedule_status() -> DefaultScheduleStatus:
    return DefaultScheduleStatus.RUNNING if automation_enabled() else DefaultScheduleStatus.STOPPED


def sensor_interval_seconds() -> int:
    try:
        return max(1, int(SENSOR_INTERVAL_ENV.get_value() or "30"))
    except ValueError:
        return 30


MARKET_SELECTION = AssetSelection.assets(MARKET_KEY, ECONOMIC_KEY)


# --- declarative automation -------------------------------------------------------------------------

def catalog_condition() -> AutomationCondition:
    """``AutomationCondition.eager()`` for the catalog, narrowed to a complete set of family partitions.

    - Only family updates trigger it: a new market-data version alone must not rebuild the catalog from
      yesterday's sets (the families follow it; the catalog follows them).
    - Updates from `scenarios` CLI runs don't trigger it: the CLI builds its own catalog right after.
    - It waits while any family partition is missing or in progress (eager), and it does not fire while
      the latest execution of any family partition failed, so a half-finished set never reaches it;
      yesterday's files stay and the failed run is what the UI shows.
    """
    updated = AutomationCondition.any_deps_match(
        (
            AutomationCondition.newly_updated()
            & ~AutomationCondition.executed_with_root_target()
            & ~AutomationCondition.all_new_updates_have_run_tags(tag_keys={CLI_TAG})
        ).with_label("newly_updated_outside_cli")
        | AutomationCondition.will_be_requested()
    ).ignore(MARKET_SELECTION).with_label("any_family_updated")
    failed = AutomationCondition.any_deps_match(AutomationCondition.execution_failed()).ignore(
        MARKET_SELECTION
    ).with_label("any_family_failed")
    return (AutomationCondition.eager().replace("any_deps_updated", updated) & ~failed).with_label(
        "eager_after_all_families"
    )


def downstream_condition() -> AutomationCondition:
    """Plain eager for what follows the catalog (it joins the catalog's run)."""
    return AutomationCondition.eager()


def market_data_condition() -> AutomationCondition:
    """Market data refreshes when the stage-1 asset (another code location) materialises.

    The dependency on ``stage1/ohlcv`` only names the key: the stage-1 code location defines the asset (two
    locations may not define the same key). Without that location the key is an unmaterialised external
    asset, so the condition never fires and nothing changes."""
    return AutomationCondition.eager()

