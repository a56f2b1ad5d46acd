"""Assembling one build of the library from its slices: complete, current and valid, or refused.

A build is a set of slices (one family at one severity each). The slices a run asked for must be new
(built by this run, from the current data version and config, with no failed blocking check); with a
partial request every other slice of the current build is carried over, its files hard-linked (no bytes
copied) and flagged when it was built from another data version or config. The build is written into
its own directory and published in one atomic step (:mod:`scenarios_assets.core.library.builds`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from scenarios_assets.core.library import builds
from scenarios_assets.core.models.errors import ScenarioInputError
from scenarios_assets.core.library.builds import (
    BUILD_FILE,
    METADATA_FILE,
    METRICS_FILE,
    PORTFOLIO_FILE,
    SLICES_DIR,
    SUMMARY_FILE,
    TIMESERIES_FILE,
)
from scenarios_assets.core.library.slices import (
    MANIFEST_FILE,
    METRICS_PARTS,
    PORTFOLIO_PARTS,
    RECORDS_FILE,
    TIMESERIES_PARTS,
    SliceManifest,
    read_manifest,
)
from scenarios_assets.core.library.storage import summary_text, utc_now
from scenarios_assets.core.library.store import copy_files, is_remote, location
from scenarios_assets.core.library.timing import Phases


class IncompleteLibraryError(RuntimeError):
    """The requested families/severities are not all available as current, valid slices."""


@dataclass
class SliceSource:
    """One slice of a build to be, and where its files are: a staging directory (``layout`` "staging") or a
    published build (``layout`` "build").

    Parameters
    ----------
    manifest : SliceManifest
        The slice's manifest.
    origin : str
        ``"new"`` (built by this run) or ``"carried"`` (from the current build).
    root : Path
        The staging directory, or the build directory holding the slice.
    layout : str
        ``"staging"``, ``"build"`` or ``"dry-run"`` (checked only, nothing on disk).
    from_build : str, default ""
        The id of the build the files are in (layout "build").
    stale : bool, default False
        Carried over from another data version or config.
    """

    manifest: SliceManifest
    origin: str  # "new" | "carried"
    root: Path
    layout: str
    from_build: str = ""
    stale: bool = False  # carried over from another data version or config

    def files(self) -> dict[str, list[tuple[Path, str]]]:
        """(source file, path inside the build) for the slice's records, manifest and Parquet parts.

        Returns
        -------
        dict of str to list of (Path, str)
            ``"records"`` (records.jsonl and slice.json) and one key per dataset (``timeseries``,
            ``metrics``, ``portfolio``: its ``part-*.parquet`` files, placed under the build's hive
            partition ``family=<f>/severity=<s>``).
        """
        m = self.manifest
        inside = f"{SLICES_DIR}/{m.family}/{m.severity}"
        hive = f"family={m.family}/severity={m.severity}"
        datasets = {TIMESERIES_PARTS: TIMESERIES_FILE, METRICS_PARTS: METRICS_FILE, PORTFOLIO_PARTS: PORTFOLIO_FILE}
        meta_dir = self.root if self.layout == "staging" else self.root / inside
        files = {"records": [(meta_dir / RECORDS_FILE, f"{inside}/{RECORDS_FILE}"),
                             (meta_dir / MANIFEST_FILE, f"{inside}/{MANIFEST_FILE}")]}
        for kind, dataset in datasets.items():
            where = self.root / kind if self.layout == "staging" else self.root / dataset / hive
            files[kind] = [(p, f"{dataset}/{hive}/{p.name}") for p in sorted(where.glob("part-*.parquet"))]
        return files


@dataclass
class BuildPlan:
    """The slices of the next build, in registry order (family, then severity).

    Parameters
    ----------
    sources : list of SliceSource
        The slices.
    data_version, config_hash : str
        The current market-data version and config hash.
    previous_build : str or None
        The id of the current build (None before the first).
    save_timeseries : bool, default True
        Whether the Parquet datasets are linked into the build.
    notes : list of str, default []
        Remarks for the caller.
    """

    sources: list[SliceSource]
    data_version: str
    config_hash: str
    previous_build: str | None
    save_timeseries: bool = True
    notes: list[str] = field(default_factory=list)

    @property
    def manifests(self) -> list[SliceManifest]:
        """The slices' manifests, in order."""
        return [s.manifest for s in self.sources]


