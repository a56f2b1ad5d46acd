"""One-session price moves that are data errors: unadjusted splits and absurd jumps.

A close-to-close factor f = close_t / close_(t-1) of one symbol (consecutive rows) is refused when

* it lies within ``SPLIT_TOLERANCE`` (10 %) of a common split ratio: 1/n for an n-for-1 split or n for a
  1-for-n reverse split, n in ``SPLIT_RATIOS`` (2, 3, 4, 5, 6, 7, 8, 10, 15, 20; e.g. NVIDIA 10-for-1 on
  2024-06-10, Amazon and Alphabet 20-for-1 in 2022, Apple 7-for-1 in 2014 and 4-for-1 in 2020). A split
  left unadjusted in the prices is such a factor times the day's real move, which for a large cap
  rarely exceeds a few per cent; or
* it lies beyond x``MAX_DAILY_FACTOR`` (10) either way (a bad value, or a split of a ratio not listed,
  e.g. Chipotle's 50-for-1 in 2024).

A 3-for-2 split (f = 0.667) is not flagged: a -33 % day is too common a real move to call it a split.

Real moves that match (Apple fell 52 % on 2000-09-29, a factor 0.48 close to a 2-for-1 split) are accepted
one by one: ``data.accepted_moves`` in the config, or ``--accept-move SYMBOL:YYYY-MM-DD`` on the command line;
``data.split_check: false`` turns the split-ratio test off (the x10 test stays).
"""

from __future__ import annotations

from collections.abc import Iterable, Set

import numpy as np
import pandas as pd

from scenarios_assets.core.models.errors import ScenarioInputError

class PriceMoveError(ScenarioInputError):
    """A refused move; ``row`` is the position (in the checked rows) of the move's second close.

    Parameters
    ----------
    message : str
        One line: the move, the likely cause and the two ways out.
    row : int
        Position (0-based, in the checked rows) of the move's second close.
    """

    def __init__(self, message: str, row: int):
        super().__init__(message)
        self.row = row


SPLIT_RATIOS = (2, 3, 4, 5, 6, 7, 8, 10, 15, 20)
SPLIT_TOLERANCE = 0.10
MAX_DAILY_FACTOR = 10.0


def parse_accepted_moves(entries: Iterable[str] | None, what: str = "data.accepted_moves") -> set[tuple[str, str]]:
    """``SYMBOL:YYYY-MM-DD`` entries as (symbol, ISO date) pairs.

    Parameters
    ----------
    entries : iterable of str, optional
        The entries (the date is the move's second close; the symbol is everything before the last ``:``).
    what : str, default "data.accepted_moves"
        Where the entries come from, for the message.

    Returns
    -------
    set of (str, str)
        (symbol, ``YYYY-MM-DD``) pairs; empty for None.

    Raises
    ------
    ScenarioInputError
        Naming the first malformed entry (no symbol, or a date that is not 10 characters or not a date).
    """
    out = set()
    for entry in entries or ():
        symbol, _, day = str(entry).strip().rpartition(":")
        try:
            iso = pd.Timestamp(day.strip()).date().isoformat() if symbol.strip() else ""
        except (ValueError, TypeError):
            iso = ""
        if not iso or len(day.strip()) != 10:
            raise ScenarioInputError(
                f"{what}: '{entry}' is not SYMBOL:YYYY-MM-DD (e.g. NVDA:2024-06-10, the date of the move's close)"
            )
        out.add((symbol.strip(), iso))
    return out


