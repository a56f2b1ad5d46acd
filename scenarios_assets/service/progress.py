"""What a plan's run shows while its Dagster runs execute (the command line's terminal, the API worker's
log), and where the wall time went.

Each run's events reach the Dagster instance's event log whatever executes the steps (this process, step
subprocesses with ``--parallel``, Dask workers): the UI reads the same log. A :class:`RunWatcher` thread
reads it while ``execute_job`` runs and tells a display each step's start, progress (the
``SliceProgress`` lines a family step logs per chunk of scenarios) and end. On a terminal the display
draws a tqdm bar per running step; elsewhere (CI, cron, a pipe) it prints plain lines, a progress line at
most every PLAIN_PROGRESS_SECONDS.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, TextIO

from scenarios_assets.core.families.registry import FAMILY_SPECS
from scenarios_assets.core.library.slices import SliceProgress

WATCH_TAG = "scenarios/cli_watch"  # a unique value per CLI run: how the watcher finds the run it shows
POLL_SECONDS = 0.2
PLAIN_PROGRESS_SECONDS = 10.0
FAMILY_ASSETS = {spec.asset_name for spec in FAMILY_SPECS.values()}


@dataclass
class StepState:
    """One step of a run as the watcher has seen it so far."""

    key: str
    name: str  # the asset's last key part: ohlcv, historical, ..., catalog
    severity: str  # the run's partition, or "" for unpartitioned runs
    started: float  # event timestamp (s since the epoch)
    seconds: float | None = None  # the step's wall time, once it ended
    count: int | None = None
    skipped: int = 0
    checks: list[tuple[str, bool]] = field(default_factory=list)
    progress: SliceProgress | None = None
    phase: str = ""
    catalog_seconds: dict = field(default_factory=dict)
    failure: str | None = None
    blocking_failures: list[str] = field(default_factory=list)  # "check: reason" of failed ERROR-severity checks

    @property
    def is_family(self) -> bool:
        return self.name in FAMILY_ASSETS

    def line(self) -> str:
        """The step's one-line result (a family: scenarios, skips, checks, wall time of the step)."""
        label = f"  {self.severity:<9}{self.name:<13}" if self.severity else f"  {self.name:<22}"
        if self.failure is not None:
            return f"{label}failed after {self.seconds or 0:.2f} s: {self.failure}"
        if not self.is_family:
            return f"{label}done in {self.seconds or 0:.2f} s"
        failed = [name for name, passed in self.checks if not passed]
        status = f"checks {len(self.checks) - len(failed)}/{len(self.checks)} passed" + (
            f" (failed: {', '.join(failed)})" if failed else "")
        count = "?" if self.count is None else self.count
        return f"{label}{count:>5} scenarios, {self.skipped} skipped, {status}, {self.seconds or 0:.2f} s"


