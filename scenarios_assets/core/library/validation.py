"""Validation checks of scenario sets: results, never exceptions, so every failure is reported.

Each check returns ``{"passed": bool, "value": float, "threshold": ..., "blocking": bool, "detail": str}``.
Blocking checks guard unusable output (non-finite values, non-positive prices, a broken calendar);
the others are warnings. A family-specific check is registered in ``SET_CHECKS`` as ``per_family`` and
named in the ``set_checks`` of the families' ``FamilySpec`` (``core.families.registry``).

Which family gets which check (see ``SET_CHECKS``):

* market constraints (finite values, positive prices, trading calendar, non-negative volume; blocking)
  and coverage (each symbol on >= 95 % of a scenario's days; warning): every family.
* ``statistical_validity`` (warning): monte_carlo and bootstrap, the families that *generate* returns.
  The share of daily returns beyond 3 sigma (each scenario x symbol column standardised by its own mean
  and standard deviation, pooled over the set) is compared with the expected share: the calibration
  history's rate when the family records ``metadata["tail_reference"]`` (see :func:`scenarios_assets.core.engines.tails.tail_reference`),
  else what a Student-t fitted (maximum likelihood) to the set's own standardised returns predicts. It
  passes within a factor of ``TAIL_TOLERANCE`` either way, widened by three binomial standard errors, so
  heavy tails as such never fail it (a normal distribution's 0.27 % is not the bound). Historical and
  regime replays are the record itself (a linear rescale of log excess returns leaves standardised
  tails unchanged), so the check would be a tautology there; stress paths are deterministic shocks with
  Gaussian noise by design.
* ``correlation_stability`` (warning): monte_carlo and bootstrap, which claim to keep the historical
  correlation structure; reads ``metadata["correlation_stability"]`` (the family computes it; a set
  without it fails with a detail saying so). The claim holds at ``moderate`` (the fitted model / the
  recent past as it was), which needs >= 0.8. Severe and extreme move correlations towards crisis levels
  on purpose (monte_carlo pushes them towards 1, bootstrap draws crisis blocks), so there the value is
  reported against a floor of 0.5, below which the structure is lost rather than stressed.
* ``regime_types_found`` (warning): regime; every regime type has at least one segment, else the detail
  gives the reason per type. ``events_accounted`` (warning): historical and stress.
* Catalog level: :func:`catalog_checks` (diversity: >= 50 unique scenario definitions; regime coverage
  bull, bear and ranging; unique ids, blocking).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from scenarios_assets.core.engines.tails import TAIL_SIGMA, standardised_columns, student_t_rate
from scenarios_assets.core.families.context import GenerationContext
from scenarios_assets.core.families.registry import FAMILY_SPECS, family_stream
from scenarios_assets.core.models.scenario import Scenario, ScenarioSet, ScenarioStream

MIN_COVERAGE = 0.95
TAIL_TOLERANCE = 2.0  # observed/expected exceedance ratio accepted either way
MIN_CORRELATION_STABILITY = 0.8  # where the family claims to keep the historical structure (moderate)
MIN_STRESSED_CORRELATION_STABILITY = 0.5  # severe/extreme move correlations on purpose; below this the structure is lost
MIN_UNIQUE_SCENARIOS = 50
REQUIRED_REGIMES = {"bull": ("bull",), "bear": ("bear",), "neutral": ("ranging", "neutral")}


def result(passed: bool, value: float, threshold, blocking: bool, detail: str = "") -> dict:
    """A check result, as every check returns it (module docstring).

    Parameters
    ----------
    passed : bool
        Whether the check passed.
    value : float or None
        The measured value; None or a non-finite value is recorded as None.
    threshold : object
        The bound it is compared with (a number or a text such as ``"> 0"``).
    blocking : bool
        True when a failure makes the output unusable.
    detail : str, default ""
        One line explaining the value.

    Returns
    -------
    dict
        ``{"passed": bool, "value": float | None, "threshold": ..., "blocking": bool, "detail": str}``.
    """
    return {
        "passed": bool(passed),
        "value": float(value) if value is not None and np.isfinite(value) else None,
        "threshold": threshold,
        "blocking": blocking,
        "detail": detail,
    }


# --- per-scenario measures ------------------------------------------------------------------------

def _present(s: Scenario) -> np.ndarray:
    return ~np.isnan(s.prices)


def non_finite_cells(s: Scenario) -> int:
    """The number of broken cells of a scenario.

    A cell is broken when its price is infinite, its return is not finite where the symbol has a price
    (or finite where it has none), or an extra series is not finite where the symbol has a price (the bar
    columns ``high``/``low`` may be NaN, never infinite).

    Parameters
    ----------
    s : Scenario
        One scenario.

    Returns
    -------
    int
        The count, summed over returns, prices and the extra series.
    """
    present = _present(s)
    bad = np.isinf(s.prices) | (present & ~np.isfinite(s.returns)) | (~present & np.isfinite(s.returns))
    for name, series in s.extra.items():
        if name in ("high", "low"):  # bar columns: null (NaN) where a session has no modelled range, never inf
            bad |= present & np.isinf(series)
        else:
            bad |= present & ~np.isfinite(series)
    return int(bad.sum())


def min_price(s: Scenario) -> float:
    """The lowest price of a scenario where a symbol has data.

    Parameters
    ----------
    s : Scenario
        One scenario.

    Returns
    -------
    float
        The minimum price (price units), NaN when no cell has data.
    """
    prices = s.prices[_present(s)]
    return float(prices.min()) if prices.size else float("nan")


def min_coverage(s: Scenario) -> float:
    """Lowest share of a symbol's sessions with data (its own calendar's sessions among the dates when the
    scenario's symbols keep different calendars, else every date).

    Parameters
    ----------
    s : Scenario
        One scenario.

    Returns
    -------
    float
        The lowest per-symbol share, a fraction in [0, 1]; 0.0 for an empty scenario.
    """
    if s.prices.size == 0:
        return 0.0
    if s.calendars is None:
        return float(_present(s).mean(axis=0).min())
    own = own_sessions(s)
    return float(((_present(s) & own).sum(axis=0) / np.maximum(own.sum(axis=0), 1)).min())


@lru_cache(maxsize=64)
def _sessions(name: str, first: str, last: str) -> np.ndarray:
    from scenarios_assets.core.data.exchange_calendar import sessions_between

    return sessions_between(first, last, name)


def own_sessions(s: Scenario) -> np.ndarray:
    """Which dates are sessions of each symbol's calendar (``s.calendars``; every date without it).

    Parameters
    ----------
    s : Scenario
        One scenario.

    Returns
    -------
    ndarray of shape (n_days, n_symbols), bool
        True where date t is a session of symbol n's calendar (``exchange_calendars`` sessions, every day
        for ``24/7``).

    Raises
    ------
    ScenarioInputError
        For an unknown calendar name.
    """
    if s.calendars is None:
        return np.ones(s.prices.shape, dtype=bool)
    first, last = str(s.dates[0]), str(s.dates[-1])
    names = [s.calendars.get(sym) for sym in s.symbols]
    by_name = {name: np.isin(s.dates, _sessions(name, first, last)) for name in set(names)}
    return np.stack([by_name[name] for name in names], axis=1)


def calendar_ok(s: Scenario) -> bool:
    """Dates increase; every date is a weekday, or, with per-symbol calendars, every cell with data is a
    session of its symbol's calendar.

    Parameters
    ----------
    s : Scenario
        One scenario.

    Returns
    -------
    bool
        True when the calendar holds; False for a scenario without dates.
    """
    days = s.dates
    if len(days) == 0:
        return False
    increasing = bool(np.all(np.diff(days.astype(np.int64)) > 0))
    if s.calendars is not None:
        return increasing and not bool((_present(s) & ~own_sessions(s)).any())
    weekday = (days.astype("datetime64[D]").view("int64") - 4) % 7  # 1970-01-01 was a Thursday
    return increasing and bool(np.all(weekday < 5))


def min_volume(s: Scenario) -> float:
    """The lowest value of the scenario's volume series (extra series named ``volume*``) where it has data.

    Parameters
    ----------
    s : Scenario
        One scenario.

    Returns
    -------
    float
        The minimum over the cells where a symbol has a price (NaN when such a cell is NaN); 0.0 without
        volume series.
    """
    vols = [v[_present(s)] for k, v in s.extra.items() if k.startswith("volume")]
    values = np.concatenate(vols) if vols else np.array([])
    return float(values.min()) if values.size else 0.0


def scenario_checks(s: Scenario) -> dict:
    """Market constraints of one scenario.

    Parameters
    ----------
    s : Scenario
        One scenario.

    Returns
    -------
    dict of str to dict
        Check name -> result (:func:`result`): ``finite_values``, ``positive_prices``, ``trading_calendar``
        and ``non_negative_volume`` (blocking), ``coverage`` (warning, >= :data:`MIN_COVERAGE`).
    """
    bad = non_finite_cells(s)
    lowest = min_price(s)
    cover = min_coverage(s)
    return {
        "finite_values": result(bad == 0, bad, 0, True, f"{bad} non-finite cell(s)"),
        "positive_prices": result(np.isfinite(lowest) and lowest > 0, lowest, "> 0", True),
        "coverage": result(cover >= MIN_COVERAGE, cover, MIN_COVERAGE, False),
        "trading_calendar": result(calendar_ok(s), float(calendar_ok(s)),
                                   "increasing weekdays" if s.calendars is None else "each symbol on its calendar's sessions", True),
        "non_negative_volume": result(min_volume(s) >= 0, min_volume(s), ">= 0", True),
    }


# --- streamed set statistics ----------------------------------------------------------------------

TAIL_SAMPLE_PER_SCENARIO = 64  # standardised returns kept per scenario for the Student-t fallback
MAX_CORRELATION_ROWS = 10_000  # scenario-days pooled for a family's correlation_stability


class SetStats:
    """What the set checks and a family's set metadata need from its scenarios, accumulated one scenario at
    a time so that memory does not grow with paths x days x symbols: per scenario a few floats and its
    check results, the 3-sigma exceedance counts, and (with ``correlation_paths``) a deterministic stride
    sample of at most ``MAX_CORRELATION_ROWS`` scenario-days of daily simple returns.

    The samples depend only on the scenario index in the set and the path length, never on how the
    scenarios were chunked, so a set streamed in any chunk size gives identical figures.

    Parameters
    ----------
    family : str
        The family's name (tail statistics are gathered for a ``FamilySpec.simulated`` family only).
    severity : str
        Severity level name.
    correlation_paths : int, optional
        The number of scenarios the set will hold, when the family wants a pooled correlation sample.
    offset : int, default 0
        Index in the set of this object's first scenario (a chunk's statistics).
    """

    def __init__(self, family: str, severity: str, correlation_paths: int | None = None, offset: int = 0):
        self.family, self.severity = family, severity
        spec = FAMILY_SPECS.get(family)
        self.simulated = spec is not None and spec.simulated
        self.offset = offset  # index in the set of this object's first scenario (a chunk's statistics)
        self.ids: list[str] = []
        self.scenario_validation: list[dict] = []
        self.total_returns: list[float] = []
        self.volatilities: list[float] = []
        self.max_drawdowns: list[float] = []
        self.regime_labels: set[str] = set()
        self.tail_total = self.tail_beyond = 0
        self.tail_sample: list[np.ndarray] = []
        self._correlation_paths = correlation_paths
        self.correlation_rows: list[np.ndarray] = []
        self.metadata: dict = {}
        self.skipped: list[dict] = []
        self.validation: dict[str, dict] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, s: Scenario) -> None:
        """Check one scenario (fills ``s.validation``) and fold it into the statistics.

        Parameters
        ----------
        s : Scenario
            The next scenario of the set.
        """
        s.validation = scenario_checks(s)
        index = self.offset + len(self.ids)
        self.ids.append(s.id)
        self.scenario_validation.append(s.validation)
        self.total_returns.append(float(s.expected_return))
        self.volatilities.append(float(s.metadata.get("annualised_volatility", float("nan"))))
        self.max_drawdowns.append(float(s.max_drawdown))
        if s.metadata.get("regime"):
            self.regime_labels.add(str(s.metadata["regime"]))
        if self.simulated:
            z = standardised_columns(s.returns)
            self.tail_total += z.size
            self.tail_beyond += int(np.count_nonzero(np.abs(z) > TAIL_SIGMA))
            # copies: a strided view would keep the scenario's whole z-score block (and below, the chunk's
            # whole return array) alive until the end of the set
            self.tail_sample.append(z[:: max(1, z.size // TAIL_SAMPLE_PER_SCENARIO)].copy())
        if self._correlation_paths:
            t = len(s.dates)
            step = max(1, -(-self._correlation_paths * t // MAX_CORRELATION_ROWS))
            first = (-index * t) % step  # global row index (index * t + day) on the stride
            rows = np.array(s.returns[first::step], dtype=np.float32)
            if s.calendars is not None:  # the dates every symbol trades (the sample's correlations need whole rows)
                rows = rows[np.isfinite(rows).all(axis=1)]
            self.correlation_rows.append(rows)

    def merge(self, other: SetStats) -> None:
        """Append the statistics of the scenarios that follow this object's in the set (``other``: a chunk's,
        made with ``offset`` = len(self) + self.offset). Merging the chunks in order gives exactly the figures of
        one pass over the set, wherever each chunk was computed.

        Parameters
        ----------
        other : SetStats
            The next chunk's statistics.

        Raises
        ------
        ValueError
            When ``other`` does not follow (its ``offset`` is not ``self.offset + len(self)``).
        """
        if other.offset != self.offset + len(self.ids):
            raise ValueError(f"chunk statistics from scenario {other.offset} do not follow scenario "
                             f"{self.offset + len(self.ids) - 1} of {self.family}[{self.severity}]")
        self.ids += other.ids
        self.scenario_validation += other.scenario_validation
        self.total_returns += other.total_returns
        self.volatilities += other.volatilities
        self.max_drawdowns += other.max_drawdowns
        self.regime_labels |= other.regime_labels
        self.tail_total += other.tail_total
        self.tail_beyond += other.tail_beyond
        self.tail_sample += other.tail_sample
        self.correlation_rows += other.correlation_rows

    def correlation_sample(self) -> np.ndarray | None:
        """Daily simple returns pooled over scenarios and days, for the family's correlation figures.

        Returns
        -------
        ndarray of shape (n_rows, n_symbols), float32, or None
            The stride sample of scenario-days (at most about :data:`MAX_CORRELATION_ROWS` rows), or None
            when no rows were gathered.
        """
        rows = [r for r in self.correlation_rows if len(r)]
        return np.concatenate(rows) if rows else None


def stats_of(ss: ScenarioSet) -> SetStats:
    """The streamed statistics of a materialised set (the same figures a streamed build computes).

    Parameters
    ----------
    ss : ScenarioSet
        The set; each scenario's ``validation`` is filled.

    Returns
    -------
    SetStats
        Its statistics, with the set's ``metadata`` and ``skipped`` (no correlation sample).
    """
    st = SetStats(ss.family, ss.severity)
    for s in ss.scenarios:
        st.add(s)
    st.metadata, st.skipped = ss.metadata, ss.skipped
    return st


def consume(stream: ScenarioStream, on_chunk: Callable[[list[Scenario]], None] | None = None) -> SetStats:
    """Run a family's stream: check every scenario, hand each chunk to ``on_chunk`` (e.g. a slice writer),
    then complete the set metadata (``stream.finish``) and run the set checks (``SetStats.validation``).
    Only one chunk of paths is alive at a time unless ``on_chunk`` keeps them.

    Parameters
    ----------
    stream : ScenarioStream
        A family's stream at one severity.
    on_chunk : callable ``(list of Scenario) -> None``, optional
        Called with each chunk after its scenarios are checked.

    Returns
    -------
    SetStats
        The completed statistics (:func:`finish_set`).
    """
    st = SetStats(stream.family, stream.severity, stream.correlation_paths)
    for chunk in stream.chunks:
        for s in chunk:
            st.add(s)
        if on_chunk is not None:
            on_chunk(chunk)
    return finish_set(stream, st)


def finish_set(stream: ScenarioStream, st: SetStats) -> SetStats:
    """Complete the statistics of every scenario of ``stream`` (however they were gathered): the set metadata
    (``stream.finish``), what was skipped, and the set checks.

    Parameters
    ----------
    stream : ScenarioStream
        The stream the statistics come from (its ``metadata``, ``finish`` and ``skipped``).
    st : SetStats
        The statistics of all its scenarios.

    Returns
    -------
    SetStats
        ``st``, with ``metadata``, ``skipped`` and ``validation`` filled.
    """
    st.metadata = {**stream.metadata, **(stream.finish(st) if stream.finish else {})}
    st.skipped = list(stream.skipped)
    st.validation = set_validation(st)
    return st


def collect(stream: ScenarioStream) -> ScenarioSet:
    """A stream materialised as a validated :class:`ScenarioSet` (every path in memory: for tests and small
    sets; builds write streams slice by slice instead).

    Parameters
    ----------
    stream : ScenarioStream
        A family's stream at one severity.

    Returns
    -------
    ScenarioSet
        Every scenario, with the set's metadata, skipped list and validation.
    """
    scenarios: list[Scenario] = []
    st = consume(stream, scenarios.extend)
    return ScenarioSet(stream.family, stream.severity, scenarios, stream.data_version, stream.config_hash,
                       skipped=st.skipped, metadata=st.metadata, validation=st.validation)


# --- set-level checks -----------------------------------------------------------------------------

def _aggregate(name: str) -> Callable[[SetStats], dict]:
    def check(st: SetStats) -> dict:
        results = [v[name] for v in st.scenario_validation]
        failing = [i for i, r in zip(st.ids, results) if not r["passed"]]
        values = [r["value"] for r in results if r["value"] is not None]
        worst = (min(values) if name in ("coverage", "positive_prices", "non_negative_volume") else max(values)) if values else None
        threshold = results[0]["threshold"] if results else None
        detail = f"{len(failing)} of {len(results)} scenario(s) fail" + (f": {', '.join(failing[:5])}" if failing else "")
        return result(not failing, worst if worst is not None else float("nan"), threshold, False, detail)

    return check


def non_empty(ss: SetStats) -> dict:
    """The family produced at least one scenario (blocking; passes for a family disabled in the config).

    Parameters
    ----------
    ss : SetStats
        The set's streamed statistics.

    Returns
    -------
    dict
        A check result (:func:`result`).
    """
    if ss.metadata.get("disabled"):
        return result(True, 0, ">= 1", True, "family disabled in the config")
    detail = f"{len(ss)} scenario(s)"
    if not len(ss) and ss.skipped:
        detail += "; all skipped: " + "; ".join(f"{s['name']}: {s['reason']}" for s in ss.skipped[:3])
    return result(len(ss) > 0, len(ss), ">= 1", True, detail)


def events_accounted(ss: SetStats) -> dict:
    """Every reference event (historical events, stress tests) is either replayed or reported as skipped with its reason.

    Passes when generated + skipped equals ``metadata["events_in_catalog"]`` and at least one was generated
    (or the family is disabled).

    Parameters
    ----------
    ss : SetStats
        The set's streamed statistics.

    Returns
    -------
    dict
        A check result (:func:`result`).
    """
    total = ss.metadata.get("events_in_catalog", 0)
    generated, skipped = len(ss), len(ss.skipped)
    detail = f"{generated} {'replayed' if ss.family == 'historical' else 'generated'}, {skipped} skipped of {total}"
    if ss.skipped:
        detail += ": " + "; ".join(f"{s['name']} ({s['reason']})" for s in ss.skipped)
    ok = generated + skipped == total and (generated > 0 or bool(ss.metadata.get("disabled")))
    return result(ok, skipped, "all accounted", False, detail)


# --- statistical validity -------------------------------------------------------------------------

def statistical_validity(ss: SetStats) -> dict:
    """Share of returns beyond 3 sigma against the expected share (see the module docstring).

    The acceptance band is [expected / TAIL_TOLERANCE - 3 se, expected x TAIL_TOLERANCE + 3 se], se the
    binomial standard error sqrt(expected (1 - expected) / n). Fails when fewer than 100 returns could be
    standardised.

    Parameters
    ----------
    ss : SetStats
        The set's streamed statistics.

    Returns
    -------
    dict
        A check result (:func:`result`).

    References
    ----------
    .. [1] Student (1908). The probable error of a mean. Biometrika 6(1):1-25 (the t distribution, fitted
       by maximum likelihood with ``scipy.stats.t.fit``).
    """
    if ss.metadata.get("disabled"):
        return result(True, 0, "within tolerance", False, "family disabled in the config")
    # Exceedances were counted scenario by scenario (SetStats.add); the Student-t fallback fits a bounded
    # stride sample of the pooled z-scores.
    total, beyond = ss.tail_total, ss.tail_beyond
    if total < 100:
        return result(False, float("nan"), "within tolerance", False, f"only {total} standardisable returns (need 100)")
    observed = beyond / total
    reference = ss.metadata.get("tail_reference")
    if isinstance(reference, dict) and reference.get("exceedance_rate") is not None:
        expected = float(reference["exceedance_rate"])
        basis = f"calibration history ({reference.get('source', 'tail_reference')})"
    else:
        df, expected = student_t_rate(np.concatenate(ss.tail_sample))
        basis = f"Student-t fitted to the set's standardised returns (df {df:.1f}); no tail_reference in the set's metadata"
    se = 3.0 * np.sqrt(max(expected * (1 - expected), 1e-12) / total)
    low, high = expected / TAIL_TOLERANCE - se, expected * TAIL_TOLERANCE + se
    passed = low <= observed <= high
    detail = (
        f"{observed:.3%} of {total} standardised returns beyond {TAIL_SIGMA:g} sigma; expected {expected:.3%} "
        f"from the {basis}; accepted {max(low, 0):.3%}..{high:.3%}"
    )
    return result(passed, observed, f"{max(low, 0):.5f}..{high:.5f}", False, detail)


def correlation_stability(ss: SetStats) -> dict:
    """The family's own measure of how well the historical correlation structure is kept.

    Reads ``metadata["correlation_stability"]`` (a number, or a dict with ``value`` or ``min``); the bar is
    :data:`MIN_CORRELATION_STABILITY` at moderate, :data:`MIN_STRESSED_CORRELATION_STABILITY` otherwise.

    Parameters
    ----------
    ss : SetStats
        The set's streamed statistics.

    Returns
    -------
    dict
        A check result (:func:`result`).
    """
    if ss.metadata.get("disabled"):
        return result(True, 1.0, f">= {MIN_CORRELATION_STABILITY}", False, "family disabled in the config")
    bar = MIN_CORRELATION_STABILITY if ss.severity == "moderate" else MIN_STRESSED_CORRELATION_STABILITY
    value = ss.metadata.get("correlation_stability")
    if isinstance(value, dict):
        value = value.get("value", value.get("min"))
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        return result(
            False, float("nan"), f">= {bar}", False,
            "the set's metadata has no numeric 'correlation_stability' (the family must compute it)",
        )
    detail = f"correlation stability {value:.3f} at {ss.severity}"
    if ss.severity != "moderate":
        detail += f" (correlations are stressed on purpose here; the {MIN_CORRELATION_STABILITY} bar applies to moderate)"
    if "correlation_stability_measure" in ss.metadata:
        detail += f"; measure: {ss.metadata['correlation_stability_measure']}"
    return result(value >= bar, value, f">= {bar}", False, detail)


def regime_types_found(ss: SetStats) -> dict:
    """Every regime type has at least one segment; otherwise say which and why.

    Reads ``metadata["regimes"]`` (regime -> ``segments``, ``total_days``, ``reason``).

    Parameters
    ----------
    ss : SetStats
        The set's streamed statistics.

    Returns
    -------
    dict
        A check result (:func:`result`).
    """
    if ss.metadata.get("disabled"):
        return result(True, 0, "every type", False, "family disabled in the config")
    summary = ss.metadata.get("regimes") or {}
    missing = {r: c.get("reason", "no segment") for r, c in summary.items() if not c.get("segments")}
    counts = ", ".join(f"{r}: {c.get('segments', 0)} ({c.get('total_days', 0)} days)" for r, c in summary.items())
    detail = counts + ("; missing: " + "; ".join(f"{r}: {why}" for r, why in missing.items()) if missing else "")
    if not summary:
        detail = "the set's metadata has no 'regimes' summary"
    return result(bool(summary) and not missing, len(summary) - len(missing), "every type", False, detail)


# --- catalog-level checks -------------------------------------------------------------------------

def _definition_key(scenario_id: str, severity: str) -> str:
    """The scenario's id without its severity: one definition across the three severities."""
    suffix = f".{severity}"
    return scenario_id[: -len(suffix)] if scenario_id.endswith(suffix) else scenario_id


