"""Where shards run: in this process, in a local process pool using every core, or on an
existing Dask distributed cluster. Each worker process loads the model once (a pool
initializer, or the per-process evaluator cache on a Dask worker) and at most a few shards
per worker are in flight, so memory stays bounded by the shard size."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

from cellgpt.batchrun.evaluate import Setup, Shard, ShardResult, init_worker, run_shard

SCHEDULERS = ("processes", "inline", "dask")
IN_FLIGHT = 2  # shards per worker submitted ahead


def cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def execute(
    setup: Setup,
    shards: list[Shard],
    *,
    scheduler: str = "processes",
    workers: int | None = None,
    address: str | None = None,
) -> Iterator[ShardResult]:
    """Yield each shard's result as it completes (not in order)."""
    if scheduler not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {scheduler!r} (choose from {', '.join(SCHEDULERS)})")
    if scheduler == "dask":
        yield from _dask(setup, shards, address)
        return
    n = min(workers or cores(), len(shards))
    if scheduler == "inline" or n <= 1:
        for shard in shards:  # one process: its kernels use every core's thread
            yield run_shard(setup, shard)
        return
    threads = max(1, cores() // n)
    with ProcessPoolExecutor(n, initializer=init_worker, initargs=(setup, threads)) as pool:
        yield from _bounded(lambda s: pool.submit(run_shard, setup, s), shards, n, _wait_futures)


def _wait_futures(pending: set[Any]) -> tuple[set[Any], set[Any]]:
    done, rest = wait(pending, return_when=FIRST_COMPLETED)
    return set(done), set(rest)


def _bounded(submit: Any, shards: Iterable[Shard], n: int, wait_some: Any) -> Iterator[Any]:
    todo = iter(shards)
    pending: set[Any] = set()
    while True:
        while len(pending) < n * IN_FLIGHT:
            shard = next(todo, None)
            if shard is None:
                break
            pending.add(submit(shard))
        if not pending:
            return
        done, pending = wait_some(pending)
        for future in done:
            yield future.result()


def _dask(setup: Setup, shards: list[Shard], address: str | None) -> Iterator[ShardResult]:
    try:
        from distributed import Client
        from distributed import wait as dask_wait
    except ImportError as exc:  # pragma: no cover - the batch extra installs it
        raise RuntimeError(
            "--scheduler dask needs dask[distributed] (pip install cellgpt[batch])"
        ) from exc
    if not address:
        raise ValueError("--scheduler dask needs --address tcp://HOST:PORT of a running scheduler")
    with Client(address) as client:
        n = max(1, len(client.scheduler_info().get("workers", {})))

        def submit(shard: Shard) -> Any:
            # pure=False: a rerun must compute again; each worker keeps its own evaluator.
            return client.submit(run_shard, setup, shard, pure=False)

        def wait_some(pending: set[Any]) -> tuple[set[Any], set[Any]]:
            done, rest = dask_wait(list(pending), return_when="FIRST_COMPLETED")
            return set(done), set(rest)

        yield from _bounded(submit, shards, n, wait_some)
