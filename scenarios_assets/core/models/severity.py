"""Severity levels and the seeds derived from them.

Every random draw in the project comes from :func:`scenario_rng`, keyed by (base seed, family, severity,
scenario index), so any subset, ordering, chunking or worker count of scenarios gives identical paths.
"""

from __future__ import annotations

import zlib
from enum import Enum

import numpy as np

from scenarios_assets.core.models.errors import ScenarioInputError


class Severity(str, Enum):
    MODERATE = "moderate"
    SEVERE = "severe"
    EXTREME = "extreme"

    @property
    def rank(self) -> int:
        return SEVERITIES.index(self.value)

    @property
    def replay_scale(self) -> float:
        """Scale of excess log-returns around the long-run drift in replays: severe is history as it happened."""
        return REPLAY_SCALE[self.value]


SEVERITIES: tuple[str, ...] = ("moderate", "severe", "extreme")
REPLAY_SCALE = {"moderate": 0.5, "severe": 1.0, "extreme": 1.5}


def parse_severities(value: str) -> list[str]:
    """`all` or one level, as the CLI and config take it."""
    if value == "all":
        return list(SEVERITIES)
    if value not in SEVERITIES:
        raise ScenarioInputError(f"unknown severity '{value}' (choose from {', '.join(SEVERITIES)}, all)")
    return [value]


def _stable_code(name: str) -> int:
    return zlib.crc32(name.encode())


def scenario_seed(base_seed: int, family: str, severity: str, index: int) -> int:
    """A 63-bit seed unique to (base seed, family, severity, index); recorded in each scenario's metadata."""
    seq = np.random.SeedSequence(base_seed, spawn_key=(_stable_code(family), SEVERITIES.index(severity), index))
    return int(seq.generate_state(1, np.uint64)[0] >> np.uint64(1))


def scenario_rng(seed: int) -> np.random.Generator:
    """The generator of one scenario, rebuilt from its recorded seed."""
    return np.random.Generator(np.random.PCG64(seed))
