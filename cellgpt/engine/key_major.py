"""Causal attention computed key-major: a block's keys down its rows, its queries (of a group
of heads side by side) across.

Why: a softmax along the last axis (query-major, as the user sees the pattern) runs its
subtract and divide with a broadcast column, which numpy does at ~40% of a plain element-wise
pass, and its max and sum as one short reduction per row (at 64 tokens a row is 64 numbers:
the softmax of 12 heads took 131 µs, 2.7 ns a score). Key-major, the max and the sum over the
keys are element-wise passes down whole rows, subtracting or dividing by them broadcasts a
row, and the rows are as wide as a group of heads' queries. One layer's attention at 1024
tokens on one core: ~39 ms query-major, ~31 key-major (the products are the same work).

Which attentions: every one with more than FEW_ROWS queries (`key_major`). A generated
token's new rows stay query-major (kernels.softmax_into), so a new row's pattern equals the
plain formula bit for bit. Key-major sums add the keys in a fixed order (key_sums), so a
prompt's pattern equals the plain formula to float32 rounding.

The fused attention kernel (gpt2/fused_attention.py) and the separate scores, pattern and
pattern × values cells (gpt2/functions.attention_scores, kernels' causal softmax and
product) call these same functions on scratch blocks of the same layout; the separate cells
copy each block in and out of the [head, query, key] layout the user sees. Every head's
numbers are the same whatever group it is computed in (the products are one BLAS call per
head, the softmax works column by column). So the fused kernel and the separate cells agree
to the bit, for one prompt or a batch (flattened to more heads).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence

import numpy as np

from cellgpt.engine import causal

FEW_ROWS = 8  # at most this many queries (a generated token's rows): query-major
# A group of heads' block of scores, [keys, heads, queries], stays within this many bytes,
# so that the softmax's passes after the product read the core's cache (2 MiB of L2 here).
GROUP_BYTES = 1024 * 1024
# Sums and maxima over the keys run in LANES interleaved partial results (key i goes to lane
# i % LANES), then the lanes and the leftover keys in order: the rounding error of a sum grows
# with keys / LANES instead of with the keys, as close to float64 as numpy's own pairwise
# sum (at 1024 keys one running sum was 1.5-3x further off); and the rows reduced are
# LANES times wider (a max down 1024 keys x 128 queries: 30 µs in one pass, 12 in lanes).
LANES = 8

Block = tuple[int, int, int]  # (first query row, end query row, keys seen): causal.blocks


def key_major(rows: int) -> bool:
    """True if a causal attention of `rows` queries runs key-major."""
    return rows > FEW_ROWS


def head_groups(start: int, stop: int, block: Block, itemsize: int) -> list[tuple[int, int]]:
    """Heads start..stop cut into groups whose [keys, heads, queries] block fits GROUP_BYTES
    (at least one head a group). Which group a head is in never changes its numbers."""
    r0, r1, seen = block
    per_head = seen * (r1 - r0) * itemsize
    size = max(1, GROUP_BYTES // max(1, per_head))
    return [(h, min(stop, h + size)) for h in range(start, stop, size)]


def block_groups(
    start: int, stop: int, blocks: Sequence[Block], itemsize: int
) -> Iterator[tuple[Block, tuple[int, int]]]:
    """(block, group of heads) for heads start..stop, block after block (see head_groups):
    the loop every key-major kernel runs over one chunk of heads."""
    for block in blocks:
        for group in head_groups(start, stop, block, itemsize):
            yield block, group


def scratch(n_keys: int, rows: int, dtype: np.dtype) -> np.ndarray:
    """One thread's buffer for any group of any block of an attention of `rows` queries
    over `n_keys` keys."""
    one_head = n_keys * min(rows, causal.ROW_BLOCK)
    return np.empty(max(one_head, GROUP_BYTES // np.dtype(dtype).itemsize), dtype=dtype)


def block_view(buffer: np.ndarray, heads: tuple[int, int], block: Block) -> np.ndarray:
    """The [keys seen, heads, queries] part of `buffer` that a group's block uses."""
    r0, r1, seen = block
    nh = heads[1] - heads[0]
    return buffer[: seen * nh * (r1 - r0)].reshape(seen, nh, r1 - r0)


def load(a: np.ndarray, heads: tuple[int, int], block: Block, buffer: np.ndarray) -> np.ndarray:
    """A group's block of a [head, query, key] array (the layout the user sees), copied
    key-major into `buffer`; the view is returned."""
    (h0, h1), (r0, r1, seen) = heads, block
    s = block_view(buffer, heads, block)
    np.copyto(s, a[h0:h1, r0:r1, :seen].transpose(2, 0, 1))
    return s


