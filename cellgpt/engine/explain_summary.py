"""What Evaluate Formula shows of one intermediate value: its shape, dtype, min / max / mean
over the finite entries (masked attention scores hold -inf; a mean over them says nothing)
with a count of the others, and a small preview — the corner of a matrix, a clipped repr."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from cellgpt.engine.value_limits import preview as clipped

PREVIEW_ROWS = 3  # rows and columns of a matrix's top-left corner in a preview
PREVIEW_COLS = 4
PREVIEW_CHARS = 80  # a non-array value's clipped repr


@dataclass(frozen=True)
class Summary:
    type: str  # "array", or the Python type's name
    shape: tuple[int, ...] | None = None
    dtype: str | None = None
    min: float | None = None  # over the finite entries
    max: float | None = None
    mean: float | None = None
    nonfinite: int = 0  # entries that are nan, inf or -inf
    preview: str = ""

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["shape"] = list(self.shape) if self.shape is not None else None
        return out

    def shape_text(self) -> str:
        """`[5×64] float32`, `int`, `list[7]`."""
        if self.shape is not None:
            dims = "×".join(map(str, self.shape)) if self.shape else "scalar"
            return f"[{dims}] {self.dtype}"
        return self.type

    def stats_text(self) -> str:
        """`min -1.2 max 3.4 mean 0.012 (6 non-finite)`, or "" for a value without any (and
        for a single number: its preview says it)."""
        if self.shape in ((), None) and self.nonfinite == 0:
            return ""
        if self.min is None or self.max is None or self.mean is None:
            return f"({self.nonfinite} non-finite)" if self.nonfinite else ""
        text = f"min {self.min:.4g}  max {self.max:.4g}  mean {self.mean:.4g}"
        return text + (f"  ({self.nonfinite:,} non-finite)" if self.nonfinite else "")


def summarize(value: Any) -> Summary:
    """Never raises: a value it cannot describe gets its type and a note."""
    try:
        return _summarize(value)
    except Exception as exc:  # e.g. an exotic object whose repr fails
        return Summary(type(value).__name__, preview=f"(cannot be summarised: {exc})")


def _summarize(value: Any) -> Summary:
    if isinstance(value, np.generic) and not isinstance(value, np.str_ | np.bytes_):
        value = np.asarray(value)
    if isinstance(value, np.ndarray):
        return _array(value)
    if isinstance(value, bool):
        return Summary("bool", preview=repr(value))
    if isinstance(value, int) and value.bit_length() > 1000:  # 10 ** 15000: no float holds it
        return Summary("int", preview=clipped(value, PREVIEW_CHARS))
    if isinstance(value, int | float):
        number = float(value)
        finite = math.isfinite(number)
        return Summary(
            type(value).__name__,
            min=number if finite else None,
            max=number if finite else None,
            mean=number if finite else None,
            nonfinite=0 if finite else 1,
            preview=clipped(value, PREVIEW_CHARS),
        )
    kind = type(value).__name__
    if isinstance(value, list | tuple | dict | str):
        kind = f"{kind}[{len(value)}]"
    return Summary(kind, preview=" ".join(clipped(value, PREVIEW_CHARS).split()))


def _array(a: np.ndarray) -> Summary:
    shape, dtype = tuple(int(d) for d in a.shape), str(a.dtype)
    if a.dtype.kind not in "biuf" or a.size == 0:
        return Summary("array", shape, dtype, preview=_corner(a))
    if a.dtype.kind == "f":
        finite = np.isfinite(a)
        nonfinite = int(a.size - np.count_nonzero(finite))
        values = a if nonfinite == 0 else a[finite]
    else:
        nonfinite, values = 0, a
    if values.size == 0:
        return Summary("array", shape, dtype, nonfinite=nonfinite, preview=_corner(a))
    return Summary(
        "array",
        shape,
        dtype,
        float(values.min()),
        float(values.max()),
        float(values.mean(dtype=np.float64)),
        nonfinite,
        _corner(a),
    )


def _corner(a: np.ndarray) -> str:
    """The top-left corner of the first matrix: `[[0.1 -2 …] [3 4 …] …]`."""
    if a.ndim == 0:
        return _number(a.item())
    matrix = a[(0,) * (a.ndim - 2)] if a.ndim > 2 else a
    if matrix.ndim == 1:
        return _row(matrix)
    rows = [_row(r) for r in matrix[:PREVIEW_ROWS]]
    more = " …" if matrix.shape[0] > PREVIEW_ROWS else ""
    return "[" + " ".join(rows) + more + "]"


def _row(v: np.ndarray) -> str:
    items = [_number(x) for x in v[:PREVIEW_COLS].tolist()]
    return "[" + " ".join(items) + (" …" if v.shape[0] > PREVIEW_COLS else "") + "]"


def _number(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.4g}"
    return clipped(x, 20)
