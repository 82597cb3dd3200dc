"""Explain expansions of GPT-2's own library functions (see engine/expansions.py): what
`attention_scores(q, k)` computes, step by step, for Evaluate Formula."""

from __future__ import annotations

from cellgpt.engine.expansions import Expansion, steps

# q·kᵀ per head, × 1/√d_head (a Python number: the product stays float32, and is the same
# float32 factor the library multiplies by), then the future masked to -inf. The queries
# are the last rows of the keys' positions (fewer when only new rows are computed).
ATTENTION_SCORES = steps(
    "d_head = shape(q)[-1]",
    "qk = matmul(q, transpose(k, (0, 2, 1)))",
    "scaled = qk * (1 / d_head ** 0.5)",
    "n_keys = shape(k)[1]",
    "mask = causal_mask(n_keys)[n_keys - shape(q)[1]:]",
    "masked = where(mask, scaled, -inf)",
)

GPT2: dict[str, Expansion] = {"attention_scores": ATTENTION_SCORES}
