"""The optional MKL product path (cellgpt/engine/mkl_blas.py): the numbers, the layouts it takes
and refuses, the switch, and the OpenMP clash with PyTorch that once doubled the logits."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import numpy as np
import pytest

from cellgpt.engine import kernels, mkl_blas
from cellgpt.engine.parallel import for_chunks

LINUX_X86 = sys.platform == "linux" and platform.machine() == "x86_64"


@pytest.fixture
def mkl(monkeypatch: pytest.MonkeyPatch) -> mkl_blas.Mkl:
    monkeypatch.setenv(mkl_blas.ENV, "mkl")
    found = mkl_blas.get()
    assert found is not None
    return found


def _want(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a.astype(np.float64) @ b.astype(np.float64)


def test_which_products_take_mkl_and_on_how_many_threads(mkl, monkeypatch):
    """1 to MAX_ROWS rows are one call on MKL's threads; more rows are split by columns
    into one chunk per core, each chunk MKL on its own thread (see MAX_ROWS)."""
    calls = []
    real = mkl_blas.Mkl.product

    def spy(self, a, b, out=None, *, threads=0):
        calls.append((a.shape, b.shape[1], threads))
        return real(self, a, b, out, threads=threads)

    monkeypatch.setattr(mkl_blas.Mkl, "product", spy)
    rng = np.random.default_rng(6)
    b = rng.standard_normal((64, 3000), dtype=np.float32)
    for a in (rng.standard_normal(64, dtype=np.float32), rng.standard_normal((1, 64), np.float32)):
        np.testing.assert_allclose(kernels.matmul(a, b), _want(a, b), rtol=1e-4, atol=1e-4)
    assert calls == [((64,), 3000, 0), ((1, 64), 3000, 0)]  # one row: a vector, or a matrix
    calls.clear()
    few = rng.standard_normal((mkl_blas.MAX_ROWS, 64), dtype=np.float32)
    np.testing.assert_allclose(kernels.matmul(few, b), _want(few, b), rtol=1e-4, atol=1e-4)
    assert calls == [((mkl_blas.MAX_ROWS, 64), 3000, 0)]
    calls.clear()
    many = rng.standard_normal((mkl_blas.MAX_ROWS + 1, 64), dtype=np.float32)
    np.testing.assert_allclose(kernels.matmul(many, b), _want(many, b), rtol=1e-4, atol=1e-4)
    assert sum(cols for _, cols, _ in calls) == 3000  # every column once, in chunks
    assert {(shape, threads) for shape, _, threads in calls} == {(many.shape, 1)}


def test_a_product_into_a_column_block_of_a_bigger_result(mkl):
    rng = np.random.default_rng(7)
    a = rng.standard_normal((5, 64), dtype=np.float32)
    b = rng.standard_normal((64, 900), dtype=np.float32)
    out = np.full((5, 900), np.nan, dtype=np.float32)
    assert mkl.product(a, b[:, 300:700], out[:, 300:700], threads=1) is not None
    np.testing.assert_allclose(out[:, 300:700], _want(a, b)[:, 300:700], rtol=1e-4, atol=1e-4)
    assert np.isnan(out[:, :300]).all() and np.isnan(out[:, 700:]).all()  # nothing else written
    for bad in (out[:, ::2][:, :400], out[:4, :400], out[:, :400].astype(np.float64)):
        assert mkl.product(a, b[:, :400], bad) is None  # strided, wrong shape, wrong dtype


def test_by_default_products_leave_mkl_while_another_process_uses_the_cpu(mkl, monkeypatch):
    from cellgpt.engine import load_watch

    monkeypatch.delenv(mkl_blas.ENV)
    monkeypatch.setattr(load_watch, "machine_is_quiet", lambda: True)
    assert mkl_blas.for_rows(6) is mkl
    assert mkl_blas.for_rows(1) is mkl and mkl_blas.for_rows(mkl_blas.MAX_ROWS + 1) is None
    monkeypatch.setattr(load_watch, "machine_is_quiet", lambda: False)
    assert mkl_blas.for_rows(6) is None  # our split: OpenMP collapses under load
    assert mkl_blas.for_split() is mkl  # its chunks: MKL on one thread each, no OpenMP
    monkeypatch.setenv(mkl_blas.ENV, "mkl")
    assert mkl_blas.for_rows(6) is mkl  # asked for: MKL's bits whatever the load
    monkeypatch.setenv(mkl_blas.ENV, "numpy")
    monkeypatch.setattr(load_watch, "machine_is_quiet", lambda: True)
    assert mkl_blas.for_rows(6) is None and mkl_blas.for_split() is None


def test_the_test_extras_install_mkl_and_it_is_used_by_default(monkeypatch):
    monkeypatch.delenv(mkl_blas.ENV, raising=False)
    # The test extras depend on `mkl` on Linux x86-64: a silently missing library would
    # leave the fast path untested.
    assert LINUX_X86 and mkl_blas.library_path() is not None
    assert mkl_blas.backend() == "mkl"


@pytest.mark.parametrize("rows", [1, 2, 6, 64, 300])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_products_match_a_float64_reference(mkl, rows, dtype):
    rng = np.random.default_rng(rows)
    a = rng.standard_normal((rows, 96)).astype(dtype)
    b = rng.standard_normal((96, 700)).astype(dtype)
    got = mkl.product(a, b)
    assert got is not None and got.dtype == dtype and got.shape == (rows, 700)
    np.testing.assert_allclose(got, _want(a, b), rtol=1e-4, atol=1e-4)


def test_layouts_it_reads_directly(mkl):
    rng = np.random.default_rng(1)
    big = rng.standard_normal((10, 200), dtype=np.float32)
    wte = rng.standard_normal((5000, 64), dtype=np.float32)
    cases = {
        "one row (1-D)": (big[0, :64], wte.T),  # the output head: x · wteᵀ
        "rows of a wider matrix": (big[2:7, 10:74], wte[:64, :300]),  # lda, ldb > width
        "every other row": (big[::2, :64], wte[:64]),
        "a transposed view": (big[:4, :64], wte[100:400].T),
        "a transposed left operand": (wte[:64, :5].T, wte[:64, 5:300]),  # a key-major block
    }
    for name, (a, b) in cases.items():
        got = mkl.product(a, b)
        assert got is not None, name
        assert got.shape == (a.shape[0], b.shape[1]) if a.ndim == 2 else (b.shape[1],), name
        np.testing.assert_allclose(got, _want(a, b), rtol=1e-4, atol=1e-4, err_msg=name)


def test_layouts_it_leaves_to_numpy_still_give_the_product(mkl):
    rng = np.random.default_rng(2)
    a = rng.standard_normal((6, 128), dtype=np.float32)
    b = rng.standard_normal((128, 256), dtype=np.float32)
    refused = {
        "strided columns of a": (a[:, ::2], b[:64]),
        "strided b": (a[:, :64], b[:64, ::2]),
        "reversed columns of a": (a[:, ::-1], b),
        "reversed rows of b": (a, b[::-1]),
        "a broadcast row": (np.broadcast_to(a[0], (6, 128)), b),
        "mixed dtypes": (a[:, :64], b[:64].astype(np.float64)),
        "integers": (a[:, :64].astype(np.int64), b[:64].astype(np.int64)),
        "empty": (a[:0, :64], b[:64]),
        "3-D": (a.reshape(2, 3, 128), b),
    }
    for name, (x, y) in refused.items():
        assert mkl.product(x, y) is None, name
        np.testing.assert_allclose(kernels.matmul(x, y), np.matmul(x, y), rtol=1e-5, atol=1e-4)


def test_inside_a_pool_chunk_each_chunk_is_one_thread(mkl):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((8, 64), dtype=np.float32)
    b = rng.standard_normal((64, 3000), dtype=np.float32)
    out = np.empty((8, 3000), dtype=np.float32)

    def rows(start: int, stop: int) -> None:
        out[start:stop] = kernels.matmul(a[start:stop], b)

    for_chunks(8, rows, work=1e12)
    np.testing.assert_allclose(out, _want(a, b), rtol=1e-4, atol=1e-4)


TORCH_FIRST = """
import torch  # first, as a notebook comparing with Hugging Face would: its libgomp clashed
import numpy as np
from cellgpt.engine import kernels, mkl_blas
assert mkl_blas.backend() == "mkl"
kernels.matmul(np.ones((2, 64), np.float32), np.ones((64, 8), np.float32))  # MKL loaded
rng = np.random.default_rng(4)
wte = rng.standard_normal((50257, 64), dtype=np.float32)
w = rng.standard_normal((64, 256), dtype=np.float32)
wrong = 0
for _ in range(100):
    np.matmul(rng.standard_normal((1, 64), dtype=np.float32), w)  # OpenBLAS in between
    kernels.gelu(rng.standard_normal((6, 256), dtype=np.float32))  # our pool in between
    for x in (rng.standard_normal(64, dtype=np.float32), rng.standard_normal((6, 64), dtype=np.float32)):
        want = x.astype(np.float64) @ wte.T.astype(np.float64)
        wrong += bool(np.abs(mkl_blas.get().product(x, wte.T) - want).max() > 1e-3)
