"""The library as a store of builds with one commit point: crash safety at every file operation, partial runs
that carry the other slices over (byte for byte, hard links; also through the CLI), reproducibility whatever
the chunk size, retention, no leftovers of killed runs, bounded memory while a slice is written. (Readers of
the published dataset: test_storage.py.)"""

from __future__ import annotations

import builtins
import contextlib
import gc
import io
import json
import os
import shutil
import threading
import time
import tracemalloc
import weakref
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scenarios_assets.core.library import builds, assembly as library, slices
from scenarios_assets.core.library.builds import BuildInProgressError
from scenarios_assets.core.families.registry import FAMILY_SPECS, family_stream
from scenarios_assets.core.library.validation import generate_family
from scenarios_assets.core.models.scenario import ScenarioStream
from scenarios_assets.core.models.severity import SEVERITIES
from scenarios_assets.core.library.storage import load_scenarios
from scenarios_assets.core.library.validation import catalog_checks
from scenarios_tests.library_helpers import publish_sets, stage_sets

FAMILIES = ("historical", "stress")


@pytest.fixture(scope="module")
def sets(make_ctx):
    """historical and stress at every severity: 6 small slices of real scenarios."""
    return {(fam, sev): generate_family(fam, make_ctx(sev)) for fam in FAMILIES for sev in SEVERITIES}


def records_of(ss) -> list[dict]:
    return [json.loads(json.dumps(s.record(), allow_nan=False)) for s in ss.scenarios]


def dot_entries(out: Path) -> dict[str, list[str]]:
    """What a finished build must not leave: temporary builds, stray `current` links, staged slices."""
    return {
        "builds": sorted(p.name for p in (out / "builds").iterdir() if p.name.startswith(".")),
        "links": sorted(p.name for p in out.iterdir() if p.name.startswith(".current.") or p.name.endswith(".link")),
        "staging": sorted(p.name for p in (out / builds.STAGING_DIR).iterdir()) if (out / builds.STAGING_DIR).exists() else [],
    }


NOTHING_LEFT = {"builds": [], "links": [], "staging": []}


def tree(path: Path) -> list[str]:
    """Relative names of every file under ``path``."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


# --- crash at every file operation ---------------------------------------------------------------------------

class Crash(BaseException):
    """The process killed at a file operation: no `except` catches it (rmtree's ignore_errors, link_file's copy
    fallback), only `finally` blocks run, as the kernel would release the lock of a killed process."""


WRITE_MODES = set("wax+")


@contextlib.contextmanager
def file_operations(root: Path, crash_at: int | None = None):
    """Log every file operation under ``root`` (creating, linking, renaming, replacing, deleting, syncing,
    opening for writing) and raise Crash at the ``crash_at``-th one. Yields the log: (operation, paths).
    ``fsync`` is counted but not done (durability is not what this measures, and it is slow)."""
    log: list[tuple[str, tuple[str, ...]]] = []
    prefix = str(root)
    patch = pytest.MonkeyPatch()

    def wrap(owner, name):
        real = getattr(owner, name)

        def operation(*args, **kwargs):
            paths = tuple(os.fspath(a) for a in args if isinstance(a, (str, os.PathLike)))
            if name == "open":
                mode = args[1] if len(args) > 1 else kwargs.get("mode", "r")
                counted = isinstance(args[0], (str, os.PathLike)) and bool(WRITE_MODES & set(mode))
                counted = counted and paths[0].startswith(prefix)
            elif name == "fsync":
                counted = True
            else:  # relative names with dir_fd: shutil.rmtree inside the output directory
                counted = "dir_fd" in kwargs or any(p.startswith(prefix) for p in paths)
            if counted:
                log.append((name, paths))
                if crash_at == len(log):
                    raise Crash(f"killed at operation {crash_at}: {name} {paths}")
            return None if name == "fsync" else real(*args, **kwargs)

        patch.setattr(owner, name, operation)

    for name in ("mkdir", "link", "symlink", "rename", "replace", "unlink", "rmdir", "fsync"):
        wrap(os, name)
    wrap(builtins, "open")
    wrap(io, "open")  # pathlib's write_text / write_bytes
    try:
        yield log
    finally:
        patch.undo()


def fake_report(build_dir: Path) -> None:
    """The report step's file writes, without rendering charts (the real one: test_report.py)."""
    (build_dir / builds.REPORT_FILE).write_bytes(b"<html>report</html>")
    (build_dir / "scenario_report_overview.png").write_bytes(b"\x89PNG\r\n\x1a\n")


