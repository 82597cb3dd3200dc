"""Row rules: how a library function's output rows follow its arguments' rows.

A function registered with `rows=rule` tells the engine what happens when some arguments
gain rows at the end (tokens appended) while the others stay as they are. The rule sees each
argument's kind — `Rows` (grows along an axis; earlier rows never change) or `Fixed` (does
not change) — and answers the output's kind, or None when the output's earlier rows could
change (a reduction over the rows, rows mixed together). From these answers the engine
derives, per cell, a variant of its formula that computes only the new rows (row_derive.py).

A rule may read some Rows arguments whole (`Out.whole`): a causal function such as
attention, whose new rows need every key, while its old rows keep their values (padded in
the new columns). All other Rows arguments are cut down to their new rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

UNKNOWN: Any = object()  # a Fixed value the formula does not spell out


@dataclass(frozen=True)
class Rows:
    """A value of `ndim` axes with one row per token along `axis`: when tokens are appended
    its rows are appended there, and earlier rows stay as they are. With `pad`, the last axis
    (right after `axis`) holds one column per token too, and old rows hold `pad` in the new
    columns (a causal matrix: a token never looks ahead)."""

    axis: int
    ndim: int
    pad: float | None = None

    @property
    def from_end(self) -> int:
        return self.axis - self.ndim  # numpy broadcasting aligns axes at the end

    @property
    def valid(self) -> bool:
        return 0 <= self.axis < self.ndim and (self.pad is None or self.axis == self.ndim - 2)


@dataclass(frozen=True)
class Fixed:
    """A value that stays as it is when tokens are appended (weights, settings). `ndim` when
    known; `value` when the formula spells it out (an axis number)."""

    ndim: int | None = None
    value: Any = UNKNOWN


Arg = Rows | Fixed


@dataclass(frozen=True)
class Out:
    """A rule's answer that reads the Rows arguments at positions `whole` in full."""

    value: Arg
    whole: tuple[int, ...] = ()


# rule(arguments by position, defaults filled in) -> the output, or None: not row-wise
RowRule = Callable[[Sequence[Arg]], Arg | Out | None]


def ndim_of(value: Any) -> int | None:
    """Axes of a value as numpy sees them (nested lists: by their first items); None for
    values that are not numbers or arrays of them."""
    if isinstance(value, np.ndarray | np.generic):
        return value.ndim
    if isinstance(value, bool | int | float | complex) or value is None:
        return 0
    depth = 0
    while isinstance(value, list | tuple):
        depth += 1
        if not value:
            return depth
        value = value[0]
    if isinstance(value, bool | int | float | complex | np.generic):
        return depth
    return None


def _rows(args: Sequence[Arg]) -> list[Rows]:
    return [a for a in args if isinstance(a, Rows)]


def elementwise(args: Sequence[Arg]) -> Arg | None:
    """Element by element with numpy broadcasting: output row r comes from input row r."""
    ndims = [a.ndim for a in args]
    if any(n is None for n in ndims):
        return None  # broadcasting could move the rows to another axis
    ndim = max((n for n in ndims if n is not None), default=0)
    rows = _rows(args)
    if not rows:
        return Fixed(ndim)
    if any(r.pad is not None for r in rows) or len({r.from_end for r in rows}) != 1:
        return None  # f(pad) is not known here; rows on different axes would mix
    return Rows(ndim + rows[0].from_end, ndim)


def along_last_axis(args: Sequence[Arg]) -> Arg | None:
    """Works within each row's last axis (layer_norm), the other arguments broadcast: fine
    as long as the rows are not that last axis."""
    x = args[0]
    if isinstance(x, Rows) and (x.pad is not None or x.axis == x.ndim - 1):
        return None
    if _rows(args[1:]):
        return None
    return elementwise(args)


def softmax_rows(args: Sequence[Arg]) -> Arg | None:
    """softmax(a, axis): row-wise across any other axis. A causal matrix padded with -inf
    (masked scores) gives one padded with 0 when taken along its columns."""
    a, axis = args[0], args[1]
    if not isinstance(axis, Fixed) or not isinstance(axis.value, int) or a.ndim is None:
        return None
    if isinstance(a, Fixed):
        return Fixed(a.ndim)
    over = axis.value % a.ndim if a.ndim else -1
    if a.pad is None:
        return a if over != a.axis else None
    if over == a.ndim - 1 and a.pad == -np.inf:
        return Rows(a.axis, a.ndim, 0.0)
    return None


def _matmul_ndim(na: int, nb: int) -> int:
    if na == 1 or nb == 1:
        return max(na, nb) - 1
    return max(na, nb)


def matmul_rows(args: Sequence[Arg]) -> Arg | Out | None:
    """a @ b: rows of `a` (not the contracted axis) times a fixed `b`, a fixed `a` times
    columns of `b`, or a causal matrix padded with 0 times the rows it weighs (read whole)."""
    a, b = args[0], args[1]
    if a.ndim is None or b.ndim is None or a.ndim == 0 or b.ndim == 0:
        return None
    ndim = _matmul_ndim(a.ndim, b.ndim)
    if isinstance(a, Fixed) and isinstance(b, Fixed):
        return Fixed(ndim)
    if isinstance(a, Rows) and isinstance(b, Fixed):
        if a.pad is not None or a.axis == a.ndim - 1:
            return None
        return Rows(a.axis if b.ndim == 1 else ndim + a.from_end, ndim)
    if isinstance(a, Fixed) and isinstance(b, Rows):
        if b.pad is not None or b.ndim < 2 or b.axis == b.ndim - 2:
            return None
        shift = 1 if a.ndim == 1 and b.from_end < -2 else 0  # a vector drops b's axis -2
        return Rows(ndim + b.from_end + shift, ndim)
    assert isinstance(a, Rows) and isinstance(b, Rows)
    causal = a.pad == 0.0 and b.pad is None and b.ndim == a.ndim and b.axis == b.ndim - 2
    return Out(Rows(a.axis, a.ndim), whole=(1,)) if causal else None


def transpose_rows(args: Sequence[Arg]) -> Arg | None:
    """transpose(a, axes): the rows move with their axis."""
    a, axes = args[0], args[1]
    if a.ndim is None or not isinstance(axes, Fixed) or axes.value is UNKNOWN:
        return None
    perm = list(reversed(range(a.ndim))) if axes.value is None else list(axes.value)
    if sorted(p % a.ndim if a.ndim else p for p in perm) != list(range(a.ndim)):
        return None
    if isinstance(a, Fixed):
        return Fixed(a.ndim)
    if a.pad is not None:
        return None
    return Rows([p % a.ndim for p in perm].index(a.axis), a.ndim)


def moves_rows(source: tuple[int, int], target: tuple[int, int]) -> RowRule:
    """A rule for a function of one array argument (the others fixed) that takes rows on
    axis source[0] of a source[1]-axis array to rows on axis target[0] of a target[1]-axis
    one (a reshape that keeps rows apart, such as splitting heads)."""

    def rule(args: Sequence[Arg]) -> Arg | None:
        x = args[0]
        if _rows(args[1:]):
            return None
        if isinstance(x, Fixed):
            return Fixed(target[1])
        if x.pad is None and (x.axis, x.ndim) == source:
            return Rows(*target)
        return None

    return rule
