"""The seed-compatible command line: generates the scenario library through Dagster.

Every invocation runs the same jobs as the UI and the daemon against the instance in DAGSTER_HOME
(default: the project's .dagster_home), so CLI runs appear in the Dagster UI. Bad flags or bad input
exit with status 2 and one line naming the problem, before anything is generated or written.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scenarios_assets.core.models.config import config_hash, default_config
from scenarios_assets.core.data.config_file import load_config
from scenarios_assets.core.data.dates import parse_iso_date
from scenarios_assets.core.models.errors import ScenarioInputError
from scenarios_assets.core.families.registry import CLI_TYPES, FAMILY_SPECS, enabled, families_for_type
from scenarios_assets.core.data.database import PASSWORD_ENV, split_password
from scenarios_assets.core.data.price_moves import parse_accepted_moves
from scenarios_assets.core.data.paths import DEFAULT_DAGSTER_HOME, DEFAULT_OUTPUT_DIR, INSTANCE_TEMPLATE
from scenarios_assets.core.models.severity import parse_severities
from scenarios_assets.core.library.builds import SUMMARY_FILE, current_build, current_build_id

if TYPE_CHECKING:
    from scenarios_assets.core.library.footprint import Sizes

EXIT_OK, EXIT_RUN_FAILED, EXIT_BAD_INPUT = 0, 1, 2
# Config keys that --num-scenarios sets: the scenario count of every family that has one.
NUM_SCENARIOS_KEYS = (("stochastic", "monte_carlo", "num_scenarios"), ("stochastic", "bootstrap", "num_scenarios"))


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one ScenarioInputError line (exit 2), like every other bad input."""

    def error(self, message: str):
        raise ScenarioInputError(f"{self.prog}: {message}")


def _iso_date(text: str) -> str:
    try:
        return parse_iso_date(text).isoformat()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_gib(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of GiB") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of GiB, got {text}")
    return value


# Subcommands besides generation: name -> "module:function" taking argv and returning an exit code.
SUBCOMMANDS: dict[str, str] = {
    "builds": "scenarios_assets.cli.builds:builds_main",
    "load-market-data": "scenarios_assets.cli.db:load_market_data_main",
    "serve": "scenarios_assets.api:serve",
}
SUBCOMMAND_HELP = {
    "serve": "the REST API over the library (OpenAPI docs at /docs)",
    "load-market-data": "publish OHLCV rows into a PostgreSQL table",
    "builds": "list the kept builds of the library (* = current)",
}


