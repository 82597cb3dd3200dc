"""Which rows a grid or table shows, in which order: sorted by a column (high → low or low →
high) and/or filtered to rows whose label or cells contain a text. The result maps a display
row to a row of the value; None means every row in its own order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cellgpt.tui.widgets.record_table import cells_of


@dataclass(frozen=True)
class RowOrder:
    sort: tuple[int, bool] | None = None  # (column, descending)
    filter: str = ""  # keep rows containing this text (case-insensitive)

    @property
    def active(self) -> bool:
        return self.sort is not None or bool(self.filter)

    def describe(self, columns: Callable[[int], str]) -> str:
        """Short, for a title line: "sorted by value ↓  filter 'the'" (↓: high to low)."""
        parts = []
        if self.sort is not None:
            col, descending = self.sort
            parts.append(f"sorted by {columns(col)} {'↓' if descending else '↑'}")
        if self.filter:
            parts.append(f"filter {self.filter!r}")
        return "  ".join(parts)


def next_sort(current: tuple[int, bool] | None, column: int) -> tuple[int, bool] | None:
    """o on a column: high → low, then low → high, then the value's own order."""
    if current is None or current[0] != column:
        return (column, True)
    return (column, False) if current[1] else None


def grid_order(
    matrix: np.ndarray, order: RowOrder, label: Callable[[int], str]
) -> np.ndarray | None:
    """Display rows of a 2-D array (NaN sorts last either way)."""
    if not order.active:
        return None
    rows = np.arange(matrix.shape[0])
    if order.filter:
        needle = order.filter.lower()
        rows = np.fromiter((i for i in rows if needle in label(int(i)).lower()), dtype=np.int64)
    if order.sort is not None and rows.size:
        col, descending = order.sort
        values = np.asarray(matrix[rows, col], dtype=np.float64)
        key = np.where(np.isnan(values), np.inf, -values if descending else values)
        rows = rows[np.argsort(key, kind="stable")]
    return rows


def _sort_key(value: Any, text: Callable[[Any], str]) -> tuple[int, Any]:
    """Numbers before text, each in its own order; anything else by its shown text."""
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
        number = float(value)
        return (0, number) if number == number else (2, 0.0)
    return (1, text(value))


def table_order(
    records: Sequence[Any], order: RowOrder, text: Callable[[Any], str]
) -> list[int] | None:
    """Display rows of a table of records."""
    if not order.active:
        return None
    rows = range(len(records))
    if order.filter:
        needle = order.filter.lower()
        rows = [i for i in rows if any(needle in text(c).lower() for c in cells_of(records[i]))]
    if order.sort is not None:
        col, descending = order.sort

        def key(i: int) -> tuple[int, Any]:
            cells = cells_of(records[i])
            return _sort_key(cells[col] if col < len(cells) else None, text)

        ranked = sorted(rows, key=key)
        if descending:  # high → low for numbers and for text, NaN and blanks still last
            kinds = [key(i)[0] for i in ranked]
            numbers = [i for i, k in zip(ranked, kinds, strict=True) if k == 0][::-1]
            texts = [i for i, k in zip(ranked, kinds, strict=True) if k == 1][::-1]
            rest = [i for i, k in zip(ranked, kinds, strict=True) if k == 2]
            ranked = numbers + texts + rest
        return ranked
    return list(rows)
