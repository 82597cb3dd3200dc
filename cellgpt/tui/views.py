"""Decide how a cell's value is shown: a numeric grid (2-D, per head for 3-D), a table (lists
of records, the BPE passes), or text (strings, scalars, dicts, objects)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from cellgpt.engine.value_limits import MAX_SHOWN_ITEMS, SMALL, array_items, fits, preview
from cellgpt.tui.labels import visible

Kind = Literal["grid", "table", "text", "empty"]
# A table is virtual (only the rows on screen are read), so any number of rows is shown; its
# shape is judged from a sample of rows, never by walking a huge value on the UI thread.
TABLE_SAMPLE = 5000  # rows looked at to decide that a list is a table, and how wide
TABLE_COLUMN_LIMIT = 4096  # wider records (a 1024-token BPE pass fits) are shown as text
TEXT_LIMIT = 4000  # characters of a text view
STRING_LIMIT = 100_000  # characters of a string value shown
DICT_LINES = 1000  # entries of a mapping listed


@dataclass(frozen=True)
class View:
    kind: Kind
    array: np.ndarray | None = None  # grid: 2-D, or 3-D with heads on the first axis
    heads: int = 0  # grid: number of heads (0 = plain matrix)
    vector: str = ""  # grid from a 1-D value: "row" or "column"
    columns: tuple[str, ...] = ()  # table: column titles
    records: Sequence[Any] = ()  # table: the value itself, never copied
    text: str = ""  # text view, or a note for the other kinds


def is_numeric_array(value: Any) -> bool:
    """Real numbers only: complex or object arrays are shown as text."""
    return isinstance(value, np.ndarray) and (
        np.issubdtype(value.dtype, np.integer)
        or np.issubdtype(value.dtype, np.floating)
        or value.dtype == bool
    )


def classify(value: Any, *, vocab_size: int | None = None, columns: Any = None) -> View:
    """How to show `value`. A 1-D vector of vocabulary length becomes a column (one labelled
    row per token); other vectors become a single row."""
    if value is None:
        return View("empty")
    if is_numeric_array(value):
        if value.size == 0 and array_items(value) > MAX_SHOWN_ITEMS:
            return View("text", text=f"(no values) {preview(value, TEXT_LIMIT)}")
        arr = value.astype(np.float32) if value.dtype == bool else value
        if arr.ndim == 0:
            return View("text", text=repr(arr.item()))
        if arr.ndim == 1:
            if vocab_size is not None and arr.shape[0] == vocab_size:
                return View("grid", arr[:, None], vector="column")
            return View("grid", arr[None, :], vector="row")
        if arr.ndim == 2:
            return View("grid", arr)
        if arr.ndim == 3:
            return View("grid", arr, heads=arr.shape[0])
        flat = arr.reshape(-1, arr.shape[-1])
        return View("grid", flat, text=f"shown flattened to {flat.shape[0]} × {flat.shape[1]}")
    if isinstance(value, list | tuple) and value and not isinstance(value, str):
        return _table(value, columns)
    if isinstance(value, list | tuple):
        return View("text", text="(empty list)")
    return View("text", text=_text(value))


def _table(items: list[Any] | tuple[Any, ...], columns: Any) -> View:
    sample = _sample(items)
    if all(isinstance(r, tuple | list) for r in sample):
        width = max(len(r) for r in sample)
        if width > TABLE_COLUMN_LIMIT:  # a table that wide reads better as text
            return View("text", text=f"{len(items)} rows of up to {width:,} items\n" + _text(items))
        names = list(columns) if isinstance(columns, list | tuple) else []
        names = [str(c) for c in names[:width]] + [str(i) for i in range(len(names), width)]
        return View("table", columns=tuple(names), records=items)
    return View("table", columns=("value",), records=items)


def _sample(items: list[Any] | tuple[Any, ...]) -> list[Any]:
    """The first rows and the last few: what decides the table's shape."""
    if len(items) <= TABLE_SAMPLE:
        return list(items)
    return [*items[: TABLE_SAMPLE - 100], *items[-100:]]


def cell_text(value: Any) -> str:
    """One table cell as one line: numbers short, tokens visible, big items previewed."""
    kind = type(value)  # exact types first: this runs for every cell of a searched table
    if kind is str:
        return visible(value if len(value) <= CELL_CHARS else value[:CELL_CHARS])
    if kind is int and value.bit_length() <= 64:
        return str(value)
    if value is None:
        return ""
    if isinstance(value, float | np.floating):
        return f"{float(value):.6g}"
    if isinstance(value, str):
        return visible(value[:CELL_CHARS])
    if not fits(value, SMALL):  # a huge or deep item: a clipped preview, never a full walk
        return _one_line(preview(value, CELL_CHARS))
    if isinstance(value, tuple | list):
        return " ".join(visible(str(v)) for v in value)
    return _one_line(str(value))


CELL_CHARS = 500  # a table cell shows at most this much of its value


def _one_line(text: str) -> str:
    return visible(text[:CELL_CHARS])  # line breaks become ↵: a cell is one line


def _short(value: Any) -> str:
    """One line for a field: arrays by shape and dtype, anything else by a clipped repr."""
    if isinstance(value, np.ndarray):
        return f"array {' × '.join(map(str, value.shape))} {value.dtype}"
    return preview(value, 100)


def _fields(value: Any) -> dict[str, Any] | None:
    fields = getattr(value, "__dict__", None)
    return dict(fields) if isinstance(fields, dict) and fields else None


def _key(key: Any) -> str:
    return key if isinstance(key, str) and len(key) <= 100 else preview(key, 100)


def _text(value: Any) -> str:
    if isinstance(value, str) and len(value) > STRING_LIMIT:
        return preview(value, STRING_LIMIT)
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, dict):
        lines = [f"{_key(k)}: {_short(v)}" for k, v in itertools.islice(value.items(), DICT_LINES)]
        more = len(value) - DICT_LINES
        return "\n".join(lines + ([f"… {more:,} more entries"] if more > 0 else []))
    if not fits(value, SMALL):
        return preview(value, TEXT_LIMIT)
    text = preview(value, 10**6)
    fields = _fields(value)
    if len(text) > 300 and fields is not None:  # e.g. a bundle of weight tables
        lines = [type(value).__name__]
        for name, field in fields.items():
            if isinstance(field, dict) and len(field) > 3:
                lines.append(f"{name}: {len(field)} entries")
                lines += [f"  {k}: {_short(v)}" for k, v in list(field.items())[:200]]
            else:
                lines.append(f"{name}: {_short(field)}")
        return "\n".join(lines)
    return text if len(text) <= 4000 else text[:4000] + " …"
