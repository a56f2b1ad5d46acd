"""Assembling one catalog build from the family sets: complete, current and valid, or refused.

A build never mixes data versions or configs and never ships a set whose blocking checks failed, so
the catalog on disk is always one consistent library.
"""

from __future__ import annotations

from scenarios_assets.core.scenario import ScenarioSet
from scenarios_assets.core.storage import CatalogBuild


class IncompleteLibraryError(RuntimeError):
    """The requested families/severities are not all available as current, valid sets."""


def assemble_build(
    available: dict[str, dict[str, ScenarioSet]],
    families: list[str],
    severities: list[str],
    data_version: str,
    config_hash: str,
) -> CatalogBuild:
    """Pick the set of every requested (family, severity); refuse missing, stale or invalid ones."""
    problems, chosen = [], []
    for family in families:
        for severity in severities:
            ss = available.get(family, {}).get(severity)
            where = f"{family}[{severity}]"
            if ss is None:
                problems.append(f"{where} has not been materialised")
            elif ss.data_version != data_version:
                problems.append(f"{where} was built from data version {ss.data_version}, not the current {data_version}")
            elif ss.config_hash != config_hash:
                problems.append(f"{where} was built with config {ss.config_hash}, not the current {config_hash}")
            elif blocking := [n for n, r in ss.validation.items() if r["blocking"] and not r["passed"]]:
                problems.append(f"{where} failed blocking check(s) {', '.join(blocking)}")
            elif not ss.metadata.get("disabled"):
                chosen.append(ss)
    if problems:
        raise IncompleteLibraryError(
            "the catalog was not rebuilt (previous files kept): " + "; ".join(problems)
            + ". Materialise the listed scenario partitions, then the catalog."
        )
    return CatalogBuild(sets=chosen, data_version=data_version, config_hash=config_hash)
