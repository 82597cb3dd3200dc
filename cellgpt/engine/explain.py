"""Evaluate Formula, for arrays: a cell's formula as a tree of sub-expressions, each with its
value's shape, dtype, finite min / max / mean and a small preview, in evaluation order
(children before their parent).

Every sub-expression is evaluated by the formula compiler itself (`formula_compile.py`): the
node's own operation is compiled with its children replaced by their already computed values,
so each operation runs once, under the same checks and budgets as the cell (the workbook's
limits; a fresh time budget per formula). Nothing is stored: an explanation keeps summaries
only, and `Explanation.value(i)` recomputes node i when it is asked for.

Two things open up what a formula hides:
- a call to a library function with an explain expansion (`expansions.py`: layer_norm,
  softmax, gelu, attention_scores, ...) gets the expansion's named steps as children, checked
  against the library's own result;
- cells the runner computes fused with this one (`fusion.py`: `ln_1.normalized` for `ln_1`,
  the attention scores and pattern for `attn.z`) are inlined: their formula's tree stands
  where they are read (checked against their value), so `ln_1` shows the whole layer norm.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cellgpt.engine.errors import CellEvalError
from cellgpt.engine.explain_ast import is_literal, op_name, operands
from cellgpt.engine.explain_compare import Check, compare
from cellgpt.engine.explain_summary import Summary, summarize
from cellgpt.engine.formula_compile import _Compiler
from cellgpt.engine.formula_parse import Formula, Span, dotted_name
from cellgpt.engine.fusion import ChainFinder
from cellgpt.engine.limits import budget, clock


@dataclass
class ExplainNode:
    index: int
    text: str  # the sub-expression as written
    op: str  # "+", "@", "layer_norm()", "[]", "name", "constant", ...
    kind: str  # "operation", "cell" (a cell read), "constant", "step", "inlined"
    depth: int
    cell: str | None  # the cell whose formula `span` is in; None for expansion steps
    span: Span | None
    label: str = ""  # an expansion step's name, an inlined cell's name
    explains: str = ""  # a step: the library function whose expansion it belongs to
    parent: int | None = None
    summary: Summary | None = None
    error: str | None = None
    check: Check | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "text": self.text,
            "op": self.op,
            "kind": self.kind,
            "depth": self.depth,
            "cell": self.cell,
            "span": list(self.span) if self.span else None,
            "label": self.label,
            "explains": self.explains,
            "parent": self.parent,
            "value": self.summary.to_json() if self.summary else None,
            "error": self.error,
            "check": None if self.check is None else vars(self.check).copy(),
        }


@dataclass
class Explanation:
    name: str
    formula: str | None
    nodes: list[ExplainNode]
    error: str | None = None  # a sub-expression failed: the walk stopped there
    notes: list[str] = field(default_factory=list)
    check: Check | None = None  # the tree's result against the cell's value (when fresh)
    _recompute: Callable[[int], Any] | None = field(default=None, repr=False)

    def value(self, index: int) -> Any:
        """Node `index`'s value, computed again now (explanations keep no values)."""
        if not 0 <= index < len(self.nodes) or self._recompute is None:
            raise IndexError(f"no sub-expression {index} in the explanation of {self.name}")
        return self._recompute(index)

    def find(self, text: str) -> ExplainNode:
        """The first node (evaluation order) whose label or text is `text`."""
        for node in self.nodes:
            if text in (node.label, node.text):
                return node
        raise KeyError(f"no sub-expression {text!r} in the explanation of {self.name}")

    def to_json(self) -> dict[str, Any]:
        return {
            "cell": self.name,
            "formula": self.formula,
            "error": self.error,
            "notes": list(self.notes),
            "check": None if self.check is None else vars(self.check).copy(),
            "nodes": [n.to_json() for n in self.nodes],
        }


class _Failed(Exception):
    """A sub-expression failed (its node carries the error): nothing above it can run."""