class PlainDisplay:
    """Plain lines (no cursor movement): a step's start, a progress line at most every PLAIN_PROGRESS_SECONDS,
    its result."""

    def __init__(self, out: TextIO):
        self.out = out
        self._last: dict[str, float] = {}

    def _print(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def start(self, step: StepState) -> None:
        if step.is_family or step.name == "catalog":
            label = f"  {step.severity:<9}{step.name:<13}" if step.severity else f"  {step.name:<22}"
            self._print(f"{label}started")
        self._last[step.key] = time.monotonic()

    def progress(self, step: StepState) -> None:
        now = time.monotonic()
        if now - self._last.get(step.key, 0.0) >= PLAIN_PROGRESS_SECONDS and step.progress is not None:
            self._last[step.key] = now
            p = step.progress
            of = f" of {p.total}" if p.total is not None else ""
            self._print(f"  {step.severity:<9}{step.name:<13}{p.done}{of} scenarios after {p.seconds:.0f} s")

    def phase(self, step: StepState) -> None:
        pass

    def finish(self, step: StepState) -> None:
        if step.is_family or step.failure is not None:
            self._print(step.line())

    def tick(self) -> None:
        pass

    def close(self) -> None:
        pass


class BarDisplay:
    """A tqdm bar per running step on a terminal: scenarios done of the total when the family knows it, else the
    elapsed time; the catalog shows its current part. A finished step's bar gives way to its result line."""

    def __init__(self, out: TextIO):
        from tqdm import tqdm

        self._tqdm = tqdm
        self.out = out
        self.bars: dict[str, Any] = {}  # tqdm bars by step key

    def _desc(self, step: StepState) -> str:
        label = f"  {step.severity:<9}{step.name:<13}" if step.severity else f"  {step.name:<22}"
        return label + (f"{step.phase} " if step.phase else "")

    def start(self, step: StepState) -> None:
        self.bars[step.key] = self._tqdm(
            total=None, desc=self._desc(step), file=self.out, leave=False, dynamic_ncols=True, unit=" scenarios",
            bar_format="{desc}[{elapsed}]", mininterval=0.1,
        )

    def progress(self, step: StepState) -> None:
        bar, p = self.bars.get(step.key), step.progress
        if bar is None or p is None:
            return
        if p.total is not None and bar.total != p.total:
            bar.total = p.total
            bar.bar_format = "{desc}{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt}{unit} [{elapsed}<{remaining}]"
        bar.n = p.done
        bar.refresh()  # drawn now: progress lines arrive at most once a second per step

    def phase(self, step: StepState) -> None:
        bar = self.bars.get(step.key)
        if bar is not None:
            bar.set_description_str(self._desc(step), refresh=True)

    def finish(self, step: StepState) -> None:
        bar = self.bars.pop(step.key, None)
        if bar is not None:
            bar.close()
        if step.is_family or step.failure is not None:
            self._tqdm.write(step.line(), file=self.out)

    def tick(self) -> None:
        for bar in self.bars.values():
            bar.refresh()  # the elapsed time moves on a step that reports nothing for a while

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()


def make_display(out: TextIO, plain: bool = False):
    """Bars on a terminal, plain lines otherwise (or when ``plain``, e.g. with Dagster's own logs on)."""
    isatty = getattr(out, "isatty", None)
    return BarDisplay(out) if not plain and isatty is not None and isatty() else PlainDisplay(out)


class RunWatcher:
    """Reads one run's events from the instance's event log in a thread while the run executes.

    ``tags`` gives the tag to put on the run; :meth:`stop` waits for the last events and ends the thread;
    ``steps`` then holds every step seen, in the order they started."""

    def __init__(self, instance, display, severity: str = ""):
        from dagster import DagsterInstance

        # Its own instance object (own storage connections) for the thread; the run's events are in the
        # shared storage whatever process writes them.
        ref = instance.get_ref() if getattr(instance, "is_persistent", False) else None
        self._owned = ref is not None
        self._instance = DagsterInstance.from_ref(ref) if ref is not None else instance
        self.display = display
        self.severity = severity
        self.token = uuid.uuid4().hex
        self.tags = {WATCH_TAG: self.token}
        self.steps: dict[str, StepState] = {}
        self.run_id: str | None = None
        self._cursor: str | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="scenarios-run-watcher", daemon=True)

    def __enter__(self) -> RunWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()
        self.display.close()
        if self._owned:
            self._instance.dispose()

    def _loop(self) -> None:
        while not self._done.wait(POLL_SECONDS):
            self._poll_safely()
            self.display.tick()
        self._poll_safely()  # the events written after the last poll

    def _poll_safely(self) -> None:
        try:
            self.poll()
        except Exception:  # noqa: BLE001 - showing progress must never break a run; the run's result decides
            pass

    def poll(self) -> None:
        from dagster import RunsFilter

        if self.run_id is None:
            records = self._instance.get_run_records(filters=RunsFilter(tags={WATCH_TAG: self.token}), limit=1)
            if not records:
                return
            self.run_id = records[0].dagster_run.run_id
        while True:
            connection = self._instance.get_records_for_run(self.run_id, cursor=self._cursor, limit=500)
            for record in connection.records:
                self.handle(record.event_log_entry)
            self._cursor = connection.cursor
            if not connection.has_more:
                break

    def handle(self, entry) -> None:
        """One event-log entry: a step started, logged progress or a catalog part, materialised, was checked,
        ended or failed."""
        event, key = entry.dagster_event, entry.step_key
        if event is None:
            step = self.steps.get(key or "")
            if step is None:
                return
            progress = SliceProgress.parse(entry.user_message)
            if progress is not None:
                step.progress = progress
                self.display.progress(step)
            elif entry.user_message.startswith("catalog: "):
                step.phase = entry.user_message.removeprefix("catalog: ")
                self.display.phase(step)
            return
        kind = event.event_type_value
        if kind == "STEP_START":
            step = StepState(key, key.split("__")[-1], self.severity, entry.timestamp)
            self.steps[key] = step
            self.display.start(step)
            return
        step = self.steps.get(key or "")
        if step is None:
            return
        if kind == "ASSET_MATERIALIZATION":
            metadata = event.event_specific_data.materialization.metadata
            if "scenario_count" in metadata:
                step.count = metadata["scenario_count"].value
            if "skipped_count" in metadata:
                step.skipped = metadata["skipped_count"].value
            if "catalog_seconds" in metadata:
                step.catalog_seconds = dict(metadata["catalog_seconds"].value)
        elif kind == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            step.checks.append((evaluation.check_name, bool(evaluation.passed)))
            if not evaluation.passed and getattr(evaluation.severity, "value", evaluation.severity) == "ERROR":
                step.blocking_failures.append(_check_reason(evaluation))
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            step.seconds = max(entry.timestamp - step.started, 0.0)
            if kind == "STEP_FAILURE":
                # Dagster's error for failed blocking checks ends in a colon and names none of them: say which
                step.failure = ("blocking check " + "; ".join(step.blocking_failures) if step.blocking_failures
                                else _innermost(event.event_specific_data.error))
            self.display.finish(step)


