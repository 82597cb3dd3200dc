"""The per-cell formula layout (`--layout cells`): every number of a model sheet holds its own
ordinary formula, so a user can click any number and read how it is made.

The array layout writes one legacy array formula per piece (an `XlExpr` over a rectangle).
Here the same expression is evaluated *at one element*: a range becomes the cell at that
position (`=('wte_rows'!C3+'wpe_rows'!C3)`), a matrix product one row times one column
(`SUMPRODUCT(INDEX(h0_ln_1,3,0),INDEX(h0_attn_c_attn_w,0,17))`, or MMULT of a row and a
column when the two are stored in different directions), a per-row reduction the row's
helper cell. Only functions Excel 2010 and LibreOffice 7.4 both have; no formula needs
Ctrl+Shift+Enter: array arithmetic appears only inside SUMPRODUCT (which evaluates its
arguments as arrays everywhere) and MMULT of two plain ranges, never TRANSPOSE or IF.

A piece that cannot be written per cell stays one array formula, and the Index says so.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from cellgpt.export import styles
from cellgpt.export.helpers import HelperSink
from cellgpt.export.layout import DATA_COL0, DATA_ROW0, Placement, range_ref
from cellgpt.export.plan import Entry, Plan
from cellgpt.export.sheetio import RowWriter, formula_cell, plain_formula
from cellgpt.export.xlarray import NoExcelForm, Piece
from cellgpt.export.xlexpr import (
    Agg,
    Fn,
    Index0,
    Lit,
    MMult,
    Neg,
    Ones,
    Op,
    Ref,
    RowPick,
    Transpose,
    XlExpr,
)

LAYOUTS = ("arrays", "cells")
# Formulas a cells-layout workbook may hold: gpt2-mini at capacity 16 writes 333,334 (and
# LibreOffice recalculates them as fast as the array layout); GPT-2 small would write ~3.8M,
# each reading up to 3,072 numbers: that is what the array layout is for.
MAX_CELL_FORMULAS = 1_000_000
# Element-wise functions that SUMPRODUCT evaluates over arrays without Ctrl+Shift+Enter in
# Excel 2010 (IF and TRANSPOSE inside SUMPRODUCT still need it there).
_ARRAY_SAFE = frozenset({"EXP", "LN", "SQRT", "TANH", "ABS", "SIGN"})
_RANGE = re.compile(r"^(?P<sheet>(?:'(?:[^']|'')*'|[^!]+)!)?\$?(?P<col>[A-Z]+)\$?(?P<row>[0-9]+)")


# ---------------------------------------------------------------- one element of an expression
def element(x: XlExpr, i: int, j: int) -> str:
    """Excel text (no '=') for element (i, j) of the logical matrix `x`, as an ordinary
    one-cell formula; NoExcelForm if it has none."""
    i = 0 if x.rows == 1 else i  # Excel broadcasting of single rows and columns
    j = 0 if x.cols == 1 else j
    if isinstance(x, Ref):
        return _cell(x, i, j)
    if isinstance(x, Lit):
        return x.text
    if isinstance(x, Op):
        return f"({element(x.a, i, j)}{x.op}{element(x.b, i, j)})"
    if isinstance(x, Neg):
        return f"(-{element(x.x, i, j)})"
    if isinstance(x, Fn):
        return f"{x.name}({','.join(element(a, i, j) for a in x.args)})"
    if isinstance(x, Transpose):
        return element(x.x, j, i)
    if isinstance(x, Index0):
        return str(i if x.cols == 1 else j)
    if isinstance(x, Ones):
        return "1"
    if isinstance(x, RowPick):
        return _pick(x, j)
    if isinstance(x, MMult):
        return _dot(x.a, x.b, i, j)
    if isinstance(x, Agg):
        return _aggregate(x.name, x.x)
    raise NoExcelForm(f"{type(x).__name__} has no per-cell form")


def _cell(ref: Ref, i: int, j: int) -> str:
    """The one cell holding logical element (i, j) of a range, as a relative reference."""
    if ref.origin is not None:
        placement, r0, c0 = ref.origin
        text, _ = placement.logical_range(r0 + i, c0 + j, 1, 1)
        return text.replace("$", "")
    found = _RANGE.match(ref.text)  # a helper column's range: 'sheet'!$X$2:$X$17
    if found is None:
        raise NoExcelForm(f"{ref.text} is not a sheet range")
    r, c = (j, i) if ref.stored_t else (i, j)
    row, col = int(found["row"]) - 1 + r, _col_index(found["col"]) + c
    return (found["sheet"] or "") + range_ref(row, col, 1, 1, absolute=False)


def _col_index(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n - 1


def _pick(x: RowPick, j: int) -> str:
    """Column j of row k of a range: INDEX(range, k+1, j+1) (a lookup that follows k)."""
    if not isinstance(x.x, Ref):
        raise NoExcelForm("INDEX of a computed matrix")
    k = element(x.k, 0, 0)
    table = x.x.render(x.x.natural)  # the range as stored (its defined name when whole)
    if x.x.natural:  # stored transposed: the logical row is a stored column
        return f"INDEX({table},{j + 1},{k}+1)"
    return f"INDEX({table},{k}+1,{j + 1})"


# ---------------------------------------------------------------- rows and columns as arrays
def row_slice(x: XlExpr, i: int) -> XlExpr:
    """Row i of `x` (1 × cols) as an expression SUMPRODUCT can read."""
    if x.rows == 1:
        return x
    if x.cols == 1:  # a column broadcast along the row: its one number in row i
        return Lit(element(x, i, 0))
    if isinstance(x, Ref):
        return _line(x, i, along_rows=True)
    if isinstance(x, Transpose):
        return Transpose(col_slice(x.x, i), 1, x.cols)
    return _map(x, lambda y: row_slice(y, i) if y.rows > 1 else y, 1, x.cols)


def col_slice(x: XlExpr, j: int) -> XlExpr:
    """Column j of `x` (rows × 1)."""
    if x.cols == 1:
        return x
    if x.rows == 1:
        return Lit(element(x, 0, j))
    if isinstance(x, Ref):
        return _line(x, j, along_rows=False)
    if isinstance(x, Transpose):
        return Transpose(row_slice(x.x, j), x.rows, 1)
    return _map(x, lambda y: col_slice(y, j) if y.cols > 1 else y, x.rows, 1)


def _line(ref: Ref, k: int, along_rows: bool) -> Ref:
    """Row (or column) k of a range: INDEX(name, k+1, 0) when the range is a whole named
    cell (it reads as the name), else the sub-range."""
    rows, cols = (1, ref.cols) if along_rows else (ref.rows, 1)
    if ref.origin is None:
        raise NoExcelForm("a line of a helper range")
    placement, r0, c0 = ref.origin
    name = placement.name
    if name is not None and (r0, c0, ref.rows, ref.cols) == (0, 0, *placement.logical):
        stored_row = along_rows != placement.transposed  # a stored row, or a stored column
        text = f"INDEX({name},{k + 1},0)" if stored_row else f"INDEX({name},0,{k + 1})"
        return Ref(text, rows, cols, ref.stored_t)
    return ref.sub(k, 0, 1, ref.cols) if along_rows else ref.sub(0, k, ref.rows, 1)


def _map(x: XlExpr, f: Callable[[XlExpr], XlExpr], rows: int, cols: int) -> XlExpr:
    """`x` with `f` applied to its operands (element-wise nodes only)."""
    if isinstance(x, Op):
        return Op(f(x.a), x.op, f(x.b), rows, cols)
    if isinstance(x, Neg):
        return Neg(f(x.x), rows, cols)
    if isinstance(x, Fn) and x.name in _ARRAY_SAFE:
        return Fn(x.name, tuple(f(a) for a in x.args), rows, cols)
    if isinstance(x, Lit):
        return x
    raise NoExcelForm(f"{_what(x)} inside a row or column (it would need an array formula)")


def _what(x: XlExpr) -> str:
    return f"{x.name}()" if isinstance(x, Fn | Agg) else type(x).__name__


def _array_text(x: XlExpr) -> tuple[str, bool]:
    """A vector or matrix expression as text, in the direction its ranges are stored (so
    no TRANSPOSE), and whether that text is the transpose of `x`."""
    _check_array_safe(x)
    t = x.natural
    text = x.render(t)
    if "TRANSPOSE(" in text:  # ranges stored in different directions
        raise NoExcelForm("an array mixing rows and columns (it would need TRANSPOSE)")
    return text, t


def _check_array_safe(x: XlExpr) -> None:
    if isinstance(x, Ref | Lit):
        return
    if isinstance(x, RowPick):
        if not isinstance(x.x, Ref):
            raise NoExcelForm("INDEX of a computed matrix")
        return
    if isinstance(x, Transpose):
        _check_array_safe(x.x)
    elif isinstance(x, Op):
        _check_array_safe(x.a)
        _check_array_safe(x.b)
    elif isinstance(x, Neg):
        _check_array_safe(x.x)
    elif isinstance(x, Fn) and x.name in _ARRAY_SAFE:
        for a in x.args:
            _check_array_safe(a)
    else:
        raise NoExcelForm(f"{_what(x)} inside an array (it would need an array formula)")


def _is_range(x: XlExpr) -> bool:
    return isinstance(x, Ref | RowPick) or (isinstance(x, Transpose) and _is_range(x.x))


def _dot(a: XlExpr, b: XlExpr, i: int, j: int) -> str:
    """Element (i, j) of MMULT(a, b): row i of a times column j of b."""
    if a.cols == 1:
        return f"({element(a, i, 0)}*{element(b, 0, j)})"
    row = row_slice(a, i)
    if isinstance(b, Ones):  # a row sum (softmax's sum of exps, a layer norm's mean)
        text, _ = _array_text(row)
        return f"SUM({text})" if _is_range(row) else f"SUMPRODUCT({text})"
    col = col_slice(b, j)
    ta, a_t = _array_text(row)
    tb, b_t = _array_text(col)
    a_across, b_across = not a_t, b_t  # is each text a stored row (1 × n)?
    if a_across == b_across:
        return f"SUMPRODUCT({ta},{tb})"
    return f"MMULT({ta},{tb})" if a_across else f"MMULT({tb},{ta})"


def _aggregate(name: str, x: XlExpr) -> str:
    """MAX(range) or SUM(range) of a range; a computed array only inside SUMPRODUCT."""
    text, _ = _array_text(x)
    if _is_range(x):
        return f"{name}({text})"
    if name == "SUM":
        return f"SUMPRODUCT({text})"
    if name == "AVERAGE":
        return f"(SUMPRODUCT({text})/{x.rows * x.cols})"
    raise NoExcelForm(f"{name} of a computed array (it would need an array formula)")


# ---------------------------------------------------------------- the writer
def formula_count(entry: Entry) -> int:
    """How many one-cell formulas an entry becomes: its numbers and its helper cells."""
    n = int(np.asarray(entry.value).size)
    return n + sum(p.x.rows * p.x.cols for h in entry.helpers for p in h.pieces)


def check_size(plan: Plan, limit: int | None = None) -> int:
    """The number of formulas the cells layout would write; ValueError above `limit`
    (default MAX_CELL_FORMULAS)."""
    limit = MAX_CELL_FORMULAS if limit is None else limit
    total = sum(formula_count(e) for e in plan.entries if e.how == "formula")
    if total > limit:
        raise ValueError(
            f"--layout cells would write {total:,} formulas (one per number); the limit is "
            f"{limit:,}: use --layout arrays for this model (or a smaller --capacity)"
        )
    return total


class CellFormulas:
    """The cells layout of a plan: checks its size, finds the pieces that must stay array
    formulas (noted on their entries, for the Index) and writes the formula rows."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.count = check_size(plan)
        self.arrays: set[int] = set()  # id() of pieces kept as array formulas
        for entry in plan.entries:
            if entry.how != "formula":
                continue
            reasons = []
            pieces = [*(entry.pieces or []), *[p for h in entry.helpers for p in h.pieces]]
            for piece in pieces:
                try:
                    element(piece.x, 0, 0)  # the same nodes at every element
                except NoExcelForm as exc:
                    self.arrays.add(id(piece))
                    reasons.append(str(exc))
            if reasons:
                note = f"kept as array formulas: {reasons[0]}"
                entry.note = f"{entry.note}; {note}" if entry.note else note

    def index_note(self) -> str:
        kept = [e.name for e in self.plan.entries if "kept as array formulas" in e.note]
        return (
            "Layout cells: every number of a model sheet is its own formula (click it to "
            "read how it is made); matrix products are SUMPRODUCT or MMULT of one row and "
            "one column." + (f" Kept as array formulas: {', '.join(kept)}." if kept else "")
        )

    def write_rows(
        self,
        rows: RowWriter,
        entry: Entry,
        p: Placement,
        fmt: str | None,
        label: Callable[[int], Any],
    ) -> None:
        """The sheet's rows: `label(r)` in column A, one formula per data and helper cell."""
        ws = rows.ws
        # (stored rectangle, piece, number format) of every piece and helper piece
        rects: list[tuple[tuple[int, int, int, int], Piece, str | None]] = []
        for piece in entry.pieces or []:
            r0, c0, nr, nc = piece.rect
            rect = (c0, r0, nc, nr) if p.transposed else (r0, c0, nr, nc)
            rects.append((rect, piece, fmt))
        sink = HelperSink(p)
        for slot, column in enumerate(entry.helpers):
            for piece in column.pieces:
                rect = sink.stored_rect(slot, piece.r0, piece.x.rows)
                rects.append((rect, piece, styles.ACTIVATION))
        by_row: dict[int, list[int]] = {}
        for k, (rect, *_) in enumerate(rects):
            for r in range(rect[0], rect[0] + rect[2]):
                by_row.setdefault(r, []).append(k)
        n_rows = p.parts[0].n_rows
        n_rows += 1 + len(entry.helpers) if p.transposed and entry.helpers else 0
        for r in range(n_rows):
            line: list[Any] = [label(r)]
            for k in by_row.get(r, []):
                (r0, c0, nr, nc), piece, number_format = rects[k]
                for c in range(c0, c0 + nc):
                    at = c + DATA_COL0
                    line += [None] * (at + 1 - len(line))
                    if id(piece) in self.arrays:  # one array formula at its top-left
                        if r == r0 and c == c0:
                            ref = range_ref(r0 + DATA_ROW0, c0 + DATA_COL0, nr, nc, False)
                            text = piece.x.render(p.transposed)
                            line[at] = formula_cell(ws, ref, text, number_format)
                        continue
                    i, j = (c - c0, r - r0) if p.transposed else (r - r0, c - c0)
                    cell = plain_formula(ws, element(piece.x, i, j))
                    if number_format is not None:
                        cell.number_format = number_format
                    line[at] = cell
            rows.append(line)
