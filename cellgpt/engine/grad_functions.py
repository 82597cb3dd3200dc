"""`grad`, `grads` and `grad_of`: gradients as formulas.

`grad(loss, w1)` is the gradient of the cell `loss` with respect to the cell `w1`; `grads(loss,
"h0.* wte", kind="param")` the gradients with respect to every cell the loss depends on whose
name matches one of the patterns (and whose `kind` hint matches, if given), as a table
{cell: gradient} that `grad_of(table, "wte")` reads one entry of. The loss and wrt arguments
are cell *names*: the formula compiler is handed them as `CellName` constants (see
`name_arguments`), the graph still records them as ordinary references (so a grad cell goes
stale with its loss), and the backward pass itself is autodiff.py's.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
from collections.abc import Callable
from fnmatch import fnmatchcase
from typing import Any

from cellgpt.engine import fit as fitting
from cellgpt.engine.autodiff import Backward
from cellgpt.engine.costs import fixed
from cellgpt.engine.errors import CellEvalError
from cellgpt.engine.formula_parse import Formula, dotted_name
from cellgpt.engine.store import MISSING


class CellName(str):
    """A cell passed to grad by name (made only by `name_arguments`, never by a formula)."""


# Which positional arguments of these functions are cells passed by name.
NAME_ARGUMENTS: dict[str, tuple[int, ...]] = {
    "grad": (0, 1),
    "grads": (0,),
    "fit": (0, 1),  # fit(loss, [w1, b1], lr, steps)
    "at": (0,),  # at(prediction, fitted)
}


def name_arguments(formula: Formula, resolve: Callable[[str], str | None]) -> Formula:
    """The formula to compile: in calls to grad/grads, a cell named as loss or wrt becomes a
    CellName constant (resolved through aliases). Spans stay those of the text."""
    if not any(f in NAME_ARGUMENTS for f in formula.functions):
        return formula
    tree = copy.deepcopy(formula.tree)
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        for i in NAME_ARGUMENTS.get(node.func.id, ()):
            if i >= len(node.args):
                continue
            arg = node.args[i]
            if isinstance(arg, ast.List | ast.Tuple):  # a list of cells: each by name
                arg.elts = [_by_name(e, resolve) for e in arg.elts]
            else:
                node.args[i] = _by_name(arg, resolve)
    return dataclasses.replace(formula, tree=tree)


def _by_name(node: ast.expr, resolve: Callable[[str], str | None]) -> ast.expr:
    name = dotted_name(node)
    target = resolve(name) if name is not None else None
    if target is None:
        return node
    return ast.copy_location(ast.Constant(CellName(target)), node)


def _placeholder(name: str) -> Callable[..., Any]:
    def unbound(*args: Any, **kwargs: Any) -> Any:
        raise CellEvalError(f"{name}() works inside a workbook only")

    unbound.__name__ = name
    return unbound


def register_grad(library: Any) -> None:
    """Declare grad/grads/grad_of (each workbook binds them to its own cells)."""
    library.register(
        "grad", _placeholder("grad"), doc="Gradient of a loss cell w.r.t. a cell.", cost=fixed
    )
    library.register(
        "grads",
        _placeholder("grads"),
        doc="Gradients of a loss cell w.r.t. every cell matching patterns, as a table.",
        cost=fixed,
    )
    library.register("grad_of", grad_of, cost=fixed)
    library.register(
        "fit",
        _placeholder("fit"),
        doc="Gradient descent: fit(loss, [w1, b1], lr, steps) -> final params and loss history.",
        cost=fixed,
    )
    library.register(
        "at", _placeholder("at"), doc="A cell computed with a fit's parameters.", cost=fixed
    )
    library.register("entry", entry, cost=fixed)


def grad_of(table: Any, name: str) -> Any:
    """One gradient from a `grads(...)` table."""
    if not isinstance(table, dict):
        raise CellEvalError("grad_of: the first argument must be a grads(...) cell")
    if name not in table:
        raise CellEvalError(f"grad_of: no gradient for {name!r} in this table")
    return table[name]


def entry(table: Any, key: str) -> Any:
    """One entry of a table cell, e.g. entry(fitted, "loss") for a fit's loss history."""
    if not isinstance(table, dict):
        raise CellEvalError("entry: the first argument must be a table (a fit or grads cell)")
    if key not in table:
        raise CellEvalError(
            f"entry: no {key!r} in this table (it has {', '.join(map(str, table))})"
        )
    return table[key]


def _cell_name(value: Any, what: str, fname: str) -> str:
    if not isinstance(value, CellName):
        raise CellEvalError(
            f"{fname}(): the {what} must be a cell named directly, e.g. grad(loss, w1) "
            f"(not an expression or text)"
        )
    return str(value)


def install(sheet: Any, runner: Any) -> None:
    """Bind grad and grads to this workbook's cells and runner."""

    def held(name: str) -> Any:
        cell, state = sheet.cells[name], sheet.store[name]
        if cell.pinned:
            return cell.pin_value
        return MISSING if state.evicted else state.value

    def make(read: Callable[[str], Any], held: Callable[[str], Any]) -> Backward:
        return Backward(
            sheet.cells, sheet.graph, sheet.aliases, sheet.functions, sheet.library, read, held
        )

    def backward() -> Backward:
        return make(runner.value_or_raise, held)

    def fit(loss: Any, params: Any, lr: float, steps: int) -> dict[str, Any]:
        loss_name = _cell_name(loss, "loss", "fit")
        if not isinstance(params, list | tuple) or not params:
            raise CellEvalError("fit(): the parameters are a list of cells, e.g. [w1, b1]")
        names = [_cell_name(p, "parameters", "fit") for p in params]
        return fitting.fit(make, runner.value_or_raise, loss_name, names, lr, steps)

    def at(target: Any, table: Any) -> Any:
        name = _cell_name(target, "cell to compute", "at")
        return fitting.at(make, runner.value_or_raise, name, table, sheet.cells)

    def grad(loss: Any, wrt: Any) -> Any:
        loss_name = _cell_name(loss, "loss", "grad")
        wrt_name = _cell_name(wrt, "cell to differentiate by", "grad")
        return backward().gradients(loss_name, [wrt_name])[wrt_name]

    def grads(loss: Any, pattern: str = "*", kind: str | None = None) -> dict[str, Any]:
        loss_name = _cell_name(loss, "loss", "grads")
        wanted = matching_cells(sheet, loss_name, pattern, kind)
        if not wanted:
            raise CellEvalError(f"grads(): no cell the loss depends on matches {pattern!r}")
        return backward().gradients(loss_name, wanted)

    sheet.functions["grad"] = grad
    sheet.functions["grads"] = grads
    sheet.functions["fit"] = fit
    sheet.functions["at"] = at


def matching_cells(sheet: Any, loss: str, pattern: str, kind: str | None) -> list[str]:
    """Cells the loss depends on whose names match a pattern (space-separated, fnmatch)."""
    if not isinstance(pattern, str):
        raise CellEvalError('grads(): the pattern must be text, e.g. "h0.* wte"')
    patterns = pattern.split()
    upstream = sheet.graph.ancestors(loss)
    return [
        name
        for name in sheet.graph.topo_order(upstream)
        if any(fnmatchcase(name, p) for p in patterns)
        and (kind is None or sheet.cells[name].hints.get("kind") == kind)
    ]