# Characters of a failed check's reason in a step's line (the whole text is in the run's metadata).
CHECK_REASON_CHARS = 160


def _check_reason(evaluation) -> str:
    """'check_name: reason' of a failed asset check evaluation, the reason cut to CHECK_REASON_CHARS."""
    md = evaluation.metadata or {}
    detail = " ".join(str(md["detail"].value if "detail" in md else evaluation.description or "failed").split())
    if len(detail) > CHECK_REASON_CHARS:
        detail = detail[: CHECK_REASON_CHARS - 1].rstrip() + "…"
    return f"{evaluation.check_name}: {detail}"


def _innermost(error) -> str:
    while error is not None and error.cause is not None:
        error = error.cause
    message = (error.message.strip() if error is not None else "") or "unknown error"
    return message.splitlines()[0]


# --- where the time went -----------------------------------------------------------------------------------

@dataclass
class RunTiming:
    """One Dagster run of a CLI invocation: its wall time (``execute_job``) and the steps the watcher saw."""

    label: str
    seconds: float
    steps: list[StepState]


CATALOG_PARTS = {"plan": "plan and checks", "link_files": "link files", "report": "report", "metadata": "metadata",
                 "summary": "summary", "publish": "publish", "clean_staging": "clean staging"}


def time_report(wall: float, preflight: float, runs: list[RunTiming], startup: float = 0.0) -> list[str]:
    """Lines accounting for a CLI invocation's ``wall`` seconds: the process start-up (interpreter, imports), the
    preflight load of the market data, each family (summed over severities, per severity beside it), the
    market-data and catalog steps, and the rest: Dagster's run start-up, input loading and event writing between
    steps, plus this process's own work (parsing flags, printing)."""
    rows: list[tuple[str, float, str]] = []
    if startup:
        rows.append(("start-up", startup, "Python and the imports of the command"))
    rows.append(("preflight", preflight, "load and validate the market data once"))
    families: dict[str, list[tuple[str, float]]] = {}
    others: list[tuple[str, float, str]] = []
    in_steps = 0.0
    for run in runs:
        for step in run.steps:
            seconds = step.seconds or 0.0
            in_steps += seconds
            if step.is_family:
                families.setdefault(step.name, []).append((step.severity, seconds))
            elif step.name == "catalog" and step.catalog_seconds:
                order = {name: i for i, name in enumerate(CATALOG_PARTS)}
                timed = sorted(step.catalog_seconds.items(), key=lambda kv: order.get(kv[0], len(order)))
                parts = ", ".join(f"{CATALOG_PARTS.get(k, k)} {v:.1f}" for k, v in timed)
                others.append((step.name, seconds, parts))
            else:
                others.append((step.name, seconds, ""))
    market = [o for o in others if o[0] in ("ohlcv", "economic")]
    rest = [o for o in others if o[0] not in ("ohlcv", "economic")]
    if market:
        rows.append(("market data", sum(o[1] for o in market), ", ".join(f"{o[0]} {o[1]:.1f}" for o in market)))
    for name, by_severity in families.items():
        rows.append((name, sum(s for _, s in by_severity), ", ".join(f"{sev} {sec:.1f}" for sev, sec in by_severity)))
    rows += rest
    overhead = max(wall - startup - preflight - in_steps, 0.0)
    rows.append(("Dagster and CLI", overhead, f"{len(runs)} run(s): start-up, inputs, events; flags, output"))
    lines = [f"wall time {wall:.1f} s, where it went:"]
    lines += [f"  {name:<18}{seconds:>7.1f} s   {detail}".rstrip() for name, seconds, detail in rows]
    return lines


def totals_lines(runs: list[RunTiming]) -> list[str]:
    """Scenario counts by family and severity of the family steps seen (a dry run's totals: nothing is written,
    so there is no summary file to print), with the skips and failed checks."""
    from scenarios_assets.core.models.severity import SEVERITIES

    counts: dict[str, dict[str, int]] = {}
    skipped = failed = 0
    for run in runs:
        for step in run.steps:
            if step.is_family and step.count is not None:
                counts.setdefault(step.name, {})[step.severity] = step.count
                skipped += step.skipped
                failed += sum(not passed for _, passed in step.checks)
    severities = [s for s in SEVERITIES if any(s in by for by in counts.values())]
    lines = [f"{'family':<14}" + "".join(f"{sev:>10}" for sev in severities) + f"{'total':>10}"]
    for family, by in counts.items():
        lines.append(f"{family:<14}" + "".join(f"{by.get(sev, '-'):>10}" for sev in severities)
                     + f"{sum(by.values()):>10}")
    total = sum(sum(by.values()) for by in counts.values())
    lines.append(f"{'total':<14}" + "".join(f"{sum(by.get(sev, 0) for by in counts.values()):>10}"
                                             for sev in severities) + f"{total:>10}")
    lines.append(f"dry run: {total} scenarios generated and checked, {skipped} skipped, {failed} check(s) failed; "
                 "nothing written")
    return lines