class _Captured(Exception):
    def __init__(self, value: Any) -> None:
        super().__init__()
        self.value = value


class _Known(_Compiler):
    """The compiler, with some sub-trees replaced by values computed already."""

    def __init__(self, formula: Formula, resolve: Any, functions: Any, known: dict[int, Any]):
        super().__init__(formula, resolve, functions)
        self.known = known

    def build(self, node: ast.AST) -> Any:
        if id(node) in self.known:
            value = self.known[id(node)]
            return lambda env: value
        return super().build(node)


@dataclass
class _Unit:
    """One formula being walked: a cell's, or an expansion step's."""

    formula: Formula
    env: dict[str, Any]
    resolve: Callable[[str], tuple[str, Any]]
    cell: str | None  # None: an expansion step (its names and constants are not shown)


def explain(
    wb: Any,
    name: str,
    functions: Mapping[str, Callable[..., Any]],
    *,
    inline: Iterable[str] | None = None,
) -> Explanation:
    """The explanation of cell `name` of workbook `wb`, whose formulas are compiled against
    `functions` (the workbook's guarded library). Its inputs are computed first if stale.
    `inline`: cells whose formula is shown where they are read (default: the cells fused
    with this one)."""
    name = wb.resolve(name)
    cell = wb.cell(name)
    if inline is None:
        inline = _fused_links(wb, name)
    inlined = {wb.resolve(n) for n in inline if n in wb}

    def walk(capture: int | None) -> tuple[list[ExplainNode], str | None, Any]:
        walker = _Walker(wb, functions, inlined, capture)
        return walker.run(name)

    nodes, error, value = walk(None)
    notes, check = [], None
    if cell.pinned:
        notes.append("pinned: the cell holds a fixed value; the tree is what its formula computes")
    elif error is None and wb.status(name) == "fresh" and wb.value(name) is not None:
        check = compare(value, wb.value(name), "the cell's value")
    explanation = Explanation(name, cell.source, nodes, error, notes, check)
    explanation._recompute = lambda i: walk(i)[2]
    return explanation


def _fused_links(wb: Any, name: str) -> tuple[str, ...]:
    def resolve(n: str) -> str | None:
        return wb.resolve(n) if n in wb else None

    def formula(n: str) -> Formula | None:
        return wb.cell(n).formula

    chain = ChainFinder(wb.library.fusions, resolve).chain(name, formula)
    return chain.links if chain is not None else ()


