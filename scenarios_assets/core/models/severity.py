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
    """The three severity levels, mildest first; the value is the name used in ids, config and flags."""

    MODERATE = "moderate"
    SEVERE = "severe"
    EXTREME = "extreme"

    @property
    def rank(self) -> int:
        """Position in :data:`SEVERITIES`: 0 moderate, 1 severe, 2 extreme."""
        return SEVERITIES.index(self.value)

    @property
    def replay_scale(self) -> float:
        """Scale of excess log-returns around the long-run drift in replays: severe is history as it happened."""
        return REPLAY_SCALE[self.value]


SEVERITIES: tuple[str, ...] = ("moderate", "severe", "extreme")
REPLAY_SCALE = {"moderate": 0.5, "severe": 1.0, "extreme": 1.5}


def parse_severities(value: str) -> list[str]:
    """`all` or one level, as the CLI and config take it.

    Parameters
    ----------
    value : str
        ``"all"`` or a severity name (``"moderate"``, ``"severe"``, ``"extreme"``).

    Returns
    -------
    list of str
        Every level in :data:`SEVERITIES` order for ``"all"``, else ``[value]``.

    Raises
    ------
    ScenarioInputError
        When ``value`` is neither ``"all"`` nor a severity name.
    """
    if value == "all":
        return list(SEVERITIES)
    if value not in SEVERITIES:
        raise ScenarioInputError(f"unknown severity '{value}' (choose from {', '.join(SEVERITIES)}, all)")
    return [value]


def _stable_code(name: str) -> int:
    return zlib.crc32(name.encode())


def scenario_seed(base_seed: int, family: str, severity: str, index: int) -> int:
    """A 63-bit seed unique to (base seed, family, severity, index); recorded in each scenario's metadata.

    Built with :class:`numpy.random.SeedSequence` (entropy ``base_seed``, spawn key: CRC-32 of ``family``,
    the severity's rank, ``index``), so it does not depend on which other scenarios are generated.

    Parameters
    ----------
    base_seed : int
        The config's ``seed``.
    family : str
        The family's name.
    severity : str
        Severity level name.
    index : int
        The scenario's index within its family and severity.

    Returns
    -------
    int
        A seed in [0, 2**63).

    Raises
    ------
    ValueError
        When ``severity`` is not a severity name.
    """
    seq = np.random.SeedSequence(base_seed, spawn_key=(_stable_code(family), SEVERITIES.index(severity), index))
    return int(seq.generate_state(1, np.uint64)[0] >> np.uint64(1))


def scenario_rng(seed: int) -> np.random.Generator:
    """The generator of one scenario, rebuilt from its recorded seed.

    Parameters
    ----------
    seed : int
        The scenario's seed (:func:`scenario_seed`).

    Returns
    -------
    numpy.random.Generator
        A PCG64 generator seeded with ``seed``.
    """
    return np.random.Generator(np.random.PCG64(seed))
