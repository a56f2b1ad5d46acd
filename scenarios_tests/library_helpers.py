"""Publishing ScenarioSets as a build of the library the way the catalog does (staging, plan, publish), and
snapshots of an output directory for tests that assert a failed run changed nothing."""

from __future__ import annotations

import os
from pathlib import Path

from scenarios_assets.core.library import builds, assembly as library, slices
from scenarios_assets.core.families.registry import FAMILY_SPECS
from scenarios_assets.core.models.severity import SEVERITIES
from scenarios_assets.core.library.store import location


def stage_sets(out: Path, sets, save_timeseries: bool = True, run_id: str = "test", family_hashes=None) -> dict:
    """Write each set as a staged slice; returns {family: {severity: SliceManifest}} (what the catalog gets).
    ``family_hashes``: family -> the config hash of its section, recorded in the manifests."""
    available: dict = {}
    for ss in sets:
        staging = builds.new_staging(out, ss.family, ss.severity, run_id)
        available.setdefault(ss.family, {})[ss.severity] = slices.write_slice(
            ss.stream(), staging, save_timeseries, (family_hashes or {}).get(ss.family, ""))
    return available


def publish_sets(out, sets, *, keep: int = 2, carry_over: bool = False, save_timeseries: bool = True,
                 data_version: str | None = None, config_hash: str | None = None, report=None, run=None,
                 family_hashes: dict | None = None):
    """Stage ``sets``, plan a build of exactly their (family, severity) pairs (plus, with ``carry_over``, the
    other slices of the current build) and publish it. Returns (build directory, header, plan). ``out``: a local
    directory or an fsspec URL (memory://...)."""
    out = location(out)
    sets = list(sets)
    available = stage_sets(out, sets, save_timeseries, family_hashes=family_hashes)
    families = list(dict.fromkeys(ss.family for ss in sets))
    severities = [s for s in SEVERITIES if any(ss.severity == s for ss in sets)]
    plan = library.plan_build(
        available, families, severities,
        data_version or sets[0].data_version, config_hash or sets[0].config_hash, out,
        carry_over=carry_over, all_families=list(dict.fromkeys([*FAMILY_SPECS, *families])),
        all_severities=list(SEVERITIES), save_timeseries=save_timeseries, family_hashes=family_hashes,
    )
    final, header = library.build_and_publish(plan, out, keep, run=run, report=report)
    builds.clean_staging(out, keep=set())  # as the catalog does: the staged slices are in the build now
    return final, header, plan


def snapshot(root) -> dict[str, object]:
    """Every entry under ``root`` (symbolic links not followed): relative path -> file bytes, ``("link",
    target)`` or ``"dir"``. Equal snapshots: nothing was added, removed, relinked or rewritten."""
    root = Path(root)
    entries: dict[str, object] = {}
    if not root.exists():
        return entries
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                entries[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                entries[rel] = "dir"
            else:
                entries[rel] = path.read_bytes()
    return entries
