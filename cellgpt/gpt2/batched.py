"""Batch variants of GPT-2 functions, for a workbook run over many prompts at once.

In a batch run the token-dependent cells carry a leading prompt axis (see cellgpt/batchrun/
plan.py). Most functions handle that as they are; `last_row` cannot (on one prompt's
[tokens, width] it takes the last token, on [prompts, tokens, width] it would take the last
prompt), so batch runs rewrite it to `batch_last_row`. `token_losses` scores a text under
the model: the loss of each token given the ones before it (perplexity = exp(mean loss)).
"""

from __future__ import annotations

import numpy as np

from cellgpt.engine import FunctionLibrary
from cellgpt.engine.costs import fixed
from cellgpt.engine.errors import CellEvalError


def batch_last_row(x: np.ndarray) -> np.ndarray:
    """The last row (token) of each prompt: [prompts, tokens, ...] → [prompts, ...]."""
    if not isinstance(x, np.ndarray) or x.ndim < 2:
        raise CellEvalError("batch_last_row needs [prompts, tokens, ...]")
    return x[:, -1]


def token_losses(ln_f: np.ndarray, wte: np.ndarray, token_ids: np.ndarray) -> np.ndarray:
    """-log p(token t+1 | tokens ≤ t) for each prompt and position: [prompts, tokens - 1]
    (float64). The logits are each final vector times the (tied) embedding table, one
    prompt at a time so that memory stays [tokens, vocab]."""
    ids = np.asarray(token_ids)
    if ln_f.ndim != 3 or ids.shape != ln_f.shape[:2]:
        raise CellEvalError("token_losses needs ln_f [prompts, tokens, width] and the ids")
    out = np.empty((ids.shape[0], max(ids.shape[1] - 1, 0)), dtype=np.float64)
    head = np.ascontiguousarray(wte.T)
    rows = np.arange(out.shape[1])
    for b in range(ids.shape[0]):
        logits = np.matmul(ln_f[b, :-1], head).astype(np.float64)
        top = logits.max(axis=-1, keepdims=True)
        log_z = np.log(np.exp(logits - top).sum(axis=-1)) + top[:, 0]
        out[b] = log_z - logits[rows, ids[b, 1:]]
    return out


def register_batched(library: FunctionLibrary) -> FunctionLibrary:
    """Add the batch variants to a library (a copy used by batch runs only)."""
    library.register("batch_last_row", batch_last_row, cost=fixed)
    return library
