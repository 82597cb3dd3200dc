"""Reverse mode over the cell graph: the gradient of one cell (the loss) with respect to others.

The cells that matter are those on a path from a `wrt` cell to the loss. Forward: each such
cell's formula is evaluated again by the ordinary formula compiler, recording the value of
every sub-expression (a tape) — or, when the cell's value is still held, only the
sub-expressions a rule asks for. Backward: in reverse order, each cell's gradient is pushed
through its formula's tree, node by node, with the VJP rules of vjp.py (operators and library
functions); a reference to another cell on the path adds to that cell's gradient. Nothing is
evaluated that the compiler would not evaluate; budgets (time, bytes, cost) are checked as the
forward formulas run and before each rule.
"""

from __future__ import annotations

import ast
import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from cellgpt.engine.errors import CellEvalError
from cellgpt.engine.formula_compile import Env, Evaluator, _Compiler
from cellgpt.engine.formula_parse import Formula, dotted_name, parse_formula
from cellgpt.engine.grad_sum import RowUpdates, add_gradient
from cellgpt.engine.inline import InlineError, inline_calls
from cellgpt.engine.limits import charge, check_bytes, check_time
from cellgpt.engine.store import MISSING
from cellgpt.engine.user_functions import UserFunction
from cellgpt.engine.vjp import BINOP_VJPS, NONDIFF, VJPS, unbroadcast

Reader = Callable[[str], Any]  # a cell's current value (recomputed if it was dropped)


class _Recorder(_Compiler):
    """The formula compiler, with every node's value kept on a tape as it is computed."""

    def __init__(self, formula: Formula, resolve: Any, functions: Any, tape: dict[int, Any]):
        super().__init__(formula, resolve, functions)
        self.tape = tape

    def build(self, node: ast.AST) -> Evaluator:
        inner = super().build(node)
        key, tape = id(node), self.tape

        def recorded(env: Env) -> Any:
            value = inner(env)
            tape[key] = value
            return value

        return recorded


class _CellTape:
    """One path cell's formula, its inputs and (lazily) the values of its sub-expressions."""

    def __init__(self, name: str, formula: Formula, env: dict[str, Any], compiler: Any) -> None:
        self.name, self.formula, self.env = name, formula, env
        self.values: dict[int, Any] = {}
        self._compiler = compiler(formula, self.values)

    def value(self, node: ast.AST) -> Any:
        key = id(node)
        if key not in self.values:
            self._compiler.build(node)(self.env)
        return self.values[key]


class Backward:
    """One gradient computation over a sheet's cells (see the module's doc)."""

    def __init__(
        self,
        cells: Mapping[str, Any],
        graph: Any,
        aliases: Mapping[str, str],
        functions: Mapping[str, Callable[..., Any]],
        library: Any,
        read: Reader,
        held: Callable[[str], Any],
    ) -> None:
        self.cells, self.graph, self.aliases = cells, graph, aliases
        self.functions, self.library = functions, library
        self.read, self.held = read, held
        self.recomputed: list[str] = []

    # ------------------------------------------------------------------ the graph
    def path(self, loss: str, wrts: Iterable[str]) -> list[str]:
        """Cells on a path from a wrt cell to the loss, in evaluation order. A pinned cell's
        value does not depend on its inputs: paths stop there."""
        wrts = set(wrts)
        up: set[str] = set()
        stack = [loss]
        while stack:
            name = stack.pop()
            if name in up:
                continue
            up.add(name)
            if not self.cells[name].pinned:
                stack.extend(self.graph.parents(name))
        on_path = set(wrts & up)
        for name in self.graph.topo_order(up):
            if name in on_path:
                continue
            cell = self.cells[name]
            if not cell.pinned and any(p in on_path for p in self.graph.parents(name)):
                on_path.add(name)
        return self.graph.topo_order(on_path) if loss in on_path else []

    # ------------------------------------------------------------------ the gradient
    def forward(self, order: list[str]) -> tuple[dict[str, Any], dict[str, _CellTape]]:
        """The path's values (a cell still held is not recomputed) and its cells' tapes."""
        values: dict[str, Any] = {}
        tapes: dict[str, _CellTape] = {}
        for name in order:
            cell = self.cells[name]
            derived = any(p in values for p in self.graph.parents(name))
            if not derived or cell.pinned or cell.formula is None or cell.formula.is_literal:
                values[name] = self.read(name)  # a leaf of the path
                continue
            env = {r: values[r] if r in values else self.read(r) for r in cell.refs}
            formula = self._spelled_out(name, cell.formula)
            tape = _CellTape(name, formula, env, self._recorder)
            held = self.held(name)
            root = formula.tree.body
            if held is MISSING:
                self.recomputed.append(name)  # a dropped (evicted) value: computed again
                values[name] = tape.value(root)
            else:
                tape.values[id(root)] = values[name] = held
            tapes[name] = tape
        return values, tapes

    def value_at(self, target: str, inputs: list[str]) -> Any:
        """`target`'s value computed from `inputs`' values as `read` gives them."""
        order = self.path(target, inputs)
        return self.forward(order)[0][target] if order else self.read(target)

    def gradients(self, loss: str, wrts: list[str]) -> dict[str, Any]:
        """{wrt: d loss / d wrt}; a cell the loss does not depend on gets zeros. A loss that
        is not a single number is summed (the gradient of its sum)."""
        order = self.path(loss, wrts)
        values, tapes = self.forward(order)
        self.loss_value = values.get(loss, MISSING)
        results: dict[str, Any] = {}
        grads: dict[str, Any] = {}
        if order:
            out = values[loss]
            grads[loss] = np.ones_like(np.asarray(out, dtype=np.result_type(out, np.float32)))
        pending = set(order)
        owned: dict[str, Any] = {}
        wanted = set(wrts)
        for name in reversed(order):
            pending.discard(name)
            g = _in_dtype_of(grads.pop(name, None), values[name])
            if name in wanted:
                results[name] = g  # every cell after it has added its share by now
            tape = tapes.pop(name, None)
            if g is None or tape is None:
                continue
            owned.pop(name, None)
            _FormulaBackward(self, tape, pending, grads, owned).push(tape.formula.tree.body, g)
        for name in wrts:
            if results.get(name) is None:
                value = np.asarray(self.read(name))
                results[name] = np.zeros(value.shape, dtype=np.result_type(value, np.float32))
            else:
                results[name] = _like(results[name], self.read(name))
        return results

    def _spelled_out(self, name: str, formula: Formula) -> Formula:
        """The formula with calls of function cells replaced by their bodies, so the rules
        of the library functions inside them apply (a function cell has no rule of its own)."""
        if not any(isinstance(self.functions.get(f), UserFunction) for f in formula.functions):
            return formula  # the usual case: checked before gathering every function's spec
        specs = {
            fname: function.spec
            for fname, function in self.functions.items()
            if isinstance(function, UserFunction)
        }
        try:
            tree = inline_calls(formula.tree, specs)
        except InlineError as exc:
            raise CellEvalError(f"grad: cannot spell out the calls in {name!r}: {exc}") from None
        return parse_formula(ast.unparse(tree), cell=name)

    def _recorder(self, formula: Formula, tape: dict[int, Any]) -> _Recorder:
        return _Recorder(formula, self._resolve, self.functions, tape)

    def _resolve(self, name: str) -> tuple[str, Any]:
        target = self.aliases.get(name, name)
        if target in self.cells:
            return ("ref", target)
        return ("const", self.library.constants[name])


