"""Checks of a plan against its inputs before any Dagster run starts: the market data loaded and validated as
the asset will load it, the definitions the config selects, the estimated memory and disk, the dask
scheduler. Each failure is one ScenarioInputError line (the CLI's exit 2, the API's 422)."""

from __future__ import annotations

import json

from scenarios_assets.core.models.config import ScenarioConfig
from scenarios_assets.core.models.errors import ScenarioInputError
from scenarios_assets.service.plan import Plan


def preflight(plan: Plan) -> str:
    """Load and validate the market data exactly as the asset will, so bad input fails here, cleanly; check
    the config's definition selections (historical events, stress tests), the footprint and the scheduler.

    Parameters
    ----------
    plan : Plan
        From ``plan.build_plan``. Updated in place: ``sizes`` (the loaded data's sizes) and, when the data
        spells a requested symbol differently (``spx`` -> ``SPX``), the symbols of its config and
        ``settings["overrides_json"]`` (one config, one hash).

    Returns
    -------
    str
        What was loaded (source, symbols, date range, data version) and the input notes, one per line.

    Raises
    ------
    ScenarioInputError
        Unreadable or invalid market data, unknown symbols or dates outside the data, an unknown event or
        stress test in the config, an estimated footprint above the limits, an unreachable dask scheduler.
    """
    from scenarios_assets.core.data.market import load_configured_market_data, market_source
    from scenarios_assets.core.families.historical import load_events
    from scenarios_assets.core.families.stress import select_definitions
    from scenarios_assets.core.library.footprint import market_sizes

    if plan.dask_scheduler:
        check_scheduler(plan.dask_scheduler)
    typed = ScenarioConfig.from_mapping(plan.config)
    load_events(typed.generation.historical.include_full_cycles, list(typed.generation.historical.events))
    select_definitions(typed.generation.stress.include)

    source = market_source(plan.settings.get("market_data"))
    rows = check_footprint(plan, source)  # loading alone may not fit: checked on the source's row count first
    market = load_configured_market_data(source, typed.data)
    plan.sizes = market_sizes(market, plan.config, rows)
    check_footprint(plan, source)
    spelled = market.report.get("symbols_requested")
    if spelled and spelled != list(typed.data.symbols_universe):  # e.g. spx -> SPX: one config, one hash
        overrides = json.loads(plan.settings["overrides_json"])
        overrides.setdefault("data", {})["symbols_universe"] = spelled
        plan.settings["overrides_json"] = json.dumps(overrides, sort_keys=True)
        plan.config["data"]["symbols_universe"] = spelled
    lines = [
        f"market data {market.source}: {len(market.symbols)} symbol{'' if len(market.symbols) == 1 else 's'}, {market.dates[0].date()}..{market.dates[-1].date()}, "
        f"version {market.data_version}"
    ]
    return "\n  ".join(lines + input_notes(market.report))


def check_footprint(plan: Plan, source: str) -> int | None:
    """Refuse a request whose estimated memory or disk is above its limits.

    Before the market data is read (``plan.sizes`` None) on the source's row count and the load alone; after,
    on every step.

    Parameters
    ----------
    plan : Plan
        The plan (its config, families, severities, output directory and limits).
    source : str
        The market data source (``core.data.market.market_source``).

    Returns
    -------
    int or None
        The source's row count (None when it cannot be known before reading).

    Raises
    ------
    ScenarioInputError
        One line (``core.library.footprint.refusal``): the estimate, the limit and what to change.
    """
    from scenarios_assets.core.library import footprint

    rows = plan.sizes.rows if plan.sizes is not None else footprint.source_rows(source)
    sizes = plan.sizes if plan.sizes is not None else footprint.Sizes(rows, 0, 0)
    families = plan.families if plan.sizes is not None else []
    est = footprint.estimate(plan.config, families, plan.severities, sizes,
                             ScenarioConfig.from_mapping(plan.config).performance.save_timeseries,
                             bool(plan.settings.get("dry_run")))
    lim = footprint.limits(plan.config["performance"], plan.output_dir, plan.memory_limit_gib, plan.disk_limit_gib)
    line = footprint.refusal(est, lim, plan.output_dir)
    if line is not None:
        raise ScenarioInputError(line)
    return rows


SCHEDULER_TIMEOUT_SECONDS = 10


def check_scheduler(address: str) -> None:
    """Connect to the dask scheduler at ``address`` (``--dask-scheduler``) before anything runs.

    Raises
    ------
    ScenarioInputError
        Naming the address, when it cannot be reached within SCHEDULER_TIMEOUT_SECONDS.
    """
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
    """What reading the market data did besides the plain rows, one note a line.

    Parameters
    ----------
    report : dict
        ``MarketData.report`` of the loaded data (files read and skipped, columns renamed, symbols stripped,
        seven-day calendars and folded rows, rows after the last session, accepted moves).

    Returns
    -------
    list of str
        The notes the CLI prints under the market data line (empty when there is nothing to say).
    """
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
