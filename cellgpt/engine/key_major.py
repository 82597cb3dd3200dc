"""Causal attention's long-prompt blocks, computed key-major: a block's keys down its rows,
its queries across.

Why: a softmax along the last axis (query-major, as the user sees the pattern) runs its
subtract and divide with a broadcast column, which numpy does at ~40% of a plain element-wise
pass, and its max and sum as one short reduction per row. Key-major, the max and the sum over
the keys are element-wise passes down whole rows, and subtracting or dividing by them
broadcasts a row, which numpy does at full speed. One layer's attention at 1024 tokens on
one core: ~39 ms query-major, ~31 key-major (the products are the same work).

Which blocks: those of a prompt longer than one block (`key_major_blocks`). A short prompt's
single block and a generated token's new rows stay query-major (kernels.softmax_into), so a
new row's pattern equals the plain formula bit for bit. Key-major sums add the keys in order,
in a fixed order (key_sums), so a long prompt's pattern equals the plain formula to float32
rounding (its sums over fewer trailing zeros already did).

The fused attention kernel (gpt2/fused_attention.py) and the separate scores, pattern and
pattern × values cells (gpt2/functions.attention_scores, kernels' causal softmax and
product) call these same functions on scratch blocks of the same layout; the separate cells
copy each block in and out of the [head, query, key] layout the user sees. So the fused
kernel and the separate cells agree to the bit.
"""

from __future__ import annotations

import functools

import numpy as np

from cellgpt.engine import causal

# A causal attention whose queries fit one block of at most this many scores per head stays
# query-major (a short prompt, a generated token's rows). Per head, not per batch of heads,
# so one prompt and a batch of prompts (flattened to more heads) choose alike.
SMALL_BLOCK = causal.ROW_BLOCK * causal.ROW_BLOCK


def key_major_blocks(rows: int, n_keys: int) -> bool:
    """True if a causal attention of `rows` queries over `n_keys` keys runs key-major."""
    offset = n_keys - rows
    return len(causal.blocks(rows, offset)) > 1 or rows * n_keys > SMALL_BLOCK


def scratch(n_keys: int, dtype: np.dtype) -> np.ndarray:
    """One thread's block buffer: [keys, queries of one block]. Every path uses this shape,
    so every block product sees the same strides."""
    return np.empty((n_keys, causal.ROW_BLOCK), dtype=dtype)


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
    """[key, query] of the diagonal square: True where the key comes after the query."""
    mask = np.tril(np.ones((n, n), dtype=bool), -1)
    mask.flags.writeable = False
    return mask


def scores(
    k_h: np.ndarray,
    q_t_h: np.ndarray,
    block: tuple[int, int, int],
    offset: int,
    post_scale: np.generic | None,
    buffer: np.ndarray,
) -> np.ndarray:
    """One head's block of scaled scores, [keys seen, queries r0:r1], -inf where a key comes
    after its query; a view of `buffer`."""
    r0, r1, seen = block
    s = buffer[:seen, : r1 - r0]
    np.matmul(k_h[:seen], q_t_h[:, r0:r1], out=s)
    if post_scale is not None:
        s *= post_scale
    np.copyto(s[offset + r0 :], -np.inf, where=_after_query(r1 - r0))
    return s


def softmax(s: np.ndarray) -> None:
    """In place: exp(x - max) / sum(exp(x - max)) down each column (over the keys)."""
    np.subtract(s, np.maximum.reduce(s, axis=0), out=s)
    np.exp(s, out=s)
    s /= key_sums(s)


# Sums over the keys run in LANES interleaved partial sums (key i goes to lane i % LANES),
# then the lanes and the leftover keys in order: the rounding error grows with keys / LANES
# instead of with the keys, as close to float64 as numpy's own pairwise sum (measured at
# 1024 keys: one running sum was 1.5-3x further off).
LANES = 8


def key_sums(s: np.ndarray) -> np.ndarray:
    """Each column of a 2-D block summed in a fixed order that depends on the number of
    rows only: row i into lane i % LANES, the lanes' running sums taken one row-group after
    another, then lane 0 + lane 1 + ... and the leftover rows one by one. numpy's reduction
    down the rows of a block with contiguous columns adds one row-group at a time into the
    running sums (tests/engine/test_key_major.py checks it); a single column it would sum
    pairwise, so that and any other layout take the running sum (np.add.accumulate), which
    is that order by definition."""
    rows, cols = s.shape
    groups = rows // LANES
    grouped = s[: groups * LANES].reshape(groups, LANES, cols)
    if groups == 0:
        total = np.zeros(cols, dtype=s.dtype)  # 0 + x is x exactly
    else:
        if cols >= 2 and s.strides[1] == s.itemsize:
            lanes = np.add.reduce(grouped, axis=0)
        else:
            lanes = np.add.accumulate(grouped, axis=0)[-1]
        total = np.add.accumulate(lanes, axis=0)[-1]
    for row in range(groups * LANES, rows):
        total += s[row]
    return total


def values(s: np.ndarray, v_h: np.ndarray, out: np.ndarray) -> None:
    """out = sᵀ · v for one head's block (sᵀ: [queries, keys seen])."""
    np.matmul(s.T, v_h[: s.shape[0]], out=out)