# The catalog-level checks of `catalog_checks`: (name, blocking, description), for the Dagster check specs.
CATALOG_CHECKS: tuple[tuple[str, bool, str], ...] = (
    ("unique_ids", True, "no two scenarios share an id"),
    ("unique_scenarios", False, "at least 50 distinct scenario definitions"),
    ("regime_coverage", False, "the regime family contributes bull, bear and neutral/ranging regimes"),
)


def catalog_checks(sets) -> dict[str, dict]:
    """Diversity of a whole catalog build (every family and severity in it).

    ``sets`` are the build's slices: anything with ``family``, ``scenario_ids`` (list of str) and
    ``regime_labels`` (set of str), i.e. a :class:`~scenarios_assets.core.models.scenario.ScenarioSet` or a
    slice manifest.

    * ``unique_ids`` (blocking): no two scenarios share an id.
    * ``unique_scenarios`` (warning): at least MIN_UNIQUE_SCENARIOS distinct scenario definitions (ids
      without their severity, so one event at three severities counts once).
    * ``regime_coverage`` (warning): the regime family contributes a bull, a bear and a neutral
      (ranging) regime.

    Parameters
    ----------
    sets : iterable
        The build's slices (see above); iterated more than once.

    Returns
    -------
    dict of str to dict
        Check name -> result (:func:`result`), the names of :data:`CATALOG_CHECKS`.
    """
    pairs = [(i, ss.severity) for ss in sets for i in ss.scenario_ids]
    ids = [i for i, _ in pairs]
    counts = Counter(ids)
    duplicates = sorted(i for i, n in counts.items() if n > 1)
    definitions = {_definition_key(i, sev) for i, sev in pairs}
    by_family = Counter(key.split(".", 1)[0] for key in definitions)
    labels = set().union(*(ss.regime_labels for ss in sets if ss.family == "regime"))
    covered = {need: any(label in labels for label in accepted) for need, accepted in REQUIRED_REGIMES.items()}
    missing = [need for need, ok in covered.items() if not ok]
    return {
        "unique_ids": result(
            not duplicates, len(duplicates), 0, True,
            f"{len(ids)} scenario(s), {len(duplicates)} duplicated id(s)" + (f": {', '.join(duplicates[:5])}" if duplicates else ""),
        ),
        "unique_scenarios": result(
            len(definitions) >= MIN_UNIQUE_SCENARIOS, len(definitions), f">= {MIN_UNIQUE_SCENARIOS}", False,
            f"{len(definitions)} distinct scenario definition(s) in {len(ids)} scenario(s); by family: "
            + ", ".join(f"{f} {n}" for f, n in sorted(by_family.items())),
        ),
        "regime_coverage": result(
            not missing, len(covered) - len(missing), "bull, bear, neutral/ranging", False,
            "regimes present: " + (", ".join(sorted(str(x) for x in labels if x)) or "none")
            + (f"; missing: {', '.join(missing)}" if missing else ""),
        ),
    }


