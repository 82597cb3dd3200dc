"""Vector-Jacobian products of the core library and of the formula operators.

A VJP rule answers, for one call `out = f(*args)` and the gradient `g` of a loss with respect
to `out`, the gradient with respect to each argument: `rule(g, out, *args) -> tuple`, one entry
per argument in the function's parameter order (keywords are bound to their parameters
first), None where an argument is not differentiable (an axis, an index, eps). Domain
packages add their own rules to the same registry (see gpt2/vjp.py); a function that is
neither here nor in `NONDIFF` cannot be differentiated, and `grad` says so, naming it.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from cellgpt.engine import kernels

Rule = Callable[..., tuple[Any, ...]]

VJPS: dict[str, Rule] = {}
# Functions whose outputs are piecewise constant (or not numbers): no gradient flows back.
NONDIFF: set[str] = {
    "zeros", "ones", "full", "arange", "linspace", "eye", "random_normal", "argmax",
    "argmin", "causal_mask", "topk", "size", "shape", "to_int", "text", "join", "index_of",
    "isin", "len", "sign",
}  # fmt: skip


def vjp(*names: str) -> Callable[[Rule], Rule]:
    """Register a rule under one or more function names."""

    def add(rule: Rule) -> Rule:
        for name in names:
            VJPS[name] = rule
        return rule

    return add


def unbroadcast(g: Any, shape: tuple[int, ...]) -> Any:
    """Sum a gradient over the axes broadcasting added or stretched, back to `shape`."""
    g = np.asarray(g)
    if g.shape == tuple(shape):
        return g
    extra = g.ndim - len(shape)
    if extra > 0:
        g = g.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if stretched:
        g = g.sum(axis=stretched, keepdims=True)
    return g.reshape(shape)


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(np.shape(x))


# ---------------------------------------------------------------------------- operators
def _matmul(g: Any, out: Any, a: Any, b: Any) -> tuple[Any, Any]:
    a, b, g = np.asarray(a), np.asarray(b), np.asarray(g)
    if a.ndim == 1 and b.ndim == 1:
        return g * b, g * a
    if a.ndim == 1:  # [n] @ [..., n, m] -> [..., m]
        ga = np.matmul(b, g[..., None])[..., 0]
        gb = a[:, None] * g[..., None, :]
        return unbroadcast(ga, a.shape), unbroadcast(gb, b.shape)
    if b.ndim == 1:  # [..., m, n] @ [n] -> [..., m]
        ga = g[..., :, None] * b
        gb = np.matmul(np.swapaxes(a, -1, -2), g[..., None])[..., 0]
        return unbroadcast(ga, a.shape), unbroadcast(gb, b.shape)
    # the engine's chunked products (one chunk per core, see kernels.py) when they apply
    product = kernels.matmul if kernels.is_float(g, a, b) else np.matmul
    ga = product(g, np.swapaxes(b, -1, -2))
    if b.ndim == 2 and b.flags.f_contiguous and not b.flags.c_contiguous:
        # b is a transposed table (logits = x · wteᵀ): its gradient in the same layout, so
        # the table's own gradient comes out contiguous
        gb = product(np.swapaxes(g, -1, -2), a).T
    else:
        gb = product(np.swapaxes(a, -1, -2), g)
    return unbroadcast(ga, a.shape), unbroadcast(gb, b.shape)


def _pow(g: Any, out: Any, a: Any, b: Any) -> tuple[Any, Any]:
    a_arr = np.asarray(a)
    ga = g * b * np.power(a_arr, np.asarray(b) - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        gb = np.where(a_arr > 0, g * out * np.log(np.where(a_arr > 0, a_arr, 1)), 0)
    return unbroadcast(ga, _shape(a)), unbroadcast(gb, _shape(b))


def _broadcasting(rule: Callable[[Any, Any, Any, Any], tuple[Any, Any]]) -> Rule:
    def apply(g: Any, out: Any, a: Any, b: Any) -> tuple[Any, Any]:
        ga, gb = rule(g, out, a, b)
        return unbroadcast(ga, _shape(a)), unbroadcast(gb, _shape(b))

    return apply


BINOP_VJPS: dict[type, Rule] = {
    ast.Add: _broadcasting(lambda g, out, a, b: (g, g)),
    ast.Sub: _broadcasting(lambda g, out, a, b: (g, -g)),
    ast.Mult: _broadcasting(lambda g, out, a, b: (g * b, g * a)),
    ast.Div: _broadcasting(lambda g, out, a, b: (g / b, -g * a / (np.asarray(b) * b))),
    ast.Pow: _pow,
    ast.MatMult: _matmul,
}
VJPS["matmul"] = _matmul


# ---------------------------------------------------------------------------- shapes
@vjp("transpose")
def _transpose(g: Any, out: Any, a: Any, axes: Any = None) -> tuple[Any, ...]:
    if axes is None:
        return np.transpose(g), None
    return np.transpose(g, np.argsort(axes)), None


@vjp("reshape")
def _reshape(g: Any, out: Any, a: Any, shape: Any) -> tuple[Any, ...]:
    return np.reshape(g, _shape(a)), None


@vjp("concat")
def _concat(g: Any, out: Any, arrays: Any, axis: int = 0) -> tuple[Any, ...]:
    sizes = np.cumsum([np.shape(p)[int(axis)] for p in arrays])[:-1]
    return list(np.split(g, sizes, axis=int(axis))), None


@vjp("stack")
def _stack(g: Any, out: Any, arrays: Any, axis: int = 0) -> tuple[Any, ...]:
    return [np.take(g, i, axis=int(axis)) for i in range(len(arrays))], None


@vjp("take")
def _take(g: Any, out: Any, a: Any, indices: Any, axis: int = 0) -> tuple[Any, ...]:
    ga = np.zeros(_shape(a), dtype=np.result_type(g))
    moved = np.moveaxis(ga, int(axis), 0)  # a view: adding into it fills ga
    idx = np.asarray(indices, dtype=np.int64)
    np.add.at(moved, idx, np.moveaxis(np.asarray(g), int(axis), 0) if idx.ndim else g)
    return ga, None, None


@vjp("rows")
def _rows(g: Any, out: Any, a: Any, start: int, stop: int | None = None) -> tuple[Any, ...]:
    ga = np.zeros(_shape(a), dtype=np.result_type(g))
    ga[int(start) : None if stop is None else int(stop)] = g
    return ga, None, None


@vjp("row")
def _row(g: Any, out: Any, matrix: Any, index: int) -> tuple[Any, ...]:
    ga = np.zeros(_shape(matrix), dtype=np.result_type(g))
    ga[int(index)] = g
    return ga, None


@vjp("cast")
def _cast(g: Any, out: Any, a: Any, dtype: str) -> tuple[Any, ...]:
    return np.asarray(g).astype(np.result_type(a)), None


@vjp("to_float")
def _to_float(g: Any, out: Any, x: Any) -> tuple[Any, ...]:
    return (g,)


@vjp("array")
def _array(g: Any, out: Any, values: Any, dtype: str = "float32") -> tuple[Any, ...]:
    return (np.asarray(g) if isinstance(values, np.ndarray) else list(np.asarray(g)),), None


# ---------------------------------------------------------------------------- reductions
def _expand(g: Any, a: Any, axis: Any, keepdims: bool) -> np.ndarray:
    """A reduction's gradient put back on the reduced axes (to broadcast against `a`)."""
    g = np.asarray(g)
    if axis is not None and not keepdims:
        g = np.expand_dims(g, axis)
    elif axis is None:
        g = g.reshape((1,) * np.ndim(a))
    return g


