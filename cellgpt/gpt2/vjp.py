"""Vector-Jacobian products of GPT-2's library functions (gpt2/functions.py), added to the
engine's registry (engine/vjp.py) when this module is imported."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cellgpt.engine import causal
from cellgpt.engine.grad_sum import RowUpdates
from cellgpt.engine.vjp import NONDIFF, vjp

NONDIFF.update(
    {"load_weights", "load_tokenizer", "model_config", "split_words", "bpe_passes", "bpe_ids",
     "token_texts", "top_tokens", "sample_token", "token_text"}
)  # fmt: skip


@vjp("embed_tokens")
def _embed_tokens(g: Any, out: Any, wte: Any, token_ids: Any) -> tuple[Any, ...]:
    # each token's row of the table gets that token's gradient (repeated tokens add up)
    ids = np.asarray(token_ids, dtype=np.int64)
    return RowUpdates(np.shape(wte), ids, np.asarray(g)), None


@vjp("positions")
def _positions(g: Any, out: Any, wpe: Any, n_tokens: int) -> tuple[Any, ...]:
    gw = np.zeros(np.shape(wpe), dtype=np.result_type(g))
    gw[: int(n_tokens)] = g
    return gw, None


@vjp("param")
def _param(g: Any, out: Any, weights: Any, name: str, layer: Any = None) -> tuple[Any, ...]:
    return None, None, None


@vjp("split_heads")
def _split_heads(g: Any, out: Any, qkv: Any, part: int, n_head: int) -> tuple[Any, ...]:
    t, width = np.shape(qkv)
    n_embd = width // 3
    gq = np.zeros((t, width), dtype=np.result_type(g))
    gq[:, int(part) * n_embd : (int(part) + 1) * n_embd] = (
        np.asarray(g).transpose(1, 0, 2).reshape(t, n_embd)
    )
    return gq, None, None


@vjp("merge_heads")
def _merge_heads(g: Any, out: Any, z: Any) -> tuple[Any, ...]:
    h, t, d = np.shape(z)
    return (np.asarray(g).reshape(t, h, d).transpose(1, 0, 2),)


@vjp("attention_scores")
def _attention_scores(g: Any, out: Any, q: Any, k: Any) -> tuple[Any, ...]:
    q, k = np.asarray(q), np.asarray(k)
    t, n_keys = q.shape[1], k.shape[1]
    scale = q.dtype.type(np.float32(1.0 / math.sqrt(q.shape[-1])))
    # masked scores are constants (-inf): no gradient flows through them
    gs = np.where(causal.future_mask(t, n_keys), 0, g).astype(q.dtype, copy=False) * scale
    return np.matmul(gs, k), np.matmul(gs.transpose(0, 2, 1), q)


@vjp("last_row")
def _last_row(g: Any, out: Any, x: Any) -> tuple[Any, ...]:
    gx = np.zeros(np.shape(x), dtype=np.result_type(g))
    gx[-1] = g
    return (gx,)


@vjp("zero_head")
def _zero_head(g: Any, out: Any, x: Any, head: int) -> tuple[Any, ...]:
    gx = np.array(g, copy=True)
    gx[int(head)] = 0
    return gx, None
