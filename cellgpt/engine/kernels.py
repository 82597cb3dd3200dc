"""Fast numpy kernels behind the core library's heavy functions.

Each kernel computes exactly the same operations, in the same order, as the obvious numpy
expression (so results are bit-identical to it), but: writes into one preallocated output
instead of a chain of temporaries, works in place on that output, keeps float32 float32, and
splits the work into per-core chunks (see parallel.py). Rows are independent in every kernel
here, so chunking never changes a result.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from cellgpt.engine import causal, key_major, load_watch, mkl_blas
from cellgpt.engine.parallel import MIN_WORK, for_chunks, in_one_row_steps

_FLOATS = (np.float32, np.float64)

# Work per element of the element-wise kernels, in multiply-adds of a big float32 matrix
# product that take as long (measured single-threaded on the 2-core VM: a product runs
# ~0.012 ns per multiply-add; GELU ~2.3 ns per element, softmax ~2.0, layer norm ~1.8,
# normalize ~1.5), so that for_chunks weighs every kernel on one scale.
GELU_WORK, SOFTMAX_WORK, LAYER_NORM_WORK, NORMALIZE_WORK = 200.0, 170.0, 160.0, 130.0
SMALL_PRODUCT = 2e6  # multiply-adds from which a product of two or more rows is split
# Without MKL, while generating (parallel.one_row_steps), one-row products run on OpenBLAS's
# own threads if the machine is quiet: 1.7x our split, whose hand-off costs as much as half
# the work (see load_watch.py for why only then). Elsewhere every product keeps our split:
# OpenBLAS's threads spin for a while after a call and would compete with our pool's (a
# forward right after a threaded one-row product ran 10-20% slower). With MKL its threads
# take one-row products too (mkl_blas.for_rows), and OpenBLAS's never run: two libraries'
# spinning workers on two cores slowed each other's products up to 6x.


def is_float(*arrays: np.ndarray) -> bool:
    """All float32 or all float64 (the kernels never mix or promote)."""
    dtype = arrays[0].dtype
    if dtype.type not in _FLOATS:
        return False
    if len(arrays) == 2:  # a product's two operands, before every product: no generator
        return bool(arrays[1].dtype == dtype)
    return all(a.dtype == dtype for a in arrays)


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b, chunked: by rows of a (many rows), by columns of b (few rows: a vector times a
    big matrix such as the 50257-wide output head), or by the batch axis (stacked heads)."""
    if not is_float(a, b) or a.ndim == 0 or b.ndim < 2:
        return np.matmul(a, b)
    if a.ndim > 2 and b.ndim == 2:  # a batch of prompts' rows times one matrix: one product
        return matmul(a.reshape(-1, a.shape[-1]), b).reshape(*a.shape[:-1], b.shape[1])
    if a.ndim <= 2 and b.ndim == 2:
        one_row = a.ndim == 1 or a.shape[0] == 1
        # Up to a few rows: MKL when installed and the machine is quiet (mkl_blas.for_rows:
        # it does not pack b, which is most of a few-row product's time in OpenBLAS, and its
        # threads read the output head's 154 MB in ~5.5 ms where our split took ~9 in a
        # forward). Many rows, or under load: our split below.
        mkl = mkl_blas.for_rows(1 if one_row else a.shape[0])
        fast = mkl.product(a, b) if mkl is not None else None
        if fast is not None:
            return fast
        if one_row and in_one_row_steps() and load_watch.machine_is_quiet():
            return np.matmul(a, b)  # a generated token's row: OpenBLAS's threads, see above
        # Split b's columns, whatever the rows: each core then packs and reads only its half
        # of b (a split by rows makes both pack all of it: 2x slower up to ~256 rows).
        cols = b.shape[1]
        out = np.empty((*a.shape[:-1], cols), dtype=a.dtype)
        work = float(math.prod(a.shape[:-1])) * b.shape[0] * cols
        # Each chunk in MKL on its own thread when installed (mkl_blas.for_split), else numpy.
        split_mkl = None if one_row else mkl_blas.for_split()

        def col_chunk(start: int, stop: int) -> None:
            if split_mkl is not None:
                done = split_mkl.product(a, b[:, start:stop], out[..., start:stop], threads=1)
                if done is not None:
                    return
            np.matmul(a, b[:, start:stop], out=out[..., start:stop])

        # One row is a matrix-vector product (no packing): splitting it pays only when big
        # (the output head). From two rows on, BLAS packs b, and halving that pays early:
        # 6 rows x 12 blocks' weights took 1.5x as long on one core as split in two.
        one_row = work == b.shape[0] * cols
        for_chunks(cols, col_chunk, work=work, min_work=MIN_WORK if one_row else SMALL_PRODUCT)
        return out
    if a.ndim == 3 and b.ndim == 3 and a.shape[0] == b.shape[0]:
        batch, rows, inner = a.shape
        mark = causal.causal(a, 0.0)
        if mark is not None and b.shape[1] == inner:
            return _matmul_causal(a, b, mark.offset)
        out = np.empty((batch, rows, b.shape[2]), dtype=a.dtype)

        def batch_chunk(start: int, stop: int) -> None:
            np.matmul(a[start:stop], b[start:stop], out=out[start:stop])

        for_chunks(batch, batch_chunk, work=float(batch) * rows * inner * b.shape[2])
        return out
    if a.ndim == b.ndim == 4 and a.shape[:2] == b.shape[:2]:  # [batch, head, ...]: more heads
        return causal.flat_heads(matmul, a, b)
    return np.matmul(a, b)