def test_a_crash_at_any_file_operation_leaves_the_previous_build_current_and_complete(sets, tmp_path, monkeypatch):
    monkeypatch.setattr(os, "fsync", lambda fd: None)  # not what this measures, and slow; counted below all the same

    def few(key):  # three scenarios of a slice: the files of a whole one, read quickly ~85 times
        return replace(sets[key], scenarios=sets[key].scenarios[:3])

    template = tmp_path / "template"
    first, _, _ = publish_sets(template, [few(("historical", "severe"))], keep=2)
    previous, _, _ = publish_sets(template, [few(("historical", "moderate"))], keep=2)
    expected = load_scenarios(template, timeseries=True)
    expected_doc = (previous / builds.METADATA_FILE).read_bytes()
    assert expected.build_id == previous.name and len(expected.timeseries) > 0
    files = {first.name: tree(first), previous.name: tree(previous)}

    # The next build: one new slice, staged once (its files are only read by the build).
    new_set = few(("historical", "extreme"))
    available = stage_sets(tmp_path / "stage", [new_set])
    plan = library.plan_build(available, ["historical"], ["extreme"], new_set.data_version, new_set.config_hash,
                              template, carry_over=False, all_families=list(FAMILY_SPECS), all_severities=list(SEVERITIES))

    def build(out, crash_at=None):
        with file_operations(out, crash_at) as log:
            try:
                library.build_and_publish(plan, out, 2, report=fake_report)
                crashed = False
            except Crash:
                crashed = True
        return crashed, log

    dry = tmp_path / "dry"
    shutil.copytree(template, dry, symlinks=True)
    crashed, log = build(dry)
    assert not crashed
    files[builds.current_build_id(dry)] = tree(builds.current_build(dry))
    names = [name for name, _ in log]
    commit = next(i for i, (name, paths) in enumerate(log, 1) if name == "replace" and paths[1] == str(dry / "CURRENT"))
    total = len(log)
    print(f"{total} file operations, the commit point is number {commit}")
    assert total > 40 and "rmdir" in names[commit:]  # the oldest build is deleted after the commit point

    for k in range(1, total + 1):
        out = tmp_path / f"crash{k}"
        shutil.copytree(template, out, symlinks=True)
        crashed, _ = build(out, crash_at=k)
        assert crashed, k
        now = builds.current_build_id(out)
        if k <= commit:  # before the commit point: the previous build, exactly, everywhere
            assert now == previous.name, k
            lib = load_scenarios(out, timeseries=True)
            assert lib.build_id == previous.name and lib.records == expected.records, k
            assert lib.timeseries.equals(expected.timeseries), k
            assert (out / builds.METADATA_FILE).read_bytes() == expected_doc, k
            assert json.loads((out / builds.METADATA_FILE).read_text())["run"]["build_id"] == previous.name
        else:  # after it: the new build, complete (its files: below)
            lib = load_scenarios(out)
            assert now != previous.name and lib.build_id == now and lib.records == records_of(new_set), k
        # Whatever is listed is complete: no half-written or half-deleted build.
        for kept in builds.published_builds(out):
            assert tree(out / "builds" / kept) == files[kept if kept in files else builds.current_build_id(dry)], k
        # The next build cleans up and publishes.
        final, _ = library.build_and_publish(plan, out, 2, report=fake_report)
        assert builds.current_build(out) == final and dot_entries(out) == NOTHING_LEFT, k
        assert builds.published_builds(out) == [now, final.name], k
        assert sorted(p.name for p in (out / "builds").iterdir()) == [now, final.name], k
        assert load_scenarios(out).records == records_of(new_set)
    assert first.name not in os.listdir(dry / "builds")
    # The order that makes the replacement of `CURRENT` the commit point: every file of the build is linked,
    # written and synced, the directory renamed to its final name, then `CURRENT` (the build's id) swapped in;
    # the `current` link for humans follows; old builds go last.
    renamed = next(i for i, (name, paths) in enumerate(log, 1) if name == "rename" and ".tmp-" in paths[0])
    assert names.count("link") == 5 and max(i for i, n in enumerate(names, 1) if n == "link") < renamed < commit
    assert names[commit - 3:commit] == ["open", "fsync", "replace"]
    assert log[commit - 3][0] == "open" and ".CURRENT." in log[commit - 3][1][0]  # the id, written then renamed
    after = names[commit:]
    if after[0] == "unlink":  # core.library.atomic.atomic_symlink first removes a temporary link a crash may have left
        after = after[1:]
    assert after[:2] == ["symlink", "replace"] and "fsync" in after  # the link, the directory


