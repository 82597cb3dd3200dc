"""The chunked runner behind the fast kernels: covers the range exactly once, runs nested
calls inline (no pool deadlock), propagates errors, and restores the BLAS thread count."""

from __future__ import annotations

import itertools
import threading

import pytest

from cellgpt.engine import parallel


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
