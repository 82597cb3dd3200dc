"""3-D values (attention `[head, query, key]`, q/k/v `[head, token, d_head]`) as text a reader
can follow: one block per head titled with the head, rows and columns labelled with tokens
(`--format table`), or a CSV whose rows say their head, position and token (`--format csv`)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from cellgpt.engine.value_limits import preview


def is_3d(value: Any) -> bool:
    return isinstance(value, np.ndarray) and value.ndim == 3 and value.dtype.kind in "fiub"


def axis_labels(wb: Any, name: str, value: np.ndarray) -> tuple[list[str], list[str]]:
    """Row and column labels of each head's matrix, from the cell's `rows`/`cols` hints
    (the tokens); positions or indices where a hint names nothing of the right length."""
    hints = wb.info(name).hints
    _, n_rows, n_cols = value.shape
    return (
        _labels(_hinted(wb, hints.get("rows")), n_rows),
        _labels(_hinted(wb, hints.get("cols")), n_cols),
    )


def _hinted(wb: Any, hint: str | None) -> Any:
    if hint and hint in wb:
        return wb[hint]
    return None


def _labels(values: Any, n: int) -> list[str]:
    if not isinstance(values, list | tuple | np.ndarray) or len(values) != n:
        return [str(i) for i in range(n)]
    shown = [preview(v, 40) if not isinstance(v, str) else v for v in values]
    # Position first: the same token twice must still be two rows.
    return [f"{i}:{_visible(t)}" for i, t in enumerate(shown)]


def _visible(text: str) -> str:
    return text.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


def table_text(wb: Any, name: str, value: np.ndarray) -> str:
    """One block per head: 'head 0' and its matrix with token rows and columns."""
    import pandas as pd

    rows, cols = axis_labels(wb, name, value)
    out = []
    with pd.option_context("display.max_rows", 40, "display.max_columns", 12, "display.width", 140):
        for head in range(value.shape[0]):
            frame = pd.DataFrame(value[head], index=rows, columns=cols)
            out.append(f"head {head}\n{frame.round(4)}")
    return "\n\n".join(out)


def csv_text(wb: Any, name: str, value: np.ndarray) -> str:
    """Labelled-wide CSV: columns head, position, token, then one column per key token (or
    per dimension); one row per head and query token."""
    import csv

    _, cols = axis_labels(wb, name, value)
    tokens = _tokens(wb, name, value.shape[1])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["head", "position", "token", *cols])
    for head in range(value.shape[0]):
        for position in range(value.shape[1]):
            numbers = [str(x) for x in value[head, position]]  # shortest text of each float32
            writer.writerow([head, position, tokens[position], *numbers])
    return buffer.getvalue()


def _tokens(wb: Any, name: str, n: int) -> list[str]:
    hint = wb.info(name).hints.get("rows")
    values = _hinted(wb, hint)
    if isinstance(values, list | tuple) and len(values) == n:
        return [v if isinstance(v, str) else preview(v, 40) for v in values]
    return ["" for _ in range(n)]
