"""A translated value: the engine's value plus Excel expressions that tile its logical view.

Legacy array formulas cannot stack or join matrices, so a value is a list of *pieces*, each an
expression for one rectangle of the logical 2-D view (see layout.py): a 3-D attention array
is one piece per head, `merge_heads` moves the pieces side by side. Forms combine pieces
rectangle by rectangle; anything that cannot be expressed raises NoExcelForm, and the cell is
then exported as values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cellgpt.export.layout import Placement, logical_shape
from cellgpt.export.xlexpr import Lit, Ref, XlExpr, cell_ref_expr


class NoExcelForm(Exception):
    """This formula (or a function it calls) has no Excel form."""


@dataclass
class Piece:
    r0: int
    c0: int
    x: XlExpr

    @property
    def rect(self) -> tuple[int, int, int, int]:
        return (self.r0, self.c0, self.x.rows, self.x.cols)


@dataclass
class XArr:
    """A formula (sub)expression: its value, and its Excel pieces (empty: static only)."""

    value: Any
    pieces: list[Piece] = field(default_factory=list)

    @property
    def array(self) -> np.ndarray:
        if not is_numeric(self.value):
            raise NoExcelForm(f"a {type(self.value).__name__} value is not a number matrix")
        return np.asarray(self.value)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape

    @property
    def logical(self) -> tuple[int, int]:
        return logical_shape(self.shape)

    def whole(self) -> XlExpr:
        rows, cols = self.logical
        return self.slice(0, 0, rows, cols)

    def block(self, i: int) -> XlExpr:
        """Block i of a 3-D value ([i] as a 2-D matrix)."""
        _, b, c = self.shape
        return self.slice(i * b, 0, b, c)

    def slice(self, r0: int, c0: int, nr: int, nc: int) -> XlExpr:
        if not self.pieces:
            raise NoExcelForm("value has no Excel form")
        for p in self.pieces:
            pr, pc, pnr, pnc = p.rect
            if (pr, pc, pnr, pnc) == (r0, c0, nr, nc):
                return p.x
            inside = pr <= r0 and r0 + nr <= pr + pnr and pc <= c0 and c0 + nc <= pc + pnc
            if inside and isinstance(p.x, Ref) and p.x.origin is not None:
                return p.x.sub(r0 - pr, c0 - pc, nr, nc)
        raise NoExcelForm("needs part of a computed matrix (only sheet ranges can be sliced)")


def is_numeric(value: Any) -> bool:
    if isinstance(value, bool | int | float | np.number | np.bool_):
        return True
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "fiub"
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    )


def cell_xarr(value: Any, placement: Placement) -> XArr:
    """A whole cell's sheet range: one piece, or one per block for a 3-D array (so that the
    attention cells read and write head by head)."""
    arr = np.asarray(value)
    out = XArr(value)
    if arr.ndim == 3 and not placement.transposed:
        a, b, c = arr.shape
        for i in range(a):
            out.pieces.append(Piece(i * b, 0, cell_ref_expr(placement, i * b, 0, b, c)))
    else:
        rows, cols = logical_shape(arr.shape)
        out.pieces.append(Piece(0, 0, cell_ref_expr(placement, 0, 0, rows, cols)))
    return out


def scalar(value: Any, text: str) -> XArr:
    return XArr(value, [Piece(0, 0, Lit(text))])


def check_tiling(pieces: list[Piece], shape: tuple[int, int]) -> None:
    """Pieces must cover the logical view exactly once."""
    rows, cols = shape
    covered = np.zeros((rows, cols), dtype=np.int8) if rows * cols <= 50_000_000 else None
    area = 0
    for p in pieces:
        r0, c0, nr, nc = p.rect
        if r0 < 0 or c0 < 0 or r0 + nr > rows or c0 + nc > cols:
            raise NoExcelForm(f"piece {p.rect} lies outside {shape}")
        area += nr * nc
        if covered is not None:
            covered[r0 : r0 + nr, c0 : c0 + nc] += 1
    if area != rows * cols or (covered is not None and (covered != 1).any()):
        raise NoExcelForm(f"pieces do not tile {shape}")
