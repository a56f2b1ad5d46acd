"""Scale benchmark of the stochastic families (Monte Carlo GARCH and block bootstrap).

A synthetic universe of 500 symbols x 2,520 trading days in the OHLCV contract (a market factor with
GARCH(1,1)-t volatility, ten sector factors and GARCH idiosyncratic noise; one of the symbols is the
SPX index) goes through the same core functions as real data (validate_ohlcv, build_market_data, the
family generators, the Parquet parts and metrics of a slice). Each stage runs in its own process so its wall time and
peak RSS are its own:

    fits        GJR-GARCH(1,1,1)-t fits of the 500 symbols (10-year window, both cores) target <= 10 s
    monte_carlo 1,000 GARCH paths x 252 days x 500 symbols, one severity, fits included
                                                                      target <= 20 s, <= 2.5 GiB RSS
    write       the long timeseries Parquet parts of that set (126 M rows, float32, zstd, one part per
                chunk of paths, as a family step writes them), and the chunk metrics    target <= 15 s
    bootstrap   500 circular-block paths x 252 days x 500 symbols               target <= 2 s

Usage:  python benchmarks/bench_stochastic.py [--scenarios 1000] [--bootstrap-scenarios 500]
Writes benchmarks/results/bench_stochastic.json and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))

N_SYMBOLS = 500
N_DAYS = 2520
GIB = 1024**3


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the GARCH fit workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def synthetic_ohlcv(n_symbols: int = N_SYMBOLS, n_days: int = N_DAYS, seed: int = 20240607) -> pd.DataFrame:
    """Long OHLCV rows of a factor-model universe (percent log returns internally)."""
    rng = np.random.default_rng(seed)
    n_stocks = n_symbols - 1

    def t_innov(size, dof=5.0):
        return rng.standard_t(dof, size=size) / np.sqrt(dof / (dof - 2.0))

    # market factor: GARCH(1,1)-t, long-run daily vol 1 %
    zm = t_innov(n_days)
    market = np.empty(n_days)
    h = 1.0
    for t in range(n_days):
        market[t] = np.sqrt(h) * zm[t]
        h = 0.02 + 0.08 * market[t] ** 2 + 0.90 * h
    sectors = rng.integers(0, 10, size=n_stocks)
    sector_f = t_innov((n_days, 10)) * 0.6
    betas = rng.uniform(0.6, 1.4, size=n_stocks)
    # idiosyncratic GARCH per stock (vectorised over stocks)
    a = rng.uniform(0.04, 0.10, size=n_stocks)
    b = rng.uniform(0.84, 0.89, size=n_stocks)  # persistence a + b < 0.99
    lr_var = rng.uniform(0.8, 3.0, size=n_stocks) ** 2
    w = lr_var * (1 - a - b)
    zi = t_innov((n_days, n_stocks))
    idio = np.empty((n_days, n_stocks))
    hi = lr_var.copy()
    for t in range(n_days):
        idio[t] = np.sqrt(hi) * zi[t]
        hi = w + a * idio[t] ** 2 + b * hi
    drift = rng.uniform(0.0, 0.06, size=n_stocks)
    stocks = drift + betas * market[:, None] + sector_f[:, sectors] + idio
    log_ret = np.column_stack([0.03 + market, stocks]) / 100.0
    log_ret = np.clip(log_ret, -0.5, 0.5)
    close = 50.0 * np.exp(np.cumsum(log_ret, axis=0))
    close[:, 0] *= 40.0  # the index level
    prev = np.vstack([close[:1], close[:-1]])
    open_ = prev * np.exp(rng.normal(0, 0.003, size=close.shape))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.005, size=close.shape)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.005, size=close.shape)))
    volume = np.round(rng.lognormal(13, 0.5, size=close.shape))
    dates = pd.bdate_range("2015-01-02", periods=n_days)
    symbols = ["SPX"] + [f"S{i:03d}" for i in range(n_stocks)]
    return pd.DataFrame({
        "symbol": np.repeat(symbols, n_days),
        "date": np.tile(dates.to_numpy(), n_symbols),
        "open": open_.T.ravel(),
        "high": high.T.ravel(),
        "low": low.T.ravel(),
        "close": close.T.ravel(),
        "volume": volume.T.ravel(),
    })


def load_context(data_path: str, severity: str, overrides: dict):
    from scenarios_assets.core.models.config import config_hash
    from scenarios_assets.core.data.config_file import load_config
    from scenarios_assets.core.families.context import GenerationContext
    from scenarios_assets.core.data.market import build_economic, build_market_data, read_ohlcv, validate_ohlcv

    raw = read_ohlcv(data_path)
    ohlcv, report = validate_ohlcv(raw, data_path)
    market = build_market_data(ohlcv, data_path, report=report)
    config = load_config(None, overrides)
    return GenerationContext(market, build_economic(market, None), config, config_hash(config), severity)


# --- stages (each runs in a child process) ------------------------------------------------------------

def stage_fits(data_path: str, _args) -> dict:
    from scenarios_assets.core.engines.calibration import calibration_window
    from scenarios_assets.core.engines.garch import fit_garch

    ctx = load_context(data_path, "moderate", {})
    cfg = ctx.config["generation"]["stochastic"]["monte_carlo"]
    started, cpu = time.perf_counter(), cpu_seconds()
    window = calibration_window(
        ctx.market.close, years=cfg["fit_window_years"], min_coverage=cfg["min_coverage"],
        min_symbols_share=cfg["min_symbols_share"],
    )
    fit = fit_garch(window.log_returns, workers=int(ctx.config["performance"]["workers"]))
    seconds = time.perf_counter() - started
    return {
        "cpu_seconds": round(cpu_seconds() - cpu, 3),
        "symbols": len(window.symbols),
        "sessions": window.sessions,
        "workers": int(ctx.config["performance"]["workers"]),
        "seconds": round(seconds, 3),
        "target_seconds": 10.0,
        "passed": seconds <= 10.0,
        "fit_summary": fit.summary(),
    }


def stage_monte_carlo(data_path: str, args) -> dict:
    from scenarios_assets.core.library import storage
    from scenarios_assets.core.library.metrics import chunk_metrics
    from scenarios_assets.core.families.stochastic import chunk_size
    from scenarios_assets.core.library.validation import generate_family, validate_set

    ctx = load_context(data_path, "moderate", {"generation": {"stochastic": {"monte_carlo": {"num_scenarios": args.scenarios}}}})
    rss_before = peak_rss_bytes()
    started, cpu = time.perf_counter(), cpu_seconds()
    ss = generate_family("monte_carlo", ctx)
    seconds = time.perf_counter() - started
    cpu = cpu_seconds() - cpu
    rss = peak_rss_bytes()
    shape = ss.scenarios[0].returns.shape if ss.scenarios else (0, 0)
    started = time.perf_counter()
    validate_set(ss)
    validate_seconds = time.perf_counter() - started
    result = {
        "monte_carlo": {
            "scenarios": len(ss),
            "days": shape[0],
            "symbols": shape[1],
            "model": ss.metadata.get("model"),
            "seconds": round(seconds, 3),
            "cpu_seconds": round(cpu, 3),
            "target_seconds": 20.0,
            "peak_rss_gib": round(rss / GIB, 3),
            "peak_rss_gib_before_generation": round(rss_before / GIB, 3),
            "target_rss_gib": 2.5,
            "passed": seconds <= 20.0 and rss <= 2.5 * GIB,
            "correlation_stability": ss.metadata.get("correlation_stability"),
            "value_at_risk": ss.metadata.get("value_at_risk"),
            "failed_checks": ss.failed_checks,
            "validate_set_seconds": round(validate_seconds, 3),
            "peak_rss_gib_after_validation": round(peak_rss_bytes() / GIB, 3),
        }
    }
    with tempfile.TemporaryDirectory(dir=RESULTS) as tmp:
        # The Parquet parts of that set as a family step writes them: one part per chunk of paths.
        size = chunk_size(shape[0], shape[1])
        started = time.perf_counter()
        rows = 0
        for k in range(0, len(ss.scenarios), size):
            table = storage.timeseries_table(ss.scenarios[k : k + size])
            rows += table.num_rows
            storage.write_timeseries_part(table, Path(tmp) / "ts" / f"part-{k // size:05d}.parquet")
            del table
        parquet_seconds = time.perf_counter() - started
        parquet_bytes = sum(p.stat().st_size for p in (Path(tmp) / "ts").glob("*.parquet"))
        started = time.perf_counter()
        metrics_rows = sum(len(chunk_metrics(ss.scenarios[k : k + size])) for k in range(0, len(ss.scenarios), size))
        metrics_seconds = time.perf_counter() - started
    result["write"] = {
        "rows": rows,
        "timeseries_parquet_seconds": round(parquet_seconds, 3),
        "parquet_bytes": parquet_bytes,
        "target_seconds": 15.0,
        "passed": parquet_seconds <= 15.0,
        "metrics_rows": metrics_rows,
        "metrics_seconds": round(metrics_seconds, 3),
        "peak_rss_gib_after_writing": round(peak_rss_bytes() / GIB, 3),
    }
    return result


def stage_bootstrap(data_path: str, args) -> dict:
    from scenarios_assets.core.library.validation import generate_family

    ctx = load_context(data_path, "moderate", {"generation": {"stochastic": {"bootstrap": {"num_scenarios": args.bootstrap_scenarios}}}})
    started, cpu = time.perf_counter(), cpu_seconds()
    ss = generate_family("bootstrap", ctx)
    seconds = time.perf_counter() - started
    cpu = cpu_seconds() - cpu
    shape = ss.scenarios[0].returns.shape if ss.scenarios else (0, 0)
    return {
        "scenarios": len(ss),
        "days": shape[0],
        "symbols": shape[1],
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu, 3),
        "target_seconds": 2.0,
        "passed": seconds <= 2.0,
        "peak_rss_gib": round(peak_rss_bytes() / GIB, 3),
        "correlation_stability": ss.metadata.get("correlation_stability"),
    }


STAGES = {"fits": stage_fits, "monte_carlo": stage_monte_carlo, "bootstrap": stage_bootstrap}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", type=int, default=1000)
    parser.add_argument("--bootstrap-scenarios", type=int, default=500)
    parser.add_argument("--stage", choices=sorted(STAGES), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.stage:
        print(json.dumps(STAGES[args.stage](args.data, args)))
        return 0

    data_path = RESULTS / "synthetic_ohlcv.parquet"
    started = time.perf_counter()
    synthetic_ohlcv().to_parquet(data_path, index=False)
    result = {
        "benchmark": "bench_stochastic",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_start": os.getloadavg(),
            "note": "the 2 cores are shared with other jobs; compare wall seconds with cpu_seconds and the load",
        },
        "universe": {"symbols": N_SYMBOLS, "trading_days": N_DAYS, "build_seconds": round(time.perf_counter() - started, 3)},
    }
    for stage in ("fits", "monte_carlo", "bootstrap"):
        cmd = [sys.executable, __file__, "--stage", stage, "--data", str(data_path),
               "--scenarios", str(args.scenarios), "--bootstrap-scenarios", str(args.bootstrap_scenarios)]
        result.setdefault("loadavg_before_stage", {})[stage] = [round(x, 2) for x in os.getloadavg()]
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            result[stage] = {"error": proc.stderr[-2000:]}
            continue
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        if stage == "monte_carlo":
            result.update(out)
        else:
            result[stage] = out
        result.setdefault("process_seconds", {})[stage] = round(time.perf_counter() - started, 3)
    result["machine"]["loadavg_end"] = os.getloadavg()
    data_path.unlink(missing_ok=True)
    text = json.dumps(result, indent=2)
    (RESULTS / "bench_stochastic.json").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
