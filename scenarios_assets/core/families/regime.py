"""Market regimes: classify an index's history into bull / bear / ranging / high-volatility segments and
replay every symbol over each segment.

Classification (daily, on the index close P; every threshold is a key of ``generation.regime`` in the
config, documented in ``reference/regimes.yaml``):

* trend features: SMA50 and SMA200 of P, momentum ``P / P[-63] - 1``, realised volatility (21-session
  standard deviation of daily log returns, annualised), the efficiency ratio
  ``|P - P[-63]| / sum(|daily changes|)`` over 63 sessions (trend strength: 1 is a straight line, 0 a
  round trip) and the 63-session range ``max / min - 1``;
* bull: SMA50 > SMA200, momentum > 0, volatility < ``bull_max_volatility``;
* bear (``bear_rule: drawdown``, default): the sessions from a closing high to the lowest close before that
  high is regained, when that low is at least ``bear_min_decline`` (20 %) below the high: the conventional
  dating of bear markets (peak to trough, close to close; e.g. S&P Dow Jones Indices' and Yardeni
  Research's lists), so a fast bear (COVID 2020: 23 sessions, -33.9 %) is caught from its peak, whatever
  its length. On the bundled S&P 500 it finds exactly the four bears since 1990: 2000-03-24..2002-10-09,
  2007-10-09..2009-03-09, 2020-02-19..2020-03-23 and 2022-01-03..2022-10-12; the near-bears of 1990
  (-19.9 %), 1998 (-19.3 %), 2011 (-19.4 %) and 2018 (-19.8 %) stay below the threshold;
* bear (``bear_rule: trend``, the seed's criteria, kept as a labelled variant): SMA50 < SMA200,
  momentum < 0, volatility > ``bear_min_volatility``, smoothed like the other types; it labels bears late
  (48-152 sessions after the peak) and misses fast ones;
* ranging: efficiency ratio < ``ranging_max_efficiency`` and range < ``ranging_max_range``;
* high volatility: VIX > ``vix_threshold`` (the realised-volatility proxy where VIX is missing, see
  ``market.build_economic``) and at least ``min_large_moves`` daily moves beyond ``large_move`` in the last
  ``large_move_window`` sessions.

Bull, bear and ranging are *trend* regimes and exclusive: a day takes the first of bear, bull, ranging
whose criteria hold (bear and bull are the more specific statements about direction). High volatility is
a *volatility* state and overlays them: the autumn of 2008 is both a bear and a high-volatility segment.

Smoothing, per regime type (not the drawdown bears, which are dated exactly), so that single-day flips do
not fragment a segment:
1. persistence: runs of the raw label shorter than ``min_persistence_days`` are dropped;
2. interruptions of at most ``max_gap_days`` sessions between two runs are merged into the segment;
3. segments shorter than ``min_regime_days[type]`` are dropped;
4. trend regimes are made exclusive again by the priority order (bear, bull, ranging) and step 3 is redone.
Features need ``sma_long_days`` sessions of history, so the first ones are never labelled.

Each segment becomes one scenario per severity: a replay of every symbol that covers the segment
(``historical.replay_window``), with the severity scaling of the historical replays (excess log returns
around each symbol's long-run drift x0.5 / x1.0 / x1.5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from scenarios_assets.reference import load_reference
from scenarios_assets.core.models.errors import ScenarioInputError
from scenarios_assets.core.engines.replay import bar_metadata, market_bars, portfolio_volatility, replay_window
from scenarios_assets.core.models.scenario import Scenario, ScenarioSet, Skipped, _jsonable, scenario_id
from scenarios_assets.core.models.severity import Severity
from scenarios_assets.core.models.units import TRADING_DAYS_PER_YEAR as ANNUALISATION

FAMILY = "regime"
SCENARIO_TYPE = "REGIME"
TREND_REGIMES = ("bear", "bull", "ranging")  # priority order of the exclusive trend regimes
REGIME_TYPES = ("bull", "bear", "high_volatility", "ranging")


@dataclass(frozen=True)
class Segment:
    index: str
    regime: str
    start: pd.Timestamp
    end: pd.Timestamp
    days: int  # sessions of the index in the segment
    index_return: float  # close-to-close simple return of the index over the segment
    raw_share: float  # share of the segment's sessions on which the raw criteria held
    mean_vix: float
    max_vix: float
    vix_share: float  # share of the segment's sessions with a real VIX (else the proxy)

    @property
    def key(self) -> str:
        return f"{self.index}_{self.regime}_{self.start:%Y%m%d}"


def regime_definitions() -> dict[str, dict]:
    """Label, name and description of each regime type (reference/regimes.yaml)."""
    return {r["regime"]: r for r in load_reference("regimes")["regimes"]}


# --- features and raw labels ----------------------------------------------------------------------

def realised_vol_points(close: pd.Series, days: int = 21) -> pd.Series:
    """The VIX proxy of ``market.build_economic``: realised volatility in VIX points."""
    returns = np.log(close).diff()
    return returns.rolling(days, min_periods=max(days // 2, 2)).std() * np.sqrt(ANNUALISATION) * 100


def regime_features(close: pd.Series, vix: pd.Series | None, cfg: dict) -> pd.DataFrame:
    """Daily features of one index (NaN until enough history)."""
    close = close.dropna().astype(np.float64)
    log_ret = np.log(close).diff()
    change = close.diff().abs()
    trend_days = int(cfg["momentum_days"])
    out = pd.DataFrame(index=close.index)
    out["close"] = close
    out["sma_short"] = close.rolling(int(cfg["sma_short_days"])).mean()
    out["sma_long"] = close.rolling(int(cfg["sma_long_days"])).mean()
    out["momentum"] = close / close.shift(trend_days) - 1.0
    out["volatility"] = log_ret.rolling(int(cfg["volatility_days"])).std() * np.sqrt(ANNUALISATION)
    out["efficiency"] = (close - close.shift(trend_days)).abs() / change.rolling(trend_days).sum()
    out["range"] = close.rolling(int(cfg["range_days"])).max() / close.rolling(int(cfg["range_days"])).min() - 1.0
    moves = (close.pct_change(fill_method=None).abs() > float(cfg["large_move"])).astype(np.float64)
    out["large_moves"] = moves.where(log_ret.notna()).rolling(int(cfg["large_move_window"])).sum()
    real = vix.reindex(close.index) if vix is not None else pd.Series(np.nan, index=close.index)
    out["vix"] = real.fillna(realised_vol_points(close, int(cfg["volatility_days"])))
    out["vix_is_real"] = real.notna()
    return out


BEAR_RULES = ("drawdown", "trend")


def drawdown_bears(close: pd.Series, min_decline: float) -> pd.Series:
    """Boolean per session of ``close``: True from a closing high to the lowest close of its drawdown (the
    sessions until the high is regained, or the data ends), when that low is at least ``min_decline``
    (a fraction, e.g. 0.20) below the high. Vectorised over the drawdown episodes."""
    c = close.to_numpy(np.float64)
    out = np.zeros(len(c), dtype=bool)
    if len(c) == 0:
        return pd.Series(out, index=close.index)
    peak = np.maximum.accumulate(c)
    episode = np.cumsum(c >= peak)  # a new episode starts at every closing high
    frame = pd.DataFrame({"episode": episode, "close": c, "row": np.arange(len(c))})
    groups = frame.groupby("episode", sort=True)
    first = groups["row"].first().to_numpy()
    trough = frame.loc[groups["close"].idxmin(), "row"].to_numpy()
    depth = c[trough] / c[first] - 1.0
    for start, end in zip(first[depth <= -float(min_decline) + 1e-12], trough[depth <= -float(min_decline) + 1e-12]):
        out[start : end + 1] = True
    return pd.Series(out, index=close.index)


def bear_rule(cfg: dict) -> str:
    rule = str(cfg.get("bear_rule", "drawdown"))
    if rule not in BEAR_RULES:
        raise ScenarioInputError(f"generation.regime.bear_rule '{rule}' is not supported (use {' or '.join(BEAR_RULES)})")
    return rule


def raw_regimes(features: pd.DataFrame, cfg: dict) -> pd.DataFrame:
    """Daily raw criteria per regime type (before smoothing); False where features are undefined (the drawdown
    bears need closes only, so they are dated from the first session)."""
    f = features
    valid = f[["sma_long", "momentum", "volatility", "efficiency", "range", "large_moves"]].notna().all(axis=1)
    raw = pd.DataFrame(index=f.index)
    raw["bull"] = (f["sma_short"] > f["sma_long"]) & (f["momentum"] > 0) & (f["volatility"] < cfg["bull_max_volatility"])
    raw["bear"] = (f["sma_short"] < f["sma_long"]) & (f["momentum"] < 0) & (f["volatility"] > cfg["bear_min_volatility"])
    raw["ranging"] = (f["efficiency"] < cfg["ranging_max_efficiency"]) & (f["range"] < cfg["ranging_max_range"])
    raw["high_volatility"] = (f["vix"] > cfg["vix_threshold"]) & (f["large_moves"] >= cfg["min_large_moves"])
    raw = raw.where(valid, False).astype(bool)
    if bear_rule(cfg) == "drawdown":
        raw["bear"] = drawdown_bears(f["close"], float(cfg["bear_min_decline"]))
    return raw


def min_segment_days(cfg: dict, regime: str) -> int:
    """Minimum sessions of a segment: ``min_regime_days`` (the seed's), except drawdown bears, which the
    depth of the fall defines (2: a segment needs a return)."""
    if regime == "bear" and bear_rule(cfg) == "drawdown":
        return 2
    return int(cfg["min_regime_days"][regime])


# --- smoothing ------------------------------------------------------------------------------------

def _rle(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run-length encoding of a boolean vector: (values, lengths)."""
    if mask.size == 0:
        return np.array([], dtype=bool), np.array([], dtype=np.int64)
    change = np.flatnonzero(mask[1:] != mask[:-1]) + 1
    starts = np.concatenate([[0], change])
    lengths = np.diff(np.concatenate([starts, [mask.size]]))
    return mask[starts].copy(), lengths


def drop_short_runs(mask: np.ndarray, min_days: int) -> np.ndarray:
    values, lengths = _rle(np.asarray(mask, dtype=bool))
    values[values & (lengths < min_days)] = False
    return np.repeat(values, lengths)


def fill_gaps(mask: np.ndarray, max_gap: int) -> np.ndarray:
    """Merge runs separated by at most ``max_gap`` False sessions (interior gaps only)."""
    values, lengths = _rle(np.asarray(mask, dtype=bool))
    interior = np.zeros(values.size, dtype=bool)
    interior[1:-1] = True
    values[~values & interior & (lengths <= max_gap)] = True
    return np.repeat(values, lengths)


def smooth_mask(mask: np.ndarray, min_days: int, max_gap: int, min_persistence: int) -> np.ndarray:
    """Persistence filter, gap merge, minimum length (see the module docstring)."""
    out = drop_short_runs(mask, min_persistence)
    out = fill_gaps(out, max_gap)
    return drop_short_runs(out, min_days)


def classify(features: pd.DataFrame, cfg: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(raw, smoothed) daily regime masks of one index."""
    raw = raw_regimes(features, cfg)
    min_days = cfg["min_regime_days"]
    gap, persist = int(cfg["max_gap_days"]), int(cfg["min_persistence_days"])
    smoothed = pd.DataFrame(index=raw.index)
    claimed = np.zeros(len(raw), dtype=bool)
    for regime in TREND_REGIMES:  # exclusive, in priority order
        own = raw[regime].to_numpy() & ~claimed
        if regime == "bear" and bear_rule(cfg) == "drawdown":  # dated peak to trough, no smoothing
            mask = own
        else:
            mask = smooth_mask(own, int(min_days[regime]), gap, persist)
            mask = drop_short_runs(mask & ~claimed, int(min_days[regime]))
        smoothed[regime] = mask
        claimed |= mask
    smoothed["high_volatility"] = smooth_mask(
        raw["high_volatility"].to_numpy(), int(min_days["high_volatility"]), gap, persist
    )
    return raw, smoothed[list(REGIME_TYPES)]


def find_segments(close: pd.Series, vix: pd.Series | None, cfg: dict, index: str) -> tuple[list[Segment], dict]:
    """Regime segments of one index, and per-type diagnostics (raw share, longest run, why none)."""
    features = regime_features(close, vix, cfg)
    raw, smoothed = classify(features, cfg)
    classified = int(features[["sma_long", "momentum", "volatility"]].notna().all(axis=1).sum())
    segments: list[Segment] = []
    diagnostics: dict[str, dict] = {}
    dates = features.index
    for regime in REGIME_TYPES:
        mask = smoothed[regime].to_numpy()
        values, lengths = _rle(mask)
        ends = np.cumsum(lengths)
        starts = ends - lengths
        found = [(int(s), int(e)) for s, e, v in zip(starts, ends, values) if v]
        for s, e in found:
            window = features.iloc[s:e]
            segments.append(
                Segment(
                    index=index,
                    regime=regime,
                    start=dates[s],
                    end=dates[e - 1],
                    days=e - s,
                    index_return=float(window["close"].iloc[-1] / window["close"].iloc[0] - 1.0),
                    raw_share=float(raw[regime].iloc[s:e].mean()),
                    mean_vix=float(window["vix"].mean()),
                    max_vix=float(window["vix"].max()),
                    vix_share=float(window["vix_is_real"].mean()),
                )
            )
        raw_values, raw_lengths = _rle(raw[regime].to_numpy())
        longest_raw = int(raw_lengths[raw_values].max()) if raw_values.any() else 0
        diag: dict[str, Any] = {
            "segments": len(found),
            "days": int(mask.sum()),
            "raw_share": round(float(raw[regime].mean()), 4) if len(raw) else 0.0,
            "longest_raw_run": longest_raw,
        }
        if not found:
            diag["reason"] = _why_none(regime, index, cfg, classified, len(features), diag)
        diagnostics[regime] = diag
    segments.sort(key=lambda s: (s.start, REGIME_TYPES.index(s.regime)))
    return segments, diagnostics


def _why_none(regime: str, index: str, cfg: dict, classified: int, sessions: int, diag: dict) -> str:
    need = min_segment_days(cfg, regime)
    if regime == "bear" and bear_rule(cfg) == "drawdown":
        return (
            f"no bear market in {index}: no fall of at least {float(cfg['bear_min_decline']):.0%} from a closing high "
            f"to the lowest close before that high was regained (bear_rule drawdown; lower "
            "generation.regime.bear_min_decline, or use bear_rule trend)"
        )
    if classified == 0:
        return (
            f"{index} has {sessions} sessions, fewer than the {cfg['sma_long_days']} needed for its "
            f"SMA{cfg['sma_long_days']}: no session could be classified (use a longer history or lower sma_long_days)"
        )
    criteria = {
        "bull": f"SMA{cfg['sma_short_days']} > SMA{cfg['sma_long_days']}, {cfg['momentum_days']}-session momentum > 0, "
        f"volatility < {cfg['bull_max_volatility']:.0%}",
        "bear": f"SMA{cfg['sma_short_days']} < SMA{cfg['sma_long_days']}, {cfg['momentum_days']}-session momentum < 0, "
        f"volatility > {cfg['bear_min_volatility']:.0%}",
        "ranging": f"efficiency ratio < {cfg['ranging_max_efficiency']}, {cfg['range_days']}-session range < "
        f"{cfg['ranging_max_range']:.0%}",
        "high_volatility": f"VIX (or proxy) > {cfg['vix_threshold']} with >= {cfg['min_large_moves']} moves beyond "
        f"{cfg['large_move']:.0%} in {cfg['large_move_window']} sessions",
    }[regime]
    return (
        f"no {regime} segment of at least {need} sessions in {index}: the criteria ({criteria}) held on "
        f"{diag['raw_share']:.1%} of {classified} classified sessions, longest unbroken run {diag['longest_raw_run']} "
        f"sessions (merging gaps of up to {cfg['max_gap_days']}); lower min_regime_days.{regime} or loosen the "
        "thresholds in generation.regime"
    )


# --- the family -----------------------------------------------------------------------------------

def _index_series(ctx, symbol: str) -> tuple[pd.Series | None, pd.Series | None]:
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


def generate_regimes(ctx) -> ScenarioSet:
    """One scenario per regime segment at ``ctx.severity``; per-type counts and reasons in the metadata."""
    cfg = ctx.config["generation"]["regime"]
    severity = Severity(ctx.severity)
    market = ctx.market
    definitions = regime_definitions()
    _check_config(cfg)
    indices = [market.reference.name] + [s for s in cfg["indices"] if s != market.reference.name]
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
            replay = replay_window(
                market.close, start, end, severity.replay_scale, drift, min_coverage=float(cfg["min_coverage"]),
                bars=market_bars(market),
            )
            label = definitions[seg.regime]["name"]
            name = f"{label} {start.date()} to {end.date()} ({index})"
            if isinstance(replay, Skipped):
                skipped.append({"name": name, "key": seg.key, "reason": replay.reason})
                continue
            scenario = Scenario(
                id=scenario_id(FAMILY, seg.key, severity.value),
                name=name,
                family=FAMILY,
                scenario_type=SCENARIO_TYPE,
                severity=severity.value,
                dates=replay.dates,
                symbols=replay.symbols,
                returns=replay.returns,
                prices=replay.prices,
                extra=replay.bars,
                portfolio_intraday=False,
                metadata=_segment_metadata(ctx, seg, index, (start, end, in_window), replay, definitions),
            )
            scenario.set_volatility_multiplier(portfolio_volatility(history, replay.symbols))
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
        "criteria": {k: v for k, v in cfg.items() if k != "enabled"},
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
        metadata=_jsonable(metadata),
    )


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


def _segment_metadata(ctx, seg, index: str, window: tuple, replay, definitions: dict) -> dict:
    """A regime scenario's metadata: the segment (``window``: clipped start, end and sessions in the data),
    its index figures, the replay and the rule that classified it."""
    cfg, market, severity = ctx.config["generation"]["regime"], ctx.market, Severity(ctx.severity)
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


def _rule_text(definitions: dict, regime: str, cfg: dict) -> str:
    """The catalog's rule of ``regime`` (for bear, the configured rule's text)."""
    if regime == "bear" and bear_rule(cfg) == "trend":
        return definitions["bear"]["rule_trend"]
    return definitions[regime]["rule"]


def _check_config(cfg: dict) -> None:
    bear_rule(cfg)
    if bear_rule(cfg) == "drawdown" and not 0.0 < float(cfg["bear_min_decline"]) < 1.0:
        raise ScenarioInputError(
            f"generation.regime.bear_min_decline must lie strictly between 0 and 1, got {cfg['bear_min_decline']}"
        )
    missing = [r for r in REGIME_TYPES if r not in cfg["min_regime_days"]]
    if missing:
        raise ScenarioInputError(f"generation.regime.min_regime_days lacks {', '.join(missing)}")
    bad = {r: v for r, v in cfg["min_regime_days"].items() if not isinstance(v, int) or v < 2}
    if bad:
        raise ScenarioInputError(f"generation.regime.min_regime_days must be integers >= 2, got {bad}")
    if int(cfg["sma_short_days"]) >= int(cfg["sma_long_days"]):
        raise ScenarioInputError("generation.regime.sma_short_days must be below sma_long_days")
