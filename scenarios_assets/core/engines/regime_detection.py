"""Regime detection: classify the daily closes of an index into bull / bear / ranging / high-volatility
segments. The engine of the regime family (``core.families.regime``), a pure function of a close series,
an optional VIX series and the thresholds of :class:`~scenarios_assets.core.models.config.RegimeConfig`
(``generation.regime``, documented in ``reference/regimes.yaml``).

Classification (daily, on the index close P):

* trend features: SMA50 and SMA200 of P, momentum ``P / P[-63] - 1``, realised volatility (21-session
  standard deviation of daily log returns, annualised), the efficiency ratio
  ``|P - P[-63]| / sum(|daily changes|)`` over 63 sessions (Kaufman's efficiency ratio, trend strength: 1 is
  a straight line, 0 a round trip) and the 63-session range ``max / min - 1``;
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
  ``market.build_economic`` and :func:`realised_vol_points`) and at least ``min_large_moves`` daily moves
  beyond ``large_move`` in the last ``large_move_window`` sessions.

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

References
----------
Kaufman, P. J. (1995). *Smarter Trading*. McGraw-Hill (the efficiency ratio).
S&P Dow Jones Indices; Yardeni Research, "S&P 500 Bull & Bear Markets & Corrections" (a bear market as a
fall of at least 20 % from a closing high, dated peak to trough).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from scenarios_assets.core.models.config import RegimeConfig
from scenarios_assets.core.models.errors import ScenarioInputError
from scenarios_assets.core.models.units import TRADING_DAYS_PER_YEAR as ANNUALISATION

TREND_REGIMES = ("bear", "bull", "ranging")  # priority order of the exclusive trend regimes
REGIME_TYPES = ("bull", "bear", "high_volatility", "ranging")
BEAR_RULES = ("drawdown", "trend")


@dataclass(frozen=True)
class Segment:
    """One regime segment of an index: a run of sessions with the same smoothed regime label."""

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
        """``<index>_<regime>_<YYYYMMDD of start>``, unique per index and regime type."""
        return f"{self.index}_{self.regime}_{self.start:%Y%m%d}"


# --- features and raw labels ----------------------------------------------------------------------

def realised_vol_points(close: pd.Series, days: int = 21) -> pd.Series:
    """Rolling realised volatility of a close series in VIX points (the VIX proxy of ``market.build_economic``).

    Parameters
    ----------
    close : Series of float, indexed by session
        Closing prices.
    days : int, default 21
        Rolling window in sessions; at least ``max(days // 2, 2)`` returns are needed for a value.

    Returns
    -------
    Series of float64
        Sample standard deviation of daily log returns over the window, times ``sqrt(252)`` and 100
        (annualised volatility in percent); NaN until enough returns.
    """
    returns = np.log(close).diff()
    return returns.rolling(days, min_periods=max(days // 2, 2)).std() * np.sqrt(ANNUALISATION) * 100


def regime_features(close: pd.Series, vix: pd.Series | None, cfg: RegimeConfig) -> pd.DataFrame:
    """Daily classification features of one index (NaN until enough history).

    Parameters
    ----------
    close : Series of float, indexed by session
        The index's closing prices (NaN rows are dropped).
    vix : Series of float or None
        VIX closes in points (annualised volatility in percent), indexed by date; None or NaN where there
        is none, which :func:`realised_vol_points` of ``close`` replaces.
    cfg : RegimeConfig
        The windows (``sma_short_days``, ``sma_long_days``, ``momentum_days``, ``volatility_days``,
        ``range_days``, ``large_move_window``) and ``large_move`` (daily simple return, fraction).

    Returns
    -------
    DataFrame, indexed by the sessions of ``close``
        Columns ``close``; ``sma_short``, ``sma_long`` (price); ``momentum`` (simple return over
        ``momentum_days``); ``volatility`` (annualised volatility of daily log returns, fraction);
        ``efficiency`` (Kaufman's efficiency ratio over ``momentum_days``, 0..1); ``range`` (max / min - 1
        over ``range_days``); ``large_moves`` (count of daily simple returns beyond ``large_move`` in
        absolute value over ``large_move_window``); ``vix`` (VIX points, real or proxy); ``vix_is_real``
        (bool).
    """
    close = close.dropna().astype(np.float64)
    log_ret = np.log(close).diff()
    change = close.diff().abs()
    trend_days = int(cfg.momentum_days)
    out = pd.DataFrame(index=close.index)
    out["close"] = close
    out["sma_short"] = close.rolling(int(cfg.sma_short_days)).mean()
    out["sma_long"] = close.rolling(int(cfg.sma_long_days)).mean()
    out["momentum"] = close / close.shift(trend_days) - 1.0
    out["volatility"] = log_ret.rolling(int(cfg.volatility_days)).std() * np.sqrt(ANNUALISATION)
    out["efficiency"] = (close - close.shift(trend_days)).abs() / change.rolling(trend_days).sum()
    out["range"] = close.rolling(int(cfg.range_days)).max() / close.rolling(int(cfg.range_days)).min() - 1.0
    moves = (close.pct_change(fill_method=None).abs() > float(cfg.large_move)).astype(np.float64)
    out["large_moves"] = moves.where(log_ret.notna()).rolling(int(cfg.large_move_window)).sum()
    real = vix.reindex(close.index) if vix is not None else pd.Series(np.nan, index=close.index)
    out["vix"] = real.fillna(realised_vol_points(close, int(cfg.volatility_days)))
    out["vix_is_real"] = real.notna()
    return out


def drawdown_bears(close: pd.Series, min_decline: float) -> pd.Series:
    """Bear-market sessions by the drawdown rule: from a closing high to the lowest close of its drawdown.

    A drawdown episode starts at every closing high and lasts until the high is regained (or the data
    ends); its sessions from the high to the episode's lowest close are a bear market when that low is at
    least ``min_decline`` below the high (close to close). Vectorised over the episodes.

    Parameters
    ----------
    close : Series of float, indexed by session
        Closing prices, without NaN.
    min_decline : float
        The fall that makes a bear market, a fraction (0.20: 20 %).

    Returns
    -------
    Series of bool, indexed like ``close``
        True on the sessions of a bear market.

    References
    ----------
    The conventional bear-market dating (a fall of at least 20 % from a closing high, peak to trough): S&P
    Dow Jones Indices; Yardeni Research, "S&P 500 Bull & Bear Markets & Corrections".
    """
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


def bear_rule(cfg: RegimeConfig) -> str:
    """The configured bear rule.

    Parameters
    ----------
    cfg : RegimeConfig

    Returns
    -------
    str
        ``drawdown`` or ``trend``.

    Raises
    ------
    ScenarioInputError
        ``cfg.bear_rule`` is neither.
    """
    rule = str(cfg.bear_rule)
    if rule not in BEAR_RULES:
        raise ScenarioInputError(f"generation.regime.bear_rule '{rule}' is not supported (use {' or '.join(BEAR_RULES)})")
    return rule


def raw_regimes(features: pd.DataFrame, cfg: RegimeConfig) -> pd.DataFrame:
    """Daily raw criteria per regime type, before smoothing (module docstring).

    Parameters
    ----------
    features : DataFrame
        :func:`regime_features` of one index.
    cfg : RegimeConfig
        The thresholds (``bull_max_volatility``, ``bear_min_volatility``, ``ranging_max_efficiency``,
        ``ranging_max_range``, ``vix_threshold``, ``min_large_moves``, ``bear_rule``, ``bear_min_decline``).

    Returns
    -------
    DataFrame of bool, indexed like ``features``
        Columns ``bull``, ``bear``, ``ranging``, ``high_volatility``; False where a feature is undefined,
        except the drawdown bears, which need closes only and are dated from the first session.

    Raises
    ------
    ScenarioInputError
        Unknown ``bear_rule``.
    """
    f = features
    valid = f[["sma_long", "momentum", "volatility", "efficiency", "range", "large_moves"]].notna().all(axis=1)
    raw = pd.DataFrame(index=f.index)
    raw["bull"] = (f["sma_short"] > f["sma_long"]) & (f["momentum"] > 0) & (f["volatility"] < cfg.bull_max_volatility)
    raw["bear"] = (f["sma_short"] < f["sma_long"]) & (f["momentum"] < 0) & (f["volatility"] > cfg.bear_min_volatility)
    raw["ranging"] = (f["efficiency"] < cfg.ranging_max_efficiency) & (f["range"] < cfg.ranging_max_range)
    raw["high_volatility"] = (f["vix"] > cfg.vix_threshold) & (f["large_moves"] >= cfg.min_large_moves)
    raw = raw.where(valid, False).astype(bool)
    if bear_rule(cfg) == "drawdown":
        raw["bear"] = drawdown_bears(f["close"], float(cfg.bear_min_decline))
    return raw


def min_segment_days(cfg: RegimeConfig, regime: str) -> int:
    """Minimum sessions of a segment of ``regime``.

    Parameters
    ----------
    cfg : RegimeConfig
    regime : str
        One of :data:`REGIME_TYPES`.

    Returns
    -------
    int
        ``cfg.min_regime_days[regime]`` (the seed's), except for drawdown bears, which the depth of the fall
        defines: 2 (a segment needs a return).

    Raises
    ------
    ScenarioInputError
        Unknown ``bear_rule``.
    """
    if regime == "bear" and bear_rule(cfg) == "drawdown":
        return 2
    return int(cfg.min_regime_days[regime])


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
    """``mask`` with its True runs shorter than ``min_days`` set to False.

    Parameters
    ----------
    mask : ndarray of shape (n_sessions,), bool
    min_days : int
        Shortest run kept, in sessions.

    Returns
    -------
    ndarray of shape (n_sessions,), bool
    """
    values, lengths = _rle(np.asarray(mask, dtype=bool))
    values[values & (lengths < min_days)] = False
    return np.repeat(values, lengths)


def fill_gaps(mask: np.ndarray, max_gap: int) -> np.ndarray:
    """``mask`` with interior False runs of at most ``max_gap`` sessions set to True (runs merged).

    Parameters
    ----------
    mask : ndarray of shape (n_sessions,), bool
    max_gap : int
        Longest interruption merged, in sessions; False runs at either end are kept.

    Returns
    -------
    ndarray of shape (n_sessions,), bool
    """
    values, lengths = _rle(np.asarray(mask, dtype=bool))
    interior = np.zeros(values.size, dtype=bool)
    interior[1:-1] = True
    values[~values & interior & (lengths <= max_gap)] = True
    return np.repeat(values, lengths)


def smooth_mask(mask: np.ndarray, min_days: int, max_gap: int, min_persistence: int) -> np.ndarray:
    """Smooth a raw regime label: persistence filter, gap merge, minimum length (module docstring).

    Parameters
    ----------
    mask : ndarray of shape (n_sessions,), bool
        Raw daily label.
    min_days : int
        Shortest segment kept after merging, in sessions.
    max_gap : int
        Longest interruption merged into a segment, in sessions.
    min_persistence : int
        Shortest raw run that counts, in sessions.

    Returns
    -------
    ndarray of shape (n_sessions,), bool
    """
    out = drop_short_runs(mask, min_persistence)
    out = fill_gaps(out, max_gap)
    return drop_short_runs(out, min_days)


def classify(features: pd.DataFrame, cfg: RegimeConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Raw and smoothed daily regime masks of one index.

    Trend regimes are smoothed in priority order (bear, bull, ranging), each on the sessions not claimed
    by an earlier one; drawdown bears are kept as dated; high volatility is smoothed on its own.

    Parameters
    ----------
    features : DataFrame
        :func:`regime_features` of the index.
    cfg : RegimeConfig
        Thresholds and smoothing (``min_regime_days``, ``max_gap_days``, ``min_persistence_days``).

    Returns
    -------
    raw : DataFrame of bool
        :func:`raw_regimes`.
    smoothed : DataFrame of bool
        Columns in :data:`REGIME_TYPES` order, indexed like ``features``.

    Raises
    ------
    ScenarioInputError
        Unknown ``bear_rule``.
    """
    raw = raw_regimes(features, cfg)
    min_days = cfg.min_regime_days
    gap, persist = int(cfg.max_gap_days), int(cfg.min_persistence_days)
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


def find_segments(close: pd.Series, vix: pd.Series | None, cfg: RegimeConfig,
                  index: str) -> tuple[list[Segment], dict[str, dict[str, Any]]]:
    """Regime segments of one index, and per-type diagnostics.

    Parameters
    ----------
    close : Series of float, indexed by session
        The index's closing prices.
    vix : Series of float or None
        VIX in points where known (:func:`regime_features`).
    cfg : RegimeConfig
        Thresholds and smoothing.
    index : str
        The index's symbol (names the segments and the reasons).

    Returns
    -------
    segments : list of Segment
        Sorted by start, then by :data:`REGIME_TYPES` order.
    diagnostics : dict
        Per regime type: ``segments`` (count), ``days`` (smoothed sessions), ``raw_share`` (fraction of
        sessions whose raw criteria held), ``longest_raw_run`` (sessions), and ``reason`` (one line) when
        no segment was found.

    Raises
    ------
    ScenarioInputError
        Unknown ``bear_rule``.
    """
    features = regime_features(close, vix, cfg)
    raw, smoothed = classify(features, cfg)
    classified = int(features[["sma_long", "momentum", "volatility"]].notna().all(axis=1).sum())
    segments: list[Segment] = []
    diagnostics: dict[str, dict[str, Any]] = {}
    for regime in REGIME_TYPES:
        mask = smoothed[regime].to_numpy()
        values, lengths = _rle(mask)
        ends = np.cumsum(lengths)
        starts = ends - lengths
        found = [(int(s), int(e)) for s, e, v in zip(starts, ends, values) if v]
        segments += [_segment(features, raw, index, regime, s, e) for s, e in found]
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


def _segment(features: pd.DataFrame, raw: pd.DataFrame, index: str, regime: str, s: int, e: int) -> Segment:
    """The segment of rows [s, e) of ``features``."""
    window = features.iloc[s:e]
    dates = features.index
    return Segment(
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


def _why_none(regime: str, index: str, cfg: RegimeConfig, classified: int, sessions: int, diag: dict) -> str:
    need = min_segment_days(cfg, regime)
    if regime == "bear" and bear_rule(cfg) == "drawdown":
        return (
            f"no bear market in {index}: no fall of at least {float(cfg.bear_min_decline):.0%} from a closing high "
            f"to the lowest close before that high was regained (bear_rule drawdown; lower "
            "generation.regime.bear_min_decline, or use bear_rule trend)"
        )
    if classified == 0:
        return (
            f"{index} has {sessions} sessions, fewer than the {cfg.sma_long_days} needed for its "
            f"SMA{cfg.sma_long_days}: no session could be classified (use a longer history or lower sma_long_days)"
        )
    criteria = {
        "bull": f"SMA{cfg.sma_short_days} > SMA{cfg.sma_long_days}, {cfg.momentum_days}-session momentum > 0, "
        f"volatility < {cfg.bull_max_volatility:.0%}",
        "bear": f"SMA{cfg.sma_short_days} < SMA{cfg.sma_long_days}, {cfg.momentum_days}-session momentum < 0, "
        f"volatility > {cfg.bear_min_volatility:.0%}",
        "ranging": f"efficiency ratio < {cfg.ranging_max_efficiency}, {cfg.range_days}-session range < "
        f"{cfg.ranging_max_range:.0%}",
        "high_volatility": f"VIX (or proxy) > {cfg.vix_threshold} with >= {cfg.min_large_moves} moves beyond "
        f"{cfg.large_move:.0%} in {cfg.large_move_window} sessions",
    }[regime]
    return (
        f"no {regime} segment of at least {need} sessions in {index}: the criteria ({criteria}) held on "
        f"{diag['raw_share']:.1%} of {classified} classified sessions, longest unbroken run {diag['longest_raw_run']} "
        f"sessions (merging gaps of up to {cfg.max_gap_days}); lower min_regime_days.{regime} or loosen the "
        "thresholds in generation.regime"
    )