def _count(a: Any, axis: Any) -> int:
    shape = _shape(a)
    if axis is None:
        return math.prod(shape)
    axes = axis if isinstance(axis, tuple | list) else (axis,)
    return math.prod(shape[int(x)] for x in axes)


@vjp("sum")
def _sum(g: Any, out: Any, a: Any, axis: Any = None, keepdims: bool = False) -> tuple[Any, ...]:
    return np.broadcast_to(_expand(g, a, axis, keepdims), _shape(a)), None, None


@vjp("mean")
def _mean(g: Any, out: Any, a: Any, axis: Any = None, keepdims: bool = False) -> tuple[Any, ...]:
    ga = np.broadcast_to(_expand(g, a, axis, keepdims) / _count(a, axis), _shape(a))
    return ga, None, None


@vjp("var")
def _var(g: Any, out: Any, a: Any, axis: Any = None, keepdims: bool = False) -> tuple[Any, ...]:
    a = np.asarray(a)
    centred = a - a.mean(axis=axis, keepdims=True)
    return _expand(g, a, axis, keepdims) * 2 * centred / _count(a, axis), None, None


@vjp("std")
def _std(g: Any, out: Any, a: Any, axis: Any = None, keepdims: bool = False) -> tuple[Any, ...]:
    a = np.asarray(a)
    centred = a - a.mean(axis=axis, keepdims=True)
    std = _expand(out, a, axis, keepdims)
    return _expand(g, a, axis, keepdims) * centred / (_count(a, axis) * std), None, None


