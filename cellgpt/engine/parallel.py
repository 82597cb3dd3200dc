"""Coarse-grained parallelism for the big numpy kernels (matmul, softmax, ...).

Why not just let OpenBLAS thread each call? On a small, shared machine its fine-grained
threading is fragile: every GEMM synchronises its worker threads many times, and when another
process holds a core each sync can cost a scheduler time slice (we measured a 14-MFLOP sgemm
take 15 ms with 2 BLAS threads and 1.2 ms with 1; q·kᵀ for 12 heads at 1024 tokens 190 ms vs
26 ms). So the kernels here split their work into one contiguous chunk per core, run the
chunks on a small thread pool (numpy releases the GIL), and keep BLAS single-threaded inside:
one synchronisation per call instead of hundreds. Small work runs inline, still with
single-threaded BLAS.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor


def _default_workers() -> int:
    env = os.environ.get("CELLGPT_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


WORKERS = _default_workers()
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_local = threading.local()  # .busy: this thread already runs a chunk (no nesting)


class _Blas:
    """openblas_{get,set}_num_threads of the OpenBLAS numpy loaded, found via ctypes (the same
    symbols threadpoolctl uses). Missing library or symbols: every call is a no-op."""

    def __init__(self) -> None:
        self.get: Callable[[], int] | None = None
        self.set: Callable[[int], None] | None = None
        for path in _loaded_libraries("openblas"):
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for prefix in ("scipy_openblas", "openblas"):
                for suffix in ("64_", ""):
                    getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                    setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                    if getter is not None and setter is not None:
                        getter.restype, setter.argtypes = ctypes.c_int, [ctypes.c_int]
                        self.get, self.set = getter, setter
                        return


def _loaded_libraries(needle: str) -> list[str]:
    import numpy  # noqa: F401  (make sure numpy's BLAS is loaded before we look)

    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return []
    paths = {line.split()[-1] for line in lines if needle in line.lower() and ".so" in line}
    return sorted(p for p in paths if p.startswith("/"))


_blas: _Blas | None = None


def _get_blas() -> _Blas:
    global _blas
    if _blas is None:
        _blas = _Blas()
    return _blas


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """BLAS calls inside run on the calling thread only (restored afterwards)."""
    blas = _get_blas()
    if blas.get is None or blas.set is None or in_pool_thread():
        yield
        return
    before = blas.get()
    if before != 1:
        blas.set(1)
    try:
        yield
    finally:
        if before != 1:
            blas.set(before)


_one_row_steps = threading.local()  # .on: a loop of one-row steps is running (generation)


@contextlib.contextmanager
def one_row_steps() -> Iterator[None]:
    """Marks a loop whose runs compute one new row each (generating tokens): its one-row
    products may use OpenBLAS's own threads (see kernels.matmul). Outside such a loop they
    do not, so that OpenBLAS's threads, which spin for a while after each call, never
    compete with the pool's in the bigger products that follow."""
    before = getattr(_one_row_steps, "on", False)
    _one_row_steps.on = True
    try:
        yield
    finally:
        _one_row_steps.on = before


def in_one_row_steps() -> bool:
    return getattr(_one_row_steps, "on", False)


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max(1, WORKERS - 1), thread_name_prefix="cellgpt-par")
        return _pool


def _forget_pool() -> None:
    """In a forked child the pool's threads do not exist: start a fresh pool on demand."""
    global _pool
    _pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def in_pool_thread() -> bool:
    """True inside a chunk that for_chunks runs (on the pool or on the calling thread): work
    started here must not split again."""
    return bool(getattr(_local, "busy", False))


def _run_chunk(fn: Callable[[int, int], None], start: int, stop: int) -> None:
    _local.busy = True
    try:
        fn(start, stop)
    finally:
        _local.busy = False


def chunks(n: int, parts: int) -> list[tuple[int, int]]:
    """[0, n) cut into `parts` contiguous, nearly equal, non-empty ranges."""
    parts = max(1, min(parts, n))
    edges = [n * p // parts for p in range(parts + 1)]
    return [(edges[p], edges[p + 1]) for p in range(parts) if edges[p] < edges[p + 1]]


# Below this much work (in multiply-adds of a big matrix product, ~0.2 ms on one core) a
# split does not pay: handing a chunk to the pool and waiting for it costs ~70 µs here (two
# cross-thread wake-ups while the caller holds the GIL), and a one-row product is bound by
# memory, not arithmetic. Measured: greedy generation at GPT-2-small shapes 21.7 tok/s with
# 2e6, 23.6 with 2e7.
MIN_WORK = 2e7


# Another library's worker threads (MKL's OpenMP team) spin for a few ms after each call,
# waiting for the next: a split of ours in that time competes with them for the other core
# and ran slower than no split (GELU of 64 x 3072 right after a 64-row MKL product: 382 µs
# split in two, 285 inline; 610 against 500 at 128 rows). Measured spin: ~3 ms.
FOREIGN_SPIN = 0.004
_foreign_spin_until = [0.0]


def foreign_threads_ran() -> None:
    """Called after a product on another library's threads: splits wait out their spin."""
    _foreign_spin_until[0] = time.perf_counter() + FOREIGN_SPIN


def for_chunks(
    n: int,
    fn: Callable[[int, int], None],
    *,
    work: float,
    min_work: float = MIN_WORK,
    blas: bool = True,
) -> None:
    """Call fn(start, stop) over [0, n) — in one chunk per worker if the total `work` (about
    the number of multiply-adds; see kernels.py for element-wise weights) is worth a thread
    hand-off and no other library's threads are spinning (FOREIGN_SPIN), else inline. BLAS
    stays single-threaded either way; chunks must write disjoint outputs. `blas=False`: fn
    makes no BLAS call, so BLAS's thread count is left alone (switching it costs 2-10 µs,
    more right after a threaded product: ~100 element-wise kernels per generated token
    paid that)."""
    if not blas:
        if _inline(n, work, min_work):
            fn(0, n)
        else:
            _split(n, fn)
        return
    with single_threaded_blas():
        if _inline(n, work, min_work):
            fn(0, n)
            return
        _split(n, fn)


def _inline(n: int, work: float, min_work: float) -> bool:
    if WORKERS <= 1 or n < 2 or work < min_work or in_pool_thread():
        return True
    return time.perf_counter() < _foreign_spin_until[0]  # see FOREIGN_SPIN


def _split(n: int, fn: Callable[[int, int], None]) -> None:
    """fn over one chunk per worker: the first on this thread, the others on the pool."""
    parts = chunks(n, WORKERS)
    futures = [_executor().submit(_run_chunk, fn, a, b) for a, b in parts[1:]]
    try:
        _run_chunk(fn, *parts[0])
    finally:
        for future in futures:
            future.result()