@dataclass(frozen=True)
class SetCheck:
    """A set-level check and the families it applies to.

    Parameters
    ----------
    name : str
        The check's name (the key of its result).
    fn : callable ``(SetStats) -> dict``
        Computes the result (:func:`result`).
    blocking : bool
        A failure makes the output unusable: downstream assets do not run.
    description : str
        One line, for the Dagster check specs.
    per_family : bool, default False
        Only for the families whose ``FamilySpec.set_checks`` name it; otherwise every family gets it.
    """

    name: str
    fn: Callable[[SetStats], dict]
    blocking: bool  # a failure makes the output unusable: downstream assets do not run
    description: str
    per_family: bool = False


SET_CHECKS: list[SetCheck] = [
    SetCheck("non_empty", non_empty, True, "the family produced at least one scenario"),
    SetCheck("finite_values", _aggregate("finite_values"), True, "no NaN/inf where a symbol has data"),
    SetCheck("positive_prices", _aggregate("positive_prices"), True, "every price is > 0"),
    SetCheck("trading_calendar", _aggregate("trading_calendar"), True, "dates increase and fall on weekdays (each symbol on its calendar's sessions where calendars differ)"),
    SetCheck("non_negative_volume", _aggregate("non_negative_volume"), True, "volumes and their multipliers are >= 0"),
    SetCheck("coverage", _aggregate("coverage"), False, f"each symbol has data on >= {MIN_COVERAGE:.0%} of days"),
    SetCheck("events_accounted", events_accounted, False, "every reference event is generated or reported skipped", True),
    SetCheck(
        "statistical_validity", statistical_validity, False,
        f"share of returns beyond {TAIL_SIGMA:g} sigma within x{TAIL_TOLERANCE:g} of the expected share", True,
    ),
    SetCheck(
        "correlation_stability", correlation_stability, False,
        f"the historical correlation structure is kept (stability >= {MIN_CORRELATION_STABILITY})", True,
    ),
    SetCheck("regime_types_found", regime_types_found, False, "bull, bear, high-volatility and ranging segments were found", True),
]


