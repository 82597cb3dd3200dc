"""Evaluate Formula's checks: a value that explains another (an expansion's result, an inlined
cell's formula, the tree's root) compared with the value it explains."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

RELATIVE_TOLERANCE = 1e-5  # of the largest |value|: float32 kernels vs plain numpy steps


@dataclass(frozen=True)
class Check:
    """A value that explains another (an expansion's result, an inlined cell's formula, the
    tree's root) compared with it: equal within RELATIVE_TOLERANCE, same infinities."""

    what: str  # e.g. "layer_norm()'s result", "the cell's value"
    equal: bool
    max_diff: float | None = None  # largest |difference| over the finite entries
    note: str = ""  # why it could not be compared, or what differs


def compare(value: Any, reference: Any, what: str) -> Check:
    """Is `value` the same as `reference`, up to float rounding? (See Check.)"""
    try:
        x, y = np.asarray(value), np.asarray(reference)
    except Exception:
        return Check(what, bool(value == reference))
    if x.dtype == object or y.dtype == object:
        try:
            return Check(what, bool(value == reference))
        except Exception:
            return Check(what, False, note="cannot be compared")
    if x.shape != y.shape:
        return Check(what, False, note=f"shape {x.shape} differs from {y.shape}")
    if x.dtype.kind not in "fc" and y.dtype.kind not in "fc":
        return Check(what, bool(np.array_equal(x, y)), 0.0)
    xf, yf = x.astype(np.float64), y.astype(np.float64)
    fx, fy = np.isfinite(xf), np.isfinite(yf)
    same_holes = np.array_equal(fx, fy) and np.array_equal(xf[~fx], yf[~fy], equal_nan=True)
    finite = fx & fy
    diff = float(np.max(np.abs(xf[finite] - yf[finite]), initial=0.0))
    scale = float(np.max(np.abs(yf[finite]), initial=0.0))
    equal = same_holes and diff <= RELATIVE_TOLERANCE * max(1.0, scale)
    note = "" if same_holes else "non-finite entries differ"
    return Check(what, equal, diff, note)