def test_a_crash_in_the_report_step_keeps_the_previous_build(sets, tmp_path):
    out = tmp_path / "lib"
    previous, _, _ = publish_sets(out, [sets["stress", "severe"]])
    before = (out / builds.METADATA_FILE).read_bytes()

    def broken(build_dir):
        (build_dir / builds.REPORT_FILE).write_bytes(b"<html>half")
        raise RuntimeError("matplotlib fell over")

    with pytest.raises(RuntimeError, match="matplotlib"):
        publish_sets(out, [sets["stress", "extreme"]], report=broken)
    assert builds.current_build(out) == previous and (out / builds.METADATA_FILE).read_bytes() == before
    assert not (out / builds.REPORT_FILE).exists()  # the previous build had no report; none appeared
    final, _, _ = publish_sets(out, [sets["stress", "extreme"]])
    assert dot_entries(out) == NOTHING_LEFT and builds.published_builds(out) == [previous.name, final.name]


def test_a_second_build_waits_for_a_publish_in_progress_then_publishes(sets, tmp_path):
    out = tmp_path / "lib"
    previous, _, _ = publish_sets(out, [sets["historical", "moderate"]])
    held, started = threading.Event(), time.monotonic()

    def hold_the_lock_for_a_second():
        with builds.build_lock(out):
            held.set()
            time.sleep(1.0)

    holder = threading.Thread(target=hold_the_lock_for_a_second)
    holder.start()
    held.wait(5)
    final, _, _ = publish_sets(out, [sets["historical", "severe"]])
    holder.join()
    assert time.monotonic() - started >= 1.0  # it waited for the other publish instead of failing
    assert builds.current_build(out) == final and builds.published_builds(out) == [previous.name, final.name]


def test_a_build_blocked_past_the_wait_is_refused_naming_the_holder(sets, tmp_path, monkeypatch):
    out = tmp_path / "lib"
    previous, _, _ = publish_sets(out, [sets["historical", "moderate"]])
    monkeypatch.setattr(builds, "LOCK_WAIT_SECONDS", 0.3)
    with builds.build_lock(out):
        with pytest.raises(BuildInProgressError, match=f"pid {os.getpid()}"):
            publish_sets(out, [sets["historical", "severe"]])
    assert builds.current_build(out) == previous and builds.published_builds(out) == [previous.name]
    assert (out / builds.LOCK_FILE).read_text() == ""  # released: no stale holder text