def matmul_work(sa: tuple[int, ...], sb: tuple[int, ...]) -> int:
    """Multiply-adds of a product of arrays of these shapes."""
    rows = sa[-2] if len(sa) >= 2 else 1
    cols = sb[-1] if len(sb) >= 2 else 1
    inner = sa[-1] if sa else 1
    batch = math.prod(np.broadcast_shapes(sa[:-2], sb[:-2])) if len(sa) > 2 or len(sb) > 2 else 1
    return batch * rows * cols * inner


def _basic(key: Any) -> bool:
    """An index of slices, whole numbers, ... and None only: each entry is picked once."""
    parts = key if isinstance(key, tuple) else (key,)
    return all(isinstance(p, slice | int | np.integer) or p is None or p is Ellipsis for p in parts)


def _in_dtype_of(g: Any, value: Any) -> Any:
    """A cell's gradient in the cell's own floating dtype (a float32 model stays float32,
    even below a loss that is a Python float)."""
    dtype = getattr(value, "dtype", None)
    if g is None or dtype is None or dtype.kind != "f" or getattr(g, "dtype", None) == dtype:
        return g
    return g.astype(dtype) if isinstance(g, RowUpdates) else np.asarray(g, dtype=dtype)


def _like(g: Any, value: Any) -> np.ndarray:
    """The gradient with the value's shape and (floating) dtype."""
    value = np.asarray(value)
    g = g.dense() if isinstance(g, RowUpdates) else np.asarray(g)
    dtype = value.dtype if value.dtype.kind == "f" else g.dtype
    if g.shape != value.shape:
        g = np.broadcast_to(g, value.shape)
    return np.ascontiguousarray(g, dtype=dtype)  # no copy when it already is