class _Walker:
    def __init__(self, wb: Any, functions: Any, inline: set[str], capture: int | None) -> None:
        self.wb = wb
        self.functions = functions
        self.constants = wb.library.constants
        self.expansions = wb.library.expansions
        self.user_functions = wb._sheet.user_functions  # function cells: their body explains
        self.inline = inline
        self.inlining: set[str] = set()
        self.capture = capture
        self.nodes: list[ExplainNode] = []

    # ------------------------------------------------------------------ entry
    def run(self, name: str) -> tuple[list[ExplainNode], str | None, Any]:
        saved = budget.limits, budget.deadline.at
        budget.limits = self.wb.limits
        error = None
        try:
            value = self._cell(name)
        except _Captured as got:
            return self.nodes, None, got.value
        except _Failed:
            error = next((n.error for n in self.nodes if n.error), "failed")
            value = None
        finally:
            budget.limits, budget.deadline.at = saved
        if self.capture is not None:
            raise IndexError(f"no sub-expression {self.capture}")
        return self.nodes, error, value

    def _cell(self, name: str) -> Any:
        cell = self.wb.cell(name)
        if cell.formula is None:
            value = self.wb.run(name)
            self._add(ExplainNode(0, name, "name", "cell", 0, name, None), value, [])
            return value
        env = {ref: self.wb.run(ref) for ref in cell.refs}
        value, _ = self._root(_Unit(cell.formula, env, self._resolve_cell, name), 0)
        return value

    def _resolve_cell(self, name: str) -> tuple[str, Any]:
        if name in self.wb:
            return ("ref", self.wb.resolve(name))
        return ("const", self.constants[name])

    # ------------------------------------------------------------------ nodes
    def _add(self, node: ExplainNode, value: Any, children: list[int]) -> int:
        node.index = len(self.nodes)
        for child in children:
            self.nodes[child].parent = node.index
        if node.summary is None and node.error is None:
            node.summary = summarize(value)
        self.nodes.append(node)
        if node.index == self.capture:
            raise _Captured(value)
        return node.index

    def _node(self, node: ast.AST, unit: _Unit, depth: int, kind: str, op: str) -> ExplainNode:
        span = unit.formula.span_of(node)
        text = unit.formula.text[span[0] : span[1]]
        return ExplainNode(0, text, op, kind, depth, unit.cell, span if unit.cell else None)

    def _root(self, unit: _Unit, depth: int) -> tuple[Any, int]:
        """Walk a whole formula under a fresh time budget (the outer one resumes after)."""
        outer = budget.deadline.at
        budget.deadline.at = clock() + budget.limits.cell_seconds
        try:
            body = unit.formula.tree.body
            value, index = self._visit(body, unit, depth)
            if index is None:  # a step that is just a name or a number
                index = self._add(self._node(body, unit, depth, "operation", "="), value, [])
            return value, index
        finally:
            budget.deadline.at = outer

    # ------------------------------------------------------------------ walking
    def _visit(self, node: ast.AST, unit: _Unit, depth: int) -> tuple[Any, int | None]:
        if isinstance(node, ast.Name | ast.Attribute):
            return self._name(node, unit, depth)
        if is_literal(node):  # 0.5, -1, (0, 2, 1): shown as one constant, not computed
            value = ast.literal_eval(node)
            if unit.cell is None:
                return value, None
            return value, self._add(
                self._node(node, unit, depth, "constant", "constant"), value, []
            )
        known: dict[int, Any] = {}
        children: list[int] = []

        def child(sub: ast.AST) -> Any:
            value, index = self._visit(sub, unit, depth + 1)
            known[id(sub)] = value
            if index is not None:
                children.append(index)
            return value

        if isinstance(node, ast.IfExp):
            child(node.body if child(node.test) else node.orelse)
        elif isinstance(node, ast.BoolOp):
            is_and = isinstance(node.op, ast.And)
            for sub in node.values:
                if bool(child(sub)) != is_and:
                    break
        else:
            for sub in operands(node):
                child(sub)
        op = op_name(node)
        steps: tuple[Any, list[int]] | None = None
        called = node.func.id if isinstance(node, ast.Call) else None  # type: ignore[attr-defined]
        if called in self.expansions:
            steps = self._expand(node, known, depth + 1)  # type: ignore[arg-type]
            children += steps[1]
        elif called in self.user_functions:
            steps = self._expand_function(node, known, depth + 1)  # type: ignore[arg-type]
            children += steps[1]
        try:
            value = _Known(unit.formula, unit.resolve, self.functions, known).build(node)(unit.env)
        except Exception as exc:  # the cell would fail here: say so on this node
            failed = self._node(node, unit, depth, "operation", op)
            failed.error = _message(exc)
            self._add(failed, None, children)
            raise _Failed from None
        record = self._node(node, unit, depth, "operation", op)
        if steps is not None:
            result, _, status = steps
            record.check = compare(result, value, f"{op}'s result") if status is True else status
        return value, self._add(record, value, children)

    def _name(self, node: ast.AST, unit: _Unit, depth: int) -> tuple[Any, int | None]:
        name = dotted_name(node) or ""
        kind, key = unit.resolve(name)
        value = unit.env[key] if kind == "ref" else key
        if unit.cell is None:
            return value, None
        if kind == "ref" and key in self.inline and key not in self.inlining:
            index = self._inline(key, value, depth)
            if index is not None:
                return value, index
        what = "cell" if kind == "ref" else "constant"
        return value, self._add(self._node(node, unit, depth, what, "name"), value, [])

    def _inline(self, name: str, value: Any, depth: int) -> int | None:
        """The tree of a read cell's own formula, standing for it (None: cannot)."""
        cell = self.wb.cell(name)
        if cell.formula is None or cell.pinned:
            return None
        env = {ref: self.wb.run(ref) for ref in cell.refs}
        self.inlining.add(name)
        try:
            computed, index = self._root(_Unit(cell.formula, env, self._resolve_cell, name), depth)
        finally:
            self.inlining.discard(name)
        record = self.nodes[index]
        record.kind, record.label = "inlined", name
        record.check = compare(computed, value, f"{name}'s value")
        return index

    def _expand(
        self, call: ast.Call, known: dict[int, Any], depth: int
    ) -> tuple[Any, list[int], Any]:
        """Walk the called function's expansion: (its result, its step nodes, True to
        compare with the call's value, or a Check saying why it could not run)."""
        fname = call.func.id  # type: ignore[attr-defined]
        what = f"{fname}()'s result"
        try:
            impl = self.wb.library.functions[fname].impl
            args = [known[id(a)] for a in call.args]
            kwargs = {kw.arg: known[id(kw.value)] for kw in call.keywords}
            bound = inspect.signature(impl).bind(*args, **kwargs)
            bound.apply_defaults()
            parsed = self.expansions[fname].parsed
        except Exception as exc:
            return None, [], Check(what, False, note=f"expansion not evaluated: {_message(exc)}")
        env: dict[str, Any] = dict(bound.arguments)
        resolve = _local_names(env, self.constants, f"the expansion of {fname}()")

        indices: list[int] = []
        value: Any = None
        for step, formula in parsed:
            try:
                value, index = self._root(_Unit(formula, env, resolve, None), depth)
            except _Failed:
                index = len(self.nodes) - 1
                self.nodes[index].label = self.nodes[index].label or step
                indices.append(index)
                error = self.nodes[index].error or "failed"
                return None, indices, Check(what, False, note=f"step {step} failed: {error}")
            record = self.nodes[index]
            record.kind, record.label, record.explains = "step", step, f"{fname}()"
            indices.append(index)
            env[step] = value
        return value, indices, True

    def _expand_function(
        self, call: ast.Call, known: dict[int, Any], depth: int
    ) -> tuple[Any, list[int], Any]:
        """A function cell's call explained by its own body, walked with the call's
        arguments bound to the parameters (as `_expand` does for a library expansion)."""
        function = self.user_functions[call.func.id]  # type: ignore[attr-defined]
        what = f"{function.name}()'s result"
        try:
            args = tuple(known[id(a)] for a in call.args)
            env = function.bind(args, {kw.arg: known[id(kw.value)] for kw in call.keywords})
        except Exception as exc:
            return None, [], Check(what, False, note=f"body not evaluated: {_message(exc)}")
        resolve = _local_names(env, self.constants, f"the body of {function.name}()")

        try:
            value, index = self._root(_Unit(function.spec.formula, env, resolve, None), depth)
        except _Failed:
            index = len(self.nodes) - 1
            error = self.nodes[index].error or "failed"
            return None, [index], Check(what, False, note=f"its body failed: {error}")
        record = self.nodes[index]
        record.kind, record.label, record.explains = "step", "body", f"{function.name}()"
        return value, [index], True


def _local_names(
    env: dict[str, Any], constants: Mapping[str, Any], where: str
) -> Callable[[str], tuple[str, Any]]:
    """Name lookup for an expansion step or a function body: its parameters (and earlier
    steps, added to `env` as they are computed), then library constants."""

    def resolve(name: str) -> tuple[str, Any]:
        if name in env:
            return ("ref", name)
        if name in constants:
            return ("const", constants[name])
        raise CellEvalError(f"unknown name {name!r} in {where}")

    return resolve


def _message(exc: BaseException) -> str:
    if isinstance(exc, CellEvalError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"
