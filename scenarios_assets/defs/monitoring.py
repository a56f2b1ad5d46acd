"""Step-level measurements reported as asset metadata (time and memory of the step)."""


import resource
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psutil

SAMPLE_SECONDS = 0.02


@contextmanager
def measured() -> Iterator[dict]:
    """Yield a dict that holds, after the block, its wall seconds and memory figures in MiB.

    ``peak_rss_mib`` is the step's own peak: the process RSS sampled every 20 ms while the block runs
    (the kernel's high-water mark, ``process_peak_rss_mib``, also counts earlier steps of an in-process
    run). GARCH fit worker processes are children and are not included.
    """
    figures: dict = {}
    process = psutil.Process()
    rss_before = process.memory_info().rss
    peak = [rss_before]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(SAMPLE_SECONDS):
            peak[0] = max(peak[0], process.memory_info().rss)

    sampler = threading.Thread(target=sample, name="rss-sampler", daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        yield figures
    finally:
        done.set()
        sampler.join()
        rss_after = process.memory_info().rss
        high_water_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        high_water = high_water_kib * (1 if sys.platform == "darwin" else 1024)
        figures["wall_seconds"] = round(time.perf_counter() - started, 3)
        figures["rss_mib_before"] = round(rss_before / 2**20, 1)
        figures["rss_mib_after"] = round(rss_after / 2**20, 1)
        figures["peak_rss_mib"] = round(max(peak[0], rss_after) / 2**20, 1)
        figures["process_peak_rss_mib"] = round(high_water / 2**20, 1)


def markdown_table(rows: list[dict]) -> str:
    """A small Markdown table for asset metadata (the UI renders it)."""
    if not rows:
        return "_none_"
    headers = list(rows[0])
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(row[h]) for h in headers) + " |" for row in rows]
    return "\n".join(lines)
