"""Where a cell's value goes on a worksheet: sheet names and the 2-D placement of arrays.

Every array is first seen as a *logical* 2-D matrix (a scalar is 1×1, a vector 1×n, a 3-D
array [a, b, c] is its a blocks stacked vertically, (a·b)×c — the same view `Workbook.table`
gives). The *stored* matrix is that view, transposed when its columns would not fit Excel's
16,384 columns or when its columns run along the vocabulary (logits read best as a list of
tokens), and split into parts of at most 1,048,575 data rows (row 1 holds the header).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

MAX_ROWS = 1_048_576
MAX_COLS = 16_384
MAX_SHEET_NAME = 31
DATA_ROW0 = 1  # 0-based sheet row of the first data row (row 0 is the header)
DATA_COL0 = 1  # 0-based sheet column of the first data column (column 0 holds row labels)
MAX_DATA_ROWS = MAX_ROWS - DATA_ROW0
MAX_DATA_COLS = MAX_COLS - DATA_COL0
# Our own sheets, and "History", which Excel reserves (a sheet so named will not open).
RESERVED_SHEETS = ("Index", "Summary", "History")

_BAD_SHEET_CHARS = re.compile(r"[\[\]:*?/\\]")


class SheetNames:
    """Unique, Excel-valid sheet names (≤ 31 characters, no []:*?/\\, case-insensitive)."""

    def __init__(self, reserved: Iterable[str] = RESERVED_SHEETS) -> None:
        self._used: set[str] = {r.lower() for r in reserved}

    def make(self, wanted: str) -> str:
        base = _BAD_SHEET_CHARS.sub("_", wanted).strip("'") or "sheet"
        name = base[:MAX_SHEET_NAME]
        n = 1
        while name.lower() in self._used:
            n += 1
            suffix = f"~{n}"
            # Keep the end of long names (h11.attn.c_proj.weight): the distinctive part.
            name = _shorten(base, MAX_SHEET_NAME - len(suffix)) + suffix
        if len(name) > MAX_SHEET_NAME:
            name = _shorten(base, MAX_SHEET_NAME)
        self._used.add(name.lower())
        return name


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = limit // 3
    return text[:head] + "…" + text[-(limit - head - 1) :]


def quote_sheet(name: str) -> str:
    """A sheet name as it appears in a formula reference."""
    return "'" + name.replace("'", "''") + "'"


def col_letter(index: int) -> str:
    """0-based column index → Excel letters (0 → A, 16383 → XFD)."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def cell_ref(row: int, col: int, absolute: bool = True) -> str:
    """0-based (row, col) → A1 reference."""
    d = "$" if absolute else ""
    return f"{d}{col_letter(col)}{d}{row + 1}"


def range_ref(row: int, col: int, n_rows: int, n_cols: int, absolute: bool = True) -> str:
    first = cell_ref(row, col, absolute)
    if n_rows == 1 and n_cols == 1:
        return first
    return f"{first}:{cell_ref(row + n_rows - 1, col + n_cols - 1, absolute)}"


def logical_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    """The 2-D view of an array shape (see the module doc)."""
    if len(shape) == 0:
        return (1, 1)
    if len(shape) == 1:
        return (1, shape[0])
    return (int(np.prod(shape[:-1])), shape[-1])


def logical_view(value: np.ndarray) -> np.ndarray:
    return value.reshape(logical_shape(value.shape))


@dataclass(frozen=True)
class Part:
    """One sheet's share of a stored matrix: stored rows [row0, row0 + n_rows)."""

    sheet: str
    row0: int
    n_rows: int


@dataclass(frozen=True)
class Placement:
    """How one array sits on its sheet(s)."""

    shape: tuple[int, ...]  # the engine's shape
    transposed: bool  # stored = logical view transposed
    parts: tuple[Part, ...]
    name: str | None = None  # the defined name of the whole range (one part only)

    @property
    def logical(self) -> tuple[int, int]:
        return logical_shape(self.shape)

    @property
    def stored(self) -> tuple[int, int]:
        r, c = self.logical
        return (c, r) if self.transposed else (r, c)

    @property
    def sheet(self) -> str:
        return self.parts[0].sheet

    def whole_range(self) -> str:
        """The A1 range (with sheet) of all the data (one part)."""
        return self.stored_range(0, 0, *self.stored)

    def stored_range(self, r0: int, c0: int, nr: int, nc: int) -> str:
        """A1 range (with sheet) of a rectangle given in stored coordinates (one part)."""
        for part in self.parts:
            if part.row0 <= r0 and r0 + nr <= part.row0 + part.n_rows:
                ref = range_ref(r0 - part.row0 + DATA_ROW0, c0 + DATA_COL0, nr, nc)
                return f"{quote_sheet(part.sheet)}!{ref}"
        raise ValueError("the rectangle crosses sheet parts")

    def logical_range(self, r0: int, c0: int, nr: int, nc: int) -> tuple[str, bool]:
        """Range text for a rectangle of the logical view, and whether that range holds it
        transposed."""
        if self.transposed:
            return self.stored_range(c0, r0, nc, nr), True
        return self.stored_range(r0, c0, nr, nc), False


def wants_transpose(shape: tuple[int, ...], vocab_size: int | None) -> bool:
    """Store the logical view transposed? Yes when its columns do not fit, or when they run
    along the vocabulary (vocab × positions reads as a list of tokens)."""
    rows, cols = logical_shape(shape)
    if cols > MAX_DATA_COLS:
        return True
    return vocab_size is not None and cols == vocab_size and rows < cols and len(shape) <= 2


def place(
    shape: tuple[int, ...], sheet_names: list[str], transposed: bool
) -> tuple[Placement, int]:
    """Place an array on `sheet_names` (the first, then as many more as needed); returns the
    placement and how many sheets it used. Raises ValueError if it cannot fit at all."""
    rows, cols = logical_shape(shape)
    if transposed:
        rows, cols = cols, rows
    if cols > MAX_DATA_COLS:
        raise ValueError(f"shape {shape} does not fit in {MAX_DATA_COLS} columns either way")
    n_parts = max(1, -(-rows // MAX_DATA_ROWS))
    if n_parts > len(sheet_names):
        raise ValueError("not enough sheet names")
    parts = tuple(
        Part(sheet_names[i], i * MAX_DATA_ROWS, min(MAX_DATA_ROWS, rows - i * MAX_DATA_ROWS))
        for i in range(n_parts)
    )
    return Placement(tuple(shape), transposed, parts), n_parts


def parts_needed(shape: tuple[int, ...], transposed: bool) -> int:
    rows, cols = logical_shape(shape)
    return max(1, -(-(cols if transposed else rows) // MAX_DATA_ROWS))
