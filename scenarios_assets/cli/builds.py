"""`scenarios builds`: the kept builds of an output directory, newest first, the current one marked.

    scenarios builds [--output-dir DIR] [--json]
    scenarios builds ID [--output-dir DIR]      that build's summary (scenario_summary.txt)

Each line: build id, whether it is current, when it was generated, data version, config hash, scenario
count and the slices it holds (new or carried over). Read one with ``load_scenarios(DIR, build=ID)`` or
the API's ``?build=ID``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from scenarios_assets.core.library.builds import BUILD_FILE, METADATA_FILE, SUMMARY_FILE, build_path, current_build_id, published_builds
from scenarios_assets.core.models.errors import ScenarioInputError
from scenarios_assets.core.data.paths import DEFAULT_OUTPUT_DIR
from scenarios_assets.core.library.store import location


def describe_builds(out: Path) -> list[dict]:
    """One summary per kept build of ``out``, newest first (reads each build's metadata header)."""
    current = current_build_id(out)
    rows = []
    for build_id in reversed(published_builds(out)):
        root = build_path(out, build_id)
        header = root / BUILD_FILE if (root / BUILD_FILE).is_file() else root / METADATA_FILE
        with header.open("rb") as fh:
            document = json.load(fh)
        families = document.get("families", {})
        rows.append({
            "build_id": build_id,
            "current": build_id == current,
            "generated_at": document.get("generated_at", ""),
            "data_version": document.get("data_version", ""),
            "config_hash": document.get("config_hash", ""),
            "scenarios": sum(int(f.get("count", 0)) for f in families.values()),
            "new": [k for k, f in families.items() if f.get("origin") == "new"],
            "carried_over": [k for k, f in families.items() if f.get("origin") == "carried"],
            "stale": [k for k, f in families.items() if f.get("stale")],
        })
    return rows


def builds_main(argv: list[str]) -> int:
    from scenarios_assets.service.arguments import OneLineParser

    parser = OneLineParser(prog="scenarios builds", description="List the kept builds of the scenario library.")
    parser.add_argument("--output-dir", help="library directory or fsspec URL, e.g. s3://bucket/prefix "
                        f"(default: $SCENARIOS_OUTPUT_DIR or {DEFAULT_OUTPUT_DIR})")
    parser.add_argument("build", nargs="?", help="a kept build's id: print its summary")
    parser.add_argument("--json", action="store_true", help="print the list as JSON")
    try:
        args = parser.parse_args(argv)
    except ScenarioInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        out = location(args.output_dir or os.environ.get("SCENARIOS_OUTPUT_DIR") or DEFAULT_OUTPUT_DIR)
    except ScenarioInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.build:
        try:
            print((build_path(out, args.build) / SUMMARY_FILE).read_text(), end="")
        except FileNotFoundError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    rows = describe_builds(out)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no published build in '{out}'")
        return 0
    for row in rows:
        carried = f"; carried over: {', '.join(row['carried_over'])}" if row["carried_over"] else ""
        carried += f" (stale: {', '.join(row['stale'])})" if row["stale"] else ""
        print(f"{'*' if row['current'] else ' '} {row['build_id']}  {row['generated_at']}  data {row['data_version']}  "
              f"config {row['config_hash']}  {row['scenarios']} scenarios; new: {', '.join(row['new']) or 'none'}{carried}")
    return 0
