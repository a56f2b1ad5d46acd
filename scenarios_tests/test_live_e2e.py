"""Live end to end: `dagster dev` (webserver + daemon) on a temporary instance runs the evening unattended.

1. Stage 1 (a non-Dagster pipeline) reports new market data through the webserver's REST endpoint.
2. Within a bounded wait: the sensor refreshes market_data, then requests the three severity runs; they
   succeed; the automation sensor rebuilds the catalog exactly once, the metrics follow in the same run;
   the files are on disk. The event -> catalog-files time and the number of runs are printed.
3. Nothing more happens for the same data: no further runs, and a live evaluation of the schedule
   (the UI's "test schedule", GraphQL scheduleDryRun) skips with the reason.
4. Stage 1 as a Dagster asset in a second code location: materialising stage1/ohlcv (same data) makes the
   automation refresh market_data/ohlcv across locations, and the sensor skips: same data version.
5. Everything is stopped by process group (SIGTERM, then SIGKILL after a timeout); no process survives.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

from scenarios_assets.core.families.registry import FAMILY_SPECS
from scenarios_assets.core.data.paths import BUNDLED_OHLCV, PROJECT_ROOT
from scenarios_assets.core.models.severity import SEVERITIES
from scenarios_assets.core.library.storage import CATALOG_FILES
from stage1_example.report import report_new_market_data

DAGSTER = Path(sys.executable).with_name("dagster")
WORKSPACE = PROJECT_ROOT / "stage1_example" / "workspace.yaml"
SENSOR_INTERVAL = 5  # seconds between sensor evaluations in this test (production default: 30)
STARTUP_TIMEOUT = 120
CHAIN_TIMEOUT = 180  # event -> catalog and metrics on disk
STOP_TIMEOUT = 30

# dagster (and its CLI next to the interpreter) is a dependency of the package: never skipped.


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Live:
    def __init__(self, tmp: Path):
        self.home = tmp / "dagster_home"
        self.out = tmp / "scenarios"
        self.market = tmp / "stage1" / "ohlcv.parquet"
        self.log = tmp / "dagster_dev.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.home.mkdir()
        shutil.copyfile(PROJECT_ROOT / "dagster.sqlite.yaml", self.home / "dagster.yaml")
        self.market.parent.mkdir()
        shutil.copyfile(BUNDLED_OHLCV, self.market)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SCENARIOS_")},
            "DAGSTER_HOME": str(self.home),
            "SCENARIOS_OUTPUT_DIR": str(self.out),
            "SCENARIOS_MARKET_DATA": str(self.market),
            "SCENARIOS_SENSOR_INTERVAL_SECONDS": str(SENSOR_INTERVAL),
            "STAGE1_SOURCE": str(BUNDLED_OHLCV),
            "STAGE1_OUTPUT": str(self.market),
            "DAGSTER_DISABLE_TELEMETRY": "1",
        }
        self.proc: subprocess.Popen | None = None
        self._instance = None

    # --- process ------------------------------------------------------------------------------------
    def start(self):
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [str(DAGSTER), "dev", "-w", str(WORKSPACE), "-h", "127.0.0.1", "-p", str(self.port)],
                cwd=self.home.parent, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own session and process group: stopped as one
            )

    def stop(self) -> dict:
        """SIGTERM to dagster dev, then to its process group, then SIGKILL; report what it took."""
        proc, pgid = self.proc, self.proc.pid  # session leader: its pid is the group id
        tree = [proc.pid]
        try:
            tree += [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
        steps = []
        for sig, target in ((signal.SIGTERM, "leader"), (signal.SIGTERM, "group"), (signal.SIGKILL, "group")):
            try:
                if target == "leader":
                    proc.send_signal(sig)
                else:
                    os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            steps.append(f"{sig.name}->{target}")
            deadline = time.monotonic() + STOP_TIMEOUT
            while time.monotonic() < deadline and (_alive(tree) or _group_alive(pgid)):
                time.sleep(0.2)
            if not _alive(tree) and not _group_alive(pgid):
                break
        proc.wait(timeout=5)
        return {"steps": steps, "tree": tree, "survivors": _alive(tree), "group_alive": _group_alive(pgid)}

    # --- what the instance says ---------------------------------------------------------------------
    @property
    def instance(self):
        if self._instance is None:
            from dagster import DagsterInstance
            from dagster._core.instance.ref import InstanceRef

            self._instance = DagsterInstance.from_ref(InstanceRef.from_dir(str(self.home)))
        return self._instance

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
        assert "errors" not in answer, answer
        return answer["data"]

    def wait_until_up(self):
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"dagster dev exited:\n{self.log.read_text()[-3000:]}"
            try:
                data = self.graphql("{ workspaceOrError { ... on Workspace { locationEntries { name "
                                    "locationOrLoadError { __typename } } } } }")
                entries = data["workspaceOrError"]["locationEntries"]
                loaded = {e["name"] for e in entries if (e["locationOrLoadError"] or {}).get("__typename") == "RepositoryLocation"}
                daemons = {h.daemon_type for h in self.instance.get_daemon_heartbeats().values()}
                if loaded == {"scenarios", "stage1"} and {"SENSOR", "SCHEDULER"} <= daemons:
                    return
                errors = [e for e in entries if (e["locationOrLoadError"] or {}).get("__typename") == "PythonError"]
                assert not errors, errors
            except (OSError, ValueError):
                pass
            time.sleep(1)
        raise AssertionError(f"dagster dev not ready after {STARTUP_TIMEOUT} s:\n{self.log.read_text()[-3000:]}")

    def runs(self):
        return list(reversed(self.instance.get_runs()))

    def materialisations(self, *path: str) -> list:
        from dagster import AssetKey, AssetRecordsFilter

        return self.instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey(list(path))), limit=100).records

    def sensor_ticks(self, name: str, limit: int = 20) -> list[dict]:
        data = self.graphql(
            """query($s: SensorSelector!, $n: Int) { sensorOrError(sensorSelector: $s) { ... on Sensor {
                 sensorState { status ticks(limit: $n) { timestamp status skipReason runIds error { message } } } } } }""",
            {"s": {"repositoryLocationName": "scenarios", "repositoryName": "__repository__", "sensorName": name}, "n": limit},
        )
        return data["sensorOrError"]["sensorState"]["ticks"]


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def _group_alive(pgid: int) -> bool:
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(p.pid) == pgid and p.status() != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
            continue
    return False


def wait_for(predicate, timeout: float, what: str, poll: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def finished(runs) -> bool:
    return all(r.is_finished for r in runs)


def test_live_evening_end_to_end(tmp_path, monkeypatch):
    from dagster import DagsterRunStatus

    from scenarios_assets import load_scenario_metrics, load_scenarios

    live = Live(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(live.home))  # this process reads the same instance
    started = time.monotonic()
    live.start()
    try:
        live.wait_until_up()
        print(f"\ndagster dev up in {time.monotonic() - started:.1f} s on {live.url}")
        states = {
            name: live.graphql(
                """query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { ... on Sensor { sensorState { status } } } }""",
                {"s": {"repositoryLocationName": "scenarios", "repositoryName": "__repository__", "sensorName": name}},
            )["sensorOrError"]["sensorState"]["status"]
            for name in ("scenarios_after_market_data", "scenarios_automation")
        }
        schedule = live.graphql(
            """query($s: ScheduleSelector!) { scheduleOrError(scheduleSelector: $s) { ... on Schedule {
                 cronSchedule executionTimezone scheduleState { status } } } }""",
            {"s": {"repositoryLocationName": "scenarios", "repositoryName": "__repository__", "scheduleName": "scenarios_daily"}},
        )["scheduleOrError"]
        assert states == {"scenarios_after_market_data": "RUNNING", "scenarios_automation": "RUNNING"}
        assert schedule == {"cronSchedule": "30 19 * * *", "executionTimezone": "America/New_York",
                            "scheduleState": {"status": "RUNNING"}}

        # 1. Stage 1 reports new data through the REST endpoint.
        t0 = time.monotonic()
        report_new_market_data(live.url, {"rows": 198006})

        # 2. The whole chain, unattended.
        def catalog_on_disk():
            return all((live.out / name).exists() for name in CATALOG_FILES)

        wait_for(catalog_on_disk, CHAIN_TIMEOUT, "the catalog files")
        event_to_files = time.monotonic() - t0
        wait_for(lambda: live.materialisations("metrics", "scenario_metrics") and finished(live.runs()),
                 CHAIN_TIMEOUT - event_to_files, "the metrics and every run to finish")
        event_to_metrics = time.monotonic() - t0
        runs = live.runs()
        summary = [(r.job_name, r.tags.get("dagster/partition", ""), r.tags.get("scenarios/trigger", ""), r.status.value) for r in runs]
        print(f"event -> catalog files on disk: {event_to_files:.1f} s; -> metrics: {event_to_metrics:.1f} s; "
              f"{len(runs)} runs:")
        for line in summary:
            print("   ", *line)
        assert all(r.status == DagsterRunStatus.SUCCESS for r in runs), summary

        refresh = [r for r in runs if r.job_name == "market_data_job"]
        severity_runs = [r for r in runs if r.job_name == "scenarios_job"]
        catalog_runs = [r for r in runs if r.tags.get("scenarios/trigger") == "automation"]
        assert len(refresh) == 1 and refresh[0].tags["scenarios/trigger"] == "sensor:reported"
        assert sorted(r.tags["dagster/partition"] for r in severity_runs) == sorted(SEVERITIES)
        assert {r.tags["scenarios/trigger"] for r in severity_runs} == {"sensor"}
        assert len(catalog_runs) == 1 and len(runs) == 5
        assert len(live.materialisations("scenarios", "catalog")) == 1
        assert len(live.materialisations("metrics", "scenario_metrics")) == 1

        library = load_scenarios(live.out)
        assert set(library.scenarios["severity"]) == set(SEVERITIES)
        assert set(library.scenarios["family"]) == set(FAMILY_SPECS)  # every registered family, no code here per family
        # Monitoring: what each family and the catalog show in the UI.
        for spec in FAMILY_SPECS.values():
            for record in live.materialisations("scenarios", spec.asset_name)[:3]:
                shown = set(record.event_log_entry.asset_materialization.metadata)
                assert {"scenario_count", "min_coverage", "mean_coverage", "generation_seconds", "step_peak_rss_mib",
                        "unique_names", "unique_date_ranges", "date_range", "return_dispersion"} <= shown, shown
        catalog_md = live.materialisations("scenarios", "catalog")[0].event_log_entry.asset_materialization.metadata
        assert {"counts_by_family_severity", "validation_failure_rate", "validation_failure_rate_by_family"} <= set(catalog_md)
        metrics = load_scenario_metrics(live.out)
        assert len(metrics) and metrics.attrs["provenance"]["data_version"] == library.data_version
        assert metrics.attrs["provenance"]["catalog_generated_at"] == library.generated_at

        # 3. Same data version: nothing more. Let both sensors tick a few more times.
        time.sleep(3 * SENSOR_INTERVAL)
        assert len(live.runs()) == len(runs)
        assert len(live.materialisations("scenarios", "catalog")) == 1
        tick = live.graphql(
            """mutation($s: ScheduleSelector!, $t: Float) { scheduleDryRun(selectorData: $s, timestamp: $t) {
                 ... on DryRunInstigationTick { evaluationResult { skipReason runRequests { runKey } error { message } } }
                 ... on PythonError { message } } }""",
            {"s": {"repositoryLocationName": "scenarios", "repositoryName": "__repository__", "scheduleName": "scenarios_daily"},
             "t": time.time()},
        )["scheduleDryRun"]["evaluationResult"]
        print(f"schedule evaluated live: {tick['skipReason']}")
        assert tick["error"] is None and not tick["runRequests"]
        assert "unchanged since the last successful scenario build" in tick["skipReason"]
        assert library.data_version in tick["skipReason"]

        # 4. Stage 1 as an asset in the other code location: same data -> market data refreshed by
        #    automation across locations, and no scenario work.
        t1, t1_wall = time.monotonic(), time.time()
        launched = live.graphql(
            """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename
                 ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }""",
            {"p": {"selector": {"repositoryLocationName": "stage1", "repositoryName": "__repository__",
                                "jobName": "__ASSET_JOB", "assetSelection": [{"path": ["stage1", "ohlcv"]}]}}},
        )["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        before = len(live.materialisations("market_data", "ohlcv"))
        wait_for(lambda: len(live.materialisations("market_data", "ohlcv")) > before, 120,
                 "market_data/ohlcv to refresh after stage1/ohlcv")
        skip = wait_for(
            lambda: next((t["skipReason"] for t in live.sensor_ticks("scenarios_after_market_data")
                          if t["timestamp"] > t1_wall and t["status"] == "SKIPPED"
                          and "unchanged" in (t["skipReason"] or "")), None),
            60, "the sensor to skip the unchanged data version")
        wait_for(lambda: finished(live.runs()), 60, "the stage-1 runs to finish")
        print(f"stage-1 asset -> market data refreshed and sensor skipped in {time.monotonic() - t1:.1f} s: {skip}")
        later = live.runs()[len(runs):]
        for r in later:
            print("   ", r.remote_job_origin.location_name, r.job_name, sorted(k.to_user_string() for k in r.asset_selection or []),
                  r.tags.get("scenarios/trigger", ""), r.status.value)
        assert all(r.status == DagsterRunStatus.SUCCESS for r in later)
        stage1_runs = [r for r in later if r.remote_job_origin.location_name == "stage1"]
        refreshes = [r for r in later if r.tags.get("dagster/from_automation_condition") == "true"]
        assert len(stage1_runs) == 1 and len(refreshes) == 1 and len(later) == 2
        assert [k.to_user_string() for k in refreshes[0].asset_selection] == ["market_data/ohlcv"]
        assert not [r for r in later if r.job_name == "scenarios_job"]
        assert len(live.materialisations("scenarios", "catalog")) == 1
        print(f"total runs: {len(live.runs())} ({len(runs)} for the evening, {len(later)} for the stage-1 check)")
    finally:
        if live._instance is not None:
            live._instance.dispose()
        stopped = live.stop()
        print(f"stopped with {', '.join(stopped['steps'])}; processes in the tree: {len(stopped['tree'])}")
    # 5. Nothing left behind.
    assert not stopped["survivors"] and not stopped["group_alive"], stopped
