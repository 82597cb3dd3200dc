"""Number and size formatting for cells: fixed-width numbers, durations, summary stats."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PRECISIONS = (2, 4, 6)  # the precision toggle cycles through these


def cell_width(precision: int) -> int:
    """Characters per grid column: sign, 3 integer digits, point, decimals, one space."""
    return precision + 7


def format_number(x: float, width: int, precision: int) -> str:
    """`x` right-aligned in `width` characters, switching to exponent form if it won't fit."""
    if math.isnan(x):
        text = "nan"
    elif math.isinf(x):
        text = "inf" if x > 0 else "-inf"
    else:
        text = f"{x:.{precision}f}"
        if len(text) > width:
            digits = max(0, width - 7)
            text = f"{x:.{digits}e}"
            if len(text) > width:
                text = "#" * width  # Excel's "too wide" marker
    return text.rjust(width)


def format_duration(seconds: float) -> str:
    if seconds < 1e-6:  # too small to mean anything (an input, a renamed reference)
        return ""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f}µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f}ms"
    return f"{seconds:.2f}s"


@dataclass(frozen=True)
class Stats:
    min: float
    max: float
    mean: float
    std: float
    nonfinite: int  # count of nan / inf values (e.g. the masked attention scores)


def summarize(values: np.ndarray, chunk: int = 1 << 20) -> Stats | None:
    """Min/max/mean/std over the finite values of a numeric array (None if not numeric).
    Works through the array in chunks so a 50257 × 768 table needs no full-size copy."""
    arr = np.asarray(values)
    if arr.size == 0 or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        return None
    flat = arr.reshape(-1)
    n = n_bad = 0
    mean = m2 = 0.0  # running mean and sum of squared deviations, merged chunk by chunk
    lo, hi = math.inf, -math.inf
    for start in range(0, flat.size, chunk):
        part = flat[start : start + chunk].astype(np.float64)
        finite = np.isfinite(part)
        if not finite.all():
            n_bad += int(part.size - np.count_nonzero(finite))
            part = part[finite]
        if part.size == 0:
            continue
        k = part.size
        part_mean = float(part.mean())
        dev = part - part_mean
        delta = part_mean - mean
        mean += delta * k / (n + k)
        m2 += float(np.dot(dev, dev)) + delta * delta * n * k / (n + k)
        n += k
        lo, hi = min(lo, float(part.min())), max(hi, float(part.max()))
    if n == 0:
        return Stats(math.nan, math.nan, math.nan, math.nan, n_bad)
    return Stats(lo, hi, mean, math.sqrt(m2 / n), n_bad)


def format_stats(stats: Stats) -> str:
    text = f"min {stats.min:.4g}  max {stats.max:.4g}  mean {stats.mean:.4g}  std {stats.std:.4g}"
    if stats.nonfinite:
        text += f"  ({stats.nonfinite} non-finite)"
    return text
