"""Validation checks of scenario sets: results, never exceptions, so every failure is reported.

Each check returns ``{"passed": bool, "value": float, "threshold": ..., "blocking": bool, "detail": str}``.
Blocking checks guard unusable output (non-finite values, non-positive prices, a broken calendar);
the others are warnings. Families add checks by registering them in ``SET_CHECKS`` with the families
they apply to.

Which family gets which check (see ``SET_CHECKS``):

* market constraints (finite values, positive prices, trading calendar, non-negative volume; blocking)
  and coverage (each symbol on >= 95 % of a scenario's days; warning): every family.
* ``statistical_validity`` (warning): monte_carlo and bootstrap, the families that *generate* returns.
  The share of daily returns beyond 3 sigma (each scenario x symbol column standardised by its own mean
  and standard deviation, pooled over the set) is compared with the expected share: the calibration
  history's rate when the family records ``metadata["tail_reference"]`` (see :func:`tail_reference`),
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

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

from scenarios_assets.core.scenario import Scenario, ScenarioSet

MIN_COVERAGE = 0.95
TAIL_SIGMA = 3.0
TAIL_TOLERANCE = 2.0  # observed/expected exceedance ratio accepted either way
MIN_TAIL_COLUMN = 20  # a scenario x symbol column needs this many returns to be standardised
MAX_TAIL_SAMPLE = 20_000  # standardised returns used for the Student-t fit (deterministic stride)
MIN_CORRELATION_STABILITY = 0.8  # where the family claims to keep the historical structure (moderate)
MIN_STRESSED_CORRELATION_STABILITY = 0.5  # severe/extreme move correlations on purpose; below this the structure is lost
MIN_UNIQUE_SCENARIOS = 50
REQUIRED_REGIMES = {"bull": ("bull",), "bear": ("bear",), "neutral": ("ranging", "neutral")}


def result(passed: bool, value: float, threshold, blocking: bool, detail: str = "") -> dict:
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
    present = _present(s)
    bad = np.isinf(s.prices) | (present & ~np.isfinite(s.returns)) | (~present & np.isfinite(s.returns))
    for series in s.extra.values():
        bad |= present & ~np.isfinite(series)
    return int(bad.sum())


def min_price(s: Scenario) -> float:
    prices = s.prices[_present(s)]
    return float(prices.min()) if prices.size else float("nan")


def min_coverage(s: Scenario) -> float:
    if s.prices.size == 0:
        return 0.0
    return float(_present(s).mean(axis=0).min())


def calendar_ok(s: Scenario) -> bool:
    days = s.dates
    if len(days) == 0:
        return False
    increasing = bool(np.all(np.diff(days.astype(np.int64)) > 0))
    weekday = (days.astype("datetime64[D]").view("int64") - 4) % 7  # 1970-01-01 was a Thursday
    return increasing and bool(np.all(weekday < 5))


def min_volume(s: Scenario) -> float:
    vols = [v[_present(s)] for k, v in s.extra.items() if k.startswith("volume")]
    values = np.concatenate(vols) if vols else np.array([])
    return float(values.min()) if values.size else 0.0


def scenario_checks(s: Scenario) -> dict:
    """Market constraints of one scenario."""
    bad = non_finite_cells(s)
    lowest = min_price(s)
    cover = min_coverage(s)
    return {
        "finite_values": result(bad == 0, bad, 0, True, f"{bad} non-finite cell(s)"),
        "positive_prices": result(np.isfinite(lowest) and lowest > 0, lowest, "> 0", True),
        "coverage": result(cover >= MIN_COVERAGE, cover, MIN_COVERAGE, False),
        "trading_calendar": result(calendar_ok(s), float(calendar_ok(s)), "increasing weekdays", True),
        "non_negative_volume": result(min_volume(s) >= 0, min_volume(s), ">= 0", True),
    }


# --- set-level checks -----------------------------------------------------------------------------

def _aggregate(name: str) -> Callable[[ScenarioSet], dict]:
    def check(ss: ScenarioSet) -> dict:
        failing = [s.id for s in ss.scenarios if not s.validation[name]["passed"]]
        values = [s.validation[name]["value"] for s in ss.scenarios if s.validation[name]["value"] is not None]
        worst = (min(values) if name in ("coverage", "positive_prices", "non_negative_volume") else max(values)) if values else None
        threshold = ss.scenarios[0].validation[name]["threshold"] if ss.scenarios else None
        detail = f"{len(failing)} of {len(ss.scenarios)} scenario(s) fail" + (f": {', '.join(failing[:5])}" if failing else "")
        return result(not failing, worst if worst is not None else float("nan"), threshold, False, detail)

    return check


def non_empty(ss: ScenarioSet) -> dict:
    if ss.metadata.get("disabled"):
        return result(True, 0, ">= 1", True, "family disabled in the config")
    detail = f"{len(ss)} scenario(s)"
    if not ss.scenarios and ss.skipped:
        detail += "; all skipped: " + "; ".join(f"{s['name']}: {s['reason']}" for s in ss.skipped[:3])
    return result(len(ss) > 0, len(ss), ">= 1", True, detail)


def events_accounted(ss: ScenarioSet) -> dict:
    """Every catalog event is either replayed or reported as skipped with its reason."""
    total = ss.metadata.get("events_in_catalog", 0)
    generated, skipped = len(ss.scenarios), len(ss.skipped)
    detail = f"{generated} {'replayed' if ss.family == 'historical' else 'generated'}, {skipped} skipped of {total}"
    if ss.skipped:
        detail += ": " + "; ".join(f"{s['name']} ({s['reason']})" for s in ss.skipped)
    ok = generated + skipped == total and (generated > 0 or bool(ss.metadata.get("disabled")))
    return result(ok, skipped, "all accounted", False, detail)


# --- statistical validity -------------------------------------------------------------------------

def standardised_columns(returns: np.ndarray, min_length: int = MIN_TAIL_COLUMN) -> np.ndarray:
    """Pooled z-scores of the columns of a (T, N) return block, each column by its own mean and std."""
    block = np.asarray(returns, dtype=np.float64)
    if block.ndim == 1:
        block = block[:, None]
    finite = np.isfinite(block)
    counts = finite.sum(axis=0)
    keep = counts >= min_length
    if not keep.any():
        return np.array([])
    block, finite, counts = block[:, keep], finite[:, keep], counts[keep]
    values = np.where(finite, block, 0.0)
    mean = values.sum(axis=0) / counts
    var = (np.where(finite, block - mean, 0.0) ** 2).sum(axis=0) / np.maximum(counts - 1, 1)
    std = np.sqrt(var)
    ok = std > 0
    z = (block[:, ok] - mean[ok]) / std[ok]
    return z[finite[:, ok]]


def exceedance_rate(z: np.ndarray, sigma: float = TAIL_SIGMA) -> float:
    return float(np.mean(np.abs(z) > sigma)) if z.size else float("nan")


def student_t_rate(z: np.ndarray, sigma: float = TAIL_SIGMA) -> tuple[float, float]:
    """(degrees of freedom, share beyond ``sigma`` sample standard deviations from the sample mean) that a
    Student-t fitted by maximum likelihood to ``z`` predicts (fit on a deterministic stride subsample of at
    most MAX_TAIL_SAMPLE values)."""
    sample = z[:: max(1, z.size // MAX_TAIL_SAMPLE)]
    df, loc, scale = stats.t.fit(sample)
    centre, cut = float(np.mean(sample)), sigma * float(np.std(sample, ddof=1))
    rate = stats.t.sf(centre + cut, df, loc, scale) + stats.t.cdf(centre - cut, df, loc, scale)
    return float(min(df, 1e6)), float(rate)


def tail_reference(history_returns, window: int | None = None, sigma: float = TAIL_SIGMA, source: str = "") -> dict:
    """The calibration history's tail figures, for ``ScenarioSet.metadata["tail_reference"]``.

    ``history_returns`` is a (T, N) array or DataFrame of daily simple returns. With ``window`` (the
    scenarios' path length) the history is cut into consecutive windows of that length per symbol and
    standardised within each, as :func:`statistical_validity` standardises each scenario column.
    """
    block = np.asarray(history_returns, dtype=np.float64)
    if block.ndim == 1:
        block = block[:, None]
    if window and window < block.shape[0]:
        usable = (block.shape[0] // window) * window
        block = block[-usable:].reshape(usable // window, window, -1).transpose(1, 0, 2).reshape(window, -1)
    z = standardised_columns(block, min_length=min(MIN_TAIL_COLUMN, block.shape[0]))
    df, t_rate = student_t_rate(z, sigma) if z.size >= 100 else (float("nan"), float("nan"))
    return {
        "exceedance_rate": exceedance_rate(z, sigma),
        "sigma": sigma,
        "window": window,
        "observations": int(z.size),
        "student_t_df": df,
        "student_t_rate": t_rate,
        "source": source or "daily simple returns of the calibration history",
    }


def statistical_validity(ss: ScenarioSet) -> dict:
    """Share of returns beyond 3 sigma against the expected share (see the module docstring)."""
    if ss.metadata.get("disabled"):
        return result(True, 0, "within tolerance", False, "family disabled in the config")
    # Exceedances are counted scenario by scenario (memory stays at one scenario's block, whatever the set's
    # size); the Student-t fallback fits a bounded stride sample of the pooled z-scores.
    total, beyond, sample = 0, 0, []
    per_scenario = max(1, MAX_TAIL_SAMPLE // max(len(ss.scenarios), 1))
    for s in ss.scenarios:
        z = standardised_columns(s.returns)
        total += z.size
        beyond += int(np.count_nonzero(np.abs(z) > TAIL_SIGMA))
        sample.append(z[:: max(1, z.size // per_scenario)])
    if total < 100:
        return result(False, float("nan"), "within tolerance", False, f"only {total} standardisable returns (need 100)")
    observed = beyond / total
    reference = ss.metadata.get("tail_reference")
    if isinstance(reference, dict) and reference.get("exceedance_rate") is not None:
        expected = float(reference["exceedance_rate"])
        basis = f"calibration history ({reference.get('source', 'tail_reference')})"
    else:
        df, expected = student_t_rate(np.concatenate(sample))
        basis = f"Student-t fitted to the set's standardised returns (df {df:.1f}); no tail_reference in the set's metadata"
    se = 3.0 * np.sqrt(max(expected * (1 - expected), 1e-12) / total)
    low, high = expected / TAIL_TOLERANCE - se, expected * TAIL_TOLERANCE + se
    passed = low <= observed <= high
    detail = (
        f"{observed:.3%} of {total} standardised returns beyond {TAIL_SIGMA:g} sigma; expected {expected:.3%} "
        f"from the {basis}; accepted {max(low, 0):.3%}..{high:.3%}"
    )
    return result(passed, observed, f"{max(low, 0):.5f}..{high:.5f}", False, detail)


def correlation_stability(ss: ScenarioSet) -> dict:
    """The family's own measure of how well the historical correlation structure is kept."""
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


def regime_types_found(ss: ScenarioSet) -> dict:
    """Every regime type has at least one segment; otherwise say which and why."""
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

def _definition_key(s: Scenario) -> str:
    """The scenario's id without its severity: one definition across the three severities."""
    suffix = f".{s.severity}"
    return s.id[: -len(suffix)] if s.id.endswith(suffix) else s.id


# The catalog-level checks of `catalog_checks`: (name, blocking, description), for the Dagster check specs.
CATALOG_CHECKS: tuple[tuple[str, bool, str], ...] = (
    ("unique_ids", True, "no two scenarios share an id"),
    ("unique_scenarios", False, "at least 50 distinct scenario definitions"),
    ("regime_coverage", False, "the regime family contributes bull, bear and neutral/ranging regimes"),
)


def catalog_checks(sets: list[ScenarioSet]) -> dict[str, dict]:
    """Diversity of a whole catalog build (every family and severity in it).

    * ``unique_ids`` (blocking): no two scenarios share an id.
    * ``unique_scenarios`` (warning): at least MIN_UNIQUE_SCENARIOS distinct scenario definitions (ids
      without their severity, so one event at three severities counts once).
    * ``regime_coverage`` (warning): the regime family contributes a bull, a bear and a neutral
      (ranging) regime.
    """
    scenarios = [s for ss in sets for s in ss.scenarios]
    ids = [s.id for s in scenarios]
    duplicates = sorted({i for i in ids if ids.count(i) > 1}) if len(set(ids)) != len(ids) else []
    definitions = {_definition_key(s) for s in scenarios}
    by_family: dict[str, int] = {}
    for key in definitions:
        family = key.split(".", 1)[0]
        by_family[family] = by_family.get(family, 0) + 1
    labels = {s.metadata.get("regime") for s in scenarios if s.family == "regime"}
    covered = {need: any(label in labels for label in accepted) for need, accepted in REQUIRED_REGIMES.items()}
    missing = [need for need, ok in covered.items() if not ok]
    return {
        "unique_ids": result(
            not duplicates, len(duplicates), 0, True,
            f"{len(ids)} scenario(s), {len(duplicates)} duplicated id(s)" + (f": {', '.join(duplicates[:5])}" if duplicates else ""),
        ),
        "unique_scenarios": result(
            len(definitions) >= MIN_UNIQUE_SCENARIOS, len(definitions), f">= {MIN_UNIQUE_SCENARIOS}", False,
            f"{len(definitions)} distinct scenario definition(s) in {len(scenarios)} scenario(s); by family: "
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
    name: str
    fn: Callable[[ScenarioSet], dict]
    blocking: bool  # a failure makes the output unusable: downstream assets do not run
    description: str
    families: tuple[str, ...] | None = None  # None: every family


SET_CHECKS: list[SetCheck] = [
    SetCheck("non_empty", non_empty, True, "the family produced at least one scenario"),
    SetCheck("finite_values", _aggregate("finite_values"), True, "no NaN/inf where a symbol has data"),
    SetCheck("positive_prices", _aggregate("positive_prices"), True, "every price is > 0"),
    SetCheck("trading_calendar", _aggregate("trading_calendar"), True, "dates increase and fall on weekdays"),
    SetCheck("non_negative_volume", _aggregate("non_negative_volume"), True, "volumes and their multipliers are >= 0"),
    SetCheck("coverage", _aggregate("coverage"), False, f"each symbol has data on >= {MIN_COVERAGE:.0%} of days"),
    SetCheck("events_accounted", events_accounted, False, "every catalog event is generated or reported skipped", ("historical", "stress")),
    SetCheck(
        "statistical_validity", statistical_validity, False,
        f"share of returns beyond {TAIL_SIGMA:g} sigma within x{TAIL_TOLERANCE:g} of the expected share", ("monte_carlo", "bootstrap"),
    ),
    SetCheck(
        "correlation_stability", correlation_stability, False,
        f"the historical correlation structure is kept (stability >= {MIN_CORRELATION_STABILITY})", ("monte_carlo", "bootstrap"),
    ),
    SetCheck("regime_types_found", regime_types_found, False, "bull, bear, high-volatility and ranging segments were found", ("regime",)),
]


def checks_for(family: str) -> list[SetCheck]:
    return [c for c in SET_CHECKS if c.families is None or family in c.families]


def validate_set(ss: ScenarioSet) -> ScenarioSet:
    """Fill ``validation`` of every scenario and of the set; return the same set."""
    for s in ss.scenarios:
        s.validation = scenario_checks(s)
    ss.validation = {c.name: {**c.fn(ss), "blocking": c.blocking} for c in checks_for(ss.family)}
    return ss
