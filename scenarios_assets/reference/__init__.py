"""Scenario definitions as data (events, calibrations), each with its source; loaded by the core."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

REFERENCE_DIR = Path(__file__).parent


@cache
def load_reference(name: str) -> dict:
    """The parsed reference definitions ``<name>.yaml`` of this folder."""
    with (REFERENCE_DIR / f"{name}.yaml").open() as fh:
        return yaml.safe_load(fh)
