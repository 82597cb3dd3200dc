"""Helper columns: per-row intermediate results (a row's max, mean, variance, sum of exps)
written once beside a cell's data, like the helper columns of a hand-built workbook.

Legacy array formulas have no row-wise MAX, and recomputing a row's mean inside every
element's formula is wasteful; so forms that reduce rows put the reduction in a helper
column and refer to it. A helper column sits one blank column right of the cell's data (or,
on a sheet stored transposed, one blank row below it), aligned with the logical rows.

Forms reach the cell being translated through `active()`: the translator opens a
`HelperSink` for each cell, the exporter then writes what the forms put into it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

from cellgpt.export.layout import DATA_COL0, DATA_ROW0, Placement, quote_sheet, range_ref
from cellgpt.export.xlarray import NoExcelForm, Piece
from cellgpt.export.xlexpr import Ref, XlExpr


@dataclass
class HelperColumn:
    """One helper column: a title and pieces (logical row offset, n×1 expression)."""

    label: str
    pieces: list[Piece] = field(default_factory=list)


class HelperSink:
    """The helper columns of one cell, placed at `placement`."""

    def __init__(self, placement: Placement) -> None:
        self.placement = placement
        self.columns: list[HelperColumn] = []

    def column(self, label: str) -> int:
        self.columns.append(HelperColumn(label))
        return len(self.columns) - 1

    def stored_rect(self, slot: int, r0: int, n: int) -> tuple[int, int, int, int]:
        """Where logical rows [r0, r0+n) of helper `slot` sit, in stored coordinates
        (0-based, relative to the data's top-left)."""
        rows, cols = self.placement.stored
        if self.placement.transposed:
            return (rows + 1 + slot, r0, 1, n)
        return (r0, cols + 1 + slot, n, 1)

    def put(self, slot: int, r0: int, x: XlExpr) -> Ref:
        """Write `x` (n×1) at logical rows r0.. of helper `slot`; its range, to refer to."""
        rows = self.placement.logical[0]
        if x.cols != 1 or r0 < 0 or r0 + x.rows > rows:
            raise NoExcelForm(
                f"a helper column of {x.rows}x{x.cols} at row {r0} does not fit "
                f"beside {self.placement.sheet} ({rows} rows)"
            )
        self.columns[slot].pieces.append(Piece(r0, 0, x))
        return self.put_ref(slot, r0, x.rows)

    def put_ref(self, slot: int, r0: int, n: int) -> Ref:
        """The range of logical rows [r0, r0+n) of helper `slot` (already put)."""
        sr, sc, nr, nc = self.stored_rect(slot, r0, n)
        text = range_ref(sr + DATA_ROW0, sc + DATA_COL0, nr, nc)
        sheet = quote_sheet(self.placement.sheet)
        return Ref(f"{sheet}!{text}", n, 1, self.placement.transposed)


_ACTIVE: ContextVar[HelperSink | None] = ContextVar("cellgpt_export_helpers", default=None)


def active() -> HelperSink:
    """The helper columns of the cell being translated."""
    sink = _ACTIVE.get()
    if sink is None:
        raise NoExcelForm("needs helper columns, which only a cell on a sheet has")
    return sink


def is_active() -> bool:
    return _ACTIVE.get() is not None


@contextlib.contextmanager
def collecting(placement: Placement | None) -> Iterator[HelperSink | None]:
    """Helper columns put while translating one cell go into a fresh sink."""
    sink = HelperSink(placement) if placement is not None else None
    token = _ACTIVE.set(sink)
    try:
        yield sink
    finally:
        _ACTIVE.reset(token)