def test_carried_slices_are_stale_only_when_their_own_family_config_changed(sets, tmp_path):
    out = tmp_path / "lib"
    before = {"historical": "hist-1", "stress": "stress-1"}
    publish_sets(out, [sets["historical", "moderate"], sets["historical", "severe"], sets["stress", "moderate"],
                       sets["stress", "severe"]], family_hashes=before)
    # A new historical option changes the global config hash and historical's own; stress's stays.
    after = {"historical": "hist-2", "stress": "stress-1"}
    relabelled = replace(sets["historical", "severe"], config_hash="global-2")
    partial, _, _ = publish_sets(out, [relabelled], carry_over=True, config_hash="global-2", family_hashes=after)
    doc = json.loads((partial / builds.METADATA_FILE).read_text())
    assert {k: (v["origin"], v["stale"]) for k, v in doc["families"].items()} == {
        "historical/moderate": ("carried", True),  # built without the new historical option
        "historical/severe": ("new", False),
        "stress/moderate": ("carried", False),  # its own config did not change
        "stress/severe": ("carried", False),
    }
    lib = load_scenarios(out)  # each scenario says where its slice came from
    by_slice = lib.scenarios.groupby(["family", "severity"])[["origin", "stale", "config_hash"]].first()
    assert by_slice.loc[("historical", "moderate")].tolist() == ["carried", True, sets["historical", "moderate"].config_hash]
    assert by_slice.loc[("historical", "severe")].tolist() == ["new", False, "global-2"]


def test_staging_of_a_dead_process_is_removed_even_while_its_run_is_listed_as_started(tmp_path):
    out = tmp_path / "lib"
    dead = builds.new_staging(out, "historical", "severe", "run-killed")
    owner = json.loads((dead / "owner.json").read_text())
    (dead / "owner.json").write_text(json.dumps({**owner, "pid": 2**22 + 12345}))  # no such process
    alive = builds.new_staging(out, "stress", "severe", "run-alive")  # this process
    removed = builds.clean_staging(out, keep=set(), is_live=lambda run_id: True)  # the orchestrator says STARTED
    assert removed == [dead.name] and alive.is_dir() and not dead.exists()


# --- partial runs carry the other slices over -----------------------------------------------------------------

def slice_files(build: Path, family: str, severity: str) -> dict[str, Path]:
    hive = f"family={family}/severity={severity}"
    files = {f"slices/{family}/{severity}/{name}": build / "slices" / family / severity / name
             for name in (slices.RECORDS_FILE, slices.MANIFEST_FILE)}
    for dataset in (builds.TIMESERIES_FILE, builds.METRICS_FILE, builds.PORTFOLIO_FILE):
        for part in sorted((build / dataset / hive).glob("part-*.parquet")):
            files[f"{dataset}/{hive}/{part.name}"] = part
    return files


def test_a_partial_run_keeps_every_other_slice_byte_identical(sets, tmp_path):
    out = tmp_path / "lib"
    full, _, _ = publish_sets(out, list(sets.values()))
    full_doc = json.loads((full / builds.METADATA_FILE).read_text())
    assert len(full_doc["scenarios"]) == sum(len(ss) for ss in sets.values()) == 3 * (13 + 16)  # 13 replayed events (2022 bear included), 16 stress tests

    # One family at one severity, regenerated (same data and config): the rest comes from the current build.
    partial, header, plan = publish_sets(out, [sets["historical", "severe"]], carry_over=True)
    doc = json.loads((partial / builds.METADATA_FILE).read_text())
    assert [s.origin for s in plan.sources] == ["new" if k == ("historical", "severe") else "carried" for k in sets]
    assert {k: v["origin"] for k, v in doc["families"].items()} == {
        f"{f}/{s}": "new" if (f, s) == ("historical", "severe") else "carried" for f, s in sets}
    assert not any(v["stale"] for v in doc["families"].values())
    assert doc["run"]["previous_build"] == full.name and doc["run"]["build_id"] == partial.name
    assert [r["id"] for r in doc["scenarios"]] == [r["id"] for r in full_doc["scenarios"]]  # all 84, same order
    assert doc["scenarios"] == full_doc["scenarios"]  # same data, config and seed: the same records
    for family, severity in sets:
        old, new = slice_files(full, family, severity), slice_files(partial, family, severity)
        assert old.keys() == new.keys() and len(old) == 5  # records, manifest, one part of each dataset
        for rel in old:
            same_inode = os.stat(old[rel]).st_ino == os.stat(new[rel]).st_ino
            if (family, severity) == ("historical", "severe"):
                assert not same_inode, rel  # written by this run
            else:
                assert same_inode and old[rel].read_bytes() == new[rel].read_bytes(), rel  # linked, not copied
    summary = (partial / builds.SUMMARY_FILE).read_text()
    assert "new slices: historical/severe" in summary and f"carried over from build {full.name}" in summary
    # The catalog checks see every slice of the build, carried ones from their manifests.
    assert catalog_checks(plan.manifests)["unique_ids"]["value"] == 0
    assert catalog_checks(plan.manifests) == catalog_checks(list(sets.values()))

    # A new data version: the regenerated slice is current, the carried ones say they are not.
    relabelled = replace(sets["historical", "severe"], data_version="dv-next")
    stale_build, _, _ = publish_sets(out, [relabelled], carry_over=True)
    stale_doc = json.loads((stale_build / builds.METADATA_FILE).read_text())
    assert stale_doc["data_version"] == "dv-next"
    assert {k: (v["origin"], v["stale"], v["data_version"]) for k, v in stale_doc["families"].items()} == {
        f"{f}/{s}": ("new", False, "dv-next") if (f, s) == ("historical", "severe")
        else ("carried", True, sets[f, s].data_version) for f, s in sets}
    stale_summary = (stale_build / builds.SUMMARY_FILE).read_text()
    assert "carried-over slices from another data version or config: 5" in stale_summary
    assert len(load_scenarios(out)) == 3 * (13 + 16) and builds.published_builds(out) == [partial.name, stale_build.name]