print("wrong", wrong)
"""


def test_with_pytorch_in_the_process_the_threads_still_split_the_work():
    """Intel's OpenMP under MKL plus PyTorch's libgomp made both MKL threads compute the same
    half of a one-row product: logits came out doubled, in ~1 product of 5 (torch imported
    first). A fresh process, so that the import order is the one that failed."""
    env = {**os.environ, mkl_blas.ENV: "mkl", "CELLGPT_THREADS": "2"}
    done = subprocess.run(
        [sys.executable, "-c", TORCH_FIRST], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["wrong", "0"], done.stdout


def test_the_switch(monkeypatch):
    monkeypatch.setenv(mkl_blas.ENV, "numpy")
    assert mkl_blas.get() is None and mkl_blas.backend() == "numpy"
    rng = np.random.default_rng(5)
    a = rng.standard_normal((6, 64), dtype=np.float32)
    b = rng.standard_normal((64, 256), dtype=np.float32)
    np.testing.assert_allclose(kernels.matmul(a, b), _want(a, b), rtol=1e-4, atol=1e-4)
    monkeypatch.setenv(mkl_blas.ENV, "openblas?")
    with pytest.raises(mkl_blas.MklUnavailable, match="expected 'mkl' or 'numpy'"):
        mkl_blas.get()


def test_asking_for_mkl_without_it_is_an_error_not_a_fallback(monkeypatch):
    monkeypatch.setattr(mkl_blas, "_loaded", {})
    monkeypatch.setattr(mkl_blas, "library_path", lambda: None)
    monkeypatch.setenv(mkl_blas.ENV, "mkl")
    with pytest.raises(mkl_blas.MklUnavailable, match=r"pip install \"cellgpt\[mkl\]\""):
        mkl_blas.get()
    monkeypatch.delenv(mkl_blas.ENV)
    assert mkl_blas.get() is None  # by default: numpy, quietly


def test_a_library_that_computes_wrong_numbers_is_refused(monkeypatch):
    monkeypatch.setattr(mkl_blas, "_loaded", {})
    monkeypatch.setattr(mkl_blas.Mkl, "product", lambda self, a, b: np.zeros((a.shape[0], 1)))
    monkeypatch.delenv(mkl_blas.ENV, raising=False)
    assert mkl_blas.get() is None
    monkeypatch.setattr(mkl_blas, "_loaded", {})
    monkeypatch.setenv(mkl_blas.ENV, "mkl")
    with pytest.raises(mkl_blas.MklUnavailable, match="came out wrong"):
        mkl_blas.get()


FORKED_CHILD = """
from concurrent.futures import ProcessPoolExecutor
import multiprocessing
import numpy as np
from cellgpt.engine import kernels, mkl_blas
assert mkl_blas.backend() == "mkl"
a = np.ones((6, 64), np.float32)
b = np.ones((64, 4096), np.float32)
kernels.matmul(a, b)  # the parent's OpenMP threads exist from here on


