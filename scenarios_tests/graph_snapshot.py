"""A JSON snapshot of the code location's Dagster definitions, compared by test_definitions_snapshot.py.

What it records, per definition, is what a silent loss would change: asset keys, groups, kinds, owners,
partitions, dependencies (with their partition mapping), automation conditions (the whole tree of each,
with labels), checks (name, blocking), jobs (selection, executor config), schedules and sensors (target,
cron, interval), resources and the executor. Descriptions and code references are left out: they change
with wording, not with behaviour.

Update the committed file after an intended change, then review the diff like code::

    .venv/bin/python -m scenarios_tests.graph_snapshot --update
    git diff scenarios_tests/data/definitions_snapshot.json
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

SNAPSHOT_FILE = Path(__file__).parent / "data" / "definitions_snapshot.json"


def condition_tree(condition) -> dict | None:
    """An automation condition as nested {name, label, children} (the labels name our replacements)."""
    if condition is None:
        return None
    node: dict = {"name": condition.name}
    if condition.get_label():
        node["label"] = condition.get_label()
    children = [condition_tree(child) for child in condition.children]
    if children:
        node["children"] = children
    return node


def _asset_node(graph, key) -> dict:
    node = graph.get(key)
    spec = node.to_asset_spec() if hasattr(node, "to_asset_spec") else None
    deps = []
    for parent in sorted(node.parent_keys, key=lambda k: k.to_user_string()):
        mapping = graph.get_partition_mapping(key, parent)
        deps.append({"key": parent.to_user_string(), "partition_mapping": type(mapping).__name__})
    checks = []
    assets_def = graph.assets_def_for_key(key)
    for check_spec in sorted(assets_def.check_specs, key=lambda s: s.name):
        if check_spec.asset_key == key:
            checks.append({"name": check_spec.name, "blocking": check_spec.blocking})
    return {
        "group": node.group_name,
        "kinds": sorted(spec.kinds) if spec is not None else [],
        "owners": list(node.owners),
        "partitions": node.partitions_def.get_partition_keys() if node.partitions_def else None,
        "deps": deps,
        "automation_condition": condition_tree(node.automation_condition),
        "checks": checks,
    }


def _sensor_node(sensor) -> dict:
    node: dict = {"type": type(sensor).__name__, "minimum_interval_seconds": sensor.minimum_interval_seconds,
                  "default_status": sensor.default_status.value}
    try:
        node["jobs"] = sorted(j.name for j in sensor.jobs)
    except Exception:  # noqa: BLE001 - a sensor without jobs (e.g. the dead-run sweeper) raises
        node["jobs"] = []
    if hasattr(sensor, "asset_key"):  # an asset sensor: the asset it watches
        node["asset_key"] = sensor.asset_key.to_user_string()
    return node


def definitions_snapshot(defs) -> dict:
    """The snapshot of a :class:`dagster.Definitions` (see the module doc for what it holds)."""
    graph = defs.resolve_asset_graph()
    materializable = sorted(graph.materializable_asset_keys, key=lambda k: k.to_user_string())
    external = sorted(set(graph.get_all_asset_keys()) - set(materializable), key=lambda k: k.to_user_string())
    jobs = {}
    for job in sorted(defs.resolve_all_job_defs(), key=lambda j: j.name):
        if job.name.startswith("__ASSET_JOB"):  # Dagster's implicit job of every asset
            continue
        jobs[job.name] = {
            "assets": sorted(k.to_user_string() for k in job.asset_layer.executable_asset_keys),
            "run_config": job.run_config if isinstance(job.run_config, dict) else None,
            "executor": job.executor_def.name,
        }
    schedules = {
        s.name: {
            "cron": s.cron_schedule, "timezone": s.execution_timezone, "default_status": s.default_status.value,
            "job": s.job_name,  # an anonymous asset job (in "jobs") when the target is an asset selection
        }
        for s in sorted(defs.schedules or [], key=lambda s: s.name)
    }
    sensors = {s.name: _sensor_node(s) for s in sorted(defs.sensors or [], key=lambda s: s.name)}
    return {
        "assets": {k.to_user_string(): _asset_node(graph, k) for k in materializable},
        "external_assets": [k.to_user_string() for k in external],
        "jobs": jobs,
        "schedules": schedules,
        "sensors": sensors,
        "resources": sorted(defs.resources or {}),
        "executor": defs.executor.name if defs.executor is not None else None,
    }


def current_snapshot() -> dict:
    # The switches that change default statuses and intervals are read at import: pin them to their defaults.
    for name in ("SCENARIOS_AUTOMATION", "SCENARIOS_SENSOR_INTERVAL_SECONDS"):
        if name in os.environ:
            raise RuntimeError(f"unset {name} to compare the snapshot (it changes sensor and schedule defaults)")
    from scenarios_assets.definitions import defs

    return definitions_snapshot(defs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help=f"rewrite {SNAPSHOT_FILE.name}")
    args = parser.parse_args()
    text = json.dumps(current_snapshot(), indent=1, sort_keys=True) + "\n"
    if args.update:
        SNAPSHOT_FILE.write_text(text)
        print(f"wrote {SNAPSHOT_FILE}")
    else:
        print(text, end="")


if __name__ == "__main__":
    main()
