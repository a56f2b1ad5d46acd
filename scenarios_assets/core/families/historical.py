"""The historical family: named events (and, with ``include_full_cycles``, full market cycles) of
``reference/historical_events.yaml`` replayed on every symbol that covers them, at the severity's scale
(``core.engines.replay``: k = 0.5, 1.0, 1.5 around each symbol's drift, the recorded bars carried). An event
marked ``projected`` that runs past the market data replays its observed start and simulates the rest
(``core.engines.projection``).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from scenarios_assets.core.data.exchange_calendar import configured_calendar
from scenarios_assets.core.engines.projection import project_event
from scenarios_assets.core.engines.replay import Replay, bar_metadata, market_bars, portfolio_volatility, replay_window
from scenarios_assets.core.families.context import GenerationContext
from scenarios_assets.core.models.errors import ScenarioInputError
from scenarios_assets.core.models.scenario import Scenario, ScenarioSet, Skipped, scenario_id
from scenarios_assets.core.models.severity import Severity, scenario_seed
from scenarios_assets.reference import load_reference

FAMILY = "historical"


@dataclass(frozen=True)
class Event:
    """One event (or full market cycle) of ``reference/historical_events.yaml``."""

    key: str
    name: str
    kind: str  # event | full_cycle
    scenario_type: str
    start: pd.Timestamp
    end: pd.Timestamp
    description: str
    source: str
    symbols: tuple[str, ...] | None = None
    volatility_multiplier: float | None = None
    key_events: dict | None = None
    projected: bool = False

    @classmethod
    def from_record(cls, rec: dict) -> "Event":
        """The event of one record of ``reference/historical_events.yaml``.

        Parameters
        ----------
        rec : dict
            The record (``key``, ``name``, ``kind``, ``scenario_type``, ``start``, ``end``, ``description``,
            ``source``; optional ``symbols``, ``volatility_multiplier``, ``key_events``, ``projected``).

        Returns
        -------
        Event
            Dates as timestamps, ``symbols`` as a tuple or None.
        """
        return cls(
            key=rec["key"],
            name=rec["name"],
            kind=rec["kind"],
            scenario_type=rec["scenario_type"],
            start=pd.Timestamp(rec["start"]),
            end=pd.Timestamp(rec["end"]),
            description=rec["description"],
            source=rec["source"],
            symbols=tuple(rec["symbols"]) if rec.get("symbols") else None,
            volatility_multiplier=rec.get("volatility_multiplier"),
            key_events={str(k): v for k, v in (rec.get("key_events") or {}).items()},
            projected=bool(rec.get("projected", False)),
        )


def load_events(include_full_cycles: bool, keys: Sequence[str] | None = None) -> list[Event]:
    """The events of reference/historical_events.yaml, in file order.

    Parameters
    ----------
    include_full_cycles : bool
        Also the full market cycles (``kind: full_cycle``).
    keys : sequence of str, optional
        ``generation.historical.events``: only these (empty or None: all).

    Returns
    -------
    list of Event

    Raises
    ------
    ScenarioInputError
        A key that is not in reference/historical_events.yaml (the message names it and the known ones).
    """
    events = [Event.from_record(r) for r in load_reference("historical_events")["events"]]
    if keys:
        known = [e.key for e in events]
        unknown = [k for k in keys if k not in known]
        if unknown:
            raise ScenarioInputError(
                f"generation.historical.events: unknown event(s) {', '.join(map(str, unknown))} "
                f"(known: {', '.join(known)})"
            )
        events = [e for e in events if e.key in keys]
    return [e for e in events if e.kind == "event" or include_full_cycles]


def _event_scenario(ctx: GenerationContext, event: Event, replay: Replay) -> Scenario:
    """The scenario of one replayed event at ``ctx.severity``."""
    cfg, market, severity = ctx.settings.generation.historical, ctx.market, Severity(ctx.severity)
    return Scenario(
        id=scenario_id(FAMILY, event.key, severity.value),
        name=event.name,
        family=FAMILY,
        scenario_type=event.scenario_type,
        severity=severity.value,
        **replay.scenario_paths(),
        metadata={
            "event_key": event.key,
            "kind": event.kind,
            "description": event.description,
            "event_start": str(event.start.date()),
            "event_end": str(event.end.date()),
            "context_days": int(cfg.include_context_days),
            "replay_scale": severity.replay_scale,
            "nominal_volatility_multiplier": event.volatility_multiplier,
            "key_events": event.key_events,
            "coverage": replay.coverage,
            "excluded_symbols": sorted(set(event.symbols or market.symbols) - set(replay.symbols)),
            "projected": event.projected,
            "source": event.source,
            "calibration_source": f"replay of market data {market.data_version} ({market.source})",
            **bar_metadata(replay),
            **replay.metadata,
        },
    )


def generate_historical(ctx: GenerationContext) -> ScenarioSet:
    """One scenario per reference event at ``ctx.severity``: its window replayed on every symbol that covers it.

    Parameters
    ----------
    ctx : GenerationContext
        The market data, ``generation.historical`` (events, full cycles, context sessions, coverage), the
        seed and the severity.

    Returns
    -------
    ScenarioSet
        One scenario per replayed event (:func:`~scenarios_assets.core.engines.replay.replay_window` at the
        severity's scale, with ``include_context_days`` sessions each side; a ``projected`` event that runs
        past the data: its observed start replayed and the rest simulated); ``skipped``: the events that
        could not be, with the reason.

    Raises
    ------
    ScenarioInputError
        An unknown key in ``generation.historical.events``.
    """
    cfg = ctx.settings.generation.historical
    severity = Severity(ctx.severity)
    market = ctx.market
    drift = market.long_run_drift()
    history = market.close.pct_change(fill_method=None)
    scenarios, skipped = [], []
    events = load_events(cfg.include_full_cycles, cfg.events)
    for event in events:
        replay = replay_window(
            market.close,
            event.start,
            event.end,
            severity.replay_scale,
            drift,
            context_days=int(cfg.include_context_days),
            min_coverage=float(cfg.min_coverage),
            symbols=list(event.symbols) if event.symbols else None,
            bars=market_bars(market),
        )
        if isinstance(replay, Skipped) and event.projected:  # runs past the data: replay its start, simulate the rest
            replay = _projected_replay(ctx, event, severity, drift, replay)
        if isinstance(replay, Skipped):
            reason = replay.reason
            if event.projected:
                reason = f"projected beyond the market data: {reason}"
            skipped.append({"name": event.name, "key": event.key, "reason": reason, "projected": event.projected})
            continue
        scenario = _event_scenario(ctx, event, replay)
        scenario.set_volatility_multiplier(portfolio_volatility(history, replay.symbols))
        scenarios.append(scenario)
    return ScenarioSet(
        family=FAMILY,
        severity=severity.value,
        scenarios=scenarios,
        data_version=market.data_version,
        config_hash=ctx.config_hash,
        skipped=skipped,
        metadata={"events_in_catalog": len(events), "replay_scale": severity.replay_scale},
    )


def _projected_replay(ctx: GenerationContext, event: Event, severity: Severity, drift: pd.Series,
                      reason: Skipped) -> Replay | Skipped:
    """A projected event: its observed start replayed, the rest simulated with the GARCH engine
    (:func:`scenarios_assets.core.engines.projection.project_event`); :class:`Skipped` says why it cannot be."""
    cfg = ctx.settings.generation.historical
    projection = project_event(
        ctx.market,
        start=event.start,
        end=event.end,
        severity=severity.value,
        seed=scenario_seed(ctx.seed, FAMILY, severity.value, zlib.crc32(event.key.encode())),  # by key, not order
        scale=severity.replay_scale,
        drift=drift,
        context_days=cfg.include_context_days,
        min_coverage=cfg.min_coverage,
        mc_cfg=ctx.settings.generation.stochastic.monte_carlo,
        symbols=list(event.symbols) if event.symbols else None,
        workers=max(1, ctx.settings.performance.workers),
        calendar=configured_calendar(ctx.settings.data.trading_calendar),
        reference=ctx.settings.data.reference_symbol,
    )
    if isinstance(projection, Skipped):
        return Skipped(f"{reason}; projection failed: {projection}")
    return projection
