"""The chunked runner behind the fast kernels: covers the range exactly once, runs nested
calls inline (no pool deadlock), propagates errors, and restores the BLAS thread count."""

from __future__ import annotations

import itertools
import threading

import pytest

from cellgpt.engine import parallel


@pytest.fixture(autouse=True)
def no_foreign_spin(monkeypatch):
    """An MKL product of an earlier test may have just run: its spin window would keep
    these tests' chunks inline."""
    monkeypatch.setattr(parallel, "_foreign_spin_until", [0.0])


@pytest.mark.parametrize("n,parts", [(1, 2), (7, 2), (10, 3), (5, 8)])
def test_chunks_cover_the_range_once(n, parts):
    got = parallel.chunks(n, parts)
    assert got[0][0] == 0 and got[-1][1] == n
    assert all(a < b for a, b in got) and all(b == c for (_, b), (c, _) in itertools.pairwise(got))
    assert len(got) == min(n, parts)


def test_for_chunks_runs_every_chunk_nested_calls_inline(monkeypatch):
    monkeypatch.setattr(parallel, "WORKERS", 3)
    seen: list[tuple[int, int, str]] = []
    lock = threading.Lock()

    def outer(start: int, stop: int) -> None:
        inner_seen = []
        parallel.for_chunks(4, lambda a, b: inner_seen.append((a, b)), work=1e9)
        assert inner_seen == [(0, 4)]  # nested: one inline chunk
        with lock:
            seen.append((start, stop, threading.current_thread().name))

    parallel.for_chunks(9, outer, work=1e9)
    assert sorted((a, b) for a, b, _ in seen) == [(0, 3), (3, 6), (6, 9)]
    parallel.for_chunks(9, lambda a, b: seen.append((a, b, "small")), work=10)
    assert seen[-1] == (0, 9, "small")  # too little work for a hand-off


def test_errors_propagate_and_blas_threads_are_restored(monkeypatch):
    monkeypatch.setattr(parallel, "WORKERS", 2)
    blas = parallel._get_blas()
    before = blas.get() if blas.get else None

    def boom(start: int, stop: int) -> None:
        if start:
            raise ValueError("chunk failed")

    with pytest.raises(ValueError, match="chunk failed"):
        parallel.for_chunks(4, boom, work=1e9)
    if blas.get:
        assert blas.get() == before


def test_no_split_while_another_librarys_threads_spin(monkeypatch):
    """Right after a product on MKL's threads their workers spin on the other core; a split
    then competes with them (FOREIGN_SPIN), so the work runs inline until the spin is over."""
    monkeypatch.setattr(parallel, "WORKERS", 2)
    now = [100.0]
    monkeypatch.setattr(parallel.time, "perf_counter", lambda: now[0])
    seen: list[tuple[int, int]] = []
    parallel.foreign_threads_ran()
    parallel.for_chunks(8, lambda a, b: seen.append((a, b)), work=1e12, blas=False)
    assert seen == [(0, 8)]
    now[0] += parallel.FOREIGN_SPIN * 1.01
    seen.clear()
    parallel.for_chunks(8, lambda a, b: seen.append((a, b)), work=1e12, blas=False)
    assert sorted(seen) == [(0, 4), (4, 8)]


def test_a_product_on_mkls_threads_starts_the_spin_window(monkeypatch):
    import numpy as np

    from cellgpt.engine import mkl_blas

    monkeypatch.setenv(mkl_blas.ENV, "mkl")
    mkl = mkl_blas.get()  # loading it runs a self-check on its threads
    parallel._foreign_spin_until[0] = 0.0
    a, b = np.ones((4, 64), np.float32), np.ones((64, 256), np.float32)
    assert mkl.product(a, b, threads=1) is not None  # one thread: no OpenMP team
    assert parallel._foreign_spin_until[0] == 0.0
    monkeypatch.setattr(mkl_blas, "WORKERS", 2)
    before = parallel.time.perf_counter()
    assert mkl.product(a, b) is not None
    assert parallel._foreign_spin_until[0] >= before + parallel.FOREIGN_SPIN
