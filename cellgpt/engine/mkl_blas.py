"""Intel MKL's gemm for the 2-D products, when the optional `mkl` package is installed.

Why: numpy's OpenBLAS packs the whole weight matrix on every call, which for a product of a
few rows (a short prompt) costs more than the arithmetic. MKL's threaded gemm does not: the
48 block products of a 6-token forward at GPT-2-small shapes take ~36-40 ms in MKL and ~62
in OpenBLAS on the 2-core VM, as in PyTorch (which is built on MKL). From ~256 rows on both
are within ~10%. `pip install "cellgpt[mkl]"` installs it; nothing else changes.
kernels.matmul hands it products of 1 to MAX_ROWS rows on its own threads, and the chunks of
its own split of bigger products on one thread each (see MAX_ROWS). One row (a generated
token, the output head) is a matrix-vector product bound by memory: MKL's threads read the
weights as fast as OpenBLAS's, faster than our split, and keep OpenBLAS's threads (which
would spin beside MKL's) out of the process.

Loaded through ctypes from the `mkl` wheel's libmkl_rt (LP64 interface, GNU OpenMP threads),
then checked on a few products against numpy. `CELLGPT_BLAS=numpy` turns it off;
`CELLGPT_BLAS=mkl` uses it whatever the load and makes a missing or broken MKL an error
instead of a silent fallback. Only row-major float32/float64 operands whose rows are
contiguous are handed over (transposed operands too: the output head reads wteᵀ);
anything else returns None and the caller uses numpy.

Threads: for a few rows MKL's own (OpenMP), one call per product. They collapse when another
process holds a core, as PyTorch's do, so unless CELLGPT_BLAS=mkl a few-row product takes
them only while the machine is quiet (load_watch.py) and our split otherwise (for_rows,
for_split). The two agree to float32 rounding, not to the bit: under changing load a
recomputed cell can differ in its last bit (one-row products already could).
CELLGPT_BLAS=mkl gives the same bits always (the test-suite sets it). For one shape the
path, and so the bits, are fixed (MKL's threads may cut the inner axis, our split never does).
"""

from __future__ import annotations

import ctypes
import os
import threading
from pathlib import Path

import numpy as np

from cellgpt.engine import load_watch
from cellgpt.engine.parallel import WORKERS, foreign_threads_ran, in_pool_thread

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
# MKL_Set_Threading_Layer: GNU OpenMP (libgomp), the runtime PyTorch ships too. With Intel's
# (the wheel's default) and torch imported in the same process, MKL's threads asked torch's
# libgomp for their thread numbers and both computed the same half: logits came out doubled
# (seen in the test-suite). One libgomp per process (the loader shares it by soname) avoids it.
_GNU_OPENMP = 3
ENV = "CELLGPT_BLAS"
# Above this many rows (and under load) a product is split by kernels.matmul into one chunk
# per core, each chunk MKL's single-threaded gemm (for_split). MKL's own threads are ~10%
# faster on the product alone, but after each call its OpenMP workers spin (GNU OpenMP's
# default, which PyTorch relies on too: with a short spin torch's forward took 15-25%
# longer), competing with our pool's element-wise kernels on 2 cores: whole forwards at 32 /
# 128 / 192 / 256 tokens took 88 / 206 / 304 / 390 ms with MKL's threads and 113 / 219 / 304
# / 372 with OpenBLAS's split; at 6 tokens 61 against 89.
MAX_ROWS = 128


class MklUnavailable(RuntimeError):
    """CELLGPT_BLAS=mkl, but MKL could not be found or loaded."""


class MklBroken(OSError):
    """MKL loaded but failed its self-check."""


def library_path() -> Path | None:
    """libmkl_rt from the installed `mkl` distribution, or None."""
    try:
        from importlib import metadata

        dist = metadata.distribution("mkl")
    except Exception:  # not installed (or broken metadata): numpy's BLAS it is
        return None
    for file in dist.files or ():
        if Path(str(file)).name.startswith("libmkl_rt.so"):
            path = Path(str(dist.locate_file(file))).resolve()
            if path.exists():
                return path
    return None


