"""Compiling a checked formula once into a tree of closures. Each closure evaluates one node
against an environment of input values; run-time problems become CellEvalError carrying the
span of the failing sub-expression, and the limits in `limits.py` are checked before each
operation that could blow up."""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from cellgpt.engine.errors import CellEvalError
from cellgpt.engine.formula_parse import BIN_OPS, CMP_OPS, UNARY_OPS, Formula, dotted_name
from cellgpt.engine.limits import (
    BINOP_GUARDS,
    check_broadcast,
    check_compare,
    check_index,
    check_time,
)

Env = Mapping[str, Any]
Evaluator = Callable[[Env], Any]


def compile_formula(
    formula: Formula,
    resolve: Callable[[str], tuple[str, Any]],
    functions: Mapping[str, Callable[..., Any]],
) -> Evaluator:
    """Build the closure tree. `resolve(name)` answers ("ref", key) for a cell reference read
    from the env at run time, or ("const", value) for a library constant."""
    return _Compiler(formula, resolve, functions).build(formula.tree.body)


class _Compiler:
    def __init__(
        self,
        formula: Formula,
        resolve: Callable[[str], tuple[str, Any]],
        functions: Mapping[str, Callable[..., Any]],
    ) -> None:
        self.formula = formula
        self.resolve = resolve
        self.functions = functions

    def build(self, node: ast.AST) -> Evaluator:
        return getattr(self, "build_" + type(node).__name__)(node)

    def _name(self, name: str) -> Evaluator:
        kind, key = self.resolve(name)
        if kind == "const":
            return lambda env: key
        return lambda env: env[key]

    def build_Constant(self, node: ast.Constant) -> Evaluator:
        value = node.value
        return lambda env: value

    def build_Name(self, node: ast.Name) -> Evaluator:
        return self._name(node.id)

    def build_Attribute(self, node: ast.Attribute) -> Evaluator:
        return self._name(dotted_name(node) or "")

    def build_BinOp(self, node: ast.BinOp) -> Evaluator:
        left, right = self.build(node.left), self.build(node.right)
        op = BIN_OPS[type(node.op)]
        guard = BINOP_GUARDS.get(type(node.op), check_broadcast)
        span = self.formula.span_of(node)

        in_place = _IN_PLACE.get(type(node.op))

        def binop(env: Env) -> Any:
            a, b = left(env), right(env)
            try:
                guard(a, b)
                # refcount 2 = `a` here + getrefcount's argument: nobody else holds it
                if in_place is not None and sys.getrefcount(a) == 2 and _reusable(a, b):
                    return in_place(a, b, out=a)
                return op(a, b)
            except CellEvalError as exc:
                exc.span = exc.span or span
                raise
            except Exception as exc:
                raise CellEvalError(_describe(exc), span) from exc

        return binop

    def build_UnaryOp(self, node: ast.UnaryOp) -> Evaluator:
        operand = self.build(node.operand)
        op = UNARY_OPS[type(node.op)]
        span = self.formula.span_of(node)

        def unary(env: Env) -> Any:
            value = operand(env)
            try:
                if isinstance(value, np.ndarray):
                    check_time()  # `[-a, -a, ...]` over a big array adds up
                return op(value)
            except CellEvalError as exc:
                exc.span = exc.span or span
                raise
            except Exception as exc:
                raise CellEvalError(_describe(exc), span) from exc

        return unary

    def build_BoolOp(self, node: ast.BoolOp) -> Evaluator:
        values = [self.build(v) for v in node.values]
        is_and = isinstance(node.op, ast.And)

        def boolop(env: Env) -> Any:
            result: Any = None
            for value in values:
                result = value(env)
                if bool(result) != is_and:
                    return result
            return result

        return boolop

    def build_Compare(self, node: ast.Compare) -> Evaluator:
        left = self.build(node.left)
        ops = [CMP_OPS[type(op)] for op in node.ops]
        comparators = [self.build(c) for c in node.comparators]
        span = self.formula.span_of(node)

        def compare(env: Env) -> Any:
            a = left(env)
            result: Any = True
            try:
                for op, comp in zip(ops, comparators, strict=True):
                    b = comp(env)
                    check_compare(a, b)
                    result = op(a, b)
                    if len(ops) > 1 and not result:
                        return False
                    a = b
            except CellEvalError as exc:
                exc.span = exc.span or span
                raise
            except Exception as exc:
                raise CellEvalError(_describe(exc), span) from exc
            return result

        return compare

    def build_IfExp(self, node: ast.IfExp) -> Evaluator:
        test, body, orelse = self.build(node.test), self.build(node.body), self.build(node.orelse)
        return lambda env: body(env) if test(env) else orelse(env)

    def build_Call(self, node: ast.Call) -> Evaluator:
        assert isinstance(node.func, ast.Name)
        fname = node.func.id
        func = self.functions[fname]
        args = [self.build(a) for a in node.args]
        kwargs = [(kw.arg, self.build(kw.value)) for kw in node.keywords]
        span = self.formula.span_of(node)

        def call(env: Env) -> Any:
            arg_values = [a(env) for a in args]
            kw_values = {k: v(env) for k, v in kwargs}
            try:
                return func(*arg_values, **kw_values)
            except CellEvalError as exc:
                if exc.span is None:
                    exc.span = span
                raise
            except Exception as exc:
                raise CellEvalError(f"{fname}(): {_describe(exc)}", span) from exc

        return call

    def build_Subscript(self, node: ast.Subscript) -> Evaluator:
        value, index = self.build(node.value), self.build(node.slice)
        span = self.formula.span_of(node)

        def subscript(env: Env) -> Any:
            container, key = value(env), index(env)
            if isinstance(container, str | bytes | list | tuple | dict | np.ndarray | np.generic):
                try:
                    if isinstance(container, np.ndarray):
                        check_index(container, key)
                    return container[key]
                except CellEvalError as exc:
                    exc.span = exc.span or span
                    raise
                except Exception as exc:
                    raise CellEvalError(f"indexing: {_describe(exc)}", span) from exc
            raise CellEvalError(f"a {type(container).__name__} value cannot be indexed", span)

        return subscript

    def build_Slice(self, node: ast.Slice) -> Evaluator:
        parts = [
            self.build(p) if p is not None else None for p in (node.lower, node.upper, node.step)
        ]
        lo, hi, st = parts
        return lambda env: slice(
            lo(env) if lo else None, hi(env) if hi else None, st(env) if st else None
        )

    def build_Tuple(self, node: ast.Tuple) -> Evaluator:
        elts = [self.build(e) for e in node.elts]
        return lambda env: tuple(e(env) for e in elts)

    def build_List(self, node: ast.List) -> Evaluator:
        if type(self).build is _Compiler.build and all(type(e) is ast.Constant for e in node.elts):
            # A list of numbers (generation's token ids, one longer each token): one copy
            # instead of a closure per item. Compilers that see every node (autodiff's
            # tape, Evaluate Formula) override build and keep the items.
            values = [e.value for e in node.elts]
            return lambda env: list(values)
        elts = [self.build(e) for e in node.elts]
        return lambda env: [e(env) for e in elts]

    def build_Dict(self, node: ast.Dict) -> Evaluator:
        pairs = [
            (self.build(k), self.build(v)) for k, v in zip(node.keys, node.values, strict=True)
        ]  # type: ignore[arg-type]
        return lambda env: {k(env): v(env) for k, v in pairs}


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, MemoryError):
        text = "out of memory"
    if isinstance(
        exc, ZeroDivisionError | OverflowError | TypeError | ValueError | IndexError | KeyError
    ):
        return f"{type(exc).__name__}: {text}"
    return text


# `matmul(x, w) + b`: the product is a temporary nobody else holds, so the bias is added into
# it instead of into a new array (one allocation and one pass fewer per linear layer; the
# same numbers). Only exact, writeable, owning ndarrays whose dtype and shape the result
# keeps; a cell's value (held by the store) or a view never qualifies.
_IN_PLACE: dict[type, Any] = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.true_divide,
}


def _reusable(a: Any, b: Any) -> bool:
    if type(a) is not np.ndarray or not a.flags.writeable or not a.flags.owndata:
        return False
    if a.dtype.kind != "f":
        return False
    if isinstance(b, np.ndarray):
        return b.dtype == a.dtype and b.ndim <= a.ndim and _fits(b.shape, a.shape)
    return type(b) in (int, float)  # a Python number keeps a float array's dtype


def _fits(small: tuple[int, ...], big: tuple[int, ...]) -> bool:
    """`small` broadcasts to `big` without growing it."""
    return all(s in (1, g) for s, g in zip(reversed(small), reversed(big), strict=False))