def plan_build(
    available: dict[str, dict[str, SliceManifest]],
    families: list[str],
    severities: list[str],
    data_version: str,
    config_hash: str,
    out: Path,
    *,
    carry_over: bool,
    all_families: list[str],
    all_severities: list[str],
    save_timeseries: bool = True,
    check_only: bool = False,
    family_hashes: dict[str, str] | None = None,
) -> BuildPlan:
    """The slices of the next build: every requested (family, severity) from ``available`` (the latest
    manifests), refused when missing, stale, failed or no longer on disk; with ``carry_over`` every other
    slice of the current build of ``out``, flagged stale when built from another data version or another
    config of its family (``family_hashes``: family -> config.section_hash now). ``check_only`` (a dry run:
    nothing will be written) accepts a current, valid manifest wherever its files are. A disabled family's
    slice is left out.

    Parameters
    ----------
    available : dict of str to dict of str to SliceManifest
        family -> severity -> the latest manifest.
    families, severities : list of str
        The request.
    data_version, config_hash : str
        The current market-data version and config hash.
    out : Path
        The output directory.
    carry_over : bool
        Carry the current build's other slices over.
    all_families, all_severities : list of str
        Every family (registry order) and severity.
    save_timeseries : bool, default True
        The build needs the slices' Parquet parts.
    check_only : bool, default False
        A dry run.
    family_hashes : dict of str to str, optional
        family -> its section hash now.

    Returns
    -------
    BuildPlan
        The slices of the next build.

    Raises
    ------
    IncompleteLibraryError
        Listing every problem: a requested slice not materialised, built from another data version or
        config, failing a blocking check, without time series when they are needed, or no longer on disk.
    """
    current = builds.current_build(out)
    problems: list[str] = []
    sources: list = []
    requested = {(f, s) for f in families for s in severities}
    for family in all_families:
        for severity in all_severities:
            if (family, severity) in requested:
                source = _new_slice(available.get(family, {}).get(severity), family, severity, data_version,
                                    config_hash, current, save_timeseries and not check_only, problems, check_only)
            elif carry_over and current is not None:
                family_hash = (family_hashes or {}).get(family, "")
                source = _carried_slice(current, family, severity, data_version, config_hash, family_hash)
            else:
                source = None
            if source is not None:
                sources.append(source)
    if problems:
        raise IncompleteLibraryError(
            "the library was not rebuilt (the current build stays): " + "; ".join(problems)
            + ". Materialise the listed scenario partitions, then the catalog."
        )
    return BuildPlan(sources, data_version, config_hash, current.name if current else None, save_timeseries)


def _new_slice(m: SliceManifest | None, family, severity, data_version, config_hash, current, save_timeseries,
               problems: list[str], check_only: bool = False) -> SliceSource | None:
    where = f"{family}[{severity}]"
    if m is None:
        problems.append(f"{where} has not been materialised")
    elif m.data_version != data_version:
        problems.append(f"{where} was built from data version {m.data_version}, not the current {data_version}")
    elif m.config_hash != config_hash:
        problems.append(f"{where} was built with config {m.config_hash}, not the current {config_hash}")
    elif m.blocking_failures:
        problems.append(f"{where} failed blocking check(s) {', '.join(m.blocking_failures)}")
    elif m.metadata.get("disabled"):
        return None
    elif m.path is None or check_only:  # checked only: build_and_publish refuses to publish it
        return SliceSource(m, "new", location(m.path or "."), "dry-run")
    elif m.path is not None and (location(m.path) / MANIFEST_FILE).is_file():
        if save_timeseries and not m.timeseries:
            problems.append(f"{where} was generated without time series; materialise it again with save_timeseries on")
            return None
        return SliceSource(m, "new", location(m.path), "staging")
    elif current is not None and _slice_in(current, family, severity) == m.slice_id:
        return SliceSource(m, "new", current, "build", current.name)
    else:
        problems.append(f"{where} its files ({m.slice_id}) are no longer staged")
    return None