@vjp("amax", "amin", "max", "min")
def _extreme(g: Any, out: Any, a: Any, axis: Any = None, keepdims: bool = False) -> tuple[Any, ...]:
    a = np.asarray(a)
    hit = a == _expand(out, a, axis, keepdims)
    share = hit / hit.sum(axis=axis, keepdims=True)  # ties share the gradient evenly
    return _expand(g, a, axis, keepdims) * share, None, None


@vjp("norm")
def _norm(g: Any, out: Any, a: Any, axis: Any = None) -> tuple[Any, ...]:
    a = np.asarray(a)
    return _expand(g, a, axis, False) * a / _expand(out, a, axis, False), None


# ---------------------------------------------------------------------------- element-wise
@vjp("exp")
def _exp(g: Any, out: Any, a: Any) -> tuple[Any, ...]:
    return (g * out,)


@vjp("log")
def _log(g: Any, out: Any, a: Any) -> tuple[Any, ...]:
    return (g / a,)


@vjp("sqrt")
def _sqrt(g: Any, out: Any, a: Any) -> tuple[Any, ...]:
    return (g / (2 * out),)


@vjp("tanh")
def _tanh(g: Any, out: Any, a: Any) -> tuple[Any, ...]:
    return (g * (1 - out * out),)


@vjp("abs")
def _abs(g: Any, out: Any, a: Any) -> tuple[Any, ...]:
    return (g * np.sign(a),)


@vjp("relu")
def _relu(g: Any, out: Any, a: Any) -> tuple[Any, ...]:
    return (g * (np.asarray(a) > 0),)


@vjp("maximum", "minimum")
def _max_min(g: Any, out: Any, a: Any, b: Any) -> tuple[Any, ...]:
    a_wins = (np.asarray(a) == out).astype(np.result_type(g))
    b_wins = (np.asarray(b) == out).astype(np.result_type(g))
    both = a_wins + b_wins  # a tie shares the gradient, as PyTorch does
    return unbroadcast(g * a_wins / both, _shape(a)), unbroadcast(g * b_wins / both, _shape(b))


@vjp("where")
def _where(g: Any, out: Any, condition: Any, a: Any, b: Any) -> tuple[Any, ...]:
    c = np.asarray(condition, dtype=bool)
    return (
        None,
        unbroadcast(np.where(c, g, 0), _shape(a)),
        unbroadcast(np.where(c, 0, g), _shape(b)),
    )


@vjp("clip")
def _clip(g: Any, out: Any, a: Any, lo: Any, hi: Any) -> tuple[Any, ...]:
    inside = np.ones(_shape(a), dtype=bool)
    if lo is not None:
        inside &= np.asarray(a) >= lo
    if hi is not None:
        inside &= np.asarray(a) <= hi
    return g * inside, None, None


