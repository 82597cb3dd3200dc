"""Derive each cell's row-append variant from its formula and the library's row rules.

Given the input cells that grow by rows (tokens appended), every cell is classified in
dependency order: `Fixed` (does not depend on them), `Rows` (derived: its formula only
combines rows in ways its functions' row rules allow) or opaque. An opaque cell is
recomputed in full; if its value grows, the engine sees rows appended along axis 0 (that
is all it compares), so its readers treat it as rows on axis 0.

A derived cell gets a `DerivedRows` extender: its Rows inputs cut to their new rows (or read
whole where a rule says so), the output's rows joined along the derived axis. Anything the
rules cannot vouch for — a function without a rule, a reduction over the rows, indexing —
leaves the cell without one: it is recomputed in full, which is always right. A call of a
function cell is walked as its body with the arguments put in (`inline.py`).
"""

from __future__ import annotations

import ast
import inspect
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cellgpt.engine.append import Evaluate, RowExtender, RowTail, has_ndim
from cellgpt.engine.formula import dotted_name
from cellgpt.engine.inline import InlineError, inline_calls
from cellgpt.engine.row_rules import UNKNOWN, Arg, Fixed, Out, Rows, elementwise, matmul_rows
from cellgpt.engine.row_rules import ndim_of as _ndim

if TYPE_CHECKING:
    from cellgpt.engine.functions import FunctionLibrary
    from cellgpt.engine.workbook import Workbook

_ELEMENTWISE_OPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)


@dataclass(frozen=True)
class DerivedRows(RowExtender):
    """A RowExtender derived from the formula, valid while its inputs keep the shapes it was
    derived from: their number of axes, and the formulas that placed their rows."""

    ndims: Mapping[str, int] = field(default_factory=dict)
    out_ndim: int = 0
    sources: tuple[tuple[Any, str | None], ...] = ()  # (input cell, its formula then)

    def __call__(
        self, prev: Any, env: Mapping[str, Any], grown: Mapping[str, int], evaluate: Evaluate
    ) -> Any:
        if getattr(prev, "ndim", None) != self.out_ndim:
            return None
        return super().__call__(prev, env, grown, evaluate)

    def new_rows(
        self, env: Mapping[str, Any], grown: Mapping[str, int], evaluate: Evaluate
    ) -> RowTail | None:
        # Plain loops, not any(...): this runs for every derived cell on every new token.
        for cell, source in self.sources:
            if cell.source != source:
                return None  # an input's formula changed: its rows may sit elsewhere now
        for name, ndim in self.ndims.items():
            value = env[name]
            if isinstance(value, RowTail):
                value = value.rows
            if not has_ndim(value, ndim):
                return None
        tail = super().new_rows(env, grown, evaluate)
        return tail if tail is not None and tail.rows.ndim == self.out_ndim else None


@dataclass
class _Part:
    """A piece of a formula: what it is, and the Rows cells it cuts or reads whole."""

    arg: Arg
    cut: dict[str, Rows] = field(default_factory=dict)
    whole: dict[str, Rows] = field(default_factory=dict)


class _Refused(Exception):
    """The formula is not row-wise in a way the rules vouch for."""


def derive_row_extenders(wb: Workbook, grows: Iterable[str]) -> list[str]:
    """Give every cell whose formula allows it a row-append variant, for when the cells in
    `grows` (inputs) gain rows along axis 0. Uses the current values' shapes for inputs and
    opaque cells (run the workbook first). Returns the cells that got one.

    Generation calls this once per call (the TUI: once per token), so a workbook whose
    formulas, pins and value shapes are as at the last derivation keeps its variants."""
    growing = {wb.resolve(name) for name in grows}
    signature = (
        frozenset(growing),
        tuple(_cell_signature(wb, name) for name in wb.cells()),
        tuple(wb.function(f).source for f in wb.functions()),  # bodies the walk read
    )
    last = _last_derivation.get(wb)
    unchanged = last is not None and last[0] == signature
    if unchanged and all(wb.extender(name) is ext for name, ext in last[1].items()):
        return list(last[1])
    shapes: dict[str, Arg | None] = {}
    derived: set[str] = set()
    installed: dict[str, DerivedRows] = {}
    for name in wb.cells():
        cell = wb.cell(name)
        shape, extender = _classify(wb, name, growing, shapes, derived)
        shapes[name] = shape
        if extender is not None and not cell.pinned:
            wb.set_extender(name, extender)
            installed[name] = extender
        elif isinstance(wb.extender(name), DerivedRows):
            wb.set_extender(name, None)
    _last_derivation[wb] = (signature, installed)
    return list(installed)