def build_parser() -> argparse.ArgumentParser:
    commands = "\n".join(f"  scenarios {name:<17} {what}" for name, what in SUBCOMMAND_HELP.items())
    p = OneLineParser(
        prog="scenarios",
        usage="scenarios [options]                 generate the library (options below)\n"
              "       scenarios COMMAND [options]         " + ", ".join(SUBCOMMAND_HELP) + " (each takes --help)",
        description="Generate the market-scenario library through Dagster, or run one of the commands:\n" + commands,
        epilog="Steps are shown as they start and end (bars on a terminal, plain lines otherwise); the run ends with "
               "where its wall time went.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--type", default="all", choices=CLI_TYPES, help="which scenario families to generate")
    p.add_argument("--include-full-cycles", action="store_true", help="also replay full market cycles")
    p.add_argument("--num-scenarios", type=_positive_int, help="scenarios per severity for stochastic families")
    p.add_argument("--severity", default="all", choices=("moderate", "severe", "extreme", "all"))
    p.add_argument("--save-timeseries", action="store_true", default=None, help="write scenario_timeseries.parquet")
    p.add_argument("--no-save-timeseries", dest="save_timeseries", action="store_false", help="metadata and summary only")
    p.add_argument("--parallel", action="store_true",
                   help="run the family steps of a severity as parallel processes. Slower on 2 cores: every step "
                        "process costs seconds to start and the steps share the cores (measured on this project's "
                        "2-core machine: see the README, Command line); it pays only with long steps (many paths "
                        "and symbols) and more cores. The default runs in process")
    p.add_argument("--workers", type=_positive_int,
                   help="processes for --parallel or --executor multiprocess/dask (default: config, 2); "
                        "without them it has no effect, and says so")
    p.add_argument("--executor", choices=("in_process", "multiprocess", "dask"),
                   help="how steps run (default: in_process, multiprocess with --parallel); dask: one task per "
                        "family step on a dask.distributed cluster")
    p.add_argument("--dask-scheduler", metavar="ADDRESS",
                   help="scheduler of a running dask cluster, e.g. tcp://127.0.0.1:8786 (implies --executor dask; "
                        "without it --executor dask starts a local cluster of --workers processes)")
    p.add_argument("--symbols", help="comma-separated universe, e.g. SPX,AAPL,MSFT (default: all)")
    p.add_argument("--start-date", type=_iso_date, help="first date of market data to use (YYYY-MM-DD)")
    p.add_argument("--end-date", type=_iso_date, help="last date of market data to use (YYYY-MM-DD)")
    p.add_argument("--dry-run", action="store_true", help="generate and validate, write nothing")
    p.add_argument("--market-data", help="OHLCV Parquet/CSV file or directory, or a postgresql:// URL")
    p.add_argument("--accept-move", action="append", metavar="SYMBOL:YYYY-MM-DD",
                   help="accept a real one-session move that the split check refuses (repeatable; adds to the "
                        "config's data.accepted_moves)")
    p.add_argument("--output-dir", help=f"the library: its builds and current files (default: {DEFAULT_OUTPUT_DIR})")
    p.add_argument("--config", help="YAML config overriding the shipped defaults")
    p.add_argument("--seed", type=int, help="base seed of every random draw")
    p.add_argument("--memory-limit", type=_positive_gib, metavar="GIB",
                   help="refuse up front a request estimated to need more memory (default: config "
                        "performance.memory_limit_gib, else 0.8 of the available memory)")
    p.add_argument("--disk-limit", type=_positive_gib, metavar="GIB",
                   help="refuse up front a request estimated to write more (default: config "
                        "performance.disk_limit_gib, else 0.9 of the output directory's free space)")
    p.add_argument("--verbose", action="store_true", help="show Dagster's logs")
    return p


@dataclass
class Plan:
    """What one CLI invocation runs, resolved and validated before any Dagster run starts."""

    families: list[str]
    severities: list[str]
    settings: dict
    config: dict
    output_dir: Path
    parallel: bool
    workers: int
    verbose: bool
    executor: str = "in_process"
    dask_scheduler: str | None = None
    # Environment variables the run's processes need but Dagster must not store (a database password).
    secrets: dict[str, str] = field(default_factory=dict, repr=False)
    notes: list[str] = field(default_factory=list)  # one line each, printed before anything runs
    memory_limit_gib: float | None = None  # --memory-limit / --disk-limit (core.library.footprint.limits)
    disk_limit_gib: float | None = None
    sizes: Sizes | None = None  # core.library.footprint.Sizes of the loaded market data, set by preflight

    def apply_secrets(self) -> None:
        """Put ``secrets`` into this process's environment, which the run's steps inherit."""
        os.environ.update(self.secrets)


