"""A cell's value as a labelled table (a pandas DataFrame), for scripts and notebooks.

A cell's `rows` / `cols` display hints name the cell (or library constant) whose values label
its rows / columns; labels that do not fit the shape are dropped."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

# hint (a cell or constant name, or None) -> its values, or None when it names nothing
LabelLookup = Callable[[str | None], Sequence[Any] | None]


def table(value: Any, rows: str | None, cols: str | None, lookup: LabelLookup) -> pd.DataFrame:
    """`value` as a 2-D DataFrame: scalars become 1x1, vectors a column, higher ranks keep
    their last axis as columns. Rows are labelled first, then columns (in that order, since a
    lookup may run cells)."""
    import pandas as pd  # slow to import; only tables need it

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


def _labels(values: Sequence[Any] | None, n: int) -> list[Any] | None:
    if values is None:
        return None
    labels = list(values)
    if len(labels) != n:
        return None
    # Repeated labels (the same token twice) are made unique by position.
    return [f"{i}:{lab}" for i, lab in enumerate(labels)] if len(set(labels)) != n else labels
