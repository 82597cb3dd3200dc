"""Run-time limits: what a formula may ask of the machine. Hostile or careless formulas
(allocation bombs, huge powers, quadratic blow-ups hidden in nested lists) fail in their own
cell with a LimitError instead of eating memory or time.

The parse-time limits (text length, node count, nesting) live here too, so every budget is
in one place.
"""

from __future__ import annotations

import ast
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from cellgpt.engine.errors import CellEvalError, LimitError

MAX_FORMULA_CHARS = 20_000
MAX_NODES = 5_000
MAX_DEPTH = 64
MAX_ELEMENTS = 2**28  # largest array a formula may create (1 GiB of float32)
MAX_SEQUENCE = 10**7  # longest str/list a formula may build by repetition
MAX_POW_BITS = 64_000  # largest integer a ** b (or a * b) may produce
# Most multiply-adds one matrix product may cost: GPT-2 small's logits for 1024 tokens take
# 2**35.2, while zeros((2**14, 2**14)) @ itself (2**42) would hold a cell for hours.
MAX_MATMUL_FLOPS = 2**38


MAX_BYTES = 8 * MAX_ELEMENTS  # largest value (or float64 copy) one operation may build
MAX_TEXT_BYTES = 2 * MAX_SEQUENCE  # text counts bytes: '😀' * n takes 4 bytes a character
MAX_COST = MAX_MATMUL_FLOPS  # work one library call may do, in multiply-add equivalents


@dataclass(frozen=True)
class Limits:
    """Budgets a workbook's cells run under. The user may raise them (`Workbook(limits=...)`,
    `wb.limits = ...`); a workbook file cannot."""

    cell_seconds: float = 5.0  # wall clock per cell, checked between operations
    max_elements: int = MAX_ELEMENTS  # one array built by one operation
    max_bytes: int = MAX_BYTES  # one value (or internal copy) built by one operation
    max_cost: int = MAX_COST  # multiply-add equivalents one library call may cost
    # Live values of the whole workbook: GPT-2 small at 1024 tokens counts ~1.25 GiB (peak
    # RSS ~1.9 GiB); memory-mapped parameters and views of other cells' values do not count.
    store_bytes: int = 4 * 2**30
    max_cells: int = 200_000  # cells after block expansion

    def with_(self, **changes: Any) -> Limits:
        return replace(self, **changes)


DEFAULT_LIMITS = Limits()


class Deadline:
    """When the running cell must stop (a plain object: setting it per cell is cheap)."""

    __slots__ = ("at",)

    def __init__(self) -> None:
        self.at = math.inf


class _Budget(threading.local):
    """The running cell's budget, per thread (the TUI runs cells in a worker thread)."""

    limits: Limits = DEFAULT_LIMITS

    def __init__(self) -> None:
        self.deadline = Deadline()  # one per thread


budget = _Budget()
clock = time.perf_counter


def check_time() -> None:
    """Stop a cell that is past its wall-clock budget (called before each big operation)."""
    if clock() > budget.deadline.at:
        raise LimitError(f"over the time budget of {budget.limits.cell_seconds:g} s per cell")


def check_bytes(count: int, what: str = "result") -> None:
    limit = budget.limits.max_bytes
    if count > limit:
        shown = f"{count:,}" if count < 10**15 else f"about 2**{count.bit_length() - 1}"
        raise LimitError(f"{what} would take {shown} bytes; the limit is {limit:,}")


def charge(name: str, nbytes: int, cost: int) -> None:
    """The one check before a library function runs: its estimated result/copy bytes and
    work (from the argument shapes) against the budgets, and the cell's deadline. Runs
    before every library call (~250 a forward, as many a generated token): the messages
    are built only when a limit is passed."""
    limits = budget.limits
    if nbytes > limits.max_bytes:
        check_bytes(nbytes, f"{name}()'s result")
    if cost > limits.max_cost:
        raise LimitError(
            f"{name}() would cost {cost:,} multiply-adds; the limit is {limits.max_cost:,}"
        )
    check_time()