def test_a_full_run_without_carry_over_holds_only_what_it_built(sets, tmp_path):
    out = tmp_path / "lib"
    publish_sets(out, list(sets.values()))
    final, _, _ = publish_sets(out, [sets["stress", "severe"]], carry_over=False)
    doc = json.loads((final / builds.METADATA_FILE).read_text())
    assert list(doc["families"]) == ["stress/severe"] and len(doc["scenarios"]) == 16


def test_cli_partial_run_keeps_the_library(tmp_path, monkeypatch, capsys):
    """The fix of "a partial run wipes the library": a full run, then one family at one severity."""
    from scenarios_assets.cli import main as cli

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    out = tmp_path / "lib"
    assert cli.main(["--output-dir", str(out)]) == 0, capsys.readouterr().err
    full = builds.current_build(out)
    full_doc = json.loads((out / builds.METADATA_FILE).read_text())
    assert len(full_doc["scenarios"]) == 504 and len(full_doc["families"]) == 15
    assert all(v["origin"] == "new" for v in full_doc["families"].values())

    assert cli.main(["--type", "historical", "--severity", "severe", "--output-dir", str(out)]) == 0, capsys.readouterr().err
    partial = builds.current_build(out)
    doc = json.loads((out / builds.METADATA_FILE).read_text())
    assert partial != full and doc["run"]["previous_build"] == full.name
    assert len(doc["scenarios"]) == 504 and len(load_scenarios(out)) == 504
    assert {k: v["origin"] for k, v in doc["families"].items()} == {
        k: "new" if k == "historical/severe" else "carried" for k in full_doc["families"]}
    assert not any(v["stale"] for v in doc["families"].values())
    assert set(doc["run"]["timings"]) == {"historical/severe"}
    assert doc["scenarios"] == full_doc["scenarios"]  # same data, config and seed
    for key in doc["families"]:
        family, severity = key.split("/")
        old, new = slice_files(full, family, severity), slice_files(partial, family, severity)
        assert old.keys() == new.keys()
        assert all((os.stat(old[r]).st_ino == os.stat(new[r]).st_ino) == (key != "historical/severe") for r in old)
    assert builds.published_builds(out) == [full.name, partial.name] and dot_entries(out) == NOTHING_LEFT
    summary = (out / builds.SUMMARY_FILE).read_text()  # what the CLI printed at the end
    assert "scenarios: 504" in summary and "new slices: historical/severe" in summary
    assert f"carried over from build {full.name}: historical/moderate, historical/extreme, regime/moderate" in summary


# --- reproducibility -----------------------------------------------------------------------------------------

def read_parts(directory: Path) -> pa.Table:
    tables = [pq.read_table(p) for p in sorted(directory.glob("part-*.parquet"))]
    table = pa.concat_tables([t.cast(pa.schema([
        pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type) for f in t.schema]))
        for t in tables])
    return table.combine_chunks()


