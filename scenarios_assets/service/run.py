"""Running a plan: market data, each severity's families, then the catalog, as Dagster runs on the project's
instance (DAGSTER_HOME), one run at a time per instance and per output directory. The CLI runs it in its
own process; the API in a background worker process (``api/generation.py``)."""

from __future__ import annotations

import os
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

from scenarios_assets.core.families.registry import FAMILY_SPECS
from scenarios_assets.core.library.builds import SUMMARY_FILE, current_build, current_build_id
from scenarios_assets.core.models.errors import ScenarioInputError
from scenarios_assets.service.instance import ensure_dagster_home
from scenarios_assets.service.plan import Plan

# Exit statuses of a generation: the CLI's, and the API worker's.
EXIT_OK, EXIT_RUN_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class RunFailed(RuntimeError):
    """A Dagster run of the plan failed (its one-line reason)."""


def run_plan(plan: Plan, out=None, tags: dict | None = None, preflight_seconds: float = 0.0,
             startup_seconds: float = 0.0) -> int:
    """Run market data, each severity's families, then the catalog, as Dagster runs on the instance.

    Each step is shown as it starts and ends (bars on a terminal, plain lines elsewhere: ``progress``); the
    end says where the wall time went.

    Parameters
    ----------
    plan : Plan
        From ``plan.build_plan``, checked by ``preflight.preflight``.
    out : text stream, optional
        Where progress and the summary go (default: sys.stdout). Errors go to sys.stderr, one line
        starting ``error: ``.
    tags : dict, optional
        Extra tags on every run, e.g. the REST API's request id.
    preflight_seconds, startup_seconds : float
        The caller's load of the market data and the process's start-up before it, counted in the wall time.

    Returns
    -------
    int
        EXIT_OK; EXIT_RUN_FAILED when a run failed (the reason on stderr); EXIT_BAD_INPUT when another run
        holds the instance or the output directory.
    """
    started_at = time.perf_counter()
    out = out if out is not None else sys.stdout
    plan.apply_secrets()
    if not plan.verbose:
        warnings.filterwarnings("ignore")
        os.environ.setdefault("PYTHONWARNINGS", "ignore")  # step subprocesses of --parallel inherit it
    home = ensure_dagster_home()
    try:
        locks = run_locks(plan, home)
    except ScenarioInputError as exc:  # another run holds the instance or the output directory
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    with locks:
        return _run_plan_locked(plan, home, out, tags,
                                lambda: startup_seconds + preflight_seconds + time.perf_counter() - started_at,
                                preflight_seconds, startup_seconds)


# Held for a whole run (core.library.locks): in DAGSTER_HOME, whose file storage every run's asset outputs share,
# and in the output directory (not for a dry run, which writes nothing there).
RUN_LOCK = ".scenarios-run.lock"


def run_locks(plan: Plan, home: Path):
    """One run at a time per Dagster instance and per output directory.

    Parameters
    ----------
    plan : Plan
        What is about to run (named in the lock, for a second run's refusal).
    home : Path
        The Dagster home (``instance.ensure_dagster_home``).

    Returns
    -------
    contextlib.ExitStack
        Holding the locks (the output directory's only when not a dry run); closing it releases them.

    Raises
    ------
    ScenarioInputError
        Another run holds one of them: naming it (pid, what it builds, where, since when).
    """
    from contextlib import ExitStack

    from scenarios_assets.core.library.locks import exclusive
    from scenarios_assets.core.library.store import local_lock_path

    holder = (f"pid {os.getpid()}: families {', '.join(plan.families)}, severities {', '.join(plan.severities)}, "
              f"output {plan.output_dir}{' (dry run)' if plan.settings.get('dry_run') else ''}")
    stack = ExitStack()
    try:
        stack.enter_context(exclusive(home / RUN_LOCK, holder, f"the Dagster instance {home}"))
        if not plan.settings.get("dry_run"):
            stack.enter_context(exclusive(local_lock_path(plan.output_dir, RUN_LOCK), holder,
                                          f"the output directory {plan.output_dir}"))
    except BaseException:
        stack.close()
        raise
    return stack


