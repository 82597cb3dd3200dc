"""Group a workbook's cells for the cell tree: inputs, the workbook's function cells (`def`),
model, the stages (tokenize, embed), one group per block (h0, h1, …, each with a collapsed
"parameters" sub-group), output."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_BLOCK = re.compile(r"^([A-Za-z_]\w*?)(\d+)$")
FUNCTIONS = "functions"  # the group of function cells


@dataclass
class Group:
    key: str
    title: str
    cells: list[str] = field(default_factory=list)
    children: list[Group] = field(default_factory=list)

    def all_cells(self) -> list[str]:
        out = list(self.cells)
        for child in self.children:
            out += child.all_cells()
        return out


def group_cells(wb: Any) -> list[Group]:
    """Cells in dependency order, grouped for display. Unhinted cells join the group of their
    first grouped precedent (n_tokens → tokenize), so nothing is left floating."""
    infos = {name: wb.info(name) for name in wb.cells()}
    groups: dict[str, Group] = {}
    where: dict[str, str] = {}

    def group(key: str, title: str) -> Group:
        if key not in groups:
            groups[key] = Group(key, title)
        return groups[key]

    for name, info in infos.items():
        hints = info.hints
        block, kind, stage = hints.get("block"), hints.get("kind"), hints.get("stage")
        if block:
            g = group(f"block:{block}", str(block))
            if kind == "param":
                sub = next((c for c in g.children if c.key == f"params:{block}"), None)
                if sub is None:
                    sub = Group(f"params:{block}", "parameters")
                    g.children.append(sub)
                sub.cells.append(name)
            else:
                g.cells.append(name)
            where[name] = g.key
            continue
        if info.template is not None and not block:  # a block's exposed output (h.out)
            key, title = "stage:output", "output"
        elif stage:
            key, title = f"stage:{stage}", str(stage)
        elif info.is_input and kind is None:
            key, title = "inputs", "inputs"
        elif kind in ("model", "param"):
            key, title = "model", "model"
        else:
            parent = next(
                (where[p] for p in info.precedents if where.get(p, "inputs") != "inputs"), None
            )
            key = parent or "cells"
            title = groups[key].title if key in groups else "cells"
        group(key, title).cells.append(name)
        where[name] = key
    functions = wb.functions() if hasattr(wb, "functions") else []
    if functions:  # names of function cells, not cells: the tree shows them apart
        groups[FUNCTIONS] = Group(FUNCTIONS, "functions", list(functions))
    return sorted(groups.values(), key=_order)


def _order(g: Group) -> tuple[float, Any, ...]:
    fixed = {
        "inputs": 0,
        FUNCTIONS: 0.5,
        "model": 1,
        "stage:tokenize": 2,
        "stage:embed": 3,
        "stage:output": 8,
        "stage:gradients": 9,  # backpropagation reads the output: it comes last
    }
    if g.key in fixed:
        return (fixed[g.key], 0, "")
    if g.key.startswith("block:"):
        m = _BLOCK.match(g.title)
        return (5, int(m.group(2)) if m else 0, g.title)
    # Other stages keep the workbook's definition order (the sort is stable).
    return (4, 0, "") if g.key.startswith("stage:") else (10, 0, g.title)


def initially_expanded(g: Group) -> bool:
    """Small groups start open; blocks and the model's tables start closed."""
    return g.key in ("stage:tokenize", "stage:embed", "stage:output", FUNCTIONS)
