"""Arrays known to be causal: entries above the diagonal hold one fill value.

Attention scores are -inf wherever a key lies after its query, and their softmax is 0 there.
A kernel that knows this can skip that part — about half of a long prompt's softmax and of
pattern × values — and still return the same numbers (rounding aside: sums over fewer
trailing zeros). The producer marks its result; a consumer asks about the exact object it
was given. A mark lives as long as the array (a weak reference), and views, copies or edits
by the user are never marked, so they always take the general path.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Causal:
    """a[..., r, c] == fill wherever c > r + offset (queries are the last rows of the keys)."""

    offset: int
    fill: float


_marks: dict[int, tuple[weakref.ref[np.ndarray], Causal]] = {}
_lock = threading.Lock()


def mark(a: np.ndarray, offset: int, fill: float) -> np.ndarray:
    """Record that `a` (at least 2-D) is causal with this offset and fill; returns `a`."""
    key = id(a)

    def forget(_ref: object, key: int = key) -> None:
        with _lock:
            entry = _marks.get(key)
            if entry is not None and entry[0]() is None:
                del _marks[key]

    with _lock:
        _marks[key] = (weakref.ref(a, forget), Causal(int(offset), float(fill)))
    return a


def causal(a: object, fill: float) -> Causal | None:
    """The mark of this exact array if it is causal with `fill`, else None."""
    entry = _marks.get(id(a))
    if entry is None or entry[0]() is not a:
        return None
    found = entry[1]
    same = found.fill == fill or (np.isnan(found.fill) and np.isnan(fill))
    return found if same else None


# Causal kernels work through the query rows in blocks: block r0..r1 needs the keys up to
# its last row only (the rest is the fill).
ROW_BLOCK = 128


def blocks(rows: int, offset: int) -> list[tuple[int, int, int]]:
    """(r0, r1, keys) for each block of query rows: keys = how many columns it needs."""
    return [
        (r0, min(rows, r0 + ROW_BLOCK), offset + min(rows, r0 + ROW_BLOCK))
        for r0 in range(0, rows, ROW_BLOCK)
    ]


@functools.lru_cache(maxsize=8)
def future_mask(rows: int, cols: int) -> np.ndarray:
    """True where key position > query position (queries are the last `rows` positions)."""
    q_pos = np.arange(cols - rows, cols)[:, None]
    mask = np.arange(cols)[None, :] > q_pos
    mask.flags.writeable = False
    return mask


def flat_heads(fn: Callable[..., np.ndarray], *arrays: np.ndarray) -> np.ndarray:
    """fn over [batch·head, ...] arrays made from [batch, head, ...] ones (a batch of prompts
    computed as more heads of one prompt), reshaped back to [batch, head, ...]. Causal marks
    go with the arrays both ways, so the causal kernels see a batch as they see one prompt."""
    lead = arrays[0].shape[:2]
    flat = []
    for a in arrays:
        f = a.reshape(-1, *a.shape[2:])
        found = _mark_of(a)
        flat.append(mark(f, found.offset, found.fill) if found is not None else f)
    out = fn(*flat)
    shaped = out.reshape(*lead, *out.shape[1:])
    found = _mark_of(out)
    return mark(shaped, found.offset, found.fill) if found is not None else shaped


def _mark_of(a: object) -> Causal | None:
    entry = _marks.get(id(a))
    return entry[1] if entry is not None and entry[0]() is a else None
