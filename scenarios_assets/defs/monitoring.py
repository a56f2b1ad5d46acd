"""Step-level measurements reported as asset metadata (time and memory of the step)."""


import resource
import sys
import time
from contextlib import contextmanager

import psutil


@contextmanager
def measured():
    """Yield a dict that holds, after the block, its wall seconds and the process's RSS figures in MiB."""
    figures: dict = {}
    process = psutil.Process()
    rss_before = process.memory_info().rss
    started = time.perf_counter()
    try:
        yield figures
    finally:
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = peak_kib * (1 if sys.platform == "darwin" else 1024)
        figures["wall_seconds"] = round(time.perf_counter() - started, 3)
        figures["rss_mib_before"] = round(rss_before / 2**20, 1)
        figures["rss_mib_after"] = round(process.memory_info().rss / 2**20, 1)
        figures["peak_rss_mib"] = round(peak / 2**20, 1)


def markdown_table(rows: list[dict]) -> str:
    """A small Markdown table for asset metadata (the UI renders it)."""
    if not rows:
        return "_none_"
    headers = list(rows[0])
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(row[h]) for h in headers) + " |" for row in rows]
    return "\n".join(lines)
