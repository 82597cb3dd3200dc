"""One tensor as one headerless CSV table: fast writer, fast validating reader.

Layout: a 2-D tensor is one line per row; a 1-D tensor is ONE line. Every line ends in
'\\n'. Numbers are the shortest text that reads back to the same float32 (floatfmt).

Reading uses pandas' C parser (hundreds of MB/s). Anything unusual - a parse error,
NaN/inf, a short row - triggers a slow line-by-line scan whose only job is to name the
first bad cell as `file:row:col` (1-based, row = line in the file).
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from cellgpt.engine.safe_files import read_bytes, regular_file_size
from cellgpt.weights.errors import ParamsError
from cellgpt.weights.files import csv_cap, open_regular
from cellgpt.weights.floatfmt import format_bytes

_F32_MAX = float(np.finfo(np.float32).max)
_CHUNK_VALUES = 1 << 20  # numbers formatted per write; bounds the writer's memory


def table_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    """(rows, columns) of the CSV table holding a tensor of `shape`."""
    if len(shape) == 1:
        return 1, shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    raise ValueError(f"only 1-D and 2-D tensors are stored as CSV, got shape {shape}")


# --- writing -----------------------------------------------------------------------------


def iter_csv_bytes(array: np.ndarray) -> Iterator[bytes]:
    """The CSV text of `array` in pieces of whole rows."""
    values = np.ascontiguousarray(array, dtype=np.float32)
    _, cols = table_shape(values.shape)
    flat = values.reshape(-1)
    step = max(1, _CHUNK_VALUES // cols) * cols
    for start in range(0, flat.size, step):
        yield format_bytes(flat[start : start + step], cols)


def write_atomic(path: str | os.PathLike[str], pieces: Iterator[bytes] | bytes) -> None:
    """Write to a temporary file beside `path`, fsync, then rename over it: readers see
    the old file or the new one, never a half-written one."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            if isinstance(pieces, bytes):
                handle.write(pieces)
            else:
                for piece in pieces:
                    handle.write(piece)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_csv(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write a 1-D or 2-D float32 tensor as a CSV table (atomically)."""
    values = np.asarray(array)
    if not np.isfinite(values).all():
        bad = np.argwhere(~np.isfinite(values))[0]
        raise ParamsError(f"{path}: cannot write non-finite value at index {tuple(bad)}")
    write_atomic(path, iter_csv_bytes(values))


# --- reading -----------------------------------------------------------------------------


def read_csv(
    path: str | os.PathLike[str], shape: tuple[int, ...], *, require_final_newline: bool = True
) -> np.ndarray:
    """Read a CSV table into a C-contiguous float32 array of `shape`, validating it.

    Raises ParamsError naming `file:row:col` for: an empty file, non-numeric text, NaN or
    infinity, a value outside float32 range, a row with the wrong number of values, the
    wrong number of rows, or a last line without its newline (a truncated file; our writer
    always ends lines, so only files from elsewhere may skip this check).
    """
    rows, cols = table_shape(tuple(shape))
    name = os.fspath(path)
    cap = _table_cap(name, rows, cols)
    try:
        with warnings.catch_warnings(), open_regular(name, cap, what="table") as stream:
            warnings.simplefilter("ignore", RuntimeWarning)  # overflow is reported below
            frame = pd.read_csv(
                stream,
                header=None,
                dtype=np.float32,
                engine="c",
                na_filter=False,
                skip_blank_lines=True,
                index_col=False,
            )
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        _scan(name, cols, cap)  # raises with the precise location
        raise ParamsError(f"{name}: cannot parse as CSV numbers ({exc})") from None
    if frame.shape[1] != cols:
        # Every row agrees with the first (pandas would have failed otherwise).
        raise ParamsError(
            f"{name}:1:{min(frame.shape[1], cols) + 1}: row 1 has {frame.shape[1]} values, "
            f"expected {cols}"
        )
    data = np.ascontiguousarray(frame.to_numpy(dtype=np.float32, copy=False))
    if not np.isfinite(data).all():
        _scan(name, cols, cap)
        raise ParamsError(f"{name}: contains values that are not finite float32 numbers")
    if data.shape[0] != rows:
        _scan(name, cols, cap)  # a short row hidden among blank lines would show here first
        where = f"{data.shape[0] + 1}:1" if data.shape[0] < rows else f"{rows + 1}:1"
        raise ParamsError(f"{name}:{where}: expected {rows} rows, found {data.shape[0]}")
    if require_final_newline:
        _check_final_newline(name, cap)
    return data.reshape(shape)


def _table_cap(name: str, rows: int, cols: int) -> int:
    """The byte cap of a table of rows × cols numbers; refuses, before any parsing, a file
    that is empty, not a regular file, or far larger than its shape could need."""
    if not os.path.lexists(name):
        raise ParamsError(f"{name}: no such file")
    size = regular_file_size(name, what="table")
    if size == 0:
        raise ParamsError(f"{name}:1:1: empty file, expected {rows} rows of {cols} values")
    cap = csv_cap(rows * cols)
    if size > cap:
        raise ParamsError(
            f"{name}: {size:,} bytes is far more than a table of {rows}×{cols} numbers needs "
            f"(at most {cap:,})"
        )
    return cap


def _check_final_newline(name: str, cap: int) -> None:
    with open_regular(name, cap, what="table") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) == b"\n":
            return
    _scan(name, None, cap)
    raise ParamsError(f"{name}: last line has no newline (file truncated?)")


def _scan(name: str, cols: int | None, cap: int) -> None:
    """Slow, precise pass: raise ParamsError at the first bad cell. Returns quietly if it
    finds nothing (the caller then reports the fast parser's complaint)."""
    data = read_bytes(name, cap, what="table")
    data = data.removeprefix(b"\xef\xbb\xbf")  # Excel's UTF-8 BOM, as pandas skips it
    lines = data.split(b"\n")
    last = len(lines) - 1
    if lines[-1] == b"":
        lines.pop()  # text after the final newline is empty: the file ends properly
        last = -1
    expected = cols
    for number, raw in enumerate(lines, start=1):
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if not line.strip():
            continue  # blank lines are ignored, as the fast reader does
        cells = line.split(b",")
        if number - 1 == last:
            raise ParamsError(
                f"{name}:{number}:{len(cells)}: last line has no newline (file truncated?)"
            )
        if expected is None:
            expected = len(cells)
        if len(cells) != expected:
            col = min(len(cells), expected) + 1
            raise ParamsError(
                f"{name}:{number}:{col}: row has {len(cells)} values, expected {expected}"
            )
        try:  # numpy's C conversion; only a failing line is looked at cell by cell
            values = np.array(cells).astype(np.float64)
        except ValueError:
            values = None
        # numpy drops trailing NUL bytes of byte strings, so b"1\x00" would pass as 1.0.
        clean = b"\x00" not in line
        if (
            clean
            and values is not None
            and np.isfinite(values).all()
            and np.abs(values).max() <= _F32_MAX
        ):
            continue
        for col, cell in enumerate(cells, start=1):
            _check_cell(name, number, col, cell)


def _check_cell(name: str, row: int, col: int, cell: bytes) -> None:
    text = cell.decode("utf-8", errors="replace").strip()
    where = f"{name}:{row}:{col}"
    if not text:
        raise ParamsError(f"{where}: empty cell")
    try:
        value = float(text)
    except ValueError:
        raise ParamsError(f"{where}: not a number: {text[:40]!r}") from None
    if not math.isfinite(value):
        raise ParamsError(f"{where}: not a finite number: {text!r}")
    with np.errstate(over="ignore"):
        overflows = bool(np.isinf(np.float32(value)))
    if overflows:
        raise ParamsError(f"{where}: {text} is outside the float32 range")