_GELU_C = math.sqrt(2.0 / math.pi)


@vjp("gelu")
def _gelu(g: Any, out: Any, x: Any) -> tuple[Any, ...]:
    x = np.asarray(x)
    inner = _GELU_C * (x + 0.044715 * (x * x * x))
    t = np.tanh(inner)
    d_inner = _GELU_C * (1 + 3 * 0.044715 * x * x)
    return ((g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * d_inner)).astype(x.dtype, copy=False),)


# ---------------------------------------------------------------------------- normalising
@vjp("softmax")
def _softmax(g: Any, out: Any, a: Any, axis: int = -1) -> tuple[Any, ...]:
    gy = g * out
    return gy - out * gy.sum(axis=int(axis), keepdims=True), None


def _normalized(x: Any, eps: float) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x)
    centred = x - x.mean(axis=-1, keepdims=True)
    inv = 1.0 / np.sqrt((centred * centred).mean(axis=-1, keepdims=True) + eps)
    return centred * inv, inv


def _normalize_back(gy: np.ndarray, xhat: np.ndarray, inv: np.ndarray) -> np.ndarray:
    # d/dx of (x - mean) / sqrt(var + eps), applied to gy: the standard three-term form
    return inv * (
        gy - gy.mean(axis=-1, keepdims=True) - xhat * (gy * xhat).mean(axis=-1, keepdims=True)
    )


@vjp("layer_norm")
def _layer_norm(
    g: Any, out: Any, x: Any, gain: Any, bias: Any, eps: float = 1e-5
) -> tuple[Any, ...]:
    xhat, inv = _normalized(x, eps)
    g = np.asarray(g)
    g_gain = unbroadcast(g * xhat, _shape(gain))
    g_bias = unbroadcast(g, _shape(bias))
    return _normalize_back(g * gain, xhat, inv), g_gain, g_bias, None


@vjp("normalize")
def _normalize(g: Any, out: Any, x: Any, eps: float = 1e-5) -> tuple[Any, ...]:
    xhat, inv = _normalized(x, eps)
    return _normalize_back(np.asarray(g), xhat, inv), None


@vjp("norm_scale")
def _norm_scale(g: Any, out: Any, x: Any, eps: float = 1e-5) -> tuple[Any, ...]:
    x = np.asarray(x)
    centred = x - x.mean(axis=-1, keepdims=True)
    return np.asarray(g) * centred / (x.shape[-1] * np.asarray(out)), None


# ---------------------------------------------------------------------------- products, losses
@vjp("dot")
def _dot(g: Any, out: Any, a: Any, b: Any) -> tuple[Any, ...]:
    if np.ndim(a) > 2 or np.ndim(b) > 2:
        raise ValueError("the gradient of dot() is for vectors and matrices (use matmul)")
    return _matmul(g, out, a, b)


@vjp("mse")
def _mse(g: Any, out: Any, prediction: Any, target: Any) -> tuple[Any, ...]:
    d = np.asarray(prediction) - np.asarray(target)
    full = 2.0 * np.asarray(g) * np.broadcast_to(d, d.shape) / max(d.size, 1)
    return unbroadcast(full, _shape(prediction)), unbroadcast(-full, _shape(target))


@vjp("cross_entropy")
def _cross_entropy(g: Any, out: Any, logits: Any, targets: Any) -> tuple[Any, ...]:
    logits = np.asarray(logits)
    ids = np.asarray(targets, dtype=np.int64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    p = np.exp(shifted)
    p /= p.sum(axis=-1, keepdims=True)
    rows = p.reshape(-1, p.shape[-1])
    rows[np.arange(rows.shape[0]), ids.reshape(-1)] -= 1
    return (np.asarray(g) * p / max(ids.size, 1)).astype(logits.dtype, copy=False), None