class _FormulaBackward:
    """Pushes one cell's gradient through its formula tree."""

    def __init__(
        self,
        owner: Backward,
        tape: _CellTape,
        on_path: set[str],
        grads: dict[str, Any],
        owned: dict[str, Any],
    ) -> None:
        self.owner, self.tape, self.grads = owner, tape, grads
        self.owned = owned  # {cell: its gradient array, when it is an accumulator of ours}
        self.on_path = on_path
        self._active: dict[int, bool] = {}

    def cell_of(self, node: ast.AST) -> str | None:
        name = node.id if isinstance(node, ast.Name) else dotted_name(node)
        if name is None:
            return None
        target = self.owner.aliases.get(name, name)
        return target if target in self.on_path else None

    def active(self, node: ast.AST) -> bool:
        """Does the node's value depend on a cell on the path?"""
        key = id(node)
        if key not in self._active:
            self._active[key] = any(
                isinstance(n, ast.Name | ast.Attribute) and self.cell_of(n) is not None
                for n in ast.walk(node)
            )
        return self._active[key]

    def error(self, node: ast.AST, message: str) -> CellEvalError:
        return CellEvalError(
            f"grad: {message} (in cell {self.tape.name!r})", self.tape.formula.span_of(node)
        )

    def push(self, node: ast.AST, g: Any) -> None:
        if g is None or not self.active(node):
            return
        check_time()
        if isinstance(g, RowUpdates) and not isinstance(node, ast.Name | ast.Attribute):
            g = g.dense()
        method = getattr(self, "back_" + type(node).__name__, None)
        if method is None:
            raise self.error(node, f"cannot differentiate a {type(node).__name__} expression")
        method(node, g)

    def back_Name(self, node: ast.AST, g: Any) -> None:
        name = self.cell_of(node)
        if name is None:
            return
        prev = self.grads.get(name)
        if prev is None:
            self.grads[name] = g
            return
        owned = self.owned.get(name) is prev
        total, mine = add_gradient(prev, g, owned)
        self.grads[name] = total
        if mine:
            self.owned[name] = total

    back_Attribute = back_Name

    def back_UnaryOp(self, node: ast.UnaryOp, g: Any) -> None:
        if isinstance(node.op, ast.USub):
            self.push(node.operand, -g)
        elif isinstance(node.op, ast.UAdd):
            self.push(node.operand, g)

    def back_BinOp(self, node: ast.BinOp, g: Any) -> None:
        rule = BINOP_VJPS.get(type(node.op))
        if rule is None:
            raise self.error(node, f"no gradient for the operator {type(node.op).__name__}")
        a, b = self.tape.value(node.left), self.tape.value(node.right)
        check_bytes(8 * (np.size(a) + np.size(b)), "the gradient")
        if isinstance(node.op, ast.MatMult):  # a backward product costs twice the forward
            charge("grad of matmul", 0, 2 * matmul_work(np.shape(a), np.shape(b)))
        ga, gb = rule(g, self.tape.value(node), a, b)
        self.push(node.left, ga)
        self.push(node.right, gb)

    def back_Call(self, node: ast.Call, g: Any) -> None:
        assert isinstance(node.func, ast.Name)
        fname = node.func.id
        if fname in NONDIFF:
            return
        rule = VJPS.get(fname)
        if rule is None:
            raise self.error(
                node, f"the function {fname}() has no gradient rule (VJP); it is on the path"
            )
        impl = self.owner.library[fname].impl
        args = [self.tape.value(a) for a in node.args]
        kwargs = {kw.arg: self.tape.value(kw.value) for kw in node.keywords}
        try:
            bound = inspect.signature(impl).bind(*args, **kwargs)
        except TypeError as exc:
            raise self.error(node, f"{fname}(): {exc}") from None
        params = list(bound.arguments)
        cost = self.owner.library[fname].cost
        if cost is not None:  # a backward step costs about twice its forward
            nbytes, work = cost(*args, **kwargs)
            charge(f"grad of {fname}", nbytes, 2 * work)
        try:
            grads = rule(g, self.tape.value(node), *bound.arguments.values())
        except CellEvalError:
            raise
        except Exception as exc:
            raise self.error(node, f"{fname}(): {type(exc).__name__}: {exc}") from exc
        nodes = dict(zip(params[: len(node.args)], node.args, strict=False))
        nodes.update({kw.arg: kw.value for kw in node.keywords if kw.arg is not None})
        for param, grad in zip(params, grads, strict=False):
            child = nodes.get(param)
            if child is not None:
                if grad is None and self.active(child):
                    raise self.error(
                        child, f"{fname}() has no gradient with respect to its {param!r}"
                    )
                self.push(child, grad)

    def back_Subscript(self, node: ast.Subscript, g: Any) -> None:
        container = self.tape.value(node.value)
        key = self.tape.value(node.slice)
        if not isinstance(container, np.ndarray):
            if isinstance(container, list | tuple) and isinstance(key, int):
                grads: list[Any] = [None] * len(container)
                grads[key] = g
                self.push(node.value, grads)
                return
            raise self.error(node, "can only differentiate indexing into an array")
        full = np.zeros(container.shape, dtype=np.result_type(g, np.float32))
        if _basic(key):
            full[key] = g
        else:
            np.add.at(full, key, g)  # repeated indices add up
        self.push(node.value, full)

    def back_Tuple(self, node: ast.Tuple | ast.List, g: Any) -> None:
        for elt, ge in zip(node.elts, g, strict=True):
            self.push(elt, ge)

    back_List = back_Tuple

    def back_IfExp(self, node: ast.IfExp, g: Any) -> None:
        taken = node.body if self.tape.value(node.test) else node.orelse
        self.push(taken, g)

    def back_Compare(self, node: ast.AST, g: Any) -> None:
        return  # a comparison is piecewise constant

    back_BoolOp = back_Compare
    back_Constant = back_Compare


__all__ = ["Backward", "unbroadcast"]
