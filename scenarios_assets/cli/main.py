"""The seed-compatible command line: generates the scenario library through Dagster.

Every invocation runs the same jobs as the UI and the daemon against the instance in DAGSTER_HOME
(default: the project's .dagster_home), so CLI runs appear in the Dagster UI. Bad flags or bad input
exit with status 2 and one line naming the problem, before anything is generated or written.

This module parses the flags and prints; the flags become a ``service.plan.GenerationRequest``, whose plan
(``build_plan``), checks (``service.preflight``) and runs (``service.run``) are the REST API's too.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from scenarios_assets.core.data.dates import parse_iso_date
from scenarios_assets.core.data.paths import DEFAULT_OUTPUT_DIR
from scenarios_assets.core.families.registry import CLI_TYPES
from scenarios_assets.core.models.config import config_hash
from scenarios_assets.core.models.errors import ScenarioInputError
from scenarios_assets.service.arguments import OneLineParser
from scenarios_assets.service.instance import ensure_dagster_home
from scenarios_assets.service.plan import GenerationRequest, Plan, build_plan
from scenarios_assets.service.preflight import preflight
from scenarios_assets.service.run import EXIT_BAD_INPUT, run_plan


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


def request_from_args(args: argparse.Namespace) -> GenerationRequest:
    """The generation request of the parsed flags (``build_parser``)."""
    symbols = None if args.symbols is None else tuple(s.strip() for s in args.symbols.split(",") if s.strip())
    return GenerationRequest(
        types=(args.type,), severities=(args.severity,), num_scenarios=args.num_scenarios, symbols=symbols,
        start_date=args.start_date, end_date=args.end_date, include_full_cycles=bool(args.include_full_cycles),
        seed=args.seed, save_timeseries=args.save_timeseries, dry_run=bool(args.dry_run),
        output_dir=args.output_dir, config_file=args.config, market_data=args.market_data,
        accept_moves=tuple(args.accept_move or ()), parallel=bool(args.parallel), workers=args.workers,
        executor=args.executor, dask_scheduler=args.dask_scheduler, memory_limit_gib=args.memory_limit,
        disk_limit_gib=args.disk_limit, verbose=bool(args.verbose),
    )


def plan_from_args(args: argparse.Namespace) -> Plan:
    """The plan of the parsed flags: ``service.plan.build_plan`` of their request (ScenarioInputError: exit 2)."""
    return build_plan(request_from_args(args))


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