def store(
    s: np.ndarray, heads: tuple[int, int], block: Block, out: np.ndarray, fill: float
) -> None:
    """A key-major block back into a [head, query, key] array, the keys after it `fill`."""
    (h0, h1), (r0, r1, seen) = heads, block
    np.copyto(out[h0:h1, r0:r1, :seen], s.transpose(1, 2, 0))
    out[h0:h1, r0:r1, seen:] = fill


def scaled_queries(q: np.ndarray, scale: np.generic) -> tuple[np.ndarray, np.generic | None]:
    """([heads, d_head, queries] per-head qᵀ, scale still to apply or None). A power-of-two
    scale (1/√64 = 1/8) goes into q, exactly (no rounding: scaling by 2ⁿ commutes with every
    product and sum), saving a pass over each block; any other is applied to the block."""
    mantissa, _ = np.frexp(scale)
    if mantissa == 0.5:
        return np.multiply(q, scale).transpose(0, 2, 1), None
    return q.transpose(0, 2, 1), scale


@functools.lru_cache(maxsize=4)
def _after_query(n: int) -> np.ndarray:
    """[key, 1, query] of the diagonal square: True where the key comes after the query."""
    mask = np.tril(np.ones((n, n), dtype=bool), -1)[:, None, :]
    mask.flags.writeable = False
    return mask


def scores(
    k: np.ndarray,
    q_t: np.ndarray,
    heads: tuple[int, int],
    block: Block,
    offset: int,
    post_scale: np.generic | None,
    buffer: np.ndarray,
) -> np.ndarray:
    """A group of heads' block of scaled scores, [keys seen, heads, queries r0:r1], -inf
    where a key comes after its query; a view of `buffer`."""
    (h0, h1), (r0, r1, seen) = heads, block
    s = block_view(buffer, heads, block)
    np.matmul(k[h0:h1, :seen], q_t[h0:h1, :, r0:r1], out=s.transpose(1, 0, 2))
    if post_scale is not None:
        s *= post_scale
    np.copyto(s[offset + r0 :], -np.inf, where=_after_query(r1 - r0))
    return s


def softmax(s: np.ndarray) -> None:
    """In place: exp(x - max) / sum(exp(x - max)) over the keys (the first axis)."""
    flat = s.reshape(s.shape[0], -1)
    np.subtract(flat, key_max(flat), out=flat)
    np.exp(flat, out=flat)
    flat /= key_sums(flat)


def _lanes(s: np.ndarray) -> tuple[np.ndarray, int]:
    groups = s.shape[0] // LANES
    return s[: groups * LANES].reshape(groups, LANES, s.shape[1]), groups * LANES


def key_max(s: np.ndarray) -> np.ndarray:
    """Each column's maximum of a 2-D block (exact in any order; NaN wins, as in np.max)."""
    grouped, done = _lanes(s)
    if done == 0:
        return np.maximum.reduce(s, axis=0)
    top = np.maximum.reduce(np.maximum.reduce(grouped, axis=0), axis=0)
    for row in range(done, s.shape[0]):
        np.maximum(top, s[row], out=top)
    return top


def key_sums(s: np.ndarray) -> np.ndarray:
    """Each column of a 2-D block summed in a fixed order that depends on the number of
    rows only: row i into lane i % LANES, the lanes' running sums taken one row-group after
    another, then lane 0 + lane 1 + ... and the leftover rows one by one. numpy's reduction
    down the rows of a block with contiguous columns adds one row-group at a time into the
    running sums (tests/engine/test_key_major.py checks it); a single column it would sum
    pairwise, so that and any other layout take the running sum (np.add.accumulate), which
    is that order by definition."""
    grouped, done = _lanes(s)
    if done == 0:
        total = np.zeros(s.shape[1], dtype=s.dtype)  # 0 + x is x exactly
    else:
        if s.shape[1] >= 2 and s.strides[1] == s.itemsize:
            lanes = np.add.reduce(grouped, axis=0)
        else:
            lanes = np.add.accumulate(grouped, axis=0)[-1]
        total = np.add.accumulate(lanes, axis=0)[-1]
    for row in range(done, s.shape[0]):
        total += s[row]
    return total


def values(s: np.ndarray, v: np.ndarray, heads: tuple[int, int], out: np.ndarray) -> None:
    """out[head] = s[:, head, :]ᵀ · v[head] for a group's block; out: [heads, queries, d]."""
    h0, h1 = heads
    np.matmul(s.transpose(1, 2, 0), v[h0:h1, : s.shape[0]], out=out)