# What the last derivation of each workbook saw, and what it installed.
_last_derivation: weakref.WeakKeyDictionary[Any, tuple[tuple[Any, ...], dict[str, DerivedRows]]]
_last_derivation = weakref.WeakKeyDictionary()


def _cell_signature(wb: Workbook, name: str) -> tuple[Any, ...]:
    """What a derivation reads of one cell: its formula, pin, and its value's axes."""
    cell = wb.cell(name)
    value = wb.value(name, _ABSENT)
    return (name, cell.source, cell.pinned, -1 if value is _ABSENT else _ndim(value))


def _classify(
    wb: Workbook, name: str, growing: set[str], shapes: Mapping[str, Arg | None], derived: set[str]
) -> tuple[Arg | None, DerivedRows | None]:
    cell = wb.cell(name)
    value = wb.value(name, _ABSENT)  # no value yet (or evicted): its shape is unknown
    if name in growing:
        return _opaque(value), None
    if cell.pinned or cell.is_input:
        return Fixed(
            _ndim(value), value if cell.is_input and value is not _ABSENT else UNKNOWN
        ), None
    if all(isinstance(shapes.get(ref), Fixed) for ref in wb.precedents(name)):
        return Fixed(_ndim(value)), None
    try:
        part = _Walker(wb, shapes).walk(cell.formula.tree.body)
    except _Refused:
        return _opaque(value), None
    out = part.arg
    known = _ndim(value)
    if not isinstance(out, Rows) or not out.valid or part.cut.keys() & part.whole.keys():
        return _opaque(value), None
    if known is not None and known != out.ndim:
        return _opaque(value), None
    derived.add(name)
    if isinstance(cell.formula.tree.body, ast.Name | ast.Attribute):
        return out, None  # `x = y`: the engine already passes y's growth on, without copying
    inputs = {**part.cut, **part.whole}
    extender = DerivedRows(
        {ref: rows.axis for ref, rows in part.cut.items()},
        out.axis,
        frozenset(part.whole),
        out.pad,
        ndims={ref: rows.ndim for ref, rows in inputs.items()},
        out_ndim=out.ndim,
        sources=tuple((wb.cell(ref), wb.cell(ref).source) for ref in inputs if ref in derived),
    )
    return out, extender


_ABSENT = object()


def _opaque(value: Any) -> Rows | None:
    """A cell recomputed in full: if it grows, the engine saw rows appended along axis 0."""
    ndim = _ndim(value)
    return Rows(0, ndim) if ndim else None


