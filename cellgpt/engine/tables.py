"""A cell's value as a labelled table (a pandas DataFrame), for scripts and notebooks.

A cell's `rows` / `cols` display hints name the cell (or library constant) whose values label
its rows / columns; labels that do not fit the shape are dropped."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from cellgpt.engine.value_limits import (
    MAX_TABLE_COLUMNS,
    ValueTooLarge,
    fits,
    measure,
    preview,
)

if TYPE_CHECKING:
    import pandas as pd

# hint (a cell or constant name, or None) -> its values, or None when it names nothing
LabelLookup = Callable[[str | None], Sequence[Any] | None]


def table(value: Any, rows: str | None, cols: str | None, lookup: LabelLookup) -> pd.DataFrame:
    """`value` as a 2-D DataFrame: scalars become 1x1, vectors a column, higher ranks keep
    their last axis as columns. Rows are labelled first, then columns (in that order, since a
    lookup may run cells)."""
    import pandas as pd  # slow to import; only tables need it

    check_table(value)
    arr = value if isinstance(value, np.ndarray) else np.asarray(value, dtype=object)
    if arr.ndim == 0:
        arr = arr.reshape(1, 1)
    elif arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    elif arr.ndim > 2:
        arr = arr.reshape(-1, arr.shape[-1])
    index = _labels(lookup(rows), arr.shape[0])
    columns = _labels(lookup(cols), arr.shape[1])
    return pd.DataFrame(arr, index=index, columns=columns)


def check_table(value: Any) -> None:
    """Raise ValueTooLarge for a value a DataFrame cannot hold in bounded time and memory:
    too many items or columns, nesting numpy cannot take, giant text."""
    measure(value)
    if isinstance(value, np.ndarray) and value.ndim > 0 and value.shape[-1] > MAX_TABLE_COLUMNS:
        raise ValueTooLarge(
            f"{value.shape[-1]:,} columns (a table shows at most {MAX_TABLE_COLUMNS:,})"
        )


def table_fits(value: Any) -> bool:
    try:
        check_table(value)
    except ValueTooLarge:
        return False
    return True


MAX_LABEL_CHARS = 200  # a label is a token or a name: anything longer is shown cut


def _labels(values: Any, n: int) -> list[Any] | None:
    # Only sized sequences of the right length: never list() a huge or odd label cell.
    if isinstance(values, np.ndarray) and values.ndim != 1:
        return None
    if not isinstance(values, list | tuple | np.ndarray):
        return None
    if len(values) != n:
        return None
    labels = [_label(v) for v in values]
    # Repeated labels (the same token twice) are made unique by position.
    return [f"{i}:{lab}" for i, lab in enumerate(labels)] if len(set(labels)) != n else labels


def _label(value: Any) -> Any:
    """A hashable, short label: plain short values as they are, anything else previewed."""
    if isinstance(value, str) and len(value) <= MAX_LABEL_CHARS:
        return value
    if isinstance(value, int | float | bool | np.number | np.bool_) and fits(value):
        return value
    return preview(value, MAX_LABEL_CHARS)
