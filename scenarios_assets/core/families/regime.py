"""The regime family: classify an index's history into bull / bear / ranging / high-volatility segments
(:mod:`scenarios_assets.core.engines.regime_detection`, thresholds in ``generation.regime``, documented in
``reference/regimes.yaml``) and replay every symbol over each segment.

The reference index (``data.reference_symbol``) is always classified, with the VIX of the economic data
where it is real; the symbols of ``generation.regime.indices`` too, on their closes alone. Each segment
becomes one scenario per severity: a replay of every symbol that covers the segment
(:func:`scenarios_assets.core.engines.replay.replay_window`), with the severity scaling of the historical
replays (excess log returns around each symbol's long-run drift x0.5 / x1.0 / x1.5). A regime type without
a segment is reported in ``skipped`` with the reason.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import pandas as pd

from scenarios_assets.core.engines.regime_detection import (
    REGIME_TYPES,
    Segment,
    bear_rule,
    find_segments,
    min_segment_days,
)
from scenarios_assets.core.engines.replay import Replay, bar_metadata, market_bars, portfolio_volatility, replay_window
from scenarios_assets.core.families.context import GenerationContext
from scenarios_assets.core.models.config import RegimeConfig
from scenarios_assets.core.models.errors import ScenarioInputError
from scenarios_assets.core.models.scenario import Scenario, ScenarioSet, Skipped, jsonable, scenario_id
from scenarios_assets.core.models.severity import Severity
from scenarios_assets.reference import load_reference

FAMILY = "regime"
SCENARIO_TYPE = "REGIME"


def regime_definitions() -> dict[str, dict]:
    """Label, name, rule text and description of each regime type.

    Returns
    -------
    dict
        Regime type -> its record of ``reference/regimes.yaml``.
    """
    return {r["regime"]: r for r in load_reference("regimes")["regimes"]}


# --- the family -----------------------------------------------------------------------------------

def _index_series(ctx: GenerationContext, symbol: str) -> tuple[pd.Series | None, pd.Series | None]:
    """Close and VIX series of an index to classify; VIX only for the reference index."""
    market = ctx.market
    if symbol == market.reference.name:
        vix = None
        if "vix" in ctx.economic.columns and "vix_source" in ctx.economic.columns:
            vix = ctx.economic["vix"].where(ctx.economic["vix_source"] == "vix")
        return market.reference, vix
    if symbol in market.close.columns:
        return market.close[symbol].dropna(), None
    return None, None


def generate_regimes(ctx: GenerationContext) -> ScenarioSet:
    """One scenario per regime segment of each classified index, at ``ctx.severity``.

    Parameters
    ----------
    ctx : GenerationContext
        The market data (closes, bars, the reference index), the economic series (``vix``,
        ``vix_source``), ``generation.regime`` and the severity.

    Returns
    -------
    ScenarioSet
        The replays of the segments that lie in the market data's dates (clipped to them); ``skipped``
        lists the indices not in the data, the segments that could not be replayed and each regime type
        without a segment, with the reason. ``metadata``: per-type counts and reasons (``regimes``), the
        diagnostics per index (``by_index``), ``segments_outside_date_range``, ``replay_scale``,
        ``criteria`` (the thresholds) and, without any scenario, ``no_segments_reason``.

    Raises
    ------
    ScenarioInputError
        An invalid ``generation.regime`` (bear rule, ``bear_min_decline``, ``min_regime_days``, SMA
        windows).
    """
    cfg = ctx.settings.generation.regime
    severity = Severity(ctx.severity)
    market = ctx.market
    definitions = regime_definitions()
    _check_config(cfg)
    indices = [market.reference.name] + [s for s in cfg.indices if s != market.reference.name]
    drift = market.long_run_drift()
    history = market.close.pct_change(fill_method=None)
    first, last = market.dates[0], market.dates[-1]
    scenarios, skipped = [], []
    summary: dict[str, dict[str, Any]] = {r: {"segments": 0, "total_days": 0} for r in REGIME_TYPES}
    per_index: dict[str, dict] = {}
    outside = 0
    for index in indices:
        close, vix = _index_series(ctx, index)
        if close is None:
            skipped.append({"name": f"regimes of {index}", "reason": f"index {index} is not in the market data"})
            continue
        segments, diagnostics = find_segments(close, vix, cfg, index)
        per_index[index] = diagnostics
        for seg in segments:
            start, end = max(seg.start, first), min(seg.end, last)
            in_window = int(((market.dates >= start) & (market.dates <= end)).sum())
            if in_window < min_segment_days(cfg, seg.regime):
                outside += 1  # outside the selected date range (or clipped below the minimum length)
                continue
            scenario = _segment_scenario(ctx, seg, (start, end, in_window), drift, definitions)
            if isinstance(scenario, Skipped):
                skipped.append({"name": _segment_name(definitions, seg, start, end), "key": seg.key,
                                "reason": scenario.reason})
                continue
            scenario.set_volatility_multiplier(portfolio_volatility(history, scenario.symbols))
            scenarios.append(scenario)
            summary[seg.regime]["segments"] += 1
            summary[seg.regime]["total_days"] += in_window
    skipped += _empty_regimes(summary, per_index, first, last)
    metadata = {
        "regimes": summary,
        "indices": indices,
        "by_index": per_index,
        "segments_outside_date_range": outside,
        "replay_scale": severity.replay_scale,
        "criteria": _criteria(cfg),
    }
    if not scenarios:
        metadata["no_segments_reason"] = "; ".join(s["reason"] for s in skipped) or "no index to classify"
    return ScenarioSet(
        family=FAMILY,
        severity=severity.value,
        scenarios=scenarios,
        data_version=market.data_version,
        config_hash=ctx.config_hash,
        skipped=skipped,
        metadata=jsonable(metadata),
    )


def _segment_name(definitions: dict, seg: Segment, start: pd.Timestamp, end: pd.Timestamp) -> str:
    return f"{definitions[seg.regime]['name']} {start.date()} to {end.date()} ({seg.index})"


def _segment_scenario(ctx: GenerationContext, seg: Segment, window: tuple, drift: pd.Series,
                      definitions: dict) -> Scenario | Skipped:
    """The replay of one segment (``window``: clipped start, end and sessions in the data) as a scenario,
    or why it cannot be replayed."""
    cfg, market, severity = ctx.settings.generation.regime, ctx.market, Severity(ctx.severity)
    start, end, _ = window
    replay = replay_window(
        market.close, start, end, severity.replay_scale, drift, min_coverage=float(cfg.min_coverage),
        bars=market_bars(market),
    )
    if isinstance(replay, Skipped):
        return replay
    return Scenario(
        id=scenario_id(FAMILY, seg.key, severity.value),
        name=_segment_name(definitions, seg, start, end),
        family=FAMILY,
        scenario_type=SCENARIO_TYPE,
        severity=severity.value,
        **replay.scenario_paths(),
        metadata=_segment_metadata(ctx, seg, seg.index, window, replay, definitions),
    )


def _criteria(cfg: RegimeConfig) -> dict[str, Any]:
    """The thresholds of ``generation.regime`` (all but ``enabled``), in the config's order, for the metadata."""
    values = {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.name != "enabled"}
    values["min_regime_days"] = dict(cfg.min_regime_days)
    return values


