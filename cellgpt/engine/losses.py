"""Loss functions for formulas (their gradients are in vjp.py)."""

from __future__ import annotations

from typing import Any

import numpy as np

from cellgpt.engine.costs import broadcast
from cellgpt.engine.errors import CellEvalError


def cross_entropy(logits: Any, targets: Any) -> float:
    """Mean of -log softmax(logits)[target] over rows: `logits` [..., vocab], `targets` the
    right class of each row (a whole number, or one per row)."""
    logits = np.asarray(logits)
    ids = np.asarray(targets)
    if logits.ndim == 0 or ids.shape != logits.shape[:-1]:
        raise CellEvalError(
            f"cross_entropy: logits {logits.shape} need one target per row "
            f"(targets of shape {logits.shape[:-1]}, got {ids.shape})"
        )
    if ids.dtype.kind not in "iu":
        raise CellEvalError("cross_entropy: targets must be whole numbers (class ids)")
    if ids.size and (ids.min() < 0 or ids.max() >= logits.shape[-1]):
        raise CellEvalError(f"cross_entropy: a target is outside 0..{logits.shape[-1] - 1}")
    rows = logits.reshape(-1, logits.shape[-1]).astype(np.float64)
    top = rows.max(axis=-1, keepdims=True)
    log_z = np.log(np.exp(rows - top).sum(axis=-1)) + top[:, 0]
    picked = rows[np.arange(rows.shape[0]), ids.reshape(-1)]
    return float(np.mean(log_z - picked)) if ids.size else 0.0


def _ce_cost(logits: Any, targets: Any) -> tuple[int, int]:
    return broadcast(logits, logits)


def register_losses(library: Any) -> None:
    library.register("cross_entropy", cross_entropy, cost=_ce_cost)
