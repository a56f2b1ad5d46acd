"""Chunks of paths as tasks on a dask.distributed cluster: the slice is the in-process slice, value for value.

A LocalCluster of 2 worker processes (one thread each, loopback only) runs the chunks of Monte Carlo and
bootstrap sets; the in-process reference uses another chunk size. The model is fitted once, in this process:
the workers' fit cache stays empty. Also the statistics merge (SetStats.merge) on its own.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scenarios_assets.core.library import slices
from scenarios_assets.core.families.registry import family_stream
from scenarios_assets.core.library.validation import SetStats
from scenarios_assets.defs.executors import local_dask_cluster

N = 13  # scenarios per set: chunks of 4 (4, 4, 4, 1) on the cluster, 5 and 13 in process


def read_parts(directory) -> pa.Table:
    tables = [pq.read_table(p) for p in sorted(directory.glob("part-*.parquet"))]
    plain = [t.cast(pa.schema([pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type)
                               for f in t.schema])) for t in tables]
    return pa.concat_tables(plain).combine_chunks()


def worker_fit_cache_sizes(client) -> list[int]:
    def size():
        from scenarios_assets.core.engines import garch

        return len(garch._FIT_CACHE)

    return sorted(client.run(size).values())


@pytest.fixture(scope="module")
def cluster_client():
    from dask.distributed import Client

    with local_dask_cluster(workers=2, processes=True, quiet=True) as address, Client(address) as client:
        yield client


@pytest.mark.parametrize("family", ["monte_carlo", "bootstrap"])
def test_chunks_on_two_worker_processes_equal_the_in_process_slice(family, make_ctx, tmp_path, cluster_client):
    def stream(chunk):
        overrides = {"generation": {"stochastic": {family: {"num_scenarios": N}}}, "performance": {"paths_per_chunk": chunk}}
        return family_stream(family, make_ctx("severe", overrides))

    seen = []
    (tmp_path / "dask").mkdir()
    on_cluster = slices.write_slice(stream(4), tmp_path / "dask", client=cluster_client, progress=seen.append)
    assert len(list((tmp_path / "dask" / slices.TIMESERIES_PARTS).glob("*.parquet"))) == 4  # one part per chunk task
    assert not list((tmp_path / "dask").glob("records-part-*"))  # concatenated into records.jsonl, in order
    assert seen and seen[-1].done == N and [p.done for p in seen] == sorted(p.done for p in seen)
    assert worker_fit_cache_sizes(cluster_client) == [0, 0]  # fitted here once, never on a worker
    for chunk in (5, N):
        directory = tmp_path / f"local{chunk}"
        directory.mkdir()
        local = slices.write_slice(stream(chunk), directory)
        assert (tmp_path / "dask" / slices.RECORDS_FILE).read_bytes() == (directory / slices.RECORDS_FILE).read_bytes()
        for kind in (slices.TIMESERIES_PARTS, slices.METRICS_PARTS, slices.PORTFOLIO_PARTS):
            assert read_parts(tmp_path / "dask" / kind).equals(read_parts(directory / kind)), (chunk, kind)
        assert on_cluster.to_json() | {"slice_id": ""} == local.to_json() | {"slice_id": ""}
        manifest = json.loads((tmp_path / "dask" / slices.MANIFEST_FILE).read_text())
        assert manifest["validation"] == json.loads(json.dumps(local.validation))
    assert on_cluster.count == N and on_cluster.rows == read_parts(tmp_path / "dask" / slices.TIMESERIES_PARTS).num_rows > 0
    # set figures across the paths of every chunk (VaR across paths, the pooled correlation sample's stability)
    assert on_cluster.metadata["value_at_risk"] == local.metadata["value_at_risk"] and local.metadata["value_at_risk"]
    assert on_cluster.metadata["correlation_stability"] == local.metadata["correlation_stability"]


def test_set_stats_of_chunks_merge_into_the_stats_of_the_whole_set(make_ctx):
    from scenarios_assets.core.library.validation import generate_family

    ss = generate_family("bootstrap", make_ctx("moderate", {"generation": {"stochastic": {"bootstrap": {"num_scenarios": 9}}}}))
    whole = SetStats("bootstrap", "moderate", correlation_paths=9)
    for s in ss.scenarios:
        whole.add(s)
    merged = SetStats("bootstrap", "moderate", correlation_paths=9)
    for start in (0, 2, 7):
        stop = {0: 2, 2: 7, 7: 9}[start]
        part = SetStats("bootstrap", "moderate", correlation_paths=9, offset=start)
        for s in ss.scenarios[start:stop]:
            part.add(s)
        merged.merge(part)
    assert merged.ids == whole.ids and merged.total_returns == whole.total_returns
    assert (merged.tail_total, merged.tail_beyond) == (whole.tail_total, whole.tail_beyond) and whole.tail_total > 0
    assert np.array_equal(merged.correlation_sample(), whole.correlation_sample())
    out_of_order = SetStats("bootstrap", "moderate", offset=5)
    with pytest.raises(ValueError, match="do not follow"):
        SetStats("bootstrap", "moderate").merge(out_of_order)