def _empty_regimes(summary: dict, per_index: dict, first, last) -> list[dict]:
    """Why each regime type without a segment has none (set in ``summary[regime]["reason"]`` too), as
    skipped entries."""
    skipped = []
    for regime, counts in summary.items():
        if counts["segments"] == 0:
            reasons = [d[regime]["reason"] for d in per_index.values() if "reason" in d[regime]]
            counts["reason"] = "; ".join(reasons) or (
                f"segments were found but none lies in the selected date range {first.date()}..{last.date()} "
                "or could be replayed"
            )
            skipped.append({"name": f"{regime} regime", "key": regime, "reason": counts["reason"]})
    return skipped


def _segment_metadata(ctx: GenerationContext, seg: Segment, index: str, window: tuple, replay: Replay,
                      definitions: dict) -> dict:
    """A regime scenario's metadata: the segment (``window``: clipped start, end and sessions in the data),
    its index figures, the replay and the rule that classified it."""
    cfg, market, severity = ctx.settings.generation.regime, ctx.market, Severity(ctx.severity)
    start, end, in_window = window
    label = definitions[seg.regime]["name"]
    return {
        "regime": seg.regime,
        "regime_name": label,
        "index": index,
        "segment_start": str(start.date()),
        "segment_end": str(end.date()),
        "segment_days": in_window,
        "index_return": round(seg.index_return, 6),
        "raw_criteria_share": round(seg.raw_share, 4),
        "mean_vix": round(seg.mean_vix, 2),
        "max_vix": round(seg.max_vix, 2),
        "real_vix_share": round(seg.vix_share, 4),
        "replay_scale": severity.replay_scale,
        "coverage": replay.coverage,
        "excluded_symbols": sorted(set(market.symbols) - set(replay.symbols)),
        **bar_metadata(replay),
        "criteria": _rule_text(definitions, seg.regime, cfg),
        **({"bear_rule": bear_rule(cfg)} if seg.regime == "bear" else {}),
        "source": (
            f"regime classification of {index} daily closes (reference/regimes.yaml, "
            f"config generation.regime); replay of market data {market.data_version} ({market.source})"
        ),
    }


def _rule_text(definitions: dict, regime: str, cfg: RegimeConfig) -> str:
    """The reference rule of ``regime`` (for bear, the configured rule's text)."""
    if regime == "bear" and bear_rule(cfg) == "trend":
        return definitions["bear"]["rule_trend"]
    return definitions[regime]["rule"]


def _check_config(cfg: RegimeConfig) -> None:
    """Raise ScenarioInputError on thresholds the detection cannot use."""
    bear_rule(cfg)
    if bear_rule(cfg) == "drawdown" and not 0.0 < float(cfg.bear_min_decline) < 1.0:
        raise ScenarioInputError(
            f"generation.regime.bear_min_decline must lie strictly between 0 and 1, got {cfg.bear_min_decline}"
        )
    missing = [r for r in REGIME_TYPES if r not in cfg.min_regime_days]
    if missing:
        raise ScenarioInputError(f"generation.regime.min_regime_days lacks {', '.join(missing)}")
    bad = {r: v for r, v in cfg.min_regime_days.items() if not isinstance(v, int) or v < 2}
    if bad:
        raise ScenarioInputError(f"generation.regime.min_regime_days must be integers >= 2, got {bad}")
    if int(cfg.sma_short_days) >= int(cfg.sma_long_days):
        raise ScenarioInputError("generation.regime.sma_short_days must be below sma_long_days")