def checks_for(family: str) -> list[SetCheck]:
    """The set checks of a family, in :data:`SET_CHECKS` order.

    Parameters
    ----------
    family : str
        The family's name.

    Returns
    -------
    list of SetCheck
        The common checks and the per-family ones its ``FamilySpec.set_checks`` names (an unregistered
        family: the common ones).
    """
    spec = FAMILY_SPECS.get(family)
    named = spec.set_checks if spec is not None else ()
    return [c for c in SET_CHECKS if not c.per_family or c.name in named]


def set_validation(st: SetStats) -> dict[str, dict]:
    """The set checks of ``st.family`` on streamed statistics.

    Parameters
    ----------
    st : SetStats
        The set's completed statistics.

    Returns
    -------
    dict of str to dict
        Check name -> result (:func:`result`), ``blocking`` as the check declares it.
    """
    return {c.name: {**c.fn(st), "blocking": c.blocking} for c in checks_for(st.family)}


def validate_set(ss: ScenarioSet) -> ScenarioSet:
    """Fill ``validation`` of every scenario and of the set (materialised form).

    Parameters
    ----------
    ss : ScenarioSet
        The set, changed in place.

    Returns
    -------
    ScenarioSet
        The same set.
    """
    ss.validation = set_validation(stats_of(ss))
    return ss


def generate_family(family: str, ctx: GenerationContext) -> ScenarioSet:
    """Generate and validate one family at one severity, every path in memory (tests, small sets; builds
    stream ``registry.family_stream`` into ``slices.write_slice``).

    Parameters
    ----------
    family : str
        A family of the registry.
    ctx : GenerationContext
        The market data, config and severity to generate with.

    Returns
    -------
    ScenarioSet
        The validated set, with ``generation_seconds`` (wall time, seconds).
    """
    started = time.perf_counter()
    scenario_set = collect(family_stream(family, ctx))
    scenario_set.generation_seconds = time.perf_counter() - started
    return scenario_set
