"""`normalize(x, eps) * gain + bias` — a layer norm shown as two cells (GPT-2's
`ln_1.normalized`, then `ln_1`) — computed in one pass by the fused kernel, bit for bit the
same (see fusion.py for when the runner does this)."""

from __future__ import annotations

from typing import Any

import numpy as np

from cellgpt.engine import kernels
from cellgpt.engine.costs import broadcast
from cellgpt.engine.errors import CellEvalError
from cellgpt.engine.fusion import Fusion
from cellgpt.engine.limits import charge


def _fused_layer_norm(x: Any, gain: Any, bias: Any, eps: Any) -> np.ndarray:
    """`normalize(x, eps) * gain + bias` in one pass, bit for bit (see fusion.py)."""
    fits = (
        isinstance(x, np.ndarray)
        and isinstance(gain, np.ndarray)
        and isinstance(bias, np.ndarray)
        and x.ndim >= 1
        and gain.shape == bias.shape == x.shape[-1:]
        and kernels.is_float(x, gain, bias)
        and isinstance(eps, int | float | np.integer | np.floating)
        and not isinstance(eps, bool)
    )
    if not fits:
        raise CellEvalError("fused layer norm needs float rows and a gain and bias per column")
    charge("layer_norm", *broadcast(x, gain, bias))
    return kernels.layer_norm(x, gain, bias, float(eps))


LAYER_NORM = Fusion(
    "layer_norm",
    links=("N = normalize(X, E)",),
    reader="N * G + B",
    inputs=("X", "G", "B", "E"),
    fused=_fused_layer_norm,
)
