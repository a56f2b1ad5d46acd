"""Validation checks of scenario sets: results, never exceptions, so every failure is reported.

Each check returns ``{"passed": bool, "value": float, "threshold": ..., "blocking": bool, "detail": str}``.
Blocking checks guard unusable output (non-finite values, non-positive prices, a broken calendar);
the others are warnings. Families add checks by registering them in ``SET_CHECKS`` with the families
they apply to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from scenarios_assets.core.scenario import Scenario, ScenarioSet

MIN_COVERAGE = 0.95


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
    detail = f"{generated} replayed, {skipped} skipped of {total}"
    if ss.skipped:
        detail += ": " + "; ".join(f"{s['name']} ({s['reason']})" for s in ss.skipped)
    ok = generated + skipped == total and (generated > 0 or bool(ss.metadata.get("disabled")))
    return result(ok, skipped, "all accounted", False, detail)


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
    SetCheck("events_accounted", events_accounted, False, "every catalog event is replayed or reported skipped", ("historical",)),
]


def checks_for(family: str) -> list[SetCheck]:
    return [c for c in SET_CHECKS if c.families is None or family in c.families]


def validate_set(ss: ScenarioSet) -> ScenarioSet:
    """Fill ``validation`` of every scenario and of the set; return the same set."""
    for s in ss.scenarios:
        s.validation = scenario_checks(s)
    ss.validation = {c.name: {**c.fn(ss), "blocking": c.blocking} for c in checks_for(ss.family)}
    return ss
