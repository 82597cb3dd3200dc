"""Parse many CSV tables into .npy files on all cores.

pandas' CSV parser holds the GIL, so threads do not help; we start plain worker
processes (`python -m cellgpt.weights.parse_pool`) rather than multiprocessing, which would
re-import the caller's __main__ and fork threads we do not own. Each worker gets a
balanced share of the files as JSON on stdin and prints one JSON line per finished file;
the parent turns those lines into progress callbacks. Anything a worker fails to deliver
is parsed in the parent, so a broken worker can slow a load down but not break it.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cellgpt.weights.cache import write_npy
from cellgpt.weights.csv_tables import read_csv
from cellgpt.weights.errors import ParamsError

# Below this much CSV, starting workers costs more than it saves.
POOL_MIN_BYTES = 32 << 20


@dataclass(frozen=True)
class ParseJob:
    name: str
    csv: str
    shape: tuple[int, ...]
    npy: str
    size: int  # CSV bytes, for balancing and progress


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def parse_one(job: ParseJob) -> dict[str, Any]:
    """Parse one table and write its .npy; returns the .npy's manifest fields."""
    return write_npy(Path(job.npy), read_csv(job.csv, job.shape))


def parse_all(jobs: list[ParseJob], workers: int | None = None) -> Iterator[tuple[ParseJob, Any]]:
    """Yield (job, npy fields) as tables finish, in parallel when the work is big."""
    workers = cpu_count() if workers is None else workers
    total = sum(job.size for job in jobs)
    if workers < 2 or len(jobs) < 2 or total < POOL_MIN_BYTES:
        for job in jobs:
            yield job, parse_one(job)
        return
    bins = _balance(jobs, min(workers, len(jobs)))
    results: queue.Queue[tuple[str, dict[str, Any] | None]] = queue.Queue()
    started = []
    try:
        for share in bins:
            started.append(_start(share, results))
    except OSError:  # cannot start a Python (embedded interpreter, limits): the rest is ours
        pass
    by_name = {job.name: job for job in jobs}
    pending = set(by_name)
    try:
        alive = len(started)
        while alive:
            name, payload = results.get()
            if payload is None:  # a worker's output ended
                alive -= 1
                continue
            if "error" in payload:
                raise ParamsError(payload["error"])
            pending.discard(name)
            yield by_name[name], payload
    finally:
        for proc, pump in started:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            pump.join(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()
    for name in [job.name for job in jobs if job.name in pending]:  # worker died: do it here
        yield by_name[name], parse_one(by_name[name])


def _balance(jobs: list[ParseJob], n: int) -> list[list[ParseJob]]:
    """Largest first onto the lightest bin: near-equal work per worker."""
    bins: list[list[ParseJob]] = [[] for _ in range(n)]
    loads = [0] * n
    for job in sorted(jobs, key=lambda j: -j.size):
        k = loads.index(min(loads))
        bins[k].append(job)
        loads[k] += job.size
    return [b for b in bins if b]


def _start(
    share: list[ParseJob], results: queue.Queue[tuple[str, dict[str, Any] | None]]
) -> tuple[subprocess.Popen[str], threading.Thread]:
    root = str(Path(__file__).resolve().parents[2])  # so the worker imports this cellgpt
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    env["OMP_NUM_THREADS"] = env["OPENBLAS_NUM_THREADS"] = "1"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cellgpt.weights.parse_pool"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps([job.__dict__ for job in share]))
    proc.stdin.close()
    stdout = proc.stdout

    def pump() -> None:
        for line in stdout:
            try:
                message = json.loads(line)
                results.put((message["name"], message["result"]))
            except (ValueError, KeyError, TypeError):
                continue  # not ours; the job stays pending and is redone
        results.put(("", None))

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return proc, thread


def _worker_main() -> None:
    for raw in json.load(sys.stdin):
        job = ParseJob(**{**raw, "shape": tuple(raw["shape"])})
        try:
            result: dict[str, Any] = parse_one(job)
        except ParamsError as exc:
            result = {"error": str(exc)}
        print(json.dumps({"name": job.name, "result": result}), flush=True)
        if "error" in result:
            return


if __name__ == "__main__":
    _worker_main()