def seq_bytes(x: Any) -> int:
    """Bytes a str/bytes/list/tuple takes per item, times its length (pointers for lists)."""
    if isinstance(x, str):
        return len(x) * _char_width(x)
    if isinstance(x, bytes):
        return len(x)
    return 8 * len(x)


def _text_bytes(x: Any) -> int:
    # Lists are bounded by items (MAX_SEQUENCE); text by the bytes it takes.
    return seq_bytes(x) if isinstance(x, str | bytes) else 0


def _char_width(s: str) -> int:
    # CPython stores a str with 1, 2 or 4 bytes per character, by its widest character.
    if not s or s.isascii():
        return 1
    widest = ord(max(s))
    return 1 if widest < 256 else 2 if widest < 65536 else 4


_SEQUENCES = (str, list, tuple, bytes, dict)
_SAMPLE = 1000  # items of a long list looked at to estimate its bytes


SCALARS = frozenset({int, float, bool, complex, type(None)})


def value_bytes(value: Any, inputs: Any = ()) -> int:
    """Bytes a cell's value keeps alive, for the workbook-wide budget. An array that is a view
    of one of `inputs` (another cell's value) or of memory-mapped parameters costs nothing
    more; a view of a temporary keeps the whole temporary alive."""
    if type(value) in SCALARS:
        return 0  # the common case first (the engine's per-cell cost is ~4 us); tiny anyway
    if isinstance(value, np.ndarray):
        if value.base is None:
            return value.nbytes  # a fresh result owns its memory: the common case, no walk
        root = array_root(value)
        if isinstance(root, np.memmap) or root.base is not None:
            return 0  # memory-mapped file or foreign buffer: not the process's own heap
        for x in inputs:
            if isinstance(x, np.ndarray) and (x is root or array_root(x) is root):
                return 0
        return int(root.nbytes)
    if isinstance(value, _SEQUENCES):
        return _sequence_bytes(value)
    return 32  # a number or an object of the library's own


