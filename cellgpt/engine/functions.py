"""The function library formulas may call.

Each entry is a plain Python callable plus metadata: a one-line doc, optionally its Excel
form (used by the .xlsx exporter), its row rule (how appending rows to its input only needs
the new rows computed, see row_rules.py) and its cost (what a call may allocate and compute,
charged against the cell's budget before it runs, see costs.py). Libraries are composable: a
domain package (GPT-2) registers its own functions into a copy of the core library; the
engine itself knows nothing about any domain.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cellgpt.engine import kernels
from cellgpt.engine.costs import (
    Cost,
    arange_cost,
    broadcast,
    by_size,
    cosine_cost,
    dot_cost,
    fixed,
    linspace_cost,
    matmul_cost,
    nearest_cost,
    parts_cost,
    python_loop,
    random_cost,
    scaled,
    set_cost,
    shape_arg,
    shape_cost,
    shape_dims,
    shape_of_cost,
    sorting,
    square_cost,
    take_cost,
)
from cellgpt.engine.errors import CellEvalError
from cellgpt.engine.expansions import CORE as CORE_EXPANSIONS
from cellgpt.engine.expansions import Expansion
from cellgpt.engine.formula import (
    MAX_ELEMENTS,
    check_elements,
    check_matmul_shapes,
    count_items,
)
from cellgpt.engine.fused_norm import LAYER_NORM
from cellgpt.engine.fusion import Fusion
from cellgpt.engine.grad_functions import register_grad
from cellgpt.engine.limits import MAX_TEXT_BYTES, charge, seq_bytes
from cellgpt.engine.losses import register_losses
from cellgpt.engine.replay_group import ReplayGroup
from cellgpt.engine.row_rules import (
    RowRule,
    along_last_axis,
    elementwise,
    matmul_rows,
    softmax_rows,
    transpose_rows,
)


@dataclass(frozen=True)
class LibraryFunction:
    name: str
    impl: Callable[..., Any]
    doc: str = ""
    excel: Any = None  # the exporter's description of this function in Excel terms
    rows: RowRule | None = None  # how output rows follow input rows (None: not row-wise)
    cost: Cost | None = None  # None: charged by the size of every argument (by_size)

    def guarded(self) -> Callable[..., Any]:
        """`impl`, refused before it runs when its cost passes the cell's budget."""
        name, impl, cost = self.name, self.impl, self.cost or by_size

        def run(*args: Any, **kwargs: Any) -> Any:
            nbytes, work = cost(*args, **kwargs)
            charge(name, nbytes, work)
            return impl(*args, **kwargs)

        return run


@dataclass
class FunctionLibrary:
    functions: dict[str, LibraryFunction] = field(default_factory=dict)
    constants: dict[str, Any] = field(default_factory=dict)
    # cell chains the runner may compute in one kernel (see fusion.py)
    fusions: list[Fusion] = field(default_factory=list)
    # {function: its steps in the formula language}, for Evaluate Formula (expansions.py)
    expansions: dict[str, Expansion] = field(default_factory=dict)
    # runs of a generated token's one-row cells computed by one kernel (replay_group.py)
    replay_groups: list[ReplayGroup] = field(default_factory=list)

    def register(
        self,
        name: str,
        impl: Callable[..., Any] | None = None,
        *,
        doc: str = "",
        excel: Any = None,
        rows: RowRule | None = None,
        cost: Cost | None = None,
    ) -> Any:
        """Register `impl` under `name`; usable as a decorator when impl is omitted."""

        def add(fn: Callable[..., Any]) -> Callable[..., Any]:
            if "__" in name or not name.isidentifier():
                raise ValueError(f"invalid function name {name!r}")
            text = doc or (fn.__doc__ or "").strip().splitlines()[0:1]
            first_line = text if isinstance(text, str) else (text[0] if text else "")
            self.functions[name] = LibraryFunction(name, fn, first_line, excel, rows, cost)
            return fn

        return add(impl) if impl is not None else add

    def constant(self, name: str, value: Any) -> None:
        self.constants[name] = value

    def copy(self) -> FunctionLibrary:
        return FunctionLibrary(
            dict(self.functions),
            dict(self.constants),
            list(self.fusions),
            dict(self.expansions),
            list(self.replay_groups),
        )

    def impls(self) -> dict[str, Callable[..., Any]]:
        return {name: f.guarded() for name, f in self.functions.items()}

    def __contains__(self, name: str) -> bool:
        return name in self.functions

    def __getitem__(self, name: str) -> LibraryFunction:
        return self.functions[name]


