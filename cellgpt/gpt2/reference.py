"""A plain numpy reference forward pass of GPT-2.

Deliberately straightforward float32 numpy: it is the yardstick the cell graph is
benchmarked and cross-checked against, so it favours obviously-correct over clever. Layer
norm uses the population variance and the config's eps, GELU its tanh form, attention is
scaled by 1/sqrt(d_head) with a causal mask, and the output head is tied
(logits = ln_f · wteᵀ). Weights use Conv1D orientation: x @ W + b.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cellgpt.weights.params import Params


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    """Normalise each row to zero mean and unit (population) variance, then scale/shift."""
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + np.float32(eps)) * weight + bias


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU, tanh approximation (Hugging Face `gelu_new`)."""
    c = np.float32(math.sqrt(2.0 / math.pi))
    cube = x * x * x  # not x**3: powf takes a slow path for negative bases
    return np.float32(0.5) * x * (1 + np.tanh(c * (x + np.float32(0.044715) * cube)))


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (max-subtracted for stability)."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def reference_forward(
    params: Params, token_ids: Any, *, return_stages: bool = False
) -> np.ndarray | dict[str, np.ndarray]:
    """GPT-2 forward pass for one sequence of token ids.

    Returns logits [T, vocab] for every position, or with `return_stages` a dict of the
    intermediate arrays named like the workbook's cells: `embed`, `h{i}.resid_pre`,
    `h{i}.ln_1`, `h{i}.attn.pattern`, `h{i}.attn.z`, `h{i}.attn.out`, `h{i}.resid_mid`,
    `h{i}.ln_2`, `h{i}.mlp.gelu`, `h{i}.mlp.out`, `h{i}.resid_post`, `ln_f`, `logits_all`.
    """
    cfg = params.config
    ids = np.asarray(token_ids, dtype=np.int64).reshape(-1)
    t = ids.size
    if t == 0 or t > cfg.n_ctx:
        raise ValueError(f"need 1..{cfg.n_ctx} tokens, got {t}")
    if ids.min() < 0 or ids.max() >= cfg.vocab_size:
        raise ValueError(f"token ids must lie in [0, {cfg.vocab_size})")
    eps = cfg.layer_norm_epsilon
    stages: dict[str, np.ndarray] = {}

    x = params["wte.weight"][ids] + params["wpe.weight"][:t]
    stages["embed"] = x
    causal = np.triu(np.ones((t, t), dtype=bool), k=1)  # True above the diagonal = future
    scale = np.float32(1.0 / math.sqrt(cfg.d_head))
    for i in range(cfg.n_layer):
        p = f"h{i}."

        def w(name: str, i: int = i) -> np.ndarray:
            return params.layer(i, name)

        stages[p + "resid_pre"] = x
        h = layer_norm(x, w("ln_1.weight"), w("ln_1.bias"), eps)
        stages[p + "ln_1"] = h
        qkv = h @ w("attn.c_attn.weight") + w("attn.c_attn.bias")
        q, k, v = np.split(qkv, 3, axis=-1)
        # [T, n_embd] → [n_head, T, d_head]; contiguous so matmul can hand it to BLAS
        q, k, v = (
            np.ascontiguousarray(m.reshape(t, cfg.n_head, cfg.d_head).transpose(1, 0, 2))
            for m in (q, k, v)
        )
        scores = (q @ k.transpose(0, 2, 1)) * scale
        scores = np.where(causal, np.float32(-np.inf), scores)
        pattern = softmax(scores)
        z = (pattern @ v).transpose(1, 0, 2).reshape(t, cfg.n_embd)
        attn_out = z @ w("attn.c_proj.weight") + w("attn.c_proj.bias")
        x = x + attn_out
        stages[p + "attn.pattern"] = pattern
        stages[p + "attn.z"] = z
        stages[p + "attn.out"] = attn_out
        stages[p + "resid_mid"] = x
        h = layer_norm(x, w("ln_2.weight"), w("ln_2.bias"), eps)
        stages[p + "ln_2"] = h
        act = gelu(h @ w("mlp.c_fc.weight") + w("mlp.c_fc.bias"))
        mlp_out = act @ w("mlp.c_proj.weight") + w("mlp.c_proj.bias")
        x = x + mlp_out
        stages[p + "mlp.gelu"] = act
        stages[p + "mlp.out"] = mlp_out
        stages[p + "resid_post"] = x

    final = layer_norm(x, params["ln_f.weight"], params["ln_f.bias"], eps)
    logits = final @ params["wte.weight"].T
    if not return_stages:
        return logits
    stages["ln_f"] = final
    stages["logits_all"] = logits
    return stages