def _slice_in(build: Path, family: str, severity: str) -> str | None:
    path = build / SLICES_DIR / family / severity / MANIFEST_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get("slice_id")


def _carried_slice(current: Path, family: str, severity: str, data_version: str, config_hash: str,
                   family_hash: str = "") -> SliceSource | None:
    directory = current / SLICES_DIR / family / severity
    if not (directory / MANIFEST_FILE).is_file():
        return None
    manifest = read_manifest(directory)
    if family_hash and manifest.family_config_hash:  # the family's own config, not every family's
        other_config = manifest.family_config_hash != family_hash
    else:
        other_config = manifest.config_hash != config_hash
    stale = manifest.data_version != data_version or other_config
    return SliceSource(manifest, "carried", current, "build", current.name, stale)


# --- writing a build -----------------------------------------------------------------------------------------

def family_entry(source: SliceSource) -> dict:
    """The per-slice record of scenario_metadata.json's ``families`` (no timings, no ids of runs: two builds
    of the same data, config and seed give the same entry).

    Parameters
    ----------
    source : SliceSource
        The slice.

    Returns
    -------
    dict
        ``count``, ``origin``, ``stale``, ``data_version``, ``config_hash``, ``family_config_hash``, ``rows``,
        ``skipped``, ``validation``, ``scenario_types``, ``date_range``, ``symbols_covered`` and ``metadata``.
    """
    m = source.manifest
    return {
        "count": m.count,
        "origin": source.origin,
        "stale": source.stale,
        "data_version": m.data_version,
        "config_hash": m.config_hash,
        "family_config_hash": m.family_config_hash,
        "rows": m.rows,
        "skipped": m.skipped,
        "validation": m.validation,
        "scenario_types": m.digest.get("scenario_types", {}),
        "date_range": m.digest.get("date_range", ""),
        "symbols_covered": m.digest.get("symbols_covered", 0),
        "metadata": m.metadata,
    }


def write_build(plan: BuildPlan, tmp: Path, run: dict, report=None, phases: Phases | None = None) -> dict:
    """Link every slice's files into the build directory ``tmp``, write the report (``report(tmp)``, optional),
    then scenario_metadata.json (records streamed from the slices, never parsed) and scenario_summary.txt.
    Returns the metadata document without its ``scenarios`` (the header).

    ``phases`` times each part (``link_files``, ``report``, ``metadata``, ``summary``); what is known when a file
    is written goes into it: ``run["time"]["catalog"]`` of the metadata holds the linking and the report, the
    summary also the metadata.

    Parameters
    ----------
    plan : BuildPlan
        The slices.
    tmp : Path
        The build directory being written (:func:`~scenarios_assets.core.library.builds.start_build`).
    run : dict
        The run's facts (``generated_at``, ``build_id``, ``timings`` ...); its ``time`` is filled.
    report : callable ``(Path) -> None``, optional
        Writes the report files into the build.
    phases : Phases, optional
        Receives the seconds of each part.

    Returns
    -------
    dict
        The metadata header: ``generated_at``, ``data_version``, ``config_hash``, ``families``
        ("family/severity" -> :func:`family_entry`) and ``run``.
    """
    phases = phases if phases is not None else Phases()
    with phases.timed("link_files"):  # hard links locally, one batch of server-side copies on an object store
        copy_files([(src, tmp / rel) for source in plan.sources for kind, pairs in source.files().items()
                    if kind == "records" or plan.save_timeseries for src, rel in pairs])
    header = {
        "generated_at": run["generated_at"],
        "data_version": plan.data_version,
        "config_hash": plan.config_hash,
        "families": {s.manifest.key: family_entry(s) for s in plan.sources},
        "run": run,
    }
    if report is not None:
        _write_header(tmp, header)  # the report reads the slices through it
        with phases.timed("report"):
            report(tmp)
    time_ = run.setdefault("time", {})
    time_["families"] = family_seconds(run.get("timings") or {})
    time_["catalog"] = dict(phases.seconds)
    with phases.timed("metadata"):
        _write_header(tmp, header)
        _write_metadata(plan, tmp, header)
    with phases.timed("summary"):
        (tmp / SUMMARY_FILE).write_text(summary_text(header, {**run, "time": {**run["time"], "catalog": dict(phases.seconds)}}))
    return header


