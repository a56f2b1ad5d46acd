"""How a run's steps execute: in process, as local processes, or as tasks on a dask.distributed cluster.

``scenarios_executor`` is the code location's executor. Its config picks one mode per run:

    execution: {config: {in_process: {}}}                    # the jobs' default: light runs, fastest
    execution: {config: {multiprocess: {max_concurrent: 2}}}  # CLI --parallel
    execution: {config: {dask: {cluster: {existing: {address: tcp://scheduler:8786}}}}}   # CLI --executor dask

The dask mode is dagster-dask's executor (same ``cluster`` config: existing, local, yarn, ssh, pbs, moab, sge,
lsf, slurm, oar, kube): each step of the run (one per scenario family in a severity run) becomes one task on
the cluster, and inside the Monte Carlo and bootstrap steps every chunk of paths becomes one more task on
the same cluster (:func:`chunk_client`; core/library/slices.py ``run_chunks_on``), so one family x severity is no
longer bound to one worker. dagster-dask is imported only when a run uses it, so loading the code location
stays fast. Only public Dagster APIs are used (the in-process and multiprocess modes delegate to Dagster's
own executor definitions).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any
from contextlib import contextmanager

from dagster import (
    Field,
    InitExecutorContext,
    Permissive,
    Selector,
    StringSource,
    executor,
    in_process_executor,
    multiple_process_executor_requirements,
    multiprocess_executor,
)

EXECUTORS = ("in_process", "multiprocess", "dask")
DASK_CLUSTER_TYPES = ("local", "yarn", "ssh", "pbs", "moab", "sge", "lsf", "slurm", "oar", "kube")

DASK_CONFIG = Field(
    {
        "cluster": Field(
            Selector(
                {
                    "existing": Field({"address": StringSource}, description="Address of a running dask scheduler."),
                    **{
                        kind: Field(Permissive(), is_required=False, description=f"{kind} cluster (dagster-dask)")
                        for kind in DASK_CLUSTER_TYPES
                    },
                }
            ),
            description="Where the steps run (dagster-dask's cluster config).",
        )
    },
    description="Run each step as a task on a dask.distributed cluster (dagster-dask).",
)


def _requirements(executor_config: dict):
    return multiple_process_executor_requirements() if set(executor_config) & {"multiprocess", "dask"} else []


@executor(
    name="scenarios_executor",
    config_schema=Field(
        Selector({"in_process": in_process_executor.config_schema.as_field(),
                  "multiprocess": multiprocess_executor.config_schema.as_field(), "dask": DASK_CONFIG}),
        default_value={"in_process": {}},  # light runs are fastest in process (DAGSTER_NOTES.md)
    ),
    requirements=_requirements,
)
def scenarios_executor(init_context):
    """In process, multiprocess, or dagster-dask on a dask.distributed cluster, chosen per run by config."""
    config = init_context.executor_config
    if "dask" in config:
        from dagster_dask.executor import DaskExecutor

        ((cluster_type, cluster_config),) = config["dask"]["cluster"].items()
        return DaskExecutor(cluster_type, cluster_config)
    ((kind, sub_config),) = config.items()
    definition = multiprocess_executor if kind == "multiprocess" else in_process_executor
    return definition.executor_creation_fn(InitExecutorContext(
        job=init_context.job, executor_def=definition, executor_config=sub_config, instance=init_context.instance))


@contextmanager
def chunk_client(run_config: Mapping[str, Any]) -> Iterator[object | None]:
    """The dask.distributed client a family step sends its chunks of paths to: in a run of the dask executor
    (``execution.config.dask``, from the CLI's ``--executor dask`` or the same run config in the UI), the client
    of the worker the step runs on (``worker_client``: the step leaves the worker's thread pool while it waits,
    so the chunks can use that thread too); None elsewhere (the chunks run in the step's process)."""
    execution = ((run_config or {}).get("execution") or {}).get("config") or {}
    if "dask" not in execution:
        yield None
        return
    from distributed import get_worker, worker_client

    try:
        get_worker()
    except ValueError:  # not on a worker (a step executed some other way): chunks stay in process
        yield None
        return
    with worker_client() as client:
        yield client


def execution_config(kind: str, workers: int = 2, dask_scheduler: str | None = None) -> dict:
    """The ``execution.config`` of a run for an executor kind (see module doc)."""
    if kind == "dask":
        if not dask_scheduler:
            raise ValueError("the dask executor needs a scheduler address (start one with local_dask_cluster)")
        return {"dask": {"cluster": {"existing": {"address": dask_scheduler}}}}
    if kind == "multiprocess":
        # Step processes fork from a server that imported Dagster and the code location once (Dagster preloads
        # the job's module), instead of each spawning a fresh interpreter: about 2 s less per step here.
        return {"multiprocess": {"max_concurrent": workers, "start_method": {"forkserver": {}}}}
    return {"in_process": {}}


@contextmanager
def local_dask_cluster(workers: int = 2, processes: bool = True, quiet: bool = False) -> Iterator[str]:
    """A dask.distributed cluster on this machine, loopback only, one thread per worker (Dagster steps are not
    thread-safe); yields the scheduler address and shuts the cluster down afterwards. ``quiet`` keeps the
    workers' warnings (Dagster beta notices, dask's sizeof estimates of step results) off the terminal."""
    import logging

    from dask.distributed import LocalCluster

    extra: dict = {}
    saved = os.environ.get("PYTHONWARNINGS")
    if quiet:
        logging.getLogger("distributed").setLevel(logging.ERROR)
        extra = {"silence_logs": logging.ERROR}
        os.environ["PYTHONWARNINGS"] = "ignore"  # read by the worker interpreters when they start
    try:
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=processes,
            host="127.0.0.1",
            protocol="tcp",
            dashboard_address=None,
            **extra,
        )
    finally:
        if quiet:
            os.environ.pop("PYTHONWARNINGS") if saved is None else os.environ.update(PYTHONWARNINGS=saved)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()
