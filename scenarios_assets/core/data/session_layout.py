"""Simulated paths on each symbol's own trading calendar.

The stochastic and stress families simulate one step per session of the primary calendar
(``data.trading_calendar``, XNYS by default: the sessions the business-day panel is calibrated on). Each
symbol trades on its own calendar (:func:`symbol_calendars`): an ``exchange_calendars`` name from
``data.symbol_calendars``, ``24/7`` for a seven-day symbol (crypto; detected in the data, see
``core.data.source_calendars``, or configured), else the primary calendar. :class:`SessionLayout` lays the (paths,
steps, symbols) arrays out on the union of those calendars' sessions over the horizon (the first session
after the start date to the last step's date), with a row for a symbol only on its own sessions (NaN, so
no row in the written time series, elsewhere):

* a session that is a step date takes the step's simulated close: a symbol on the primary calendar keeps
  its simulated path bit for bit (its returns, volatility and every figure are those of a single-calendar
  universe);
* a step date that is not a session of the symbol (its exchange's holiday) has no row; the move since the
  symbol's previous session enters its next session's return (as ``core.data.source_calendars`` folds the input);
* a session between two step dates (a crypto Saturday and Sunday, a London session on a US holiday) is a
  point of a Brownian bridge in calendar time between the two simulated closes, with the path's own
  per-step volatility of that symbol: the closes at the step dates, hence every session-to-session move
  across steps, are the simulated ones, and the bridge spreads each step's move over the days it spans
  (Friday to Monday: Saturday, Sunday, Monday). Its normal draws come from the scenario's seed
  (``SeedSequence(seed, spawn_key=(BRIDGE_KEY,))``), so paths stay reproducible.

A universe whose symbols all keep the primary calendar's sessions over the horizon is left as it is
(:attr:`SessionLayout.identity`), without a copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scenarios_assets.core.data.exchange_calendar import DEFAULT_CALENDAR, SEVEN_DAY, calendar_name, sessions_between

BRIDGE_KEY = 0x24_07  # spawn key of the bridge draws under a scenario's seed
BAR_KEYS = ("high", "low")
CONVENTION = (
    "one step per session of the primary calendar; each symbol has rows only on its own calendar's sessions: "
    "a step date that is its session takes the simulated close, a step date that is not (its holiday) has no row "
    "and its move enters the next session's return, a session between two step dates (a seven-day symbol's "
    "weekend) lies on a Brownian bridge in calendar time between the two simulated closes"
)


def symbol_calendars(symbols: list[str], config: dict, seven_day: list[str] | None = None) -> dict[str, str]:
    """Symbol -> calendar name for ``symbols`` from a config mapping (:func:`calendars_of`).

    Parameters
    ----------
    symbols : list of str
        The universe.
    config : dict
        The ``scenarios_pipeline`` mapping; reads ``data.symbol_calendars`` and ``data.trading_calendar``.
    seven_day : list of str, optional
        The seven-day symbols of the data (``MarketData.report["seven_day_symbols"]``).

    Returns
    -------
    dict of str to str
        See :func:`calendars_of`.
    """
    configured = (config.get("data") or {}).get("symbol_calendars") or {}
    return calendars_of(symbols, calendar_name(config), configured, seven_day)


def calendars_of(symbols: list[str], primary: str, configured: Mapping[str, str],
                 seven_day: list[str] | None = None) -> dict[str, str]:
    """Symbol -> calendar name for ``symbols``.

    Parameters
    ----------
    symbols : list of str
        The universe.
    primary : str
        ``data.trading_calendar``: the calendar of every symbol not named otherwise.
    configured : Mapping of str to str
        ``data.symbol_calendars``.
    seven_day : list of str, optional
        The seven-day symbols of the data (``MarketData.report["seven_day_symbols"]``).

    Returns
    -------
    dict of str to str
        ``configured`` where it names a calendar, ``24/7`` for a seven-day symbol, else ``primary``; names
        are not checked here.
    """
    seven = set(seven_day or [])
    return {s: str(configured.get(s) or (SEVEN_DAY if s in seven else primary)) for s in symbols}


@dataclass(frozen=True)
class _Group:
    """The symbols of one calendar: their columns, own sessions and where each session's close comes from."""

    name: str
    cols: np.ndarray  # (n,) symbol columns
    rows: np.ndarray  # (m,) rows of the layout's dates that are its sessions
    exact: np.ndarray  # (m,) step index of a session that is a step date, else -1 (a bridge point)
    step_of: np.ndarray  # (m,) the step whose interval holds each session (its own date or the next step)
    prev: np.ndarray  # (k,) per bridge point: step before it (-1: the start state)
    nxt: np.ndarray  # (k,) step after it
    u: np.ndarray  # (k,) calendar-time fraction of its interval
    du: np.ndarray  # (k,) u minus the previous bridge point's u in the same interval (or u)
    start: np.ndarray  # (k,) index of the first bridge point of its interval
    interval: np.ndarray  # (k,) interval number 0..q-1
    tail: np.ndarray  # (q,) 1 - u of each interval's last bridge point
    last: np.ndarray  # (q,) index of each interval's last bridge point


