"""The whole library at the seed's scale through the CLI, against the same core computations timed alone.

On the synthetic universe of ``bench_stochastic`` (500 symbols x 2,520 sessions in the OHLCV contract):

    cli        ``scenarios --type all --severity all --num-scenarios 1000 --save-timeseries`` (1,000 Monte
               Carlo + 1,000 bootstrap paths per severity by default; ``--bootstrap-scenarios 500`` gives the
               seed's 500 through a config file), every family, all three severities, through Dagster,
               with the peak RSS of every process of the run (the CLI and its children, sampled every
               0.2 s with psutil)                      target: peak RSS of every process <= 2.5 GiB
    core       the same family x severity slices written by ``slices.write_slice`` in one process
               (calibration, simulation, checks, metrics, Parquet encoding: the computation without the
               orchestration), each timed alone                target: cli wall <= 1.5 x sum of core
    paths5000  ``--type monte_carlo --severity severe --num-scenarios 5000 --save-timeseries``: the same
               memory bound with five times the paths (memory does not grow with the path count)

Usage:  python benchmarks/bench_build.py [--scenarios 1000] [--bootstrap-scenarios 500] [--skip-5000]
Writes benchmarks/results/bench_build.json and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from scenarios_assets.core.families.registry import FAMILIES  # noqa: E402  (the registry, after sys.path)
from scenarios_assets.core.models.severity import SEVERITIES  # noqa: E402

GIB = 1024**3


def config_file(directory: Path, mc: int, bootstrap: int) -> Path:
    path = directory / "bench_config.yaml"
    path.write_text(
        "scenarios_pipeline:\n  generation:\n    stochastic:\n"
        f"      monte_carlo: {{num_scenarios: {mc}}}\n      bootstrap: {{num_scenarios: {bootstrap}}}\n"
        "  performance: {save_timeseries: true}\n"
    )
    return path


class TreeSampler:
    """Peak RSS of a process and all its descendants, per process, sampled in a thread."""

    def __init__(self, pid: int, interval: float = 0.2):
        self.root, self.interval = psutil.Process(pid), interval
        self.peaks: dict[int, tuple[int, str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            for p in procs:
                try:
                    rss = p.memory_info().rss
                    name = " ".join(p.cmdline()[:4])[-120:]
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                if rss > self.peaks.get(p.pid, (0, ""))[0]:
                    self.peaks[p.pid] = (rss, name)
            self._stop.wait(self.interval)

    def report(self) -> list[dict]:
        rows = sorted(self.peaks.items(), key=lambda kv: -kv[1][0])
        return [{"pid": pid, "peak_rss_gib": round(rss / GIB, 3), "process": name} for pid, (rss, name) in rows]


def run_cli(args: list[str], home: Path) -> dict:
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    started = time.perf_counter()
    proc = subprocess.Popen([str(Path(sys.executable).with_name("scenarios")), *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with TreeSampler(proc.pid) as sampler:
        out, err = proc.communicate()
    wall = time.perf_counter() - started
    processes = sampler.report()
    peak = max((p["peak_rss_gib"] for p in processes), default=0.0)
    return {"args": args, "exit_code": proc.returncode, "wall_seconds": round(wall, 2),
            "max_process_peak_rss_gib": peak, "passed_memory": proc.returncode == 0 and peak <= 2.5,
            "processes": processes[:8], "stdout_tail": out.splitlines()[-12:], "stderr_tail": err.splitlines()[-5:]}


def core_stage(data: str, mc: int, bootstrap: int, out: str) -> dict:
    """Every family x severity slice written by the core alone, in this process, each timed."""
    from bench_stochastic import load_context

    from scenarios_assets.core.families.registry import family_stream
    from scenarios_assets.core.library.slices import write_slice

    overrides = {"generation": {"stochastic": {"monte_carlo": {"num_scenarios": mc}, "bootstrap": {"num_scenarios": bootstrap}}}}
    timings, rows = {}, 0
    for severity in SEVERITIES:
        ctx = load_context(data, severity, overrides)
        for family in FAMILIES:
            directory = Path(out) / f"{family}.{severity}"
            directory.mkdir(parents=True)
            started = time.perf_counter()
            manifest = write_slice(family_stream(family, ctx), directory, save_timeseries=True)
            timings[f"{family}/{severity}"] = round(time.perf_counter() - started, 3)
            rows += manifest.rows
            shutil.rmtree(directory)
    return {"seconds": timings, "sum_seconds": round(sum(timings.values()), 2), "rows": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", type=int, default=1000)
    parser.add_argument("--bootstrap-scenarios", type=int, default=500)
    parser.add_argument("--skip-5000", action="store_true")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage == "core":
        print(json.dumps(core_stage(args.data, args.scenarios, args.bootstrap_scenarios, args.out)))
        return 0

    from bench_stochastic import synthetic_ohlcv

    RESULTS.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench_build_", dir=RESULTS))
    try:
        data = work / "synthetic_ohlcv.parquet"
        synthetic_ohlcv().to_parquet(data, index=False)
        config = config_file(work, args.scenarios, args.bootstrap_scenarios)
        home = work / "dagster_home"
        home.mkdir()
        result = {"benchmark": "bench_build", "cpus": os.cpu_count(), "loadavg_start": os.getloadavg(),
                  "universe": {"symbols": 500, "sessions": 2520},
                  "paths_per_severity": {"monte_carlo": args.scenarios, "bootstrap": args.bootstrap_scenarios}}
        result["cli"] = run_cli(["--market-data", str(data), "--config", str(config), "--output-dir",
                                 str(work / "library")], home)
        sizes = [p.stat().st_size for p in (work / "library").rglob("*.parquet") if p.is_file()]
        result["cli"]["parquet_bytes"] = sum(sizes)
        shutil.rmtree(work / "library", ignore_errors=True)
        cmd = [sys.executable, __file__, "--stage", "core", "--data", str(data), "--out", str(work / "core"),
               "--scenarios", str(args.scenarios), "--bootstrap-scenarios", str(args.bootstrap_scenarios)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        result["core"] = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else {"error": proc.stderr[-2000:]}
        if "sum_seconds" in result["core"]:
            ratio = result["cli"]["wall_seconds"] / result["core"]["sum_seconds"]
            result["wall_over_core"] = round(ratio, 3)
            result["passed_wall"] = ratio <= 1.5
        if not args.skip_5000:
            result["paths5000"] = run_cli(["--market-data", str(data), "--type", "monte_carlo", "--severity", "severe",
                                           "--num-scenarios", "5000", "--save-timeseries", "--output-dir",
                                           str(work / "library5000")], home)
        result["loadavg_end"] = os.getloadavg()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(result, indent=2)
    (RESULTS / "bench_build.json").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
