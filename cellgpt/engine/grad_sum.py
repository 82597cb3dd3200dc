"""Gradients as values: summing the contributions a cell receives from its readers, and
an embedding table's gradient kept as the few rows it touches."""

from __future__ import annotations

from typing import Any

import numpy as np


class RowUpdates:
    """A gradient that is zero but for a few rows (an embedding table's: one row per token),
    kept as (row ids, rows) instead of a mostly-zero copy of the whole table."""

    def __init__(self, shape: tuple[int, ...], ids: np.ndarray, rows: np.ndarray) -> None:
        self.shape, self.ids, self.rows = tuple(shape), ids, rows
        self.dtype = rows.dtype

    def add_into(self, dense: np.ndarray) -> np.ndarray:
        np.add.at(dense, self.ids, self.rows)  # repeated ids add up
        return dense

    def dense(self) -> np.ndarray:
        return self.add_into(np.zeros(self.shape, dtype=self.dtype))

    def astype(self, dtype: Any) -> RowUpdates:
        return RowUpdates(self.shape, self.ids, self.rows.astype(dtype))


def add_gradient(prev: Any, g: Any, owned: bool) -> tuple[Any, bool]:
    """prev + g, in place in `prev` when it is an accumulator of ours (`owned`); returns the
    sum and whether it is ours now."""
    if isinstance(prev, list) and isinstance(g, list):  # a list cell's items, one by one
        return [_add_items(a, b) for a, b in zip(prev, g, strict=True)], False
    if isinstance(prev, RowUpdates) and isinstance(g, RowUpdates):
        ids = np.concatenate([prev.ids.reshape(-1), g.ids.reshape(-1)])
        rows = np.concatenate(
            [prev.rows.reshape(-1, *prev.shape[1:]), g.rows.reshape(-1, *g.shape[1:])]
        )
        return RowUpdates(prev.shape, ids, rows), False
    if isinstance(prev, RowUpdates):
        prev, g, owned = g, prev, False
    if isinstance(g, RowUpdates):
        dense = prev if owned else np.array(prev, dtype=np.result_type(prev, g.dtype))
        return g.add_into(dense), True
    prev, g = np.asarray(prev), np.asarray(g)
    if (
        owned
        and prev.shape == np.broadcast_shapes(prev.shape, g.shape)
        and np.can_cast(g.dtype, prev.dtype)
    ):
        np.add(prev, g, out=prev)
        return prev, True
    return prev + g, True


def _add_items(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return b if a is None else a
    return add_gradient(a, b, False)[0]