def array_root(a: np.ndarray) -> np.ndarray:
    """The array that owns `a`'s memory (follows .base through views)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _sequence_bytes(value: Any, depth: int = 0, seen: set[int] | None = None) -> int:
    if isinstance(value, str | bytes):
        return seq_bytes(value)
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, dict) and depth <= 8:  # e.g. grads(...): {cell: gradient}
        return 64 * len(value) + _sequence_bytes(list(value.values()), depth + 1, seen)
    if not isinstance(value, list | tuple) or depth > 8:
        return 32
    seen = set() if seen is None else seen
    if id(value) in seen:
        return 8  # a shared sub-list ([[0] * n] * n) is stored once
    seen.add(id(value))
    n = len(value)
    step = max(1, n // _SAMPLE)  # a long list: estimate from evenly spaced items
    sample = value[::step]
    distinct = list({id(x): x for x in sample}.values())
    total = sum(_sequence_bytes(x, depth + 1, seen) for x in distinct)
    if len(distinct) < len(sample):
        return 8 * n + total  # built by repetition: the items are shared, not copies
    return 8 * n + total * n // max(len(sample), 1)


_ARRAYS = (np.ndarray, np.generic)  # a tuple: `A | B` would build a new union per call


def _shape(x: Any) -> tuple[int, ...] | None:
    return x.shape if isinstance(x, _ARRAYS) else None


def check_elements(count: int, what: str = "result") -> None:
    limit = budget.limits.max_elements
    if count > limit:
        # zeros((10**400,)): an exact count that long helps nobody.
        shown = f"{count:,}" if count < 10**15 else f"about 2**{count.bit_length() - 1}"
        raise LimitError(f"{what} would have {shown} elements; the limit is {limit:,}")


def check_broadcast(a: Any, b: Any) -> None:
    sa, sb = _shape(a), _shape(b)
    if sa is None and sb is None:
        return  # plain Python scalars: the cheap path of most cells
    check_time()
    if sa is None or sb is None or sa == sb:
        return
    size = _broadcast_size(sa, sb)
    if size is not None:  # None: numpy will raise its own clear shape error
        check_elements(size)


def _broadcast_size(sa: tuple[int, ...], sb: tuple[int, ...]) -> int | None:
    """Elements of the broadcast of two shapes, or None if they do not broadcast. Plain
    Python (exact, no overflow): np.broadcast_shapes costs ~4 µs, on every operator."""
    size = 1
    for i in range(1, max(len(sa), len(sb)) + 1):
        da = sa[-i] if i <= len(sa) else 1
        db = sb[-i] if i <= len(sb) else 1
        if da != db and da != 1 and db != 1:
            return None
        size *= db if da == 1 else da
    return size


def check_matmul_shapes(sa: tuple[int, ...], sb: tuple[int, ...]) -> None:
    """Refuse a matrix product whose result or cost is beyond the limits (shapes only)."""
    if len(sa) < 1 or len(sb) < 1:
        return
    rows = sa[-2] if len(sa) >= 2 else 1
    cols = sb[-1] if len(sb) >= 2 else 1
    batch: tuple[int, ...] = ()
    if len(sa) > 2 or len(sb) > 2:  # np.broadcast_shapes costs ~4 µs: only when needed
        try:
            batch = np.broadcast_shapes(sa[:-2], sb[:-2])
        except ValueError:
            return
    outputs = math.prod(batch) * rows * cols
    check_elements(outputs)
    flops = outputs * sa[-1]
    if flops > budget.limits.max_cost:
        raise LimitError(
            f"matrix product of shapes {sa} and {sb} would cost {flops:,} multiply-adds; "
            f"the limit is {budget.limits.max_cost:,}"
        )
    check_time()


def _check_matmul(a: Any, b: Any) -> None:
    sa, sb = _shape(a), _shape(b)
    if sa is not None and sb is not None:
        check_matmul_shapes(sa, sb)


def _is_int(x: Any) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool)


def _check_repeat(a: Any, b: Any) -> None:
    for seq, n in ((a, b), (b, a)):
        if isinstance(seq, _SEQUENCES) and _is_int(n):
            check_time()
            if len(seq) * int(n) > MAX_SEQUENCE or _text_bytes(seq) * int(n) > MAX_TEXT_BYTES:
                raise LimitError(
                    f"repetition would build a sequence of {len(seq) * int(n):,} items "
                    f"({seq_bytes(seq) * int(n):,} bytes); the limit is {MAX_SEQUENCE:,} items "
                    f"and {MAX_TEXT_BYTES:,} bytes of text"
                )


def _check_int_product(a: Any, b: Any) -> None:
    # Squaring a big integer from cell to cell doubles its size each time: bound every product.
    if isinstance(a, int) and isinstance(b, int) and a.bit_length() + b.bit_length() > MAX_POW_BITS:
        raise LimitError(
            f"the product of a {a.bit_length():,}-bit and a {b.bit_length():,}-bit integer "
            f"is too large to compute (limit {MAX_POW_BITS:,} bits)"
        )


def _check_mul(a: Any, b: Any) -> None:
    _check_repeat(a, b)
    _check_int_product(a, b)
    check_broadcast(a, b)


def _check_add(a: Any, b: Any) -> None:
    # Concatenation doubles a string or list from cell to cell: bound every sum.
    if isinstance(a, _SEQUENCES) and isinstance(b, _SEQUENCES):
        check_time()
        total = len(a) + len(b)
        width = max(_text_bytes(a) // max(len(a), 1), _text_bytes(b) // max(len(b), 1))
        if total > MAX_SEQUENCE or total * width > MAX_TEXT_BYTES:
            raise LimitError(
                f"joining would build a sequence of {total:,} items; "
                f"the limit is {MAX_SEQUENCE:,} items and {MAX_TEXT_BYTES:,} bytes of text"
            )
    check_broadcast(a, b)


def _check_mod(a: Any, b: Any) -> None:
    # printf-style widths ('%*d' % (10**9, 1)) allocate without bound; formulas use text()/join().
    if isinstance(a, str | bytes):
        raise CellEvalError(
            "text formatting with % is not allowed in formulas; use text() or join()"
        )
    check_broadcast(a, b)


def _check_pow(a: Any, b: Any) -> None:
    too_big = _is_int(a) and _is_int(b) and int(b) > 0 and abs(int(a)) > 1
    if too_big and int(b) * int(a).bit_length() > MAX_POW_BITS:
        raise LimitError(f"{a} ** {b} is too large to compute")


_CONTAINERS = (list, tuple, dict, np.ndarray)


def count_items(value: Any, limit: int = MAX_SEQUENCE, what: str = "value") -> int:
    """How many leaves nested lists/tuples/dicts hold (an array counts as its size), raising
    LimitError past `limit`. `[[0] * 10**7] * 10**7` is tiny in memory but 10**14 items to
    anything that walks it (numpy conversion, str(), ==), so walkers check first. A shared
    sub-list is walked once; the walk stops as soon as the limit is passed."""
    seen: dict[int, int] = {}
    total = 0

    def walk(x: Any) -> int:
        nonlocal total
        if isinstance(x, np.ndarray):
            n = int(x.size)
        elif isinstance(x, list | tuple | dict):
            key = id(x)
            if key in seen:
                n = seen[key]
            elif isinstance(x, list | tuple) and not any(
                issubclass(t, _CONTAINERS) for t in set(map(type, x))
            ):
                n = seen[key] = len(x)  # a flat list: type check at C speed, no Python loop
            else:
                seen[key] = 1  # provisional: a self-containing list counts once
                items = x.items() if isinstance(x, dict) else x
                n = 0
                for item in items:
                    n += walk(item)
                seen[key] = n
                return n
        else:
            n = 1
        total += n
        if total > limit:
            raise LimitError(f"{what} holds more than {limit:,} items (the limit)")
        return n

    walk(value)
    return total


def check_index(container: np.ndarray, key: Any) -> None:
    """Refuse fancy indexing (arrays or lists as indices) whose result would pass the element
    limit: `zeros((10, 2**20))[zeros(2**12, 'int64')]` reads 10 rows into 2**32 elements."""
    keys = key if isinstance(key, tuple) else (key,)
    if not any(isinstance(k, np.ndarray | list) for k in keys):
        return  # basic indexing returns a view
    check_time()
    shapes: list[tuple[int, ...]] = []
    width: list[int] = []  # how many container axes each key consumes
    for k in keys:
        if isinstance(k, list):
            count_items(k, what="an index")
            k = np.asarray(k)
        if isinstance(k, np.ndarray) and k.dtype == bool:
            shapes.append((int(np.count_nonzero(k)),))
            width.append(k.ndim)
        elif isinstance(k, np.ndarray):
            shapes.append(k.shape)
            width.append(1)
        else:
            width.append(0 if k is None or k is Ellipsis else 1)
    try:
        picked = math.prod(np.broadcast_shapes(*shapes))
    except ValueError:
        return  # numpy reports the shape mismatch itself
    # Axes taken by array keys are replaced by the broadcast index shape; the rest are kept
    # (at most whole): bound the result by picked * the kept axes.
    dims = list(container.shape)
    array_axes: list[int] = []
    pos = 0
    for n, (k, w) in enumerate(zip(keys, width, strict=True)):
        if k is Ellipsis:
            pos = len(dims) - sum(width[n + 1 :])
            continue
        if isinstance(k, np.ndarray | list):
            array_axes.extend(range(pos, pos + w))
        pos += w
    kept = math.prod(d for i, d in enumerate(dims) if i not in array_axes)
    check_elements(picked * kept, "indexing result")


def check_compare(a: Any, b: Any) -> None:
    # Comparing two nested lists walks every leaf of both.
    for x in (a, b):
        if isinstance(x, list | tuple | dict | str):
            check_time()
        if isinstance(x, list | tuple | dict):
            count_items(x, what="a compared value")
    check_broadcast(a, b)


# Checked before each binary operator runs (the rest only check broadcasting).
BINOP_GUARDS: dict[type, Callable[[Any, Any], None]] = {
    ast.Add: _check_add,
    ast.Mult: _check_mul,
    ast.Mod: _check_mod,
    ast.Pow: lambda a, b: (_check_pow(a, b), check_broadcast(a, b)),  # type: ignore[dict-item]
    ast.MatMult: _check_matmul,
}