def plan_from_args(args: argparse.Namespace) -> Plan:  # noqa: C901 - complexity 23: one branch per flag
    if args.start_date and args.end_date and args.end_date < args.start_date:
        raise ScenarioInputError(f"--end-date {args.end_date} is before --start-date {args.start_date}")
    overrides: dict = {}
    if args.seed is not None:
        overrides["seed"] = args.seed
    data = {}
    if args.symbols is not None:
        symbols = [s.strip() for s in args.symbols.split(",") if s.strip()]
        if not symbols:
            raise ScenarioInputError("--symbols is empty (give e.g. --symbols SPX,AAPL)")
        data["symbols_universe"] = symbols
    if args.start_date:
        data["start_date"] = args.start_date
    if args.end_date:
        data["end_date"] = args.end_date
    if data:
        overrides["data"] = data
    generation: dict = {}
    if args.include_full_cycles:
        generation["historical"] = {"include_full_cycles": True}
    if args.num_scenarios is not None:
        defaults = default_config()["generation"]
        present = [keys for keys in NUM_SCENARIOS_KEYS if _has_path(defaults, keys)]
        if not present:
            raise ScenarioInputError("--num-scenarios: no stochastic family is available in this version")
        for keys in present:
            _set_path(generation, keys, args.num_scenarios)
    if generation:
        overrides["generation"] = generation
    performance: dict = {}
    if args.save_timeseries is not None:
        performance["save_timeseries"] = args.save_timeseries
    if performance:
        overrides["performance"] = performance

    config = load_config(args.config, overrides)
    if args.accept_move:
        parse_accepted_moves(args.accept_move, "--accept-move")
        moves = list(dict.fromkeys([*config["data"]["accepted_moves"], *args.accept_move]))
        overrides.setdefault("data", {})["accepted_moves"] = moves
        config = load_config(args.config, overrides)
    families = [f for f in families_for_type(args.type) if enabled(FAMILY_SPECS[f], config)]
    if not families:
        raise ScenarioInputError(f"--type {args.type}: no enabled scenario family of that type in this version")
    severities = parse_severities(args.severity)
    parallel = bool(args.parallel or config["performance"]["parallel"])
    workers = int(args.workers or config["performance"]["workers"])
    output_dir = check_output_dir(args.output_dir)
    settings = {
        "config_file": str(Path(args.config).resolve()) if args.config else "",
        "overrides_json": json.dumps(overrides, sort_keys=True),
        "output_dir": str(output_dir),
        "families": families,
        "severities": severities,
        "dry_run": bool(args.dry_run),
    }
    secrets: dict[str, str] = {}
    if args.market_data is not None:
        source = args.market_data
        if not source.strip():
            raise ScenarioInputError("--market-data is empty (give a Parquet/CSV file or directory, or a postgresql:// URL)")
        if "://" in source:
            # The password never enters the run config Dagster stores: the run's process gets it from the
            # environment (core.data.database.PASSWORD_ENV).
            source, password = split_password(source)
            if password is not None:
                secrets[PASSWORD_ENV] = password
            settings["market_data"] = source
        else:
            settings["market_data"] = str(Path(source).resolve())
    executor = args.executor or ("dask" if args.dask_scheduler else "multiprocess" if parallel else "in_process")
    if args.dask_scheduler and executor != "dask":
        raise ScenarioInputError(f"--dask-scheduler needs --executor dask, not --executor {executor}")
    notes = []
    if args.workers is not None and executor == "in_process":
        notes.append(f"note: --workers {args.workers} has no effect: the steps run in this process; add --parallel "
                     f"(or --executor multiprocess/dask) to run them on {args.workers} processes")
    return Plan(families, severities, settings, config, output_dir, executor != "in_process", workers, args.verbose,
                executor, args.dask_scheduler, secrets, notes, args.memory_limit, args.disk_limit)


