"""attn.z without attn.scores and attn.pattern: the three attention cells in one pass.

`merge_heads(matmul(softmax(attention_scores(q, k)), v))`, computed one block of query rows
of one head at a time in a scratch buffer that stays in the core's cache, instead of
writing two [heads, tokens, tokens] matrices to memory and reading them back (see
engine/fusion.py for when the runner uses it). Every block goes through the same numpy
and BLAS calls, on the same shapes and strides, as the separate kernels
(gpt2.functions.attention_scores, kernels.softmax_last's causal path and kernels.matmul's
causal path), so the result is bit for bit what the three cells give: a prompt's blocks
through engine/key_major.py, a generated token's rows all heads at once.
"""

from __future__ import annotations

import math

import numpy as np

from cellgpt.engine import causal, key_major
from cellgpt.engine.errors import CellEvalError
from cellgpt.engine.fusion import Fusion
from cellgpt.engine.kernels import SOFTMAX_WORK, softmax_into
from cellgpt.engine.limits import charge
from cellgpt.engine.parallel import for_chunks


def fused_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """[tokens, heads·d_head]: each head's causal softmax(q·kᵀ/√d)·v, heads side by side.
    A batch of prompts ([batch, heads, tokens, d_head]) gives [batch, tokens, heads·d_head]."""
    if all(isinstance(a, np.ndarray) and a.ndim == 4 for a in (q, k, v)) and q.shape[0] > 0:
        if not q.shape[0] == k.shape[0] == v.shape[0]:
            raise CellEvalError("fused attention needs q, k, v of one batch size")
        # One prompt at a time through the same kernel: the same numbers as a single run.
        return np.stack([fused_attention(q[b], k[b], v[b]) for b in range(q.shape[0])])
    if not _fusable(q, k, v):
        raise CellEvalError("fused attention needs float q, k, v of matching shapes")
    heads, t, d_head = q.shape
    n_keys = k.shape[1]
    offset = n_keys - t
    work = float(heads) * t * n_keys * d_head
    few_rows = not key_major.key_major(t)
    z_bytes = t * heads * d_head * q.itemsize  # the result, and a prompt's scaled q
    charge("attention", z_bytes * (1 if few_rows else 2), int(2 * work))
    scale = q.dtype.type(np.float32(1.0 / math.sqrt(d_head)))  # as attention_scores
    out = np.empty((t, heads * d_head), dtype=q.dtype)
    blocks = causal.blocks(t, offset)

    if few_rows:
        # A generated token's row(s): one block, every head at once, the same calls on the
        # same rows as head by head (~10 numpy calls instead of ~8 a head).
        ((r0, r1, seen),) = blocks
        s = np.matmul(q[:, r0:r1], k.transpose(0, 2, 1)[:, :, :seen])
        s *= scale
        diagonal = slice(offset + r0, offset + r1)
        np.copyto(s[:, :, diagonal], -np.inf, where=causal.future_mask(t, n_keys)[r0:r1, diagonal])
        softmax_into(s, s)
        z = np.matmul(s, v[:, :seen])  # [heads, rows, d_head]
        out[r0:r1].reshape(r1 - r0, heads, d_head)[...] = z.transpose(1, 0, 2)
        return out

    q_t, post_scale = key_major.scaled_queries(q, scale)

    def per_heads(start: int, stop: int) -> None:
        buffer = key_major.scratch(n_keys, t, q.dtype)  # one group's block, in cache
        for block, (h0, h1) in key_major.block_groups(start, stop, blocks, q.itemsize):
            s = key_major.scores(k, q_t, (h0, h1), block, offset, post_scale, buffer)
            key_major.softmax(s)
            r0, r1, _ = block  # the group's heads' columns of the result, [heads, rows, d]
            z = out[r0:r1].reshape(r1 - r0, heads, d_head)[:, h0:h1].transpose(1, 0, 2)
            key_major.values(s, v, (h0, h1), z)

    # products (scores and pattern x values, half skipped) plus the softmax's element work
    for_chunks(heads, per_heads, work=work + heads * t * n_keys * SOFTMAX_WORK / 2)
    return out


def _fusable(q: object, k: object, v: object) -> bool:
    if not all(isinstance(a, np.ndarray) and a.ndim == 3 for a in (q, k, v)):
        return False
    assert isinstance(q, np.ndarray) and isinstance(k, np.ndarray) and isinstance(v, np.ndarray)
    if q.dtype.type not in (np.float32, np.float64) or not q.dtype == k.dtype == v.dtype:
        return False
    heads, t, d_head = q.shape
    return (
        k.shape[0] == v.shape[0] == heads
        and k.shape[2] == d_head
        and k.shape[1] == v.shape[1] >= t
        and t > 0
    )


ATTENTION = Fusion(
    "attention",
    links=("S = attention_scores(Q, K)", "P = softmax(S)"),
    reader="merge_heads(matmul(P, V))",
    inputs=("Q", "K", "V"),
    fused=fused_attention,
)
