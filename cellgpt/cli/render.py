"""A cell's value as text for `cellgpt cell`: a table (3-D values one block per head), CSV,
or JSON — each measured first, so a huge or odd value is a clear error or a bounded preview."""

from __future__ import annotations

import io
import json
import math
from typing import Any

import numpy as np

from cellgpt.cli import UserError, labelled
from cellgpt.engine.tables import table_fits
from cellgpt.engine.value_limits import ValueTooLarge, check_shown, preview


def check_or_user_error(name: str, value: Any, what: str, instead: str = "") -> None:
    """check_shown, its refusal as a UserError."""
    try:
        check_shown(name, value, what, instead)
    except ValueTooLarge as exc:
        raise UserError(str(exc)) from None


def render(wb: Any, name: str, value: Any, fmt: str) -> str:
    """The value as `fmt` text: "table", "csv" or "json"."""
    if fmt == "json":
        check_or_user_error(name, value, "print as JSON", _npy_hint(value))
        return json_text(value)
    if fmt == "csv":
        check_or_user_error(name, value, "print as CSV", _npy_hint(value))
        if labelled.is_3d(value):
            return labelled.csv_text(wb, name, value)
        buffer = io.StringIO()
        _table(wb, name).to_csv(buffer)
        return buffer.getvalue()
    return _table_text(wb, name, value)


def _npy_hint(value: Any) -> str:
    numeric = isinstance(value, np.ndarray) and value.dtype.kind in "fiub"
    return "use --format npy --out FILE" if numeric else "try --format table for a preview"


def _table(wb: Any, name: str) -> Any:
    try:
        return wb.table(name)
    except ValueTooLarge as exc:
        raise UserError(f"{name}: {exc.reason} — too large for a table") from None


def _table_text(wb: Any, name: str, value: Any) -> str:
    info = wb.info(name)
    head = f"{info.name}  shape={info.shape}  dtype={info.dtype}\n"
    if labelled.is_3d(value) and table_fits(value):
        return head + labelled.table_text(wb, name, value)
    # Scalars and small mappings as plain text; preview() bounds anything huge (10**5000).
    if isinstance(value, int | float | bool | np.generic | str):
        return head + preview(value.item() if isinstance(value, np.generic) else value, 2000)
    if isinstance(value, dict) and 0 < len(value) <= 60:
        keys = [preview(k, 60) if not isinstance(k, str) or len(k) > 60 else k for k in value]
        width = max(len(k) for k in keys)
        rows = (
            f"{k:<{width}}  {preview(v, 200)}" for k, v in zip(keys, value.values(), strict=True)
        )
        return head + "\n".join(rows)
    if isinstance(value, np.ndarray) and value.ndim > 2 and value.dtype != object:
        with np.printoptions(precision=4, suppress=True, linewidth=120, threshold=2000):
            return head + str(value)
    if not table_fits(value):
        return head + _preview_rows(value)
    import pandas as pd

    with pd.option_context("display.max_rows", 60, "display.max_columns", 12, "display.width", 140):
        return head + str(_table(wb, name))


PREVIEW_ROWS = 20  # head and tail rows of a value too large for a table


def _preview_rows(value: Any) -> str:
    """Head and tail of a value too large for a table, each row a bounded preview."""
    if not isinstance(value, list | tuple) or len(value) <= 2 * PREVIEW_ROWS:
        return "(too large for a table; a preview)\n" + preview(value, 4000)
    n = len(value)
    rows = [f"{i}  {preview(value[i], 200)}" for i in range(PREVIEW_ROWS)]
    rows.append(f"… {n - 2 * PREVIEW_ROWS:,} rows not shown …")
    rows += [f"{i}  {preview(value[i], 200)}" for i in range(n - PREVIEW_ROWS, n)]
    return f"(too large for a table: first and last {PREVIEW_ROWS} of {n:,} rows)\n" + "\n".join(
        rows
    )


def json_text(value: Any) -> str:
    """Strict JSON (what jq and JavaScript read): JSON has no infinity or NaN, so those
    numbers (masked attention scores are -inf) are written as null; `--format npy` keeps
    them."""
    return json.dumps(_jsonable(value), ensure_ascii=False, allow_nan=False)


def _jsonable(value: Any) -> Any:
    """Plain JSON types (the value has passed check_shown: its depth is bounded)."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "fc" and not np.isfinite(value).all():
            holes = value.astype(object)
            holes[~np.isfinite(value)] = None
            return _jsonable(holes.tolist())
        listed = value.tolist()
        return listed if value.dtype.kind in "fiub" else _jsonable(listed)
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {_key(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, int | float | str | bool | type(None)):
        return value
    return preview(value, 10_000)


def _key(key: Any) -> str:
    return key if isinstance(key, str) else preview(key, 10_000)