def child(_):
    return float(kernels.matmul(a, b)[0, 0])


with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as pool:
    print(list(pool.map(child, range(4))))
"""


def test_a_forked_child_computes_instead_of_waiting_for_its_parents_threads():
    """GNU OpenMP does not survive fork(): `cellgpt batch`'s forked workers hung in their
    first MKL product until children ran MKL on one thread."""
    env = {**os.environ, mkl_blas.ENV: "mkl", "CELLGPT_THREADS": "2"}
    done = subprocess.run(
        [sys.executable, "-c", FORKED_CHILD], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[64.0, 64.0, 64.0, 64.0]"


def test_loading_a_model_loads_mkl_with_it(monkeypatch, params_tiny_dir):
    """MKL's first use (~60-80 ms: the library and its self-check) is paid with the weights,
    not inside the first product cell, where `run --profile` showed it as 60% of a short
    prompt; a wrong CELLGPT_BLAS does not fail the load (the first product names it)."""
    from cellgpt.weights import models

    monkeypatch.setattr(mkl_blas, "_loaded", {})
    monkeypatch.setattr(models, "_params", {})
    monkeypatch.delenv(mkl_blas.ENV, raising=False)
    models.load_model_params(params_tiny_dir)
    assert mkl_blas._loaded.get("mkl") is not None
    monkeypatch.setattr(mkl_blas, "_loaded", {})
    monkeypatch.setattr(models, "_params", {})
    monkeypatch.setenv(mkl_blas.ENV, "bogus")
    assert models.load_model_params(params_tiny_dir) is not None
    with pytest.raises(mkl_blas.MklUnavailable, match="CELLGPT_BLAS='bogus'"):
        kernels.matmul(np.ones((2, 8), np.float32), np.ones((8, 4), np.float32))
