"""What a library call may cost, declared with each function: from the call's arguments
(before it runs, shapes only: nothing is converted or allocated to find them), the bytes its
result and internal copies may take and its work in multiply-add equivalents. The library
charges this against the cell's budget (`limits.charge`) before the function runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from cellgpt.engine.errors import CellEvalError
from cellgpt.engine.formula import MAX_ELEMENTS, check_elements, check_matmul_shapes, count_items
from cellgpt.engine.limits import budget

# A function's budget, declared with it: from the call's arguments (before it runs), the
# bytes its result and internal copies may take and its work in multiply-add equivalents.
Cost = Callable[..., tuple[int, int]]
PY_OP = 2**12  # one step of a Python-level loop, in multiply-add equivalents (~50 ns)


MAX_DIMS = 32  # numpy's own limit, checked before building a huge shape tuple


def shape_dims(shape: Any) -> tuple[int, ...]:
    """A shape argument as whole numbers, its length bounded before it is walked (it may be
    a list, a tuple or an array: `zeros(array([...]))`)."""
    if isinstance(shape, int | np.integer):
        return (int(shape),)
    if not isinstance(shape, list | tuple | np.ndarray):
        raise CellEvalError(f"a shape is a whole number or a list of them, not {shape!r}")
    if isinstance(shape, np.ndarray) and shape.ndim != 1:
        raise CellEvalError("a shape array must be one-dimensional")
    if len(shape) > MAX_DIMS:
        raise CellEvalError(f"a shape has at most {MAX_DIMS} dimensions, not {len(shape):,}")
    return tuple(int(d) for d in shape)


def shape_arg(shape: Any) -> tuple[int, ...]:
    dims = shape_dims(shape)
    if any(d < 0 for d in dims):
        raise CellEvalError(f"negative dimension in shape {dims}")
    check_elements(math.prod(dims))  # exact integers: 10**400 must not overflow a float
    return dims


def size_of(x: Any) -> int:
    """Elements (or items, or characters) in a value, walking nested lists boundedly."""
    if isinstance(x, np.ndarray):
        return int(x.size)
    if isinstance(x, list | tuple | dict):
        return count_items(x, MAX_ELEMENTS)
    if isinstance(x, str | bytes):
        return len(x)
    return 1


def shape_of(x: Any) -> tuple[int, ...]:
    if type(x) is np.ndarray or isinstance(x, np.ndarray | np.generic):
        return x.shape
    if isinstance(x, list | tuple):
        size_of(x)  # bounded before numpy walks it
        return np.shape(x)
    return ()


def fixed(*args: Any, **kwargs: Any) -> tuple[int, int]:
    """Constant work whatever the arguments (a lookup, a view, a small fact)."""
    return 0, 0


def by_size(*args: Any, **kwargs: Any) -> tuple[int, int]:
    """Work and a float64 copy in proportion to all the arguments' sizes."""
    n = sum(size_of(a) for a in (*args, *kwargs.values()))
    return 8 * n, n


def scaled(copies: int, work: int = 1) -> Cost:
    """`copies` float64 copies of the first argument, `work` steps per element."""

    def cost(a: Any, *args: Any, **kwargs: Any) -> tuple[int, int]:
        n = size_of(a)
        return 8 * copies * n, work * n

    return cost


def broadcast(*args: Any, **kwargs: Any) -> tuple[int, int]:
    """Element-wise over the broadcast of the array arguments (temporaries included)."""
    shapes = [shape_of(a) for a in (*args, *kwargs.values()) if a is not None]
    try:
        n = math.prod(np.broadcast_shapes(*shapes))
    except ValueError:
        n = max((math.prod(s) for s in shapes), default=0)  # numpy will refuse it itself
    return 16 * n, 4 * n


def sorting(a: Any, *args: Any, **kwargs: Any) -> tuple[int, int]:
    """A sort of the first argument: n log n comparisons, slower than multiply-adds."""
    n = size_of(a)
    return 16 * n, 64 * n * max(1, n.bit_length())


def python_loop(*args: Any, **kwargs: Any) -> tuple[int, int]:
    """A Python-level loop over every item of the arguments (lists, strings)."""
    n = sum(size_of(a) for a in (*args, *kwargs.values()))
    return 64 * n, PY_OP * n