def check_output_dir(given: str | None) -> Path:
    """The library directory (``--output-dir``, else $SCENARIOS_OUTPUT_DIR, else data/scenarios), checked
    before anything runs: not empty, not a file, and creatable/writable (a probe file is created and removed
    in it, or in its nearest existing parent). A ``file://`` URL is its local path; another fsspec URL
    (``s3://bucket/prefix``) is probed with an object written and deleted (core.library.store.probe_store). Raises
    ScenarioInputError naming the flag or variable."""
    import tempfile

    env = os.environ.get("SCENARIOS_OUTPUT_DIR")
    what, text = ("--output-dir", given) if given is not None else ("SCENARIOS_OUTPUT_DIR", env) if env is not None else (
        "the default output directory", str(DEFAULT_OUTPUT_DIR))
    if not text.strip():
        raise ScenarioInputError(f"{what} is empty (give the library's directory, e.g. data/scenarios)")
    from scenarios_assets.core.library.store import is_remote, is_url, location, probe_store

    if is_url(text):
        path = location(text)  # file:// -> the local path; unknown schemes refused here
        if is_remote(path):
            probe_store(path, what)
            return path
        text = str(path)
    path = Path(text).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise ScenarioInputError(f"{what} '{text}' is a file, not a directory (give the library's directory)")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ScenarioInputError(f"{what} '{text}': '{existing}' is a file, so the directory cannot be created")
    try:
        fd, probe = tempfile.mkstemp(prefix=".scenarios-write-check-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        where = "" if existing == path else f" (its nearest existing parent '{existing}')"
        raise ScenarioInputError(f"{what} '{text}' is not writable{where}: {reason}") from None
    return path


def _has_path(mapping: dict, keys: tuple[str, ...]) -> bool:
    for key in keys:
        if not isinstance(mapping, dict) or key not in mapping:
            return False
        mapping = mapping[key]
    return True


def _set_path(mapping: dict, keys: tuple[str, ...], value) -> None:
    for key in keys[:-1]:
        mapping = mapping.setdefault(key, {})
    mapping[keys[-1]] = value


def preflight(plan: Plan) -> str:
    """Load and validate the market data exactly as the asset will, so bad input fails here, cleanly; check
    the config's catalog selections (historical events, stress tests) too."""
    from scenarios_assets.core.families.historical import load_events
    from scenarios_assets.core.data.market import load_configured_market_data, market_source
    from scenarios_assets.core.families.stress import select_definitions

    if plan.dask_scheduler:
        check_scheduler(plan.dask_scheduler)
    generation = plan.config["generation"]
    load_events(generation["historical"]["include_full_cycles"], generation["historical"]["events"])
    select_definitions(generation["stress"]["include"])

    from scenarios_assets.core.library.footprint import market_sizes

    source = market_source(plan.settings.get("market_data"))
    rows = check_footprint(plan, source)  # loading alone may not fit: checked on the source's row count first
    market = load_configured_market_data(source, plan.config["data"])
    plan.sizes = market_sizes(market, plan.config, rows)
    check_footprint(plan, source)
    spelled = market.report.get("symbols_requested")
    if spelled and spelled != plan.config["data"]["symbols_universe"]:  # e.g. spx -> SPX: one config, one hash
        overrides = json.loads(plan.settings["overrides_json"])
        overrides.setdefault("data", {})["symbols_universe"] = spelled
        plan.settings["overrides_json"] = json.dumps(overrides, sort_keys=True)
        plan.config["data"]["symbols_universe"] = spelled
    lines = [
        f"market data {market.source}: {len(market.symbols)} symbols, {market.dates[0].date()}..{market.dates[-1].date()}, "
        f"version {market.data_version}"
    ]
    return "\n  ".join(lines + input_notes(market.report))


def check_footprint(plan: Plan, source: str) -> int | None:
    """Refuse (ScenarioInputError, one line: core.library.footprint.refusal) a request whose estimated memory or disk
    is above its limits: before the market data is read, on the source's row count and the load alone; after
    (``plan.sizes`` set), on every step. Returns the source's row count."""
    from scenarios_assets.core.library import footprint

    rows = plan.sizes.rows if plan.sizes is not None else footprint.source_rows(source)
    sizes = plan.sizes if plan.sizes is not None else footprint.Sizes(rows, 0, 0)
    families = plan.families if plan.sizes is not None else []
    est = footprint.estimate(plan.config, families, plan.severities, sizes,
                             bool(plan.config["performance"]["save_timeseries"]), bool(plan.settings.get("dry_run")))
    lim = footprint.limits(plan.config["performance"], plan.output_dir, plan.memory_limit_gib, plan.disk_limit_gib)
    line = footprint.refusal(est, lim, plan.output_dir)
    if line is not None:
        raise ScenarioInputError(line)
    return rows


SCHEDULER_TIMEOUT_SECONDS = 10


def check_scheduler(address: str) -> None:
    """Connect to the dask scheduler at ``address`` (``--dask-scheduler``) before anything runs; ScenarioInputError
    naming the address when it cannot be reached within SCHEDULER_TIMEOUT_SECONDS."""
    import logging

    from distributed import Client

    logging.getLogger("distributed").setLevel(logging.CRITICAL)  # its own retry warnings: the one line below says it
    try:
        client = Client(address, timeout=f"{SCHEDULER_TIMEOUT_SECONDS}s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) or "Timed out" in str(exc) else type(exc).__name__
        raise ScenarioInputError(f"--dask-scheduler {address}: cannot reach the dask scheduler ({reason} after "
                                 f"{SCHEDULER_TIMEOUT_SECONDS} s); start it (dask scheduler) or fix the address") from None
    finally:
        logging.getLogger("distributed").setLevel(logging.WARNING)
    client.close()


def input_notes(report: dict) -> list[str]:
    """What reading the market data did besides the plain rows (``MarketData.report``), one note a line."""
    notes = []
    if "files_read" in report:
        files = report["files_read"]
        skipped = report.get("files_skipped") or []
        notes.append(
            f"read {len(files)} file(s): {', '.join(files[:8])}{', ...' if len(files) > 8 else ''}; "
            f"skipped {len(skipped)}" + (f": {', '.join(skipped[:8])}{', ...' if len(skipped) > 8 else ''}" if skipped else "")
        )
    if report.get("columns_renamed"):
        notes.append("columns read as " + ", ".join(f"{k!r} -> {v}" for k, v in report["columns_renamed"].items()))
    if report.get("symbols_stripped"):
        stripped = list(report["symbols_stripped"].items())
        notes.append("symbols read without surrounding spaces: " + ", ".join(f"{k!r} -> {v}" for k, v in stripped[:8])
                     + (", ..." if len(stripped) > 8 else ""))
    if report.get("seven_day_symbols"):
        notes.append(
            f"seven-day calendar: {', '.join(report['seven_day_symbols'])}; {report.get('off_calendar_rows', 0)} row(s) "
            "on days that are not sessions of the market calendar folded into the next session"
        )
    elif report.get("off_calendar_rows"):
        notes.append(f"{report['off_calendar_rows']} weekend row(s) folded into the next session")
    if report.get("rows_after_last_session"):
        notes.append(f"{report['rows_after_last_session']} row(s) after the last session of the market calendar left out")
    if report.get("accepted_moves"):
        notes.append(f"accepted split-like move(s): {', '.join(report['accepted_moves'])}")
    return notes


def ensure_dagster_home() -> Path:
    """DAGSTER_HOME, defaulting to the project's .dagster_home with the project's instance config
    (dagster.sqlite.yaml) in it as dagster.yaml."""
    home = Path(os.environ.get("DAGSTER_HOME") or DEFAULT_DAGSTER_HOME).resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    target, template = home / "dagster.yaml", INSTANCE_TEMPLATE
    # A home without instance config gets the project's; the project's own home always tracks it.
    stale = home == DEFAULT_DAGSTER_HOME.resolve() and target.exists() and target.read_bytes() != template.read_bytes()
    if template.exists() and (not target.exists() or stale):
        shutil.copyfile(template, target)
    return home


class RunFailed(RuntimeError):
    pass


def run_plan(plan: Plan, out=None, tags: dict | None = None, preflight_seconds: float = 0.0,
             startup_seconds: float = 0.0) -> int:
    """Run market data, each severity's families, then the catalog, as Dagster runs on the instance
    (``tags``: extra tags on every run, e.g. the REST API's request id; ``out``: default sys.stdout). Each step
    is shown as it starts and ends (bars on a terminal, plain lines elsewhere: ``cli_progress``); the end says
    where the wall time went (``startup_seconds``, ``preflight_seconds``: the process's start-up and the
    caller's load of the market data before, counted in)."""
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
    """One run at a time per Dagster instance and per output directory: a second one is refused up front,
    naming the first (pid, what it builds, where, since when)."""
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
    from scenarios_assets.cli.progress import RunTiming, RunWatcher, make_display, time_report, totals_lines

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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        import importlib

        module, function = SUBCOMMANDS[argv[0]].split(":")
        return getattr(importlib.import_module(module), function)(argv[1:])
    started = time.perf_counter()
    startup_seconds = _process_age()  # the interpreter and the imports before main()
    try:
        args = build_parser().parse_args(argv)
        plan = plan_from_args(args)
        plan.apply_secrets()
        for note in plan.notes:
            print(note, file=sys.stderr, flush=True)
        loaded = preflight(plan)  # may respell --symbols as the data does (spx -> SPX), hence before the hash
        print(f"scenarios: families {', '.join(plan.families)}; severities {', '.join(plan.severities)}; "
              f"config {config_hash(plan.config)}", flush=True)
        print(f"  {loaded}", flush=True)
    except ScenarioInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    preflight_seconds = time.perf_counter() - started
    timing: dict[str, Any] = {"preflight_seconds": preflight_seconds, "startup_seconds": startup_seconds}
    if plan.executor == "dask" and not plan.dask_scheduler:
        from scenarios_assets.defs.executors import local_dask_cluster

        ensure_dagster_home()  # before the workers start: they inherit DAGSTER_HOME, which the instance config reads
        with local_dask_cluster(plan.workers, quiet=not plan.verbose) as address:
            plan.dask_scheduler = address
            return run_plan(plan, **timing)
    return run_plan(plan, **timing)


def _process_age() -> float:
    """Seconds since this process started (psutil: the kernel's start time of the process)."""
    import psutil

    return max(time.time() - psutil.Process().create_time(), 0.0)


if __name__ == "__main__":
    raise SystemExit(main())
