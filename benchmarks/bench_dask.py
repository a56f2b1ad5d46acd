"""Scale-out on a local dask.distributed cluster of 2 worker processes (one thread each), on the synthetic
universe of ``bench_stochastic`` (500 symbols x 2,520 sessions in the OHLCV contract).

    overhead   the Monte Carlo slice of one severity in chunks of 100 paths x 500 symbols x 252 days, each chunk a
               task (core ``slices.write_slice`` with a client), against the same slice in process: tasks per
               second, and the share of the cluster's wall (2 workers x wall) spent outside the chunk kernels
               (generation, checks, Parquet writing: the tasks' compute time in the scheduler's task stream);
               per chunk: seconds, bytes written, peak RSS of the workers
    library    the full library through the CLI with ``--dask-scheduler`` (every family x severity a Dagster step
               on the cluster, every Monte Carlo and bootstrap chunk a task), then in process: wall of both, peak
               RSS of each worker process            target: peak RSS of every worker <= 2.5 GiB

Usage:  python benchmarks/bench_dask.py [--scenarios 1000] [--bootstrap-scenarios 500] [--overhead-paths 1000]
                                        [--skip-library] [--skip-overhead]
Writes benchmarks/results/bench_dask.json and prints it. The machine may be shared: the JSON records the load
average at the start and the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_build import GIB, TreeSampler, config_file, run_cli  # noqa: E402

CHUNK_PATHS = 100


def worker_pids(client) -> list[int]:
    return sorted(client.run(os.getpid).values())


def worker_peaks(sampler: TreeSampler, pids: list[int]) -> dict[str, float]:
    return {str(pid): round(sampler.peaks.get(pid, (0, ""))[0] / GIB, 3) for pid in pids}


def overhead(data: Path, work: Path, paths: int, address: str) -> dict:
    """One Monte Carlo slice (moderate) in chunks of CHUNK_PATHS paths, on the cluster and in process."""
    from dask.distributed import Client, get_task_stream
    from bench_stochastic import load_context

    from scenarios_assets.core.families.registry import family_stream
    from scenarios_assets.core.library.slices import write_slice

    overrides = {"generation": {"stochastic": {"monte_carlo": {"num_scenarios": paths}}},
                 "performance": {"paths_per_chunk": CHUNK_PATHS}}
    ctx = load_context(str(data), "moderate", overrides)
    result: dict = {"paths": paths, "paths_per_chunk": CHUNK_PATHS, "symbols": 500, "days": 252}
    with Client(address) as client:
        pids = worker_pids(client)
        started = time.perf_counter()
        stream = family_stream("monte_carlo", ctx)  # calibration: once, in this process (cached fits after the first)
        calibration = time.perf_counter() - started
        directory = work / "overhead_dask"
        directory.mkdir()
        with TreeSampler(os.getpid()) as sampler, get_task_stream(client) as stream_log:
            started = time.perf_counter()
            manifest = write_slice(stream, directory, save_timeseries=True, client=client)
            wall = time.perf_counter() - started
        computes = [sum(s["stop"] - s["start"] for s in t["startstops"] if s["action"] == "compute")
                    for t in stream_log.data if str(t["key"]).startswith("chunk-")]
    chunks = len(computes)
    kernel = sum(computes)
    written = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
    records = (directory / "records.jsonl").stat().st_size
    result["dask"] = {
        "chunks": chunks, "calibration_seconds": round(calibration, 2), "wall_seconds": round(wall, 2),
        "tasks_per_second": round(chunks / wall, 3), "chunk_seconds_mean": round(kernel / max(chunks, 1), 3),
        "chunk_seconds_max": round(max(computes, default=0.0), 3),
        "share_outside_kernels": round(1.0 - kernel / (2 * wall), 3),
        "bytes_written": written, "bytes_per_chunk": written // max(chunks, 1), "rows": manifest.rows,
        "records_bytes_per_scenario": records // max(manifest.count, 1),
        "worker_peak_rss_gib": worker_peaks(sampler, pids),
    }
    shutil.rmtree(directory)
    directory = work / "overhead_local"
    directory.mkdir()
    stream = family_stream("monte_carlo", ctx)
    started = time.perf_counter()
    write_slice(stream, directory, save_timeseries=True)
    result["in_process_wall_seconds"] = round(time.perf_counter() - started, 2)
    shutil.rmtree(directory)
    return result


def correlation_product(symbols: int = 5000, days: int = 252) -> dict:
    """Seconds of one path's correlation product at ``symbols`` symbols ((days, N) @ (N, N) float32, one BLAS
    thread, as engines.simulation runs it): the part of a chunk that grows with the square of the universe."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(7)
    z = rng.standard_normal((days, symbols), dtype=np.float32)
    chol = np.tril(rng.standard_normal((symbols, symbols), dtype=np.float32))
    out = np.empty_like(z)
    with threadpool_limits(1, user_api="blas"):
        np.matmul(z, chol, out=out)  # warm-up
        started = time.perf_counter()
        for _ in range(3):
            np.matmul(z, chol, out=out)
    seconds = (time.perf_counter() - started) / 3
    return {"symbols": symbols, "days": days, "seconds_per_path": round(seconds, 3),
            "gflops": round(2 * days * symbols * symbols / seconds / 1e9, 1)}