# ---------------------------------------------------------------------------------------
# The core library: generic numeric helpers, no domain knowledge.

core = FunctionLibrary()
core.constant("pi", math.pi)
core.constant("e", math.e)
core.constant("inf", math.inf)
core.constant("nan", math.nan)
core.expansions.update(CORE_EXPANSIONS)


def _as_array(x: Any) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, list | tuple):
        count_items(x, MAX_ELEMENTS)  # numpy would walk (and allocate) every leaf
    return np.asarray(x)


def _dtype(dtype: str) -> np.dtype:
    allowed = {"float32", "float64", "int64", "int32", "bool"}
    if dtype not in allowed:
        raise CellEvalError(f"dtype must be one of {sorted(allowed)}, not {dtype!r}")
    return np.dtype(dtype)


@core.register("zeros", cost=shape_cost(0))
def zeros(shape: Any, dtype: str = "float32") -> np.ndarray:
    """An array of zeros of the given shape."""
    return np.zeros(shape_arg(shape), dtype=_dtype(dtype))


@core.register("ones", cost=shape_cost(0))
def ones(shape: Any, dtype: str = "float32") -> np.ndarray:
    """An array of ones of the given shape."""
    return np.ones(shape_arg(shape), dtype=_dtype(dtype))


@core.register("full", cost=shape_cost(0))
def full(shape: Any, value: float, dtype: str = "float32") -> np.ndarray:
    """An array of the given shape filled with one value."""
    return np.full(shape_arg(shape), value, dtype=_dtype(dtype))


@core.register("arange", cost=arange_cost)
def arange(
    start: float, stop: float | None = None, step: float = 1, dtype: str = "float32"
) -> np.ndarray:
    """Evenly spaced values in [start, stop)."""
    lo, hi = (0, start) if stop is None else (start, stop)
    if step == 0:
        raise CellEvalError("arange: step must not be 0")
    if not all(math.isfinite(v) for v in (lo, hi, step)):
        raise CellEvalError("arange: start, stop and step must be finite numbers")
    check_elements(max(0, math.ceil((hi - lo) / step)))
    return np.arange(lo, hi, step, dtype=_dtype(dtype))


@core.register("linspace", cost=linspace_cost)
def linspace(start: float, stop: float, num: int = 50) -> np.ndarray:
    """`num` evenly spaced values from start to stop inclusive."""
    check_elements(int(num))
    return np.linspace(start, stop, int(num), dtype=np.float32)


@core.register("eye", cost=square_cost)
def eye(n: int) -> np.ndarray:
    """The n x n identity matrix."""
    shape_arg((n, n))
    return np.eye(int(n), dtype=np.float32)


@core.register("array", cost=by_size)
def array(values: Any, dtype: str = "float32") -> np.ndarray:
    """Turn a (nested) list of numbers into an array."""
    check_elements(count_items(values, MAX_ELEMENTS))
    result = np.asarray(values, dtype=_dtype(dtype))
    return result