def _matmul_causal(a: np.ndarray, b: np.ndarray, offset: int) -> np.ndarray:
    """a @ b per batch, where a is 0 above the diagonal (an attention pattern times the
    values): each block of query rows multiplies only the keys it can see."""
    batch, rows, inner = a.shape
    out = np.empty((batch, rows, b.shape[2]), dtype=a.dtype)
    blocks = causal.blocks(rows, offset)
    if key_major.key_major(rows):  # a prompt's pattern: as fused attention computes it

        def per_heads(start: int, stop: int) -> None:
            buffer = key_major.scratch(inner, rows, a.dtype)
            for block, (h0, h1) in key_major.block_groups(start, stop, blocks, a.itemsize):
                s = key_major.load(a, (h0, h1), block, buffer)
                key_major.values(s, b, (h0, h1), out[h0:h1, block[0] : block[1]])

        for_chunks(batch, per_heads, work=float(batch) * rows * inner * b.shape[2] / 2)
        return out

    def per_batch(start: int, stop: int) -> None:
        for r0, r1, seen in blocks:
            np.matmul(a[start:stop, r0:r1, :seen], b[start:stop, :seen], out=out[start:stop, r0:r1])

    for_chunks(batch, per_batch, work=float(batch) * rows * inner * b.shape[2] / 2)
    return out


# Element-wise kernels make several passes over their rows (max, subtract, exp, sum, divide):
# done on blocks that stay in the core's L2 cache (2 MiB here), the passes after the first
# read the cache instead of memory. Whole 48 MiB attention matrices made each pass stream
# from memory: softmax at 1024 tokens ran at the same speed on one core as on two.
CACHE_BYTES = 512 * 1024