def library(data: Path, work: Path, mc: int, bootstrap: int, address: str) -> dict:
    """The full library through the CLI on the cluster, then in process."""
    from dask.distributed import Client

    config = config_file(work, mc, bootstrap)
    with Client(address) as client:
        pids = worker_pids(client)
    args = ["--market-data", str(data), "--config", str(config), "--severity", "all"]
    home = work / "home_dask"
    home.mkdir()
    with TreeSampler(os.getpid()) as sampler:
        dask = run_cli([*args, "--dask-scheduler", address, "--output-dir", str(work / "lib_dask")], home)
    dask["worker_peak_rss_gib"] = worker_peaks(sampler, pids)
    dask["passed_memory"] = dask["exit_code"] == 0 and max(dask["worker_peak_rss_gib"].values()) <= 2.5
    dask["parquet_bytes"] = sum(p.stat().st_size for p in (work / "lib_dask").rglob("*.parquet") if p.is_file())
    shutil.rmtree(work / "lib_dask", ignore_errors=True)
    home = work / "home_local"
    home.mkdir()
    local = run_cli([*args, "--output-dir", str(work / "lib_local")], home)
    shutil.rmtree(work / "lib_local", ignore_errors=True)
    return {"paths_per_severity": {"monte_carlo": mc, "bootstrap": bootstrap}, "dask": dask, "in_process": local,
            "dask_over_in_process": round(dask["wall_seconds"] / max(local["wall_seconds"], 1e-9), 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", type=int, default=1000)
    parser.add_argument("--bootstrap-scenarios", type=int, default=500)
    parser.add_argument("--overhead-paths", type=int, default=1000)
    parser.add_argument("--skip-library", action="store_true")
    parser.add_argument("--skip-overhead", action="store_true")
    args = parser.parse_args()

    from bench_stochastic import synthetic_ohlcv

    from scenarios_assets.defs.executors import local_dask_cluster

    RESULTS.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench_dask_", dir=RESULTS))
    result = {"benchmark": "bench_dask", "cpus": os.cpu_count(), "loadavg_start": os.getloadavg(),
              "memory_gib": round(psutil.virtual_memory().total / GIB, 1), "workers": 2,
              "note": "shared machine: other sessions ran at the same time (see the load averages)"}
    try:
        data = work / "synthetic_ohlcv.parquet"
        synthetic_ohlcv().to_parquet(data, index=False)
        os.environ["DAGSTER_HOME"] = str(work / "home_dask")  # the workers open the CLI run's instance from it
        with local_dask_cluster(workers=2, processes=True, quiet=True) as address:
            if not args.skip_overhead:
                result["overhead"] = overhead(data, work, args.overhead_paths, address)
                result["correlation_product"] = correlation_product()
            if not args.skip_library:
                result["library"] = library(data, work, args.scenarios, args.bootstrap_scenarios, address)
        result["loadavg_end"] = os.getloadavg()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(result, indent=2)
    (RESULTS / "bench_dask.json").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
