"""One named cell per gradient of a `grads(...)` table: `backward: cell(grad_cells="grad.")
= grads(loss, "*", kind="param")` gives `grad.wte`, `grad.h3.mlp.c_fc.weight`, … — ordinary
cells (stale marks, shapes, the TUI tree, `cellgpt cell`), each reading its entry of the table.
They are made when the workbook is loaded (the table's cells must exist by then), carry the
`generated` hint and are not written back when the workbook is saved."""

from __future__ import annotations

import ast
from typing import Any

from cellgpt.engine.cells import CellSpec
from cellgpt.engine.formula_parse import dotted_name
from cellgpt.engine.grad_functions import matching_cells

HINT = "grad_cells"


def expand_gradient_cells(wb: Any) -> list[str]:
    """Define the gradient cells of every table cell carrying the hint; returns their names."""
    made: list[str] = []
    for name in list(wb.cells()):
        cell = wb.cell(name)
        prefix = cell.hints.get(HINT)
        if not prefix or cell.formula is None:
            continue
        call = cell.formula.tree.body
        if not (isinstance(call, ast.Call) and getattr(call.func, "id", None) == "grads"):
            continue
        loss = dotted_name(call.args[0]) if call.args else None
        pattern = _literal(call, 1, "pattern", "*")
        kind = _literal(call, 2, "kind", None)
        if loss is None or loss not in wb:
            continue
        specs = [
            CellSpec(
                f"{prefix}{wrt}",
                f"grad_of({name}, {wrt!r})",
                f"d {loss} / d {wrt}: how the loss changes when each number of {wrt} grows.",
                {
                    "stage": cell.hints.get("stage", "gradients"),
                    "kind": "grad",  # a parameter-sized table: exported like one
                    "on_demand": True,
                    "generated": True,
                },
            )
            for wrt in matching_cells(wb._sheet, wb.resolve(loss), pattern, kind)
            if f"{prefix}{wrt}" not in wb
        ]
        wb.define_many(specs)
        made += [s.name for s in specs]
    return made


def _literal(call: ast.Call, index: int, keyword: str, default: Any) -> Any:
    node = call.args[index] if len(call.args) > index else None
    for kw in call.keywords:
        if kw.arg == keyword:
            node = kw.value
    return node.value if isinstance(node, ast.Constant) else default