@dataclass(frozen=True)
class SessionLayout:
    """How (S, T, N) paths over ``step_dates`` are laid out on every symbol's sessions (module docstring).

    Built by :meth:`build`; applied by :meth:`apply`.

    Parameters
    ----------
    step_dates : ndarray of shape (n_steps,), datetime64[D]
        The simulation's step dates (sessions of the primary calendar).
    dates : ndarray of shape (n_dates,), datetime64[D]
        The union of the symbols' sessions over the horizon (``step_dates`` for an identity layout).
    calendars : dict of str to str
        Symbol -> calendar name.
    primary : str
        The primary calendar's name.
    groups : tuple
        Per calendar, its symbols' columns and how its sessions map onto the steps (internal).
    identity : bool
        True when every symbol's sessions are the step dates: :meth:`apply` returns its inputs.
    """

    step_dates: np.ndarray  # (T,) datetime64[D]
    dates: np.ndarray  # (D,) datetime64[D]: union of the symbols' sessions
    calendars: dict[str, str]
    primary: str
    groups: tuple[_Group, ...]
    identity: bool

    @classmethod
    def build(cls, start_date, step_dates: np.ndarray, symbols: list[str], calendars: dict[str, str],
              primary: str = DEFAULT_CALENDAR) -> "SessionLayout":
        """The layout of ``symbols`` for steps on ``step_dates`` after ``start_date``.

        Parameters
        ----------
        start_date : date-like
            The last date of the data; sessions are taken from the next calendar day to the last step date.
        step_dates : ndarray of shape (n_steps,), datetime64[D]
            The step dates (sessions of ``primary``), ascending, not empty.
        symbols : list of str
            The universe, in column order.
        calendars : dict of str to str
            Symbol -> calendar name (:func:`symbol_calendars`); must hold every symbol.
        primary : str, default "XNYS"
            The primary calendar's name (recorded by :meth:`describe`).

        Returns
        -------
        SessionLayout
            An identity layout when every symbol's sessions over the horizon are the step dates.

        Raises
        ------
        ScenarioInputError
            For an unknown calendar name.
        """
        step_dates = np.asarray(step_dates, dtype="datetime64[D]")
        first = pd.Timestamp(start_date).normalize() + pd.Timedelta(days=1)
        names = list(dict.fromkeys(calendars[s] for s in symbols))
        own = {name: sessions_between(first, step_dates[-1], name) for name in names}
        if all(len(days) == len(step_dates) and (days == step_dates).all() for days in own.values()):
            return cls(step_dates, step_dates, dict(calendars), primary, (), True)
        dates = np.unique(np.concatenate([step_dates, *own.values()]))
        start = np.datetime64(pd.Timestamp(start_date).date(), "D")
        groups = tuple(_group(name, [j for j, s in enumerate(symbols) if calendars[s] == name], own[name],
                              dates, step_dates, start) for name in names)
        return cls(step_dates, dates, dict(calendars), primary, groups, False)

    def describe(self) -> dict:
        """Set metadata: every symbol's calendar that is not the primary one, and the convention.

        Returns
        -------
        dict
            ``trading_calendar`` (the primary), ``symbol_calendars`` (symbol -> calendar, primary omitted)
            and ``session_layout`` (``"single calendar"``, or the convention text :data:`CONVENTION`).
        """
        return {"trading_calendar": self.primary,
                "symbol_calendars": {s: c for s, c in self.calendars.items() if c != self.primary},
                "session_layout": "single calendar" if self.identity else CONVENTION}

    def apply(self, returns: np.ndarray, prices: np.ndarray, last_close: np.ndarray, seeds: list[int],
              extra: dict[str, np.ndarray] | None = None,
              sigma: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Lay simulated paths out on the symbols' sessions (NaN off them).

        A session between two step dates is a point of a Brownian bridge in calendar time between the two
        simulated log closes [1]_ (module docstring). Identity layouts return the inputs unchanged.

        Parameters
        ----------
        returns : ndarray of shape (n_paths, n_steps, n_symbols), float32
            Daily simple returns per step.
        prices : ndarray of shape (n_paths, n_steps, n_symbols), float32
            Simulated closes per step.
        last_close : ndarray of shape (n_symbols,)
            The close before the first step (price units).
        seeds : list of int
            The scenarios' seeds, one per path: the bridge's normals come from
            ``SeedSequence(seed, spawn_key=(BRIDGE_KEY,))``.
        extra : dict of str to ndarray of shape (n_paths, n_steps, n_symbols), optional
            Per-step series: bar ranges (``high``/``low``) are kept on the sessions that are step dates,
            other series (liquidity multipliers) on every session of the step's interval.
        sigma : ndarray of shape (n_symbols,) or (n_paths, n_symbols), optional
            The bridge's per-step volatility of log prices (standard deviation of a daily log return). Default:
            each path's own sample standard deviation (ddof=1) of its log returns.

        Returns
        -------
        returns : ndarray of shape (n_paths, n_dates, n_symbols), float32
            Daily simple returns, session to session of each symbol.
        prices : ndarray of shape (n_paths, n_dates, n_symbols), float32
            Closes on each symbol's sessions.
        extra : dict of str to ndarray of shape (n_paths, n_dates, n_symbols), float32
            ``extra`` on the sessions, as described above.

        References
        ----------
        .. [1] Glasserman, P. (2004). Monte Carlo Methods in Financial Engineering. Springer, section 3.1
           (Brownian bridge construction).
        """
        extra = extra or {}
        if self.identity:
            return returns, prices, extra
        s_count, _, n = returns.shape
        out_r = np.full((s_count, len(self.dates), n), np.nan, dtype=np.float32)
        out_p = np.full_like(out_r, np.nan)
        out_x = {k: np.full_like(out_r, np.nan) for k in extra}
        noise = self._bridge_draws(seeds, s_count)
        log_close = np.log(np.asarray(last_close, dtype=np.float64))
        for g, z in zip(self.groups, noise):
            cols = g.cols
            exact = g.exact >= 0
            if len(g.exact) == returns.shape[1] and (g.exact == np.arange(returns.shape[1])).all():
                r, p = returns[:, :, cols], prices[:, :, cols]  # every step is a session: as simulated, bit for bit
            else:
                r, p = self._group_path(g, z, returns[:, :, cols], prices[:, :, cols], log_close[cols],
                                        None if sigma is None else np.broadcast_to(sigma, (s_count, n))[:, cols])
            out_r[:, g.rows[:, None], cols[None, :]] = r
            out_p[:, g.rows[:, None], cols[None, :]] = p
            for k, series in extra.items():
                if k in BAR_KEYS:  # a bar belongs to the session it was modelled for
                    out_x[k][:, g.rows[exact][:, None], cols[None, :]] = series[:, g.exact[exact]][:, :, cols]
                else:  # a level of the session's step (liquidity multipliers)
                    out_x[k][:, g.rows[:, None], cols[None, :]] = series[:, g.step_of][:, :, cols]
        return out_r, out_p, out_x

    @staticmethod
    def _group_path(g: _Group, z: np.ndarray, returns: np.ndarray, prices: np.ndarray, log_close: np.ndarray,
                    sigma: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(S, m, n) returns and prices of one calendar's symbols (columns already selected) on its sessions."""
        log_p = np.log(prices.astype(np.float64))
        if sigma is None:
            with np.errstate(invalid="ignore"):
                log_r = np.log1p(returns.astype(np.float64))
                sigma = log_r.std(axis=1, ddof=1) if returns.shape[1] > 1 else np.zeros((len(returns), returns.shape[2]))
        exact = g.exact >= 0
        level = np.empty((len(returns), len(g.rows), returns.shape[2]))
        level[:, exact] = log_p[:, g.exact[exact]]
        if (~exact).any():
            level[:, ~exact] = _bridge(g, log_p, log_close, np.asarray(sigma, dtype=np.float64), z)
        before = np.concatenate([np.broadcast_to(log_close, (len(returns), 1, len(log_close))), level[:, :-1]], axis=1)
        return np.expm1(level - before), np.exp(level)

    def _bridge_draws(self, seeds: list[int], s_count: int) -> list[np.ndarray]:
        """Per group, (S, k + q, n) standard normals: k bridge points and q interval ends, from each path's seed."""
        sizes = [(len(g.u) + len(g.tail), len(g.cols)) for g in self.groups]
        total = sum(a * b for a, b in sizes)
        draws = np.empty((s_count, total))
        if total:
            for i in range(s_count):  # one generator per path (its seed), as the simulation draws
                rng = np.random.default_rng(np.random.SeedSequence(int(seeds[i]), spawn_key=(BRIDGE_KEY,)))
                draws[i] = rng.standard_normal(total)
        out, offset = [], 0
        for a, b in sizes:
            out.append(draws[:, offset : offset + a * b].reshape(s_count, a, b))
            offset += a * b
        return out


def _group(name: str, cols: list[int], own: np.ndarray, dates: np.ndarray, step_dates: np.ndarray,
           start: np.datetime64) -> _Group:
    """A calendar's sessions mapped onto the steps (see :class:`_Group`)."""
    rows = np.searchsorted(dates, own)
    nxt = np.searchsorted(step_dates, own, side="left")  # the first step on or after each session
    exact = np.where(step_dates[np.minimum(nxt, len(step_dates) - 1)] == own, nxt, -1)
    inner = exact < 0
    b_next = nxt[inner]
    b_prev = b_next - 1
    left = np.where(b_prev >= 0, step_dates[np.maximum(b_prev, 0)], start).astype(np.int64)
    right = step_dates[b_next].astype(np.int64)
    u = (own[inner].astype(np.int64) - left) / (right - left)
    new = np.r_[True, b_next[1:] != b_next[:-1]] if len(b_next) else np.zeros(0, bool)
    interval = np.cumsum(new) - 1
    first = np.flatnonzero(new)
    last = np.r_[first[1:] - 1, len(b_next) - 1] if len(first) else np.zeros(0, np.int64)
    du = np.where(new, u, u - np.r_[0.0, u[:-1]]) if len(u) else u
    return _Group(name, np.asarray(cols, dtype=np.int64), rows, exact, nxt, b_prev, b_next, u, du,
                  first[interval] if len(first) else np.zeros(0, np.int64), interval, 1.0 - u[last], last)


def _bridge(g: _Group, log_p: np.ndarray, log_close: np.ndarray, sigma: np.ndarray, z: np.ndarray) -> np.ndarray:
    """(S, k, n) log closes of the bridge points: linear between the two simulated closes plus a Brownian
    bridge in calendar time scaled by ``sigma`` (S, n), from the normals ``z`` (S, k + q, n)."""
    k = len(g.u)
    inc = np.sqrt(g.du)[None, :, None] * z[:, :k]
    c = np.cumsum(inc, axis=1)
    base = np.where((g.start > 0)[None, :, None], c[:, np.maximum(g.start - 1, 0)], 0.0)
    w = c - base  # Brownian motion from the interval's start
    w1 = w[:, g.last] + np.sqrt(g.tail)[None, :, None] * z[:, k:]  # its value at the interval's end
    bridge = w - g.u[None, :, None] * w1[:, g.interval]
    start = np.broadcast_to(log_close, (log_p.shape[0], 1, log_p.shape[2]))
    left = np.where((g.prev >= 0)[None, :, None], log_p[:, np.maximum(g.prev, 0)], start)
    right = log_p[:, g.nxt]
    return left + g.u[None, :, None] * (right - left) + sigma[:, None, :] * bridge

