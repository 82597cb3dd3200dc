"""Spelling out calls of function cells: each call is replaced by the function's body with its
parameters replaced by the call's argument expressions (defaults by their constants).

The result is an ordinary formula tree that calls library functions only, for consumers that
cannot call a function cell (the .xlsx export: LibreOffice has no LAMBDA). Bodies read only
their parameters, so substitution cannot capture a name; recursion is refused when functions
are defined, so this ends. An argument is copied once per use of its parameter, so nested
calls can grow a formula exponentially (`f(x) = x + x` nested 30 deep: 2**30 copies of x)
even though evaluating it is cheap: past `limit` parts the inliner stops with InlineError.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Mapping

from cellgpt.engine.function_def import FunctionSpec
from cellgpt.engine.user_functions import MAX_INLINED_NODES


class InlineError(ValueError):
    """A call that cannot be spelled out (wrong arguments for the function)."""


def inline_calls(
    tree: ast.AST, functions: Mapping[str, FunctionSpec], limit: int = MAX_INLINED_NODES
) -> ast.AST:
    """A copy of `tree` with every call of a function in `functions` spelled out; InlineError
    when that would take more than `limit` expression parts."""
    if not functions:
        return tree
    inliner = _Inliner(functions, limit)
    return ast.fix_missing_locations(inliner.visit(copy.deepcopy(tree)))


def inline_text(formula: str, functions: Mapping[str, FunctionSpec]) -> str:
    """The formula text with calls of function cells spelled out (for display)."""
    tree = ast.parse(formula.strip() if "\n" not in formula else f"(\n{formula}\n)", mode="eval")
    return ast.unparse(inline_calls(tree, functions))


class _Inliner(ast.NodeTransformer):
    def __init__(self, functions: Mapping[str, FunctionSpec], limit: int) -> None:
        self.functions = functions
        self.limit = limit
        self.made = 0  # expression parts copied so far

    def charge(self, node: ast.AST) -> None:
        self.made += sum(isinstance(n, ast.expr) for n in ast.walk(node))
        if self.made > self.limit:
            raise InlineError(f"spelled out, the formula would have more than {self.limit:,} parts")

    def visit_Call(self, node: ast.Call) -> ast.AST:
        node = self.generic_visit(node)  # type: ignore[assignment]  # arguments first
        if not isinstance(node.func, ast.Name) or node.func.id not in self.functions:
            return node
        spec = self.functions[node.func.id]
        bound = bind_arguments(spec, node)
        self.charge(spec.formula.tree.body)
        body = _Substitute(bound, self).visit(copy.deepcopy(spec.formula.tree.body))
        return self.visit(ast.copy_location(body, node))  # calls inside the body


def bind_arguments(spec: FunctionSpec, call: ast.Call) -> dict[str, ast.expr]:
    """Each parameter's argument expression in the call (defaults as constants)."""
    if any(isinstance(a, ast.Starred) for a in call.args) or len(call.args) > len(spec.params):
        raise InlineError(f"{spec.signature()}: {len(call.args)} arguments given")
    bound: dict[str, ast.expr] = dict(zip(spec.params, call.args, strict=False))
    for kw in call.keywords:
        if kw.arg is None or kw.arg not in spec.params or kw.arg in bound:
            raise InlineError(f"{spec.signature()}: bad keyword argument {kw.arg!r}")
        bound[kw.arg] = kw.value
    for param in spec.params:
        if param not in bound:
            if param not in spec.defaults:
                raise InlineError(f"{spec.signature()}: missing argument {param!r}")
            bound[param] = _constant(spec.defaults[param])
    return bound


def _constant(value: object) -> ast.expr:
    if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
        return ast.UnaryOp(ast.USub(), ast.Constant(-value))
    return ast.Constant(value)


class _Substitute(ast.NodeTransformer):
    def __init__(self, bound: Mapping[str, ast.expr], inliner: _Inliner) -> None:
        self.bound = bound
        self.inliner = inliner

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in self.bound:
            self.inliner.charge(self.bound[node.id])  # before copying: copies can explode
            return copy.deepcopy(self.bound[node.id])
        return node
