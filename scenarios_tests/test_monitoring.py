import numpy as np

from scenarios_assets.defs.monitoring import markdown_table, measured


def test_step_peak_sees_transient_memory_and_is_per_step():
    with measured() as big:
        block = np.ones((40, 1_000_000))  # 305 MiB, freed before the step ends
        block.sum()
        del block
    with measured() as small:
        np.ones(1000).sum()
    assert big["peak_rss_mib"] - big["rss_mib_before"] > 250
    assert big["rss_mib_after"] - big["rss_mib_before"] < 100
    # The kernel's high-water mark remembers the first step; the per-step peak of the second does not.
    assert small["process_peak_rss_mib"] >= big["peak_rss_mib"] - 1
    assert small["peak_rss_mib"] - small["rss_mib_before"] < 50


def test_markdown_table():
    assert markdown_table([]) == "_none_"
    assert markdown_table([{"a": 1, "b": "x"}]) == "| a | b |\n|---|---|\n| 1 | x |"
