"""Load benchmark of the REST API (`scenarios serve`) on a real library, over loopback.

Builds a library with the CLI (or takes one with --output-dir), starts the real server as a subprocess
on 127.0.0.1 and a free port, and measures:

    single   one client, 200 sequential requests of one scenario's time series for one symbol (JSON)
                                                                         target: p50 <= 50 ms
    flood    2,000 requests from 32 concurrent clients (keep-alive connections), an even mix of
             GET /scenarios?limit=50, GET /scenarios/{id} and GET /scenarios/{id}/timeseries?symbol=S
             over random scenarios and symbols (seeded)
                                                      target: >= 200 requests/s, p99 <= 0.5 s

The server is stopped at the end (SIGTERM, then SIGKILL after 20 s). Results are printed and merged into
benchmarks/results/bench_api.json under a label (default: the library's scenario count).

Usage:  python benchmarks/bench_api.py [--output-dir DIR | --num-scenarios N] [--workers W] [--label L]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "bench_api.json"
TARGETS = {"single_timeseries_p50_s": 0.050, "flood_requests_per_s": 200.0, "flood_p99_s": 0.5}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_library(out: Path, home: Path, num_scenarios: int | None) -> float:
    """`scenarios --output-dir OUT [--num-scenarios N]` on a throw-away Dagster instance; returns seconds."""
    home.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "scenarios_assets", "--output-dir", str(out)]
    if num_scenarios:
        argv += ["--num-scenarios", str(num_scenarios)]
    started = time.perf_counter()
    subprocess.run(argv, check=True, cwd=ROOT, env={**os.environ, "DAGSTER_HOME": str(home)},
                   stdout=subprocess.DEVNULL, timeout=1800)
    return time.perf_counter() - started


class Server:
    """`scenarios serve` on loopback as a subprocess, in its own session; stopped on exit."""

    def __init__(self, out: Path, home: Path, workers: int):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "scenarios_assets", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                "--output-dir", str(out), "--log-level", "warning"]
        if workers > 1:
            argv += ["--workers", str(workers)]
        env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONWARNINGS": "ignore"}
        env.pop("SCENARIOS_DAGSTER_UI_URL", None)
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def __enter__(self) -> Server:
        deadline = time.monotonic() + 120
        while True:
            try:
                health = httpx.get(f"{self.base}/health", timeout=5)
                if health.status_code == 200 and health.json()["catalog"]:
                    return self
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.log.seek(0)
                self.__exit__()
                raise RuntimeError(f"the server did not start:\n{self.log.read().decode(errors='replace')}")
            time.sleep(0.25)

    def _processes(self) -> list[psutil.Process]:
        main = psutil.Process(self.proc.pid)
        return [main, *main.children(recursive=True)]

    def cpu_seconds(self) -> float:
        """CPU time of the server and its worker processes so far."""
        total = 0.0
        for p in self._processes():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total

    def rss_mib(self) -> float:
        total = 0
        for p in self._processes():
            try:
                total += p.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return round(total / 2**20, 1)

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def quantiles(latencies: list[float]) -> dict:
    if not latencies:
        return {"count": 0}
    ordered = sorted(latencies)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 4)

    return {"count": len(ordered), "p50_s": at(0.50), "p90_s": at(0.90), "p99_s": at(0.99), "max_s": round(ordered[-1], 4),
            "mean_s": round(statistics.fmean(ordered), 4)}


def warm_up(base: str, connections: int) -> None:
    """Every worker process parses the current build's metadata before the clock starts (the slices' footers
    and metrics are left cold: the flood reads them as it meets them)."""
    def hit() -> None:
        with httpx.Client(base_url=base, timeout=60) as http:
            for _ in range(3):
                http.get("/health")

    threads = [threading.Thread(target=hit) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def single_client(base: str, scenario: dict, symbol: str, n: int) -> dict:
    url = f"/scenarios/{scenario['id']}/timeseries"
    latencies, errors = [], 0
    with httpx.Client(base_url=base, timeout=30) as http:
        for _ in range(5):  # warm: the slice's footers, the page cache
            http.get(url, params={"symbol": symbol})
        for _ in range(n):
            started = time.perf_counter()
            resp = http.get(url, params={"symbol": symbol})
            body = resp.content
            latencies.append(time.perf_counter() - started)
            errors += resp.status_code != 200 or not body
    return {"scenario": scenario["id"], "symbol": symbol, "errors": errors, **quantiles(latencies)}


def flood(base: str, scenarios: list[dict], total: int, clients: int, seed: int) -> dict:
    """``total`` requests from ``clients`` threads, each on its own keep-alive connection."""
    rng = random.Random(seed)
    kinds = ("list", "detail", "timeseries")
    jobs = []
    for i in range(total):
        kind = kinds[i % 3]
        s = rng.choice(scenarios)
        if kind == "list":
            jobs.append((kind, "/scenarios", {"limit": 50, "offset": rng.randrange(0, max(1, len(scenarios) - 50))}))
        elif kind == "detail":
            jobs.append((kind, f"/scenarios/{s['id']}", None))
        else:
            jobs.append((kind, f"/scenarios/{s['id']}/timeseries", {"symbol": rng.choice(s["symbols"])}))
    lock = threading.Lock()
    cursor = iter(jobs)
    results: dict[str, list[float]] = {k: [] for k in kinds}
    errors: dict[str, int] = {k: 0 for k in kinds}
    samples: list[str] = []
    builds: set[str] = set()

    def client() -> None:
        with httpx.Client(base_url=base, timeout=30) as http:
            while True:
                with lock:
                    job = next(cursor, None)
                if job is None:
                    return
                kind, url, params = job
                started = time.perf_counter()
                try:
                    resp = http.get(url, params=params)
                    _ = resp.content
                    ok = resp.status_code == 200
                    detail = f"{resp.status_code} {url}"
                except httpx.HTTPError as exc:
                    ok, resp, detail = False, None, f"{type(exc).__name__} {url}"
                elapsed = time.perf_counter() - started
                with lock:
                    results[kind].append(elapsed)
                    if ok:
                        builds.add(resp.headers.get("x-scenarios-build", ""))
                    else:
                        errors[kind] += 1
                        if len(samples) < 5:
                            samples.append(detail)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    every = [x for xs in results.values() for x in xs]
    return {
        "requests": total, "clients": clients, "wall_s": round(wall, 3),
        "requests_per_s": round(total / wall, 1), "errors": sum(errors.values()), "error_samples": samples,
        "all": quantiles(every), "by_kind": {k: {**quantiles(v), "errors": errors[k]} for k, v in results.items()},
        "builds_seen": sorted(builds),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output-dir", help="an existing library (default: build one in a temporary directory)")
    parser.add_argument("--num-scenarios", type=int, help="--num-scenarios of the library built (default: the CLI's)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes of the server (default 1)")
    parser.add_argument("--requests", type=int, default=200, help="single-client requests (default 200)")
    parser.add_argument("--flood", type=int, default=2000, help="flood requests (default 2000)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent flood clients (default 32)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--label", help="key of this run in the results file (default: library-<scenarios>)")
    parser.add_argument("--results", default=str(RESULTS), help=f"results file (default {RESULTS.relative_to(ROOT)})")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        tmp = Path(tmp)
        build_s = None
        out = Path(args.output_dir) if args.output_dir else tmp / "library"
        if not args.output_dir:
            print(f"building a library in {out} (--num-scenarios {args.num_scenarios or 'default'}) ...", flush=True)
            build_s = round(build_library(out, tmp / "dagster_home_build", args.num_scenarios), 1)
        with Server(out, tmp / "dagster_home", args.workers) as server:
            with httpx.Client(base_url=server.base, timeout=60) as http:
                catalog = http.get("/catalog").json()
                scenarios = http.get("/scenarios", params={"limit": 1000}).json()
                items, offset = list(scenarios["items"]), 1000
                while offset < scenarios["total"]:
                    items += http.get("/scenarios", params={"limit": 1000, "offset": offset}).json()["items"]
                    offset += 1000
            probe = next((s for s in items if s["family"] == "monte_carlo"), items[0])
            symbol = "SPX" if "SPX" in probe["symbols"] else probe["symbols"][0]
            print(f"server {server.base} (workers {args.workers}): build {catalog['build_id']}, "
                  f"{catalog['scenario_count']} scenarios", flush=True)
            warm_up(server.base, 4 * args.workers)
            cpu = server.cpu_seconds()
            single = single_client(server.base, probe, symbol, args.requests)
            single["server_cpu_ms_per_request"] = round((server.cpu_seconds() - cpu) / (args.requests + 5) * 1000, 2)
            print(f"single client: time series p50 {single['p50_s'] * 1000:.1f} ms, p99 {single['p99_s'] * 1000:.1f} ms",
                  flush=True)
            cpu, client_cpu, load = server.cpu_seconds(), time.process_time(), os.getloadavg()[0]
            mixed = flood(server.base, items, args.flood, args.clients, args.seed)
            mixed["server_cpu_ms_per_request"] = round((server.cpu_seconds() - cpu) / args.flood * 1000, 2)
            mixed["client_cpu_ms_per_request"] = round((time.process_time() - client_cpu) / args.flood * 1000, 2)
            mixed["load_average_before"] = round(load, 2)
            rss = server.rss_mib()
            print(f"flood: {mixed['requests_per_s']} requests/s, p99 {mixed['all']['p99_s'] * 1000:.0f} ms, "
                  f"errors {mixed['errors']}", flush=True)

    met = {
        "single_timeseries_p50": single["p50_s"] <= TARGETS["single_timeseries_p50_s"],
        "flood_requests_per_s": mixed["requests_per_s"] >= TARGETS["flood_requests_per_s"],
        "flood_p99": mixed["all"]["p99_s"] <= TARGETS["flood_p99_s"],
        "no_errors": single["errors"] == 0 and mixed["errors"] == 0,
    }
    label = args.label or f"library-{catalog['scenario_count']}"
    result = {
        "library": {"output_dir": None if not args.output_dir else str(out), "build_id": catalog["build_id"],
                    "scenario_count": catalog["scenario_count"], "num_scenarios": args.num_scenarios,
                    "build_seconds": build_s},
        "server": {"workers": args.workers, "transport": "loopback HTTP/1.1 keep-alive", "rss_mib_after": rss},
        "single_client_timeseries": single,
        "flood": mixed,
        "targets": TARGETS,
        "met": met,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    path = Path(args.results)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        runs = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        runs = {}
    runs[label] = result
    path.write_text(json.dumps(runs, indent=2) + "\n")
    print(json.dumps({label: result}, indent=2))
    print(f"written to {path}")
    return 0 if all(met.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