def _run_plan_locked(plan: Plan, home: Path, out, tags: dict | None, wall, preflight_seconds: float,
                     startup_seconds: float) -> int:
    from dagster import DagsterInstance, execute_job, reconstructable

    from scenarios_assets import definitions
    from scenarios_assets.service.progress import RunTiming, RunWatcher, make_display, time_report, totals_lines

    instance = DagsterInstance.get()
    from scenarios_assets.defs.dead_runs import mark_dead_runs, process_tags
    from scenarios_assets.defs.executors import execution_config

    dead = mark_dead_runs(instance)  # runs of killed processes would otherwise stay STARTED for ever
    if dead:
        print(f"  marked {len(dead)} run(s) of dead processes failed: {', '.join(dead)}", file=out)

    executor = execution_config(plan.executor, plan.workers, plan.dask_scheduler)
    base_config = {
        "resources": {"settings": {"config": plan.settings}},
        "execution": {"config": executor},
    }
    if not plan.verbose:
        base_config["loggers"] = {"console": {"config": {"log_level": "CRITICAL"}}}
    print(f"dagster instance: {home}", file=out)
    display = make_display(out, plain=plan.verbose)  # with Dagster's own log lines, bars would be torn apart
    runs: list[RunTiming] = []

    # Step processes (--parallel, Dask) print Dagster's DEBUG line "Executing step ... in subprocess" to the
    # terminal before the run's (quiet) loggers take over: their console output goes to a log file instead.
    step_log = None if plan.verbose or plan.executor == "in_process" else home / "logs" / "scenarios-steps.log"

    def run(job_fn, label: str, partition: str | None = None, assets=None):
        started = time.perf_counter()
        with RunWatcher(instance, display, partition or "") as watcher, stderr_to(step_log):
            run_tags = ({"scenarios/cli": "1"} | process_tags() | (tags or {})
                        | ({"dagster/partition": partition} if partition else {}) | watcher.tags)
            result = execute_job(
                reconstructable(job_fn), instance=instance, run_config=base_config, tags=run_tags, asset_selection=assets
            )
        seconds = time.perf_counter() - started
        runs.append(RunTiming(label, seconds, list(watcher.steps.values())))
        if not result.success:
            raise RunFailed(f"{label} failed (run {result.run_id}): {_failure_message(result)}")
        return result, seconds

    from scenarios_assets.defs.keys import family_key

    before = current_build_id(plan.output_dir)
    try:
        _, secs = run(definitions.market_data_job_def, "market data")
        print(f"  market data loaded and validated ({secs:.1f} s)", file=out)
        family_keys = [family_key(FAMILY_SPECS[f]) for f in plan.families]
        for severity in plan.severities:
            result, secs = run(definitions.scenarios_job_def, f"scenarios [{severity}]", severity, family_keys)
            in_steps = sum(step.seconds or 0.0 for step in runs[-1].steps)
            print(f"  {severity}: done in {secs:.1f} s ({in_steps:.1f} s in its steps, the rest Dagster's run "
                  "start-up and inputs)", file=out)
        result, secs = run(definitions.catalog_job_def, "catalog")
    except RunFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(_library_state(plan.output_dir, before), file=sys.stderr)
        if step_log is not None:
            print(f"the step processes' console output is in {step_log}", file=sys.stderr)
        return EXIT_RUN_FAILED
    if plan.settings["dry_run"]:
        print(f"  dry run: catalog validated, nothing written ({secs:.1f} s)", file=out)
        print("", file=out)
        for line in totals_lines(runs):
            print(line, file=out)
    else:
        build = current_build(plan.output_dir)
        print(f"  build {build.name if build else '?'} published in {plan.output_dir} ({secs:.1f} s)", file=out)
        if build is not None and (build / SUMMARY_FILE).exists():
            print("", file=out)
            print((build / SUMMARY_FILE).read_text(), file=out, end="")
    print("", file=out)
    for line in time_report(wall(), preflight_seconds, runs, startup_seconds):
        print(line, file=out)
    return EXIT_OK


@contextmanager
def stderr_to(path: Path | None):
    """File descriptor 2 (inherited by step subprocesses) appended to ``path`` for the block; None: unchanged."""
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _library_state(output_dir: Path, before: str | None) -> str:
    """What a failed run did to the library, as it is: unchanged, or a build published before the failure."""
    after = current_build_id(output_dir)
    if after == before:
        return f"the library in {output_dir} is unchanged (current build: {after or 'none'})"
    previous = f"the previous one, {before}, is kept" if before else "there was no build before it"
    return f"build {after} was published in {output_dir} before the failure and is current ({previous})"


# Characters of one failed check's reason in the CLI's one line (the whole text is in the run's metadata).
CHECK_DETAIL_CHARS = 240


def _failed_blocking_checks(result) -> str | None:
    """'asset check: reason; ...' of the blocking (ERROR severity) checks that failed in the run, or None."""
    from dagster import AssetCheckSeverity

    failed = []
    for evaluation in result.get_asset_check_evaluations():
        if evaluation.passed or evaluation.severity != AssetCheckSeverity.ERROR:
            continue
        md = evaluation.metadata
        detail = md["detail"].value if "detail" in md else evaluation.description or ""
        detail = " ".join(str(detail).split())
        if len(detail) > CHECK_DETAIL_CHARS:
            detail = detail[: CHECK_DETAIL_CHARS - 1].rstrip() + "…"
        failed.append(f"{evaluation.asset_key.to_user_string()} check {evaluation.check_name}: {detail or 'failed'}")
    if not failed:
        return None
    return f"{len(failed)} blocking check(s) failed: " + "; ".join(failed)


def _failure_message(result) -> str:
    """One line: the failed blocking checks (asset, check, reason), else the innermost error message of the
    first failed step, without Dagster's wrapping."""
    checks = _failed_blocking_checks(result)
    if checks is not None:
        return checks
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            while error.cause is not None:
                error = error.cause
            message = error.message.strip()
            for prefix in ("scenarios_assets.core.models.errors.ScenarioInputError: ", "dagster._core.definitions.events.Failure: "):
                message = message.removeprefix(prefix)
            return message.splitlines()[0] if message else error.cls_name or "unknown error"
    return "a step failed; run with --verbose or open the run in the Dagster UI"