class Mkl:
    """cblas_sgemm / cblas_dgemm of one loaded libmkl_rt."""

    def __init__(self, path: Path) -> None:
        self.path = path
        ctypes.CDLL("libgomp.so.1")  # OSError without it, instead of MKL exiting at 1st call
        lib = ctypes.CDLL(str(path))
        lib.MKL_Set_Threading_Layer.argtypes = [ctypes.c_int]
        lib.MKL_Set_Threading_Layer(_GNU_OPENMP)
        self._local_threads = lib.MKL_Set_Num_Threads_Local
        self._local_threads.argtypes = [ctypes.c_int]
        self._local_threads.restype = ctypes.c_int
        i, p = ctypes.c_int, ctypes.c_void_p
        self._gemm = {}
        for dtype, name, scalar in (
            (np.dtype(np.float32), "cblas_sgemm", ctypes.c_float),
            (np.dtype(np.float64), "cblas_dgemm", ctypes.c_double),
        ):
            fn = getattr(lib, name)
            fn.argtypes = [i, i, i, i, i, i, scalar, p, i, p, i, scalar, p, i]
            fn.restype = None
            self._gemm[dtype] = fn
        self._check()

    def _check(self) -> None:
        """A few products against numpy, on every thread count: a library that loads but
        computes wrong numbers (another OpenMP runtime, a broken install) is refused."""
        rng = np.random.default_rng(0)
        for dtype in self._gemm:
            a = rng.standard_normal((6, 96)).astype(dtype)
            b = rng.standard_normal((96, 4096)).astype(dtype)
            want = a.astype(np.float64) @ b.astype(np.float64)
            cases = ((a, b, want), (a[0], b, want[0]), (a, np.asfortranarray(b), want))
            for left, right, expected in cases:  # several rows, one row, a transposed b
                got = self.product(left, right)
                if got is None or not np.allclose(got, expected, rtol=1e-4, atol=1e-3):
                    raise MklBroken(f"{self.path}: a test product came out wrong")

    def product(
        self, a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None, *, threads: int = 0
    ) -> np.ndarray | None:
        """a @ b for a 1-D or 2-D a and a 2-D b of one float dtype, or None if the operands'
        layout is not one gemm reads directly. `out`: a [rows, columns] array with contiguous
        rows to write into (a column block of a bigger result, say). `threads`: 1 runs the
        product on the calling thread (a chunk of our own split); 0 picks (see below)."""
        gemm = self._gemm.get(a.dtype)
        if gemm is None or b.dtype != a.dtype or b.ndim != 2 or a.ndim not in (1, 2):
            return None
        rows = a.reshape(1, -1) if a.ndim == 1 else a
        m, k = rows.shape
        n = b.shape[1]
        size = a.itemsize
        if b.shape[0] != k or 0 in (m, n, k):
            return None
        if rows.strides[1] == size or k == 1:
            trans_a, lda = _NO_TRANS, _leading(rows.strides[0], size, k, m)
        elif rows.strides[0] == size:  # a transposed C array (a key-major attention block)
            trans_a, lda = _TRANS, _leading(rows.strides[1], size, m, k)
        else:
            return None
        if b.strides[1] == size or n == 1:
            trans_b, ldb = _NO_TRANS, _leading(b.strides[0], size, n, k)
        elif b.strides[0] == size:  # a transposed C array, e.g. wteᵀ
            trans_b, ldb = _TRANS, _leading(b.strides[1], size, k, n)
        else:
            return None
        if out is None:
            out = np.empty((m, n), dtype=a.dtype)
        elif out.shape != (m, n) or out.dtype != a.dtype or (out.strides[1] != size and n > 1):
            return None
        ldc = _leading(out.strides[0], size, n, m)
        if lda is None or ldb is None or ldc is None or max(m, n, k, lda, ldb, ldc) >= 2**31:
            return None
        a_ptr, b_ptr, o_ptr = rows.ctypes.data, b.ctypes.data, out.ctypes.data

        # threads=0: one call on WORKERS of MKL's threads (they may cut the inner axis, so
        # this gives other last bits than a split of ours; for_rows picks which path). Inside
        # a pool chunk the chunk is the thread; a forked child has no OpenMP workers.
        if threads != 1:
            threads = 1 if in_pool_thread() or _forked[0] else WORKERS
        before = self._local_threads(threads)  # for this OS thread only
        try:
            gemm(_ROW_MAJOR, trans_a, trans_b, m, n, k, 1.0, a_ptr, lda, b_ptr, ldb, 0.0,
                 o_ptr, ldc)  # fmt: skip
        finally:
            self._local_threads(before)
            if threads > 1:
                foreign_threads_ran()  # MKL's OpenMP workers now spin for a while
        return out.reshape(n) if a.ndim == 1 else out