@core.register("random_normal", cost=random_cost)
def random_normal(shape: Any, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    """Seeded normal random numbers (reproducible)."""
    rng = np.random.default_rng(int(seed))
    return (rng.standard_normal(shape_arg(shape)) * scale).astype(np.float32)


@core.register("matmul", rows=matmul_rows, cost=matmul_cost)
def matmul(a: Any, b: Any) -> np.ndarray:
    """Matrix product a @ b."""
    a, b = _as_array(a), _as_array(b)
    if a.ndim >= 1 and b.ndim >= 1:
        inner_a = a.shape[-1]
        inner_b = b.shape[-2] if b.ndim >= 2 else b.shape[0]
        if inner_a != inner_b:
            raise CellEvalError(
                f"matmul: shapes {a.shape} and {b.shape} do not fit ({inner_a} != {inner_b})"
            )
        rows = a.shape[-2] if a.ndim >= 2 else 1
        cols = b.shape[-1] if b.ndim >= 2 else 1
        check_elements(rows * cols)
    return kernels.matmul(a, b)


@core.register("transpose", rows=transpose_rows, cost=scaled(1))
def transpose(a: Any, axes: Any = None) -> np.ndarray:
    """Swap rows and columns (or permute the given axes)."""
    return np.transpose(_as_array(a), axes)


@core.register("reshape", cost=scaled(1))
def reshape(a: Any, shape: Any) -> np.ndarray:
    """The same numbers in a new shape."""
    return np.reshape(_as_array(a), shape_dims(shape))


@core.register("concat", cost=parts_cost)
def concat(arrays: Iterable[Any], axis: int = 0) -> np.ndarray:
    """Join arrays along an axis."""
    parts = [_as_array(a) for a in arrays]
    check_elements(sum(p.size for p in parts))
    return np.concatenate(parts, axis=int(axis))


@core.register("stack", cost=parts_cost)
def stack(arrays: Iterable[Any], axis: int = 0) -> np.ndarray:
    """Stack arrays along a new axis."""
    parts = [_as_array(a) for a in arrays]
    check_elements(sum(p.size for p in parts))
    return np.stack(parts, axis=int(axis))


def _reduce(fn: Callable[..., Any]) -> Callable[..., Any]:
    def reducer(a: Any, axis: int | None = None, keepdims: bool = False) -> Any:
        return fn(_as_array(a), axis=axis, keepdims=keepdims)

    return reducer


for _name, _fn, _doc in [
    ("sum", np.sum, "Sum of the values (along an axis)."),
    ("mean", np.mean, "Arithmetic mean (along an axis)."),
    ("var", np.var, "Population variance (along an axis)."),
    ("std", np.std, "Population standard deviation (along an axis)."),
    ("amax", np.max, "Largest value (along an axis)."),
    ("amin", np.min, "Smallest value (along an axis)."),
]:
    core.register(_name, _reduce(_fn), doc=_doc, cost=scaled(2, 2))


@core.register("argmax", cost=scaled(0))
def argmax(a: Any, axis: int | None = None) -> Any:
    """Index of the largest value (first one on ties)."""
    return np.argmax(_as_array(a), axis=axis)


@core.register("argmin", cost=scaled(0))
def argmin(a: Any, axis: int | None = None) -> Any:
    """Index of the smallest value."""
    return np.argmin(_as_array(a), axis=axis)


def _elementwise(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[Any], Any]:
    def apply(a: Any) -> Any:
        return fn(_as_array(a))

    return apply


for _name, _fn, _doc in [
    ("exp", np.exp, "e to the power x, element by element."),
    ("log", np.log, "Natural logarithm, element by element."),
    ("sqrt", np.sqrt, "Square root, element by element."),
    ("tanh", np.tanh, "Hyperbolic tangent, element by element."),
    ("abs", np.abs, "Absolute value, element by element."),
    ("sign", np.sign, "Sign (-1, 0, 1), element by element."),
]:
    core.register(_name, _elementwise(_fn), doc=_doc, rows=elementwise, cost=scaled(1, 8))


def _binary(fn: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def apply(a: Any, b: Any) -> Any:
        a, b = _as_array(a), _as_array(b)
        check_elements(int(np.prod(np.broadcast_shapes(a.shape, b.shape), dtype=np.float64)))
        return fn(a, b)

    return apply


core.register(
    "maximum",
    _binary(np.maximum),
    doc="Element-wise larger of two arrays.",
    rows=elementwise,
    cost=broadcast,
)
core.register(
    "minimum",
    _binary(np.minimum),
    doc="Element-wise smaller of two arrays.",
    rows=elementwise,
    cost=broadcast,
)


@core.register("where", rows=elementwise, cost=broadcast)
def where(condition: Any, a: Any, b: Any) -> np.ndarray:
    """a where condition holds, else b (element by element)."""
    c, a, b = _as_array(condition), _operand(a), _operand(b)
    check_elements(
        int(np.prod(np.broadcast_shapes(c.shape, np.shape(a), np.shape(b)), dtype=np.float64))
    )
    return np.where(c, a, b)


def _operand(x: Any) -> Any:
    # A Python number stays one: numpy then keeps the other side's dtype (where(m, x, -inf)
    # of float32 scores stays float32), as the arithmetic operators do.
    return x if type(x) in (int, float, bool) else _as_array(x)


@core.register("clip", rows=elementwise, cost=broadcast)
def clip(a: Any, lo: float | None, hi: float | None) -> np.ndarray:
    """Limit values to [lo, hi]."""
    a = _as_array(a)
    bounds = [np.shape(v) for v in (lo, hi) if v is not None]
    check_elements(math.prod(np.broadcast_shapes(a.shape, *bounds)))
    return np.clip(a, lo, hi)


@core.register("relu", rows=elementwise, cost=scaled(1))
def relu(a: Any) -> np.ndarray:
    """max(0, x) element by element."""
    return np.maximum(_as_array(a), 0)


@core.register("softmax", rows=softmax_rows, cost=scaled(3, 8))
def softmax(a: Any, axis: int = -1) -> np.ndarray:
    """exp(x - max) / sum(exp(x - max)) along an axis; -inf entries become 0."""
    a = _as_array(a)
    if a.ndim and int(axis) in (-1, a.ndim - 1) and kernels.is_float(a):
        return kernels.softmax_last(a)
    shifted = a - np.max(a, axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / np.sum(e, axis=axis, keepdims=True)


@core.register("layer_norm", rows=along_last_axis, cost=broadcast)
def layer_norm(x: Any, gain: Any, bias: Any, eps: float = 1e-5) -> np.ndarray:
    """Normalise each row to mean 0 and (population) variance 1, then scale and shift."""
    x, gain, bias = _as_array(x), _as_array(gain), _as_array(bias)
    if x.ndim and gain.ndim <= 1 and bias.ndim <= 1 and kernels.is_float(x, gain, bias):
        return kernels.layer_norm(x, gain, bias, eps)
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = np.mean(centred * centred, axis=-1, keepdims=True)
    return centred / np.sqrt(var + np.float32(eps)) * gain + bias


@core.register("normalize", rows=along_last_axis, cost=scaled(2, 6))
def normalize(x: Any, eps: float = 1e-5) -> np.ndarray:
    """Each row minus its mean, divided by sqrt(population variance + eps): rows of mean 0
    and variance 1. Layer norm before its gain and bias (TransformerLens's hook_normalized)."""
    x = _as_array(x)
    if x.ndim and kernels.is_float(x):
        return kernels.normalize(x, eps)
    centred = x - x.mean(axis=-1, keepdims=True)
    var = np.mean(centred * centred, axis=-1, keepdims=True)
    return centred / np.sqrt(var + np.float32(eps))


# A layer norm shown as two cells (normalized, then the affine): one kernel when the
# normalized cell is evictable and nothing else reads it (fused_norm.py).
core.fusions.append(LAYER_NORM)


@core.register("norm_scale", rows=along_last_axis, cost=scaled(2, 5))
def norm_scale(x: Any, eps: float = 1e-5) -> np.ndarray:
    """sqrt(population variance + eps) of each row, as a column: what layer norm divides
    the centred row by (TransformerLens's hook_scale)."""
    x = _as_array(x)
    if x.ndim and kernels.is_float(x):
        return kernels.norm_scale(x, eps)
    centred = x - x.mean(axis=-1, keepdims=True)
    return np.sqrt(np.mean(centred * centred, axis=-1, keepdims=True) + np.float32(eps))


@core.register("gelu", rows=elementwise, cost=scaled(4, 16))
def gelu(x: Any) -> np.ndarray:
    """GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    x = _as_array(x)
    if x.ndim and kernels.is_float(x):
        return kernels.gelu(x)
    c = np.float32(math.sqrt(2.0 / math.pi))
    return (
        np.float32(0.5)
        * x
        * (np.float32(1.0) + np.tanh(c * (x + np.float32(0.044715) * x * x * x)))
    )


@core.register("dot", cost=dot_cost)
def dot(a: Any, b: Any) -> Any:
    """Dot product of two vectors."""
    a, b = _as_array(a), _as_array(b)
    if a.ndim >= 1 and b.ndim >= 1:
        # np.dot pairs a's last axis with b's second-to-last: a matrix product in disguise.
        check_matmul_shapes(a.shape, b.shape[-2:] if b.ndim >= 2 else b.shape)
        cols = b.shape[-1] if b.ndim >= 2 else 1
        check_elements(math.prod(a.shape[:-1]) * math.prod(b.shape[:-2]) * cols)
    return np.dot(a, b)


@core.register("norm", cost=scaled(1))
def norm(a: Any, axis: int | None = None) -> Any:
    """Euclidean length (along an axis)."""
    return np.linalg.norm(_as_array(a), axis=axis)


@core.register("cosine", cost=cosine_cost)
def cosine(a: Any, b: Any) -> Any:
    """Cosine similarity of a vector with a vector, or with each row of a matrix."""
    a, b = _as_array(a).astype(np.float64), _as_array(b).astype(np.float64)
    check_matmul_shapes(b.shape, a.shape)
    return (b @ a) / (np.linalg.norm(b, axis=-1) * np.linalg.norm(a))


@core.register("causal_mask", cost=square_cost)
def causal_mask(n: int) -> np.ndarray:
    """An n x n boolean matrix, True on and below the diagonal."""
    shape_arg((n, n))
    return np.tril(np.ones((int(n), int(n)), dtype=bool))


@core.register("topk", cost=sorting)
def topk(a: Any, k: int) -> np.ndarray:
    """Indices of the k largest values, largest first (ties: lower index first)."""
    a = _as_array(a).ravel()
    k = max(0, min(int(k), a.size))
    return np.argsort(-a, kind="stable")[:k]


@core.register("take", cost=take_cost)
def take(a: Any, indices: Any, axis: int = 0) -> np.ndarray:
    """Pick rows (or entries along an axis) by index."""
    a, idx = _as_array(a), _as_array(indices)
    if a.ndim:
        check_elements(idx.size * (a.size // max(a.shape[int(axis)], 1)), "take()'s result")
    if idx.dtype.kind not in "iub":
        # astype truncates 2.5 and turns nan or inf into a garbage index: name the entry.
        flat = idx.ravel()
        whole = np.zeros(flat.size, bool)
        if flat.dtype.kind == "f":  # (nan_to_num: mod of inf would warn; inf is not finite)
            whole = np.isfinite(flat) & (np.mod(np.nan_to_num(flat), 1) == 0)
        if not whole.all():
            at = int(np.argmin(whole))
            raise CellEvalError(
                f"take(): indices must be whole numbers; entry {at} is {flat[at].item()!r}"
            )
    return np.take(a, idx.astype(np.int64), axis=int(axis))


@core.register("size", cost=fixed)
def size(a: Any) -> int:
    """Number of items (length of a list or string, element count of an array)."""
    return int(a.size) if isinstance(a, np.ndarray) else len(a)


@core.register("shape", cost=shape_of_cost)
def shape(a: Any) -> tuple[int, ...]:
    """Shape of an array."""
    return tuple(_as_array(a).shape)


@core.register("cast", cost=scaled(1))
def cast(a: Any, dtype: str) -> np.ndarray:
    """Convert an array to another number type."""
    return _as_array(a).astype(_dtype(dtype))


@core.register("to_int", cost=fixed)
def to_int(x: Any) -> int:
    """A whole number."""
    return int(x)


@core.register("to_float", cost=fixed)
def to_float(x: Any) -> float:
    """A floating-point number."""
    return float(x)


@core.register("text", cost=python_loop)
def text(x: Any) -> str:
    """A short text form of a value."""
    if not isinstance(x, np.ndarray):  # numpy summarises big arrays itself
        count_items(x, what="text()'s value")  # str() walks every leaf of a nested list
    out = str(x)
    if seq_bytes(out) > MAX_TEXT_BYTES:
        raise CellEvalError(f"text: value is too long to show (over {MAX_TEXT_BYTES:,} bytes)")
    return out


@core.register("join", cost=python_loop)
def join(items: Iterable[Any], sep: str = "") -> str:
    """Join strings with a separator."""
    parts: list[str] = []
    total = 0
    for item in items:
        parts.append(text(item))
        total += seq_bytes(parts[-1]) + seq_bytes(str(sep))  # bytes: '😀' takes 4
        if total > MAX_TEXT_BYTES:
            raise CellEvalError(f"join: the text would pass the limit of {MAX_TEXT_BYTES:,} bytes")
    return str(sep).join(parts)


@core.register("rows", cost=fixed)
def rows(a: Any, start: int, stop: int | None = None) -> Any:
    """Rows start..stop-1 of a matrix (or items of a list)."""
    return a[int(start) : None if stop is None else int(stop)]


@core.register("mse", cost=broadcast)
def mse(prediction: Any, target: Any) -> float:
    """Mean squared error."""
    d = _as_array(prediction) - _as_array(target)
    return float(np.mean(d * d))


@core.register("nearest", cost=nearest_cost)
def nearest(query: Any, matrix: Any, labels: Any, k: int = 5) -> list[tuple[str, float]]:
    """The k rows of `matrix` most cosine-similar to `query`, as (label, similarity)."""
    sims = cosine(query, matrix)
    order = topk(sims, k)
    return [(str(labels[i]), float(sims[i])) for i in order]


@core.register("index_of", cost=python_loop)
def index_of(items: Any, item: Any) -> int:
    """Position of `item` in a list (error if absent)."""
    count_items(items, what="index_of()'s list")  # `in` compares every leaf
    count_items(item, what="index_of()'s item")
    items = list(items)
    if item not in items:
        raise CellEvalError(f"index_of: {item!r} is not in the list")
    return items.index(item)


@core.register("row", cost=fixed)
def row(matrix: Any, index: int) -> np.ndarray:
    """One row of a matrix."""
    return _as_array(matrix)[int(index)]


# Familiar spreadsheet-style names for the reductions.
core.register("max", core["amax"].impl, doc="Largest value (along an axis).", cost=scaled(2, 2))
core.register("min", core["amin"].impl, doc="Smallest value (along an axis).", cost=scaled(2, 2))
core.register("len", size, doc="Number of items.", cost=fixed)


@core.register("isin", cost=set_cost)
def isin(items: Any, values: Any) -> np.ndarray:
    """For each item: is it one of `values`? (a boolean mask)"""
    wanted = set(values)
    return np.array([item in wanted for item in items], dtype=bool)


# Losses, and gradients as formulas (grad/grads are bound per workbook, see grad_functions.py).
register_losses(core)
register_grad(core)