class _Walker:
    """Evaluates a formula's tree over kinds (Rows / Fixed) instead of values."""

    def __init__(self, wb: Workbook, shapes: Mapping[str, Arg | None]) -> None:
        self.wb, self.shapes = wb, shapes
        self.library: FunctionLibrary = wb.library
        self.user = {f: wb.function(f) for f in wb.functions()}

    def walk(self, node: ast.AST) -> _Part:
        if isinstance(node, ast.Constant):
            return _Part(Fixed(_ndim(node.value), node.value))
        if isinstance(node, ast.Name | ast.Attribute):
            return self.name(dotted_name(node) or "")
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
            return self.apply(matmul_rows, [self.walk(node.left), self.walk(node.right)])
        if isinstance(node, ast.BinOp) and isinstance(node.op, _ELEMENTWISE_OPS):
            return self.apply(elementwise, [self.walk(node.left), self.walk(node.right)])
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            return self.apply(elementwise, [self.walk(node.operand)])
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.List | ast.Tuple):
            parts = [self.walk(e) for e in node.elts]
            values = [p.arg.value if isinstance(p.arg, Fixed) else UNKNOWN for p in parts]
            if UNKNOWN in values:
                return self.fixed(parts)
            return _Part(Fixed(_ndim(values), values))
        # Indexing, conditions, comparisons, dicts: fine on fixed values only.
        children = [c for c in ast.iter_child_nodes(node) if isinstance(c, ast.expr)]
        return self.fixed([self.walk(c) for c in children])

    def name(self, name: str) -> _Part:
        if name in self.wb:
            ref = self.wb.resolve(name)
            shape = self.shapes.get(ref)
            if shape is None:
                raise _Refused(ref)  # grows in a way nothing here can tell
            return _Part(shape, {ref: shape} if isinstance(shape, Rows) else {})
        value = self.library.constants.get(name, UNKNOWN)
        return _Part(Fixed(_ndim(value), value))

    def call(self, node: ast.Call) -> _Part:
        assert isinstance(node.func, ast.Name)
        if node.func.id in self.user:  # a function cell: its body, arguments put in
            try:
                return self.walk(inline_calls(node, self.user))
            except InlineError:
                pass  # too big to spell out: no rule, as for a library function without one
        function = self.library.functions.get(node.func.id)
        args = [self.walk(a) for a in node.args]
        kwargs = {kw.arg: self.walk(kw.value) for kw in node.keywords if kw.arg}
        if function is None or function.rows is None:
            return self.fixed([*args, *kwargs.values()])
        return self.apply(function.rows, _bind(function.impl, args, kwargs))

    def apply(self, rule: Any, parts: Sequence[_Part]) -> _Part:
        try:
            answer = rule([p.arg for p in parts])
        except (TypeError, ValueError, IndexError, ZeroDivisionError):
            answer = None  # a literal argument the rule cannot read
        has_rows = any(isinstance(p.arg, Rows) for p in parts)
        if not has_rows:
            value = answer.value if isinstance(answer, Out) else answer
            return _Part(value if isinstance(value, Fixed) else Fixed())
        if answer is None:
            raise _Refused(rule)
        out, whole = (answer.value, answer.whole) if isinstance(answer, Out) else (answer, ())
        if not isinstance(out, Rows):
            raise _Refused(rule)
        merged = _Part(out)
        for i, part in enumerate(parts):
            if i in whole and not isinstance(part.arg, Rows):
                raise _Refused(rule)
            (merged.whole if i in whole else merged.cut).update(part.cut)
            merged.whole.update(part.whole)
        return merged

    def fixed(self, parts: Sequence[_Part]) -> _Part:
        if any(isinstance(p.arg, Rows) for p in parts):
            raise _Refused("no row rule")
        return _Part(Fixed())


def _bind(impl: Any, args: list[_Part], kwargs: dict[str, _Part]) -> list[_Part]:
    """The call's arguments by position, with the function's defaults filled in."""
    try:
        signature = _signature(impl)
        bound = signature.bind(*args, **kwargs)
    except (TypeError, ValueError):
        raise _Refused("arguments") from None
    parts: list[_Part] = []
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise _Refused("variadic")
        if param.name in bound.arguments:
            parts.append(bound.arguments[param.name])
        else:
            default = param.default
            parts.append(_Part(Fixed(_ndim(default), default)))
    return parts


_signatures: dict[Any, inspect.Signature] = {}


def _signature(impl: Any) -> inspect.Signature:
    if impl not in _signatures:
        _signatures[impl] = inspect.signature(impl)
    return _signatures[impl]