@pytest.mark.parametrize("family", ["monte_carlo", "bootstrap"])
def test_chunk_size_changes_nothing_but_the_parts(family, make_ctx, tmp_path):
    n = 15
    written = {}
    for chunk in (1, 7, None):
        overrides = {"generation": {"stochastic": {family: {"num_scenarios": n}}}, "performance": {"paths_per_chunk": chunk}}
        directory = tmp_path / f"chunk{chunk}"
        directory.mkdir()
        manifest = slices.write_slice(family_stream(family, make_ctx("severe", overrides)), directory)
        assert manifest.count == n and manifest.timeseries
        written[chunk] = (directory, manifest)
    parts = {chunk: len(list((d / slices.TIMESERIES_PARTS).glob("*.parquet"))) for chunk, (d, _) in written.items()}
    assert parts == {1: 15, 7: 3, None: 1}
    base_dir, base = written[None]
    for chunk in (1, 7):
        directory, manifest = written[chunk]
        assert (directory / slices.RECORDS_FILE).read_bytes() == (base_dir / slices.RECORDS_FILE).read_bytes()
        for kind in (slices.TIMESERIES_PARTS, slices.METRICS_PARTS, slices.PORTFOLIO_PARTS):
            assert read_parts(directory / kind).equals(read_parts(base_dir / kind)), (chunk, kind)
        assert manifest.rows == base.rows and manifest.scenario_ids == base.scenario_ids
        # Set checks and set metadata (VaR/CVaR across paths, correlation stability) come from the streamed
        # statistics, which do not depend on the chunking either.
        assert manifest.validation == base.validation
        assert manifest.metadata == base.metadata
        assert {k: v for k, v in manifest.digest.items()} == base.digest
    assert read_parts(base_dir / slices.TIMESERIES_PARTS).num_rows == base.rows > 0


def test_two_builds_of_the_same_inputs_are_identical(make_ctx, tmp_path):
    small = {"generation": {"stochastic": {"monte_carlo": {"num_scenarios": 6}, "bootstrap": {"num_scenarios": 6}}}}
    docs = []
    for k in range(2):
        out = tmp_path / f"lib{k}"
        sets_k = [generate_family(fam, make_ctx("moderate", small)) for fam in ("historical", "monte_carlo", "bootstrap")]
        final, _, _ = publish_sets(out, sets_k)
        doc = json.loads((final / builds.METADATA_FILE).read_text())
        assert set(doc) == {"generated_at", "data_version", "config_hash", "families", "run", "scenarios"}
        doc.pop("generated_at"), doc.pop("run")
        docs.append((out, doc))
    (a, doc_a), (b, doc_b) = docs
    assert doc_a == doc_b and len(doc_a["scenarios"]) == 13 + 6 + 6
    for dataset in (builds.TIMESERIES_FILE, builds.METRICS_FILE, builds.PORTFOLIO_FILE):
        parts_a = sorted(p.relative_to(a / "current") for p in (a / "current" / dataset).rglob("*.parquet"))
        parts_b = sorted(p.relative_to(b / "current") for p in (b / "current" / dataset).rglob("*.parquet"))
        assert parts_a == parts_b and len(parts_a) == 3
        for rel in parts_a:
            assert pq.read_table(a / "current" / rel).equals(pq.read_table(b / "current" / rel)), rel


# --- retention -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("keep", [1, 2])
def test_retention_keeps_the_newest_builds(sets, tmp_path, keep):
    out = tmp_path / "lib"
    published = []
    for severity in SEVERITIES:
        final, _, _ = publish_sets(out, [sets["historical", severity]], keep=keep)
        published.append((final.name, sets["historical", severity]))
    kept = published[-keep:]
    assert builds.published_builds(out) == [name for name, _ in kept]
    assert sorted(p.name for p in (out / "builds").iterdir()) == [name for name, _ in kept]  # nothing else either
    assert builds.current_build_id(out) == published[-1][0]
    for name, ss in kept:
        lib = load_scenarios(out, build=name, timeseries=True)
        assert lib.build_id == name and lib.records == records_of(ss)
        assert len(lib.timeseries) == sum(int(np.isfinite(s.prices).sum()) for s in ss.scenarios)
        assert set(lib.timeseries["scenario_id"]) == {s.id for s in ss.scenarios}
    for name, _ in published[:-keep]:
        with pytest.raises(FileNotFoundError, match=f"no build '{name}'.*kept builds: {', '.join(n for n, _ in kept)}"):
            load_scenarios(out, build=name)
    assert load_scenarios(out).build_id == published[-1][0]