def _leading(stride: int, size: int, minimum: int, count: int) -> int | None:
    """A BLAS leading dimension (in elements) from a byte stride, None if gemm cannot use it."""
    if count == 1:
        return max(1, minimum)
    if stride % size or stride // size < max(1, minimum):
        return None
    return stride // size


# GNU OpenMP does not survive fork(): a forked child's first parallel region waits for the
# parent's worker threads, which the child does not have (batch workers hung). A child runs
# MKL on its calling thread only (MKL then starts no OpenMP region).
_forked = [False]


def _after_fork_in_child() -> None:
    _forked[0] = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

_lock = threading.Lock()
_loaded: dict[str, Mkl | None] = {}


def _choice() -> str:
    """CELLGPT_BLAS as given: '' (MKL if installed, while the machine is quiet), 'mkl' or
    'numpy'."""
    choice = os.environ.get(ENV, "").strip().lower()
    if choice not in ("", "mkl", "numpy"):
        raise MklUnavailable(f"{ENV}={choice!r}: expected 'mkl' or 'numpy'")
    return choice


def get() -> Mkl | None:
    """The process's MKL, loaded on first use; None when off, missing or unloadable (an error
    instead when CELLGPT_BLAS=mkl asks for it)."""
    return _get(_choice())


def _get(choice: str) -> Mkl | None:
    if choice == "numpy":
        return None
    with _lock:
        if "mkl" not in _loaded:
            path = library_path()
            try:
                _loaded["mkl"] = Mkl(path) if path is not None else None
            except (OSError, AttributeError) as exc:
                if choice == "mkl":
                    raise MklUnavailable(f"{ENV}=mkl: cannot load {path}: {exc}") from exc
                _loaded["mkl"] = None
        mkl = _loaded["mkl"]
    if mkl is None and choice == "mkl":
        raise MklUnavailable(f'{ENV}=mkl but MKL is not installed (pip install "cellgpt[mkl]")')
    return mkl


def backend() -> str:
    """'mkl' or 'numpy': which library computes this process's products of a few rows (on a
    quiet machine, unless CELLGPT_BLAS=mkl; see for_rows)."""
    return "mkl" if get() is not None else "numpy"


def for_split() -> Mkl | None:
    """MKL for the chunks of our own split of a product (kernels.matmul: many rows, or a few
    under load), each on its calling thread, or None for numpy's. No OpenMP region, so no
    spinning workers and no collapse under load: MKL's single-threaded gemm, ~10% faster
    than OpenBLAS's on these shapes (the 48 block products of a 1024-token forward, each
    followed by a GELU: ~680 against ~760 ms; at 192 rows ~150 against ~210)."""
    return get()


def for_rows(rows: int) -> Mkl | None:
    """MKL on its own threads for a product of `rows` rows, or None for our split: more than
    MAX_ROWS (see there), MKL off or missing, or — unless CELLGPT_BLAS=mkl asks for MKL
    always — another process using the CPU. MKL's OpenMP threads collapse when a core is
    taken, as PyTorch's do (6-token forward under one busy loop: 284 ms with MKL, 200 on
    numpy's split, 84 quiet), so under load products take our split (for_split); the two
    agree to float32 rounding, not to the bit."""
    if rows < 1 or rows > MAX_ROWS:
        return None
    choice = _choice()
    mkl = _get(choice)
    if mkl is None or choice == "mkl" or load_watch.machine_is_quiet():
        return mkl
    return None
