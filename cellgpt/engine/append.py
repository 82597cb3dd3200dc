"""Row-append recompute: when a cell's inputs only gained rows at the end, a causal cell can
extend its previous value with the new rows instead of recomputing everything.

The engine tracks, for every evaluation, how many leading rows of the new value equal the
previous value (`appended_from`). A cell may carry an *extender* (registered by a domain
package for one exact formula text): given its previous value, the current inputs, the names
of the inputs that grew and from how many rows, it returns the new value — or None to fall
back to the plain formula. `RowExtender` is the common case, declared by data: which inputs
to cut down to their new rows (and along which axis), which grown inputs the formula may
read whole (a causal cell, e.g. attention reading all keys), and along which axis the new
rows join the old value (padding the old rows where the columns grew too).

An evictable cell (see runner.py) has no previous value to extend. A `RowExtender` can
still compute just its new rows (`new_rows`): the engine keeps them as a `RowTail` in place of
the value, and the cells after it that cut that input to its new rows read the tail as is.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cellgpt.engine.limits import array_root
from cellgpt.engine.row_rules import ndim_of
from cellgpt.engine.store import MISSING, CellState

# Evaluate the cell's own formula against an environment of input values.
Evaluate = Callable[[Mapping[str, Any]], Any]
# extender(previous value, current inputs, {grown input: rows it had before}, evaluate)
Extender = Callable[[Any, Mapping[str, Any], Mapping[str, int], Evaluate], Any]

COMPARE_LIMIT = 1 << 22  # compare values up to 4M elements for "only rows were appended"


def prefix_rows(prev: Any, new: Any) -> int | None:
    """len(prev) if `new` is `prev` with rows appended along axis 0 (or unchanged), else None.
    Lists, tuples and arrays up to COMPARE_LIMIT elements; anything else: None."""
    if isinstance(prev, list | tuple) and isinstance(new, list | tuple):
        n = len(prev)
        return n if len(new) >= n and list(new[:n]) == list(prev) else None
    if isinstance(prev, np.ndarray) and isinstance(new, np.ndarray):
        if prev.ndim == 0 or prev.ndim != new.ndim or prev.shape[1:] != new.shape[1:]:
            return None
        n = prev.shape[0]
        if new.shape[0] < n or prev.dtype != new.dtype or new.size > COMPARE_LIMIT:
            return None
        return n if np.array_equal(new[:n], prev) else None
    return None


def shared_prefix(prev: Any, new: Any) -> int | None:
    """len(prev) if `new` starts with prev's very memory: both views of one array nobody
    writes (a read-only root, e.g. memory-mapped parameters), from the same first element
    with the same strides, `new` the longer. Its first rows are then prev's without comparing
    them (`wpe_rows`, rows 0..n of the position table, one longer each generated token)."""
    if type(prev) is not np.ndarray or type(new) is not np.ndarray or prev.ndim == 0:
        return None
    if prev.ndim != new.ndim or prev.dtype != new.dtype or prev.strides != new.strides:
        return None
    if prev.shape[1:] != new.shape[1:] or new.shape[0] < prev.shape[0]:
        return None
    root = array_root(prev)
    if root is prev or array_root(new) is not root or root.flags.writeable:
        return None
    if prev.__array_interface__["data"][0] != new.__array_interface__["data"][0]:
        return None
    return prev.shape[0]


def keep_for_compare(value: Any) -> bool:
    """Whether a stale value is small enough to keep until its recompute (to compare)."""
    if isinstance(value, list | tuple):
        return len(value) <= COMPARE_LIMIT
    return isinstance(value, np.ndarray) and 0 < value.size <= COMPARE_LIMIT


def take_rows(value: Any, start: int, axis: int) -> Any:
    """Rows start.. along `axis` (lists: axis 0)."""
    if isinstance(value, np.ndarray):
        index = [slice(None)] * value.ndim
        index[axis] = slice(start, None)
        return value[tuple(index)]
    return value[start:]


def join_rows(prev: np.ndarray, new: np.ndarray, axis: int, pad: float | None) -> np.ndarray:
    """prev with the rows of `new` appended along `axis`. If the axis after it grew as well
    (a [.., rows, cols] matrix of position pairs), the old rows are padded with `pad`.

    Amortised O(new rows): the result is a view of a buffer with spare room, and the next
    append writes into that room instead of copying every old row again (generation would
    otherwise copy all of every cell for each token). Earlier values stay valid: they are
    views of the part of the buffer that is never written again."""
    grow_cols = pad is not None and prev.ndim > axis + 1
    old_r = prev.shape[axis]
    rows = old_r + new.shape[axis]
    cols = new.shape[axis + 1] if grow_cols else None
    buf = _room_after(prev, new, axis, rows, cols)
    if buf is None:
        buf = _new_buffer(prev, new, axis, rows, cols)
    if axis == 0 and not grow_cols:  # the common case (a token's row), without index tuples
        buf[old_r:rows] = new
        view = buf[:rows]
    else:
        lead = (slice(None),) * axis
        if grow_cols:
            old_c = prev.shape[axis + 1]
            buf[(*lead, slice(0, old_r), slice(old_c, cols))] = pad
            buf[(*lead, slice(old_r, rows), slice(0, cols))] = new
            view = buf[(*lead, slice(0, rows), slice(0, cols))]
        else:
            buf[(*lead, slice(old_r, rows))] = new
            view = buf[(*lead, slice(0, rows))]
    _frontier[id(buf)] = weakref.ref(view)
    return view


# id(buffer) -> the newest view handed out (only that one may be extended in place: an older
# or derived view of the same buffer must not write over rows a newer value already holds)
_frontier: dict[int, weakref.ref[np.ndarray]] = {}


def _room_after(
    prev: np.ndarray, new: np.ndarray, axis: int, rows: int, cols: int | None
) -> np.ndarray | None:
    """prev's buffer, if prev is (the very object of) its newest view and the buffer has room
    for the result. By identity: every view join_rows hands out starts at the buffer's first
    element with the buffer's strides, so the object itself says where it lies."""
    buf = prev.base
    if type(buf) is not np.ndarray:
        return None
    newest = _frontier.get(id(buf))
    if newest is None or newest() is not prev:
        return None
    if new.dtype != buf.dtype and buf.dtype != np.result_type(prev, new):
        return None
    if buf.shape[axis] < rows or (cols is not None and buf.shape[axis + 1] < cols):
        return None
    return buf