def test_keep_builds_below_one_is_refused(sets, tmp_path):
    from scenarios_assets.core.models.errors import ScenarioInputError

    out = tmp_path / "lib"
    previous, _, _ = publish_sets(out, [sets["historical", "moderate"]])
    with pytest.raises(ScenarioInputError, match="keep_builds must be >= 1"):
        publish_sets(out, [sets["historical", "severe"]], keep=0)
    assert builds.current_build(out) == previous


# --- leftovers -----------------------------------------------------------------------------------------------

def test_no_temporary_or_staged_file_survives_a_build(sets, tmp_path):
    out = tmp_path / "lib"
    for _ in range(2):
        publish_sets(out, [sets["stress", "moderate"], sets["stress", "severe"]])
        assert dot_entries(out) == NOTHING_LEFT
        assert sorted(p.name for p in out.iterdir()) == sorted(
            [*builds.PUBLISHED_NAMES, "builds", "current", builds.CURRENT_FILE, builds.STAGING_DIR, builds.LOCK_FILE])


def test_leftovers_of_killed_runs_are_removed_and_never_published(sets, tmp_path):
    out = tmp_path / "lib"
    previous, _, _ = publish_sets(out, [sets["historical", "moderate"]])
    killed_ss = sets["stress", "extreme"]
    # A family step killed mid-slice (no slice.json), and one killed after its slice was complete.
    half = builds.new_staging(out, "stress", "extreme", "killed-run")
    (half / slices.RECORDS_FILE).write_text('{"id": "stress.half.extreme"}\n')
    complete = builds.new_staging(out, "stress", "extreme", "killed-run")
    slices.write_slice(killed_ss.stream(), complete)
    # A step still running (its run is live), and a slice a later catalog may still take.
    running = builds.new_staging(out, "stress", "severe", "live-run")
    waiting = builds.new_staging(out, "stress", "moderate", "finished-run")
    # A publish killed after writing its build (never renamed), one killed after the rename (never current),
    # and the link it made before the swap.
    dead_tmp = builds.start_build(out, builds.new_build_id())
    shutil.copytree(previous, dead_tmp, dirs_exist_ok=True)
    orphan = out / "builds" / "29991231T000000000000Z-000000"  # complete, newer than the current one
    shutil.copytree(previous, orphan)
    os.symlink(f"builds/{orphan.name}", out / f".current.{orphan.name}")

    available = stage_sets(out, [sets["historical", "severe"]])
    plan = library.plan_build(available, ["historical"], ["severe"], killed_ss.data_version, killed_ss.config_hash,
                              out, carry_over=True, all_families=list(FAMILY_SPECS), all_severities=list(SEVERITIES))
    assert [s.manifest.key for s in plan.sources] == ["historical/moderate", "historical/severe"]
    final, header = library.build_and_publish(plan, out, 2)
    removed = builds.clean_staging(out, keep={waiting.name}, is_live=lambda run_id: run_id == "live-run")

    assert sorted(removed) == sorted([half.name, complete.name, Path(available["historical"]["severe"].path).name])
    assert sorted(p.name for p in (out / builds.STAGING_DIR).iterdir()) == sorted([running.name, waiting.name])
    assert sorted(p.name for p in (out / "builds").iterdir()) == [previous.name, final.name]
    assert not list(out.glob(".current.*")) and builds.current_build(out) == final
    ids = {r["id"] for r in load_scenarios(out).records}
    assert ids == {s.id for k in (("historical", "moderate"), ("historical", "severe")) for s in sets[k].scenarios}
    assert not ids & {s.id for s in killed_ss.scenarios} and set(header["families"]) == {
        "historical/moderate", "historical/severe"}