def family_seconds(timings: dict[str, float]) -> dict[str, float]:
    """Seconds per family: the sum over its new slices.

    Parameters
    ----------
    timings : dict of str to float
        ``family/severity`` -> seconds.

    Returns
    -------
    dict of str to float
        family -> seconds, rounded to milliseconds.
    """
    out: dict[str, float] = {}
    for key, seconds in timings.items():
        family = key.split("/")[0]
        out[family] = round(out.get(family, 0.0) + float(seconds), 3)
    return out


def _write_header(tmp: Path, header: dict) -> None:
    (tmp / BUILD_FILE).write_text(json.dumps(header, indent=1, allow_nan=False, default=str))


def _write_metadata(plan: BuildPlan, tmp: Path, header: dict) -> None:
    with (tmp / METADATA_FILE).open("w") as fh:
        fh.write(json.dumps(header, indent=2, allow_nan=False, default=str)[:-2] + ',\n  "scenarios": [\n')
        first = True
        for source in plan.sources:
            m = source.manifest
            with (tmp / SLICES_DIR / m.family / m.severity / RECORDS_FILE).open() as records:
                for line in records:
                    fh.write(("" if first else ",\n") + line.rstrip("\n"))
                    first = False
        fh.write("\n  ]\n}\n")


def build_and_publish(plan: BuildPlan, out: Path, keep: int, run: dict | None = None, report=None,
                      phases: Phases | None = None) -> tuple[Path, dict]:
    """Write the planned build and make it current (under the output directory's lock); clean up what the
    previous runs left. ``report(build_dir)`` (optional) writes the report files into the build before the
    commit point. ``phases`` (optional) receives the seconds of each part (:func:`write_build`, then
    ``publish``).

    Parameters
    ----------
    plan : BuildPlan
        The slices (:func:`plan_build`).
    out : Path
        The output directory (local or fsspec).
    keep : int
        Published builds to keep (``performance.keep_builds``).
    run : dict, optional
        Extra run facts for the metadata (``timings``, ``time`` ...).
    report : callable ``(Path) -> None``, optional
        Writes the report files into the build.
    phases : Phases, optional
        Receives the seconds of each part.

    Returns
    -------
    build : Path
        The published build's directory.
    header : dict
        The metadata header (:func:`write_build`).

    Raises
    ------
    IncompleteLibraryError
        When a planned slice was a dry run.
    ScenarioInputError
        When ``keep`` is below 1.
    BuildInProgressError
        When another build holds the output directory's lock for longer than the wait.
    """
    phases = phases if phases is not None else Phases()
    dry = [s.manifest.key for s in plan.sources if s.layout == "dry-run"]
    if dry:
        raise IncompleteLibraryError(f"the library was not rebuilt (the current build stays): {', '.join(dry)} "
                                     "was a dry run (nothing written). Materialise it, then the catalog.")
    if keep < 1:
        raise ScenarioInputError(f"performance.keep_builds must be >= 1, got {keep}")
    out = location(out)
    if not is_remote(out):
        out.mkdir(parents=True, exist_ok=True)
    with builds.build_lock(out):
        builds.prune(out, keep)  # leftovers of killed builds first
        build_id = builds.new_build_id()
        tmp = builds.start_build(out, build_id)
        run = {"build_id": build_id, "generated_at": utc_now(), "previous_build": plan.previous_build,
               "slices": {s.manifest.key: s.manifest.slice_id for s in plan.sources}, **(run or {})}
        header = write_build(plan, tmp, run, report, phases)
        with phases.timed("publish"):
            final = builds.publish(out, tmp, keep)
    return final, header