def _new_buffer(
    prev: np.ndarray, new: np.ndarray, axis: int, rows: int, cols: int | None
) -> np.ndarray:
    """A buffer with ~25% spare rows (and columns), holding a copy of prev."""
    shape = list(new.shape)
    shape[axis] = rows + max(16, rows // 4)
    if cols is not None:
        shape[axis + 1] = cols + max(16, cols // 4)
    buf = np.empty(shape, dtype=np.result_type(prev, new))
    buf[tuple(slice(0, n) for n in prev.shape)] = prev
    key = id(buf)
    weakref.finalize(buf, _frontier.pop, key, None)
    return buf


@dataclass(frozen=True)
class RowTail:
    """The rows of a value from `start` on along `axis`: all that is kept of a dropped
    (evicted) value whose inputs only grew, for the extenders of the cells that read it."""

    rows: Any
    start: int
    axis: int


@dataclass(frozen=True)
class RowExtender:
    """Extend a cell whose row r depends only on row r of the `cut` inputs (cut along the
    given axes), and on the `whole` inputs read entirely — the author's promise that the
    earlier rows stay as they are when those grow (causality). New rows are joined along
    `axis`; `pad` fills old rows' new columns when the next axis grows too."""

    cut: Mapping[str, int]
    axis: int = 0
    whole: frozenset[str] = field(default_factory=frozenset)
    pad: float | None = None

    def __call__(
        self, prev: Any, env: Mapping[str, Any], grown: Mapping[str, int], evaluate: Evaluate
    ) -> Any:
        if not isinstance(prev, np.ndarray) or prev.ndim <= self.axis:
            return None
        if any(n != prev.shape[self.axis] for n in grown.values()):
            return None
        tail = self.new_rows(env, grown, evaluate)
        if tail is None or not _joins(prev, tail.rows, self.axis, self.pad):
            return None
        return join_rows(prev, tail.rows, self.axis, self.pad)

    def new_rows(
        self, env: Mapping[str, Any], grown: Mapping[str, int], evaluate: Evaluate
    ) -> RowTail | None:
        """Only the new rows (those from the inputs' old row count on), or None. Inputs in
        `env` may be `RowTail`s: a cut input's tail is used as its new rows."""
        olds = set(grown.values())
        if len(olds) != 1 or not set(grown) <= set(self.cut) | self.whole:
            return None
        if not self.whole <= set(grown):  # keys that did not grow: not the causal case
            return None
        (old,) = olds
        local = dict(env)
        for name, value in env.items():
            if isinstance(value, RowTail) and (
                self.cut.get(name) != value.axis or value.start != old
            ):
                return None  # a tail this cell cannot use: the engine passes full values
        counts = set()
        for name, axis in self.cut.items():
            if name not in grown:  # a cut input that did not grow: nothing new to compute
                return None
            value = env[name]
            rows = value.rows if isinstance(value, RowTail) else take_rows(value, old, axis)
            counts.add(count_rows(rows, axis))
            local[name] = rows
        if len(counts) != 1 or None in counts:
            return None  # inputs grew by different counts: the formula would not line up
        new = evaluate(local)
        if not isinstance(new, np.ndarray) or new.ndim <= self.axis:
            return None
        if new.shape[self.axis] != counts.pop():  # broadcasting put the rows elsewhere
            return None
        return RowTail(new, old, self.axis)


def count_rows(rows: Any, axis: int) -> int | None:
    """How many rows a cut input holds along `axis` (lists: axis 0 only)."""
    if isinstance(rows, np.ndarray):
        return rows.shape[axis] if rows.ndim > axis else None
    return len(rows) if axis == 0 and isinstance(rows, list | tuple) else None


def new_rows_of(state: CellState, old: int, axis: int, ndim: int | None) -> Any:
    """A cut input's rows from `old` on along `axis` (its tail, if it keeps only those), or
    None when they are not there as the cut expects them (a replayed step reads them so)."""
    if state.evicted:
        tail = state.tail
        if tail is None or tail.start != old or tail.axis != axis:
            return None
        rows = tail.rows
    else:
        value = state.value
        if value is MISSING:
            return None
        if type(value) is np.ndarray and axis == 0 and value.ndim:
            rows = value[old:]  # take_rows, without building an index
        else:
            rows = take_rows(value, old, axis)
    if type(rows) is np.ndarray:  # has_ndim, inline for arrays
        if (ndim is not None and rows.ndim != ndim) or rows.ndim <= axis:
            return None
    elif ndim is not None and not has_ndim(rows, ndim):
        return None
    return rows


def has_ndim(value: Any, ndim: int) -> bool:
    """DerivedRows' check of an input's axes (arrays by .ndim, lists by their nesting)."""
    return getattr(value, "ndim", None) == ndim or ndim_of(value) == ndim


def _joins(prev: np.ndarray, new: np.ndarray, axis: int, pad: float | None) -> bool:
    """Whether `new` holds rows of the same shape as prev's (wider when padded): otherwise
    the formula did not keep its rows where the extender expects them."""
    if new.ndim != prev.ndim or new.shape[:axis] != prev.shape[:axis]:
        return False
    if pad is not None and prev.ndim > axis + 1:
        rest = axis + 2
        if new.shape[axis + 1] < prev.shape[axis + 1]:
            return False
    else:
        rest = axis + 1
    return new.shape[rest:] == prev.shape[rest:]