def split_ratio(factor: np.ndarray) -> np.ndarray:
    """Signed ratio n of the common split each factor matches (n > 0: n-for-1 split, f ~ 1/n; n < 0:
    1-for-|n| reverse split, f ~ |n|), 0 where none matches within SPLIT_TOLERANCE.

    Parameters
    ----------
    factor : array_like
        Close-to-close factors close_t / close_(t-1) (NaN allowed: no match).

    Returns
    -------
    ndarray of the same shape, int64
        The closest ratio of :data:`SPLIT_RATIOS` (signed as above) whose relative deviation
        (f x n - 1, or f / n - 1) is at most :data:`SPLIT_TOLERANCE`, else 0.

    Notes
    -----
    :data:`SPLIT_RATIOS` is this project's list of common split ratios; the module docstring names real
    splits it covers (NVIDIA 10-for-1, Amazon and Alphabet 20-for-1, Apple 7-for-1 and 4-for-1) and one it
    leaves to the x10 test (Chipotle 50-for-1).
    """
    factor = np.asarray(factor, dtype=np.float64)
    out = np.zeros(factor.shape, dtype=np.int64)
    lo, hi = (1.0 + SPLIT_TOLERANCE) / min(SPLIT_RATIOS), (1.0 - SPLIT_TOLERANCE) * min(SPLIT_RATIOS)
    with np.errstate(invalid="ignore"):
        candidates = np.flatnonzero((factor <= lo) | (factor >= hi))  # the rest is too small a move for any ratio
    f = factor[candidates][:, None]
    ratios = np.array([*SPLIT_RATIOS, *(-n for n in SPLIT_RATIOS)], dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = np.where(ratios > 0, f * ratios, f / -ratios)  # 1 at an exact split
        deviation = np.abs(scaled - 1.0)
    deviation = np.where(np.isfinite(deviation), deviation, np.inf)
    best = np.argmin(deviation, axis=-1)
    closest = np.take_along_axis(deviation, best[:, None], axis=-1)[:, 0]
    out[candidates] = np.where(closest <= SPLIT_TOLERANCE, ratios[best], 0)
    return out


def check_price_moves(
    df: pd.DataFrame,
    source: str,
    accepted: Set[tuple[str, str]] = frozenset(),
    split_check: bool = True,
) -> list[str]:
    """Refuse split-like and beyond-x10 moves (see the module docstring) not in ``accepted``.

    Parameters
    ----------
    df : pandas.DataFrame
        Validated rows sorted by (symbol, date); reads ``symbol``, ``date`` and ``close``.
    source : str
        The source's name, for the message.
    accepted : set of (str, str), default frozenset()
        (symbol, ``YYYY-MM-DD``) moves known to be real (:func:`parse_accepted_moves`).
    split_check : bool, default True
        Apply the split-ratio test (the x10 test always applies).

    Returns
    -------
    list of str
        The accepted moves that were found, as ``SYMBOL:YYYY-MM-DD``.

    Raises
    ------
    PriceMoveError
        A :class:`ScenarioInputError` with one line: count, the first move not accepted (symbol, date,
        closes, factor), the likely split ratio and the two ways out.
    """
    same = df["symbol"].eq(df["symbol"].shift()).to_numpy()
    close = df["close"].to_numpy(np.float64)
    factor = np.full(len(df), np.nan)
    factor[1:] = close[1:] / close[:-1]
    factor[~same] = np.nan
    ratio = split_ratio(factor) if split_check else np.zeros(len(df), dtype=np.int64)
    jump = (factor > MAX_DAILY_FACTOR) | (factor < 1.0 / MAX_DAILY_FACTOR)
    flagged = np.flatnonzero((ratio != 0) | jump)
    if flagged.size == 0:
        return []
    symbols = df["symbol"].to_numpy()[flagged]
    days = df["date"].to_numpy(dtype="datetime64[D]")[flagged].astype(str)
    keys = [f"{s}:{d}" for s, d in zip(symbols, days)]
    is_accepted = np.array([(s, d) in accepted for s, d in zip(symbols, days)], dtype=bool)
    if is_accepted.all():
        return keys
    i = int(np.argmin(is_accepted))
    row = flagged[i]
    n = int(ratio[row])
    f = float(factor[row])
    if n > 0:
        kind = f"likely an unadjusted {n}-for-1 split; divide the closes (and OHLC) before {days[i]} by {n}"
    elif n < 0:
        kind = f"likely an unadjusted 1-for-{-n} reverse split; multiply the closes (and OHLC) before {days[i]} by {-n}"
    else:
        kind = f"beyond x{MAX_DAILY_FACTOR:g} in one session, likely a bad value or an unadjusted split; fix the rows"
    count = int((~is_accepted).sum())
    more = f" ({count} such moves)" if count > 1 else ""
    raise PriceMoveError(
        f"market data '{source}': {symbols[i]} on {days[i]} closes at {close[row]:.6g} after {close[row - 1]:.6g} "
        f"(factor {f:.4g}){more}: {kind}, or, if the move is real, accept it with --accept-move {keys[i]} "
        "(config data.accepted_moves)",
        int(row),
    )