def _in_cache(rows: Callable[[int, int], None], row_bytes: int) -> Callable[[int, int], None]:
    """rows(start, stop) applied to consecutive sub-ranges of at most CACHE_BYTES each."""
    step = max(1, CACHE_BYTES // max(1, row_bytes))

    def blocked(start: int, stop: int) -> None:
        for r0 in range(start, stop, step):
            rows(r0, min(stop, r0 + step))

    return blocked


def _rows_view(a: np.ndarray) -> np.ndarray:
    """A 2-D [rows, last axis] view of a C-contiguous array."""
    return a.reshape(-1, a.shape[-1]) if a.ndim != 2 else a


def softmax_into(x: np.ndarray, o: np.ndarray) -> None:
    """o = exp(x - max) / sum(exp(x - max)) over the last axis (o may be x): the one sequence
    of numpy calls every softmax here uses, so that the fused and unfused paths agree to the
    bit on rows of the same width."""
    np.subtract(x, np.max(x, axis=-1, keepdims=True), out=o)
    np.exp(o, out=o)
    o /= np.sum(o, axis=-1, keepdims=True)


def softmax_last(a: np.ndarray) -> np.ndarray:
    """exp(a - max) / sum(exp(a - max)) over the last axis, in one output buffer."""
    mark = causal.causal(a, -np.inf)
    if mark is not None and a.ndim == 3:
        return _softmax_causal(a, mark.offset)
    if mark is not None and a.ndim == 4:  # a batch of prompts' scores: more heads
        return causal.flat_heads(softmax_last, a)
    src = _rows_view(np.ascontiguousarray(a))
    out = np.empty_like(src)

    def rows(start: int, stop: int) -> None:
        x, o = src[start:stop], out[start:stop]
        softmax_into(x, o)

    for_chunks(
        src.shape[0], _in_cache(rows, src[0].nbytes), work=src.size * SOFTMAX_WORK, blas=False
    )
    return out.reshape(a.shape)


def _softmax_causal(a: np.ndarray, offset: int) -> np.ndarray:
    """softmax_last of [heads, queries, keys] scores that are -inf above the diagonal: each
    block of queries is computed over the keys it can see, the rest of its row is 0. The
    result is marked causal (fill 0) for the product with the values."""
    heads, rows, n_keys = a.shape
    out = np.empty_like(a)
    blocks = causal.blocks(rows, offset)

    if not key_major.key_major(rows):
        # A generated token's row(s): one block, every head of a chunk at once, the same
        # operations on the same rows as head by head.
        ((r0, r1, seen),) = blocks

        def heads_at_once(start: int, stop: int) -> None:
            softmax_into(a[start:stop, r0:r1, :seen], out[start:stop, r0:r1, :seen])
            out[start:stop, r0:r1, seen:] = 0

        for_chunks(heads, heads_at_once, work=a.size * SOFTMAX_WORK / 2, blas=False)
        return causal.mark(out, offset, 0.0)

    def per_heads(start: int, stop: int) -> None:
        buffer = key_major.scratch(n_keys, rows, a.dtype)  # as fused attention computes it
        for block, group in key_major.block_groups(start, stop, blocks, a.itemsize):
            s = key_major.load(a, group, block, buffer)
            key_major.softmax(s)
            key_major.store(s, group, block, out, 0.0)

    for_chunks(heads, per_heads, work=a.size * SOFTMAX_WORK / 2, blas=False)
    return causal.mark(out, offset, 0.0)


def _row_mean(r: np.ndarray) -> np.ndarray:
    """r.mean(axis=-1, keepdims=True), bit for bit, without np.mean's Python wrapper (~3 µs,
    which a generated token pays ~50 times): the same sum, divided by the count as np.mean
    divides it (an intp, so in float64, cast back)."""
    total = np.add.reduce(r, axis=-1, keepdims=True)
    return np.true_divide(total, np.intp(r.shape[-1]), out=total, casting="unsafe")


def _normalize_rows(r: np.ndarray, o: np.ndarray, eps32: np.generic) -> None:
    """o = (r - mean) / sqrt(var + eps) per row: the part layer_norm and normalize share."""
    np.subtract(r, _row_mean(r), out=o)
    var = _row_mean(o * o)
    o /= np.sqrt(var + eps32)


def layer_norm(x: np.ndarray, gain: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    """(x - mean) / sqrt(var + eps) * gain + bias per row (population variance)."""
    src = _rows_view(np.ascontiguousarray(x))
    out = np.empty_like(src)
    eps32 = src.dtype.type(np.float32(eps))  # as the plain formula: eps rounded to float32

    def rows(start: int, stop: int) -> None:
        o = out[start:stop]
        _normalize_rows(src[start:stop], o, eps32)
        o *= gain
        o += bias

    for_chunks(
        src.shape[0], _in_cache(rows, src[0].nbytes), work=src.size * LAYER_NORM_WORK, blas=False
    )
    return out.reshape(x.shape)


def normalize(x: np.ndarray, eps: float) -> np.ndarray:
    """(x - mean) / sqrt(var + eps) per row: layer_norm before its gain and bias, bit for bit."""
    src = _rows_view(np.ascontiguousarray(x))
    out = np.empty_like(src)
    eps32 = src.dtype.type(np.float32(eps))

    def rows(start: int, stop: int) -> None:
        _normalize_rows(src[start:stop], out[start:stop], eps32)

    for_chunks(
        src.shape[0], _in_cache(rows, src[0].nbytes), work=src.size * NORMALIZE_WORK, blas=False
    )
    return out.reshape(x.shape)


def norm_scale(x: np.ndarray, eps: float) -> np.ndarray:
    """sqrt(var + eps) per row (population variance), one column: the divisor layer_norm
    uses, bit for bit (the same centring, the same float32 eps)."""
    src = _rows_view(np.ascontiguousarray(x))
    out = np.empty((src.shape[0], 1), dtype=src.dtype)
    eps32 = src.dtype.type(np.float32(eps))

    def rows(start: int, stop: int) -> None:
        r = src[start:stop]
        c = r - _row_mean(r)
        c *= c
        np.sqrt(_row_mean(c) + eps32, out=out[start:stop])

    for_chunks(
        src.shape[0], _in_cache(rows, src[0].nbytes), work=src.size * NORMALIZE_WORK, blas=False
    )
    return out.reshape((*x.shape[:-1], 1))


_GELU_C = math.sqrt(2.0 / math.pi)


def gelu(x: np.ndarray) -> np.ndarray:
    """0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), evaluated left to right like the formula."""
    src = _rows_view(np.ascontiguousarray(x))
    out = np.empty_like(src)
    t = src.dtype.type
    # float32 constants (also for float64 input), exactly as the plain formula uses them
    c, k, half, one = (t(np.float32(v)) for v in (_GELU_C, 0.044715, 0.5, 1.0))

    def rows(start: int, stop: int) -> None:
        r, o = src[start:stop], out[start:stop]
        inner = np.multiply(k, r)  # ((0.044715·x)·x)·x, as the reference writes it
        inner *= r
        inner *= r
        inner += r
        inner *= c
        np.tanh(inner, out=inner)
        inner += one
        np.multiply(half, r, out=o)
        o *= inner

    for_chunks(src.shape[0], _in_cache(rows, src[0].nbytes), work=src.size * GELU_WORK, blas=False)
    return out.reshape(x.shape)
