"""Shared fixtures: the bundled real market data and generation contexts built from it."""

from __future__ import annotations

import os
import warnings

import pytest

os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
warnings.filterwarnings("ignore", category=DeprecationWarning)

from scenarios_assets.core.models.config import config_hash  # noqa: E402
from scenarios_assets.core.data.config_file import load_config  # noqa: E402
from scenarios_assets.core.families.context import GenerationContext  # noqa: E402
from scenarios_assets.core.data.market import build_economic, load_market_data, read_economic  # noqa: E402
from scenarios_assets.core.data.paths import BUNDLED_ECONOMIC, BUNDLED_OHLCV  # noqa: E402


# Tests `make test` leaves out (it runs -m "not live and not browser and not postgres and not scale"); `make
# test-all` and CI run everything. One table for the suite: "file.py::" marks a whole file, "file.py::test_name" a
# test (and its parametrisations). test_markers.py checks that every entry still names a collected test.
MARKED: dict[str, tuple[str, ...]] = {
    "live": (
        "test_live_e2e.py::",  # dagster dev with both code locations, ~2-4 min
        "test_dask.py::test_dask_cluster_run_equals_in_process_run",  # a local dask.distributed cluster, ~1.5 min
        "test_chunk_tasks.py::test_chunks_on_two_worker_processes_equal_the_in_process_slice",  # a 2-worker cluster, ~1 min
        "test_s3_dask.py::",  # moto's S3 server and a 2-worker dask cluster: the library on S3, ~3 min
        "test_api.py::test_live_server_serves_and_runs_a_generation_on_dagster",  # uvicorn + a Dagster generation
        "test_footprint.py::test_cancel_stops_a_running_generation_and_frees_the_slot",  # two real generations
    ),
    "browser": ("test_report.py::test_report_renders_in_headless_chromium",),
    "postgres": ("test_postgres.py::", "test_symbols.py::test_postgres_source_respells_symbols_in_sql"),
    "scale": (  # the whole library built twice through Dagster and compared byte for byte, ~1.5-2.5 min
        "test_dagster_graph.py::test_whole_graph_materialises_with_all_checks_passing",
        "test_dagster_graph.py::test_same_data_config_seed_give_identical_outputs",
        "test_dagster_graph.py::test_severity_is_monotone_for_every_family",
        "test_builds.py::test_cli_partial_run_keeps_the_library",  # several CLI builds of the library, ~1.5 min
        "test_footprint.py::test_memory_factors_match_measured_allocations",  # three measuring processes, ~3 min
    ),
}


def marker_entries() -> list[tuple[str, str]]:
    return [(marker, entry) for marker, entries in MARKED.items() for entry in entries]


def pytest_collection_modifyitems(config, items):
    for item in items:
        node = item.nodeid.rsplit("/", 1)[-1]  # "test_x.py::test_name[param]"
        for marker, entry in marker_entries():
            if node == entry or node.startswith(entry if entry.endswith("::") else (entry + "[", entry + "::")):
                item.add_marker(marker)


@pytest.fixture(scope="session")
def market():
    """The bundled real market data (all symbols, full history)."""
    return load_market_data(BUNDLED_OHLCV)


@pytest.fixture(scope="session")
def economic(market):
    return build_economic(market, read_economic(BUNDLED_ECONOMIC))


@pytest.fixture(scope="session")
def make_ctx(market, economic):
    """make_ctx(severity, overrides=None, market=None) -> GenerationContext on the bundled data."""

    def make(severity: str, overrides: dict | None = None, market_data=None) -> GenerationContext:
        config = load_config(None, overrides)
        return GenerationContext(market_data or market, economic, config, config_hash(config), severity)

    return make