# --- memory --------------------------------------------------------------------------------------------------

def owners(array) -> list:
    """An array and every array it is a view of (what keeps its memory alive)."""
    chain = []
    while isinstance(array, np.ndarray):
        chain.append(array)
        array = array.base
    return chain


def test_write_slice_holds_one_chunk_of_paths_at_a_time(make_ctx, tmp_path):
    def ctx(paths, chunk):
        return make_ctx("severe", {"generation": {"stochastic": {"monte_carlo": {"num_scenarios": paths}}},
                                   "performance": {"paths_per_chunk": chunk}})

    # 1. No array of chunk k - 2 is alive when chunk k is produced (k - 1 may be: the loop still names it).
    stream = family_stream("monte_carlo", ctx(60, 10))
    alive: list[list[weakref.ref]] = []
    path_bytes = []

    def watched():
        for k, chunk in enumerate(stream.chunks):
            if k >= 2:
                assert not [r for r in alive[k - 2] if r() is not None], f"chunk {k - 2} still alive at chunk {k}"
            alive.append([weakref.ref(a) for s in chunk for a in (*owners(s.returns), *owners(s.prices))])
            path_bytes.append(chunk[0].returns.nbytes + chunk[0].prices.nbytes)  # one path's float32 arrays
            yield chunk

    (tmp_path / "watched").mkdir()  # also the first use: imports and caches happen outside the measures below
    manifest = slices.write_slice(ScenarioStream(**{**stream.__dict__, "chunks": watched()}), tmp_path / "watched")
    assert manifest.count == 60 and len(alive) == 6

    # 2. Peak traced memory does not grow with the path count (one chunk, plus bounded statistics).
    def peak(paths, chunk):
        stream = family_stream("monte_carlo", ctx(paths, chunk))  # calibration (cached) outside the measure
        directory = tmp_path / f"p{paths}-{chunk}-{len(list(tmp_path.iterdir()))}"
        directory.mkdir()
        gc.collect()
        tracemalloc.start()
        try:
            slices.write_slice(stream, directory)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    path_bytes = path_bytes[0]
    # Each measured twice, the lower kept: a one-time allocation (a cache filled or a module imported on first
    # use, which a full CI run once put in the 120-path measure: +7.7 MB) is not growth with the path count.
    few, many, whole = (min(peak(p, c), peak(p, c)) for p, c in ((30, 10), (120, 10), (120, 120)))
    print(f"peak traced memory: 30 paths {few / 1e6:.1f} MB, 120 paths {many / 1e6:.1f} MB (chunks of 10), "
          f"120 in one chunk {whole / 1e6:.1f} MB; 120 paths of arrays {120 * path_bytes / 1e6:.1f} MB")
    assert many - few < 0.25 * 90 * path_bytes  # 90 more paths cost less than a quarter of their arrays
    assert many < whole / 5 and whole > 120 * path_bytes


def test_scenarios_builds_lists_the_kept_builds_and_prints_one_by_id(sets, tmp_path, capsys):
    from scenarios_assets.cli.builds import builds_main

    out = tmp_path / "lib"
    first, _, _ = publish_sets(out, [sets["historical", "moderate"]])
    second, _, _ = publish_sets(out, [sets["stress", "moderate"]], carry_over=True)
    assert builds_main(["--output-dir", str(out), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["build_id"], r["current"], r["new"], r["carried_over"]) for r in rows] == [
        (second.name, True, ["stress/moderate"], ["historical/moderate"]),
        (first.name, False, ["historical/moderate"], []),
    ]
    assert builds_main([first.name, "--output-dir", str(out)]) == 0
    assert capsys.readouterr().out == (first / builds.SUMMARY_FILE).read_text()
    assert builds_main(["no-such-build", "--output-dir", str(out)]) == 2
    assert f"kept builds: {first.name}, {second.name}" in capsys.readouterr().err
