"""The Dagster instance every generation runs on: the one in DAGSTER_HOME."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from scenarios_assets.core.data.paths import DEFAULT_DAGSTER_HOME, INSTANCE_TEMPLATE


def ensure_dagster_home() -> Path:
    """DAGSTER_HOME, defaulting to the project's .dagster_home with the project's instance config
    (dagster.sqlite.yaml) in it as dagster.yaml.

    Returns
    -------
    Path
        The resolved Dagster home, created if missing and exported as ``DAGSTER_HOME`` in this process's
        environment (which the instance config and step processes read).
    """
    home = Path(os.environ.get("DAGSTER_HOME") or DEFAULT_DAGSTER_HOME).resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    target, template = home / "dagster.yaml", INSTANCE_TEMPLATE
    # A home without instance config gets the project's; the project's own home always tracks it.
    stale = home == DEFAULT_DAGSTER_HOME.resolve() and target.exists() and target.read_bytes() != template.read_bytes()
    if template.exists() and (not target.exists() or stale):
        shutil.copyfile(template, target)
    return home
