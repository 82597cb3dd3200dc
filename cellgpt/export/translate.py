"""Translate a cell's formula (the engine's Python-syntax ast) into Excel array formulas.

The walk mirrors the engine's evaluation: every sub-expression is evaluated with the library's
own functions (so shapes and static arguments such as `n_head` are known) and, beside its
value, gets Excel pieces from the function's Excel form. References to other cells become
ranges on their sheets.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Mapping
from typing import Any

import numpy as np

from cellgpt.engine import FunctionLibrary, Workbook
from cellgpt.engine.formula import dotted_name, parse_formula
from cellgpt.engine.inline import InlineError, bind_arguments, inline_calls
from cellgpt.export import helpers
from cellgpt.export.excel_forms import (
    BIN_OPS,
    CMP_OPS,
    CONSTANTS,
    combine,
    excel_form,
    matmul_form,
)
from cellgpt.export.helpers import HelperColumn
from cellgpt.export.lambdas import Lambdas
from cellgpt.export.layout import Placement, logical_shape
from cellgpt.export.xlarray import NoExcelForm, Piece, XArr, cell_xarr, check_tiling, scalar
from cellgpt.export.xlexpr import Ref, neg, num, op

MAX_FORMULA_CHARS = 8192  # Excel's limit on one formula's text

_PY_BIN = {
    "Add": operator.add,
    "Sub": operator.sub,
    "Mult": operator.mul,
    "Div": operator.truediv,
    "Pow": operator.pow,
    "MatMult": operator.matmul,
}
_PY_CMP = {
    "Eq": operator.eq,
    "NotEq": operator.ne,
    "Lt": operator.lt,
    "LtE": operator.le,
    "Gt": operator.gt,
    "GtE": operator.ge,
}


class Translator:
    """Translates cells of `wb` whose inputs sit on sheets at `placements`."""

    def __init__(
        self,
        wb: Workbook,
        library: FunctionLibrary,
        placements: Mapping[str, Placement],
        lambdas: Lambdas | None = None,
    ) -> None:
        self.wb = wb
        self.library = library
        self.placements = placements
        # Function cells: spelled out inline, or (Excel 365) called as LAMBDA names.
        self.functions = {f: wb.function(f) for f in wb.functions()}
        self.lambdas = lambdas
        self.params: list[dict[str, XArr]] = []  # a LAMBDA body's parameters, innermost last

    def cell(self, name: str) -> tuple[list[Piece], list[HelperColumn]]:
        """Pieces for the cell's whole logical view, and the helper columns they refer to;
        NoExcelForm if it cannot be done."""
        source = self.wb.cell(name).source
        if source is None:
            raise NoExcelForm("an input value")
        tree = parse_formula(source, cell=name).tree
        if self.lambdas is None:  # calls of function cells spelled out: no LAMBDA needed
            tree = self.inline(tree)  # type: ignore[assignment]
        with helpers.collecting(self.placements.get(name)) as sink:
            result = self.node(tree.body)
        value = self.wb.value(name)
        if not result.pieces:
            raise NoExcelForm("not a computation Excel can do")
        shape = logical_shape(np.asarray(value).shape)
        if logical_shape(np.asarray(result.value).shape) != shape:
            raise NoExcelForm("the translation's shape differs from the value's")
        check_tiling(result.pieces, shape)
        placement = self.placements.get(name)
        transposed = placement.transposed if placement is not None else False
        if any(len(p.x.render(transposed)) > MAX_FORMULA_CHARS for p in result.pieces):
            # function cells spelled out can make a formula longer than Excel reads
            raise NoExcelForm(f"a formula longer than Excel's {MAX_FORMULA_CHARS:,} characters")
        return result.pieces, sink.columns if sink is not None else []

    # ------------------------------------------------------------------ nodes
    def node(self, n: ast.AST) -> XArr:
        method = getattr(self, f"n_{type(n).__name__}", None)
        if method is None:
            raise NoExcelForm(f"{type(n).__name__} has no Excel form")
        return method(n)

    def n_Constant(self, n: ast.Constant) -> XArr:
        v = n.value
        if isinstance(v, bool):
            return scalar(v, "TRUE" if v else "FALSE")
        if isinstance(v, int | float):
            return scalar(v, num(v).text)
        return XArr(v)  # text and None: usable as static arguments only

    def inline(self, tree: ast.AST) -> ast.AST:
        try:
            return inline_calls(tree, self.functions)
        except InlineError as exc:
            raise NoExcelForm(str(exc)) from None

    def n_Name(self, n: ast.AST) -> XArr:
        name = dotted_name(n)
        if name is None:
            raise NoExcelForm("attribute access")
        if self.params and name in self.params[-1]:
            return self.params[-1][name]
        if name in self.wb:
            target = self.wb.resolve(name)
            value = self.wb.value(target)
            placement = self.placements.get(target)
            if placement is None:
                return XArr(value)  # e.g. the model object: static use only
            return cell_xarr(value, placement)
        if name in CONSTANTS:
            return XArr(self.library.constants[name], [Piece(0, 0, CONSTANTS[name])])
        return XArr(self.library.constants[name])

    n_Attribute = n_Name

    def n_BinOp(self, n: ast.BinOp) -> XArr:
        a, b = self.node(n.left), self.node(n.right)
        kind = type(n.op).__name__
        if kind not in _PY_BIN:
            raise NoExcelForm(f"operator {kind}")
        value = _PY_BIN[kind](a.value, b.value)
        if kind == "MatMult":
            return XArr(value, matmul_form([a, b], {}, value))
        symbol = BIN_OPS[kind]
        return XArr(value, combine([a, b], value, lambda x, y: op(x, symbol, y)))

    def n_UnaryOp(self, n: ast.UnaryOp) -> XArr:
        x = self.node(n.operand)
        if isinstance(n.op, ast.UAdd):
            return x
        if not isinstance(n.op, ast.USub):
            raise NoExcelForm(f"operator {type(n.op).__name__}")
        value = -x.value if not isinstance(x.value, list) else None
        return XArr(value, combine([x], value, neg))

    def n_Compare(self, n: ast.Compare) -> XArr:
        if len(n.ops) != 1:
            raise NoExcelForm("chained comparison")
        kind = type(n.ops[0]).__name__
        if kind not in CMP_OPS:
            raise NoExcelForm(f"comparison {kind}")
        a, b = self.node(n.left), self.node(n.comparators[0])
        value = _PY_CMP[kind](np.asarray(a.value), np.asarray(b.value))
        symbol = CMP_OPS[kind]
        return XArr(value, combine([a, b], value, lambda x, y: op(x, symbol, y)))

    def n_Call(self, n: ast.Call) -> XArr:
        if isinstance(n.func, ast.Name) and n.func.id in self.functions:
            try:
                return self.call_by_name(n)
            except NoExcelForm:
                return self.node(self.inline(n))
        if not isinstance(n.func, ast.Name) or n.func.id not in self.library:
            raise NoExcelForm("call of an unknown function")
        name = n.func.id
        args = [self.node(a) for a in n.args]
        kwargs = {k.arg: self.node(k.value) for k in n.keywords if k.arg is not None}
        form = excel_form(self.library, name)
        if form is None:  # before calling it: grad() and fit() run only inside a workbook
            raise NoExcelForm(f"{name}() has no Excel form")
        value = self.library[name].impl(*[a.value for a in args], **_values(kwargs))
        return XArr(value, form(args, kwargs, value))

    def call_by_name(self, n: ast.Call) -> XArr:
        """A call of a function cell as a call of its LAMBDA name (Excel 365 only)."""
        if self.lambdas is None:
            raise NoExcelForm("LAMBDA names are for Excel 365")
        assert isinstance(n.func, ast.Name)
        spec = self.functions[n.func.id]
        try:
            bound = bind_arguments(spec, n)
        except InlineError as exc:
            raise NoExcelForm(str(exc)) from None
        args = {p: self.node(bound[p]) for p in spec.params}
        texts = [args[p].whole().render(False) for p in spec.params]  # whole matrices only
        leaves = {
            p: XArr(a.value, [Piece(0, 0, Ref(self.lambdas.param(p), *a.logical))])
            for p, a in args.items()
        }
        sink = helpers.active() if helpers.is_active() else None
        before = len(sink.columns) if sink is not None else 0
        self.params.append(leaves)
        try:
            result = self.node(spec.formula.tree.body)
        finally:
            self.params.pop()
        if sink is not None and len(sink.columns) != before:
            del sink.columns[before:]  # helper columns would read the parameters
            raise NoExcelForm("the body needs helper columns")
        rows, cols = result.logical
        if len(result.pieces) != 1 or result.pieces[0].rect != (0, 0, rows, cols):
            raise NoExcelForm("the body's value is not one matrix expression")
        made = self.lambdas.register(spec.name, spec.params, result.whole().render(False))
        call = f"{made.name}({','.join(texts)})"
        return XArr(result.value, [Piece(0, 0, Ref(call, rows, cols))])

    def n_List(self, n: ast.List | ast.Tuple) -> XArr:
        return XArr([self.node(e).value for e in n.elts])

    n_Tuple = n_List

    def n_Subscript(self, n: ast.Subscript) -> XArr:
        # Only for static values (config["n_head"]); indexing matrices has no form here.
        base = self.node(n.value)
        if base.pieces:
            raise NoExcelForm("indexing a matrix")
        key = self.node(n.slice)
        try:
            return XArr(base.value[key.value])
        except (TypeError, KeyError, IndexError) as exc:
            raise NoExcelForm(f"indexing: {exc}") from None


def _values(kwargs: dict[str, XArr]) -> dict[str, Any]:
    return {k: v.value for k, v in kwargs.items()}