def shape_cost(position: int) -> Cost:
    """An array built from a shape argument (zeros, ones, full, random_normal)."""

    def cost(*args: Any, **kwargs: Any) -> tuple[int, int]:
        shape = args[position] if len(args) > position else kwargs.get("shape", ())
        n = math.prod(shape_arg(shape))
        return 8 * n, n

    return cost


def matmul_cost(a: Any, b: Any) -> tuple[int, int]:
    sa, sb = shape_of(a), shape_of(b)
    if not sa or not sb:
        return 8 * (size_of(a) + size_of(b)), size_of(a) * size_of(b)
    rows = sa[-2] if len(sa) >= 2 else 1
    cols = sb[-1] if len(sb) >= 2 else 1
    batch = sa[:-2] or sb[:-2]  # plain 2-D products (most of a forward) skip the broadcast
    if sa[:-2] and sb[:-2]:
        batch = np.broadcast_shapes(sa[:-2], sb[:-2])
    outputs = math.prod(batch) * rows * cols
    limits = budget.limits
    if outputs > limits.max_elements or outputs * sa[-1] > limits.max_cost:
        check_matmul_shapes(sa, sb)  # refuses it, naming both shapes
    return 8 * outputs, outputs * sa[-1]


def arange_cost(
    start: float, stop: float | None = None, step: float = 1, dtype: str = "float32"
) -> tuple[int, int]:
    lo, hi = (0, start) if stop is None else (start, stop)
    if step == 0 or not all(math.isfinite(v) for v in (lo, hi, step)):
        return 0, 0  # arange() says what is wrong
    n = max(0, math.ceil((hi - lo) / step))
    return 8 * n, n


def linspace_cost(start: float, stop: float, num: int = 50) -> tuple[int, int]:
    return 8 * int(num), int(num)


def square_cost(n: int) -> tuple[int, int]:
    return 8 * int(n) ** 2, int(n) ** 2


def random_cost(shape: Any, seed: int = 0, scale: float = 1.0) -> tuple[int, int]:
    n = math.prod(shape_arg(shape))
    return 16 * n, 16 * n  # float64 draws, then a float32 copy


def parts_cost(arrays: Any, axis: int = 0) -> tuple[int, int]:
    if not isinstance(arrays, list | tuple):
        return by_size(arrays)
    count_items(arrays, MAX_ELEMENTS)
    n = sum(size_of(a) for a in arrays)
    return 8 * n, n


def dot_cost(a: Any, b: Any) -> tuple[int, int]:
    sa, sb = shape_of(a), shape_of(b)
    if len(sa) < 1 or len(sb) < 1:
        return broadcast(a, b)
    cols = sb[-1] if len(sb) >= 2 else 1
    outputs = math.prod(sa[:-1]) * math.prod(sb[:-2]) * cols
    return 8 * outputs, outputs * sa[-1]


def cosine_cost(a: Any, b: Any) -> tuple[int, int]:
    # float64 copies of both, then b @ a
    n = size_of(a) + size_of(b)
    product = matmul_cost(b, a)[1] if shape_of(a) and shape_of(b) else n
    return 8 * n, n + product


def nearest_cost(query: Any, matrix: Any, labels: Any, k: int = 5) -> tuple[int, int]:
    nbytes, work = cosine_cost(query, matrix)
    rows = shape_of(matrix)[0] if shape_of(matrix) else 1
    return nbytes, work + 64 * rows * max(1, rows.bit_length())  # and a sort of the rows


def take_cost(a: Any, indices: Any, axis: int = 0) -> tuple[int, int]:
    sa = shape_of(a)
    picked = size_of(indices)
    if not sa:
        return 8 * picked, picked
    n = picked * (math.prod(sa) // max(sa[int(axis)], 1))
    return 8 * n + 8 * picked, n


def set_cost(items: Any, values: Any) -> tuple[int, int]:
    # A set holds a Python object per value (~100 bytes), and each item is looked up.
    n = size_of(items) + size_of(values)
    return 128 * n, 4 * PY_OP * n


def shape_of_cost(a: Any) -> tuple[int, int]:
    return (0, 0) if isinstance(a, np.ndarray) else by_size(a)
