"""Layering rules from the design: the engine is generic and imports no domain or UI code."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ENGINE = Path(__file__).resolve().parent.parent / "cellgpt" / "engine"
FORBIDDEN = ("cellgpt.gpt2", "cellgpt.tui", "cellgpt.export", "cellgpt.cli", "textual", "openpyxl")


def test_engine_sources_import_nothing_from_other_layers():
    offenders = []
    for path in ENGINE.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.startswith(FORBIDDEN)]
    assert offenders == []


def test_importing_the_engine_loads_no_other_layer():
    code = (
        "import sys, cellgpt.engine, cellgpt.engine.workbook_file;"
        f"bad=[m for m in sys.modules if m.startswith({FORBIDDEN!r})];print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_command_group_is_registered():
    from cellgpt.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert set(commands) == {
        "run",
        "cell",
        "cells",
        "explain",
        "tokenize",
        "weights",
        "tokenizer",
        "tui",
        "export",
    }


# --- the whole package: layers and cycles ------------------------------------------------

PACKAGE = ENGINE.parent
# What each layer may import from cellgpt (besides itself). Everything else is on top.
ALLOWED = {
    "cellgpt.locations": set(),
    "cellgpt.engine": set(),
    "cellgpt.weights": {"cellgpt.engine", "cellgpt.locations"},
    "cellgpt.tokenizer": {"cellgpt.engine", "cellgpt.locations"},
    "cellgpt.gpt2": {"cellgpt.engine", "cellgpt.locations", "cellgpt.weights", "cellgpt.tokenizer"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """cellgpt modules imported anywhere in the file (lazy imports too), except those under
    `if TYPE_CHECKING:` (never executed)."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for n in ast.walk(node)}
    found: set[str] = set()
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path.parent)
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return {name for name in found if name == "cellgpt" or name.startswith("cellgpt.")}


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {
        name: {m for m in _imports(path) if m in modules and m != name}
        for name, path in modules.items()
    }


def _layer(module: str) -> str:
    return next(
        (layer for layer in ALLOWED if module == layer or module.startswith(layer + ".")), module
    )


def test_layers_import_only_what_lies_below_them() -> None:
    offenders = []
    for module, imported in _graph().items():
        layer = _layer(module)
        if layer not in ALLOWED:
            continue
        for target in imported:
            if _layer(target) != layer and _layer(target) not in ALLOWED[layer]:
                offenders.append(f"{module} imports {target}")
    assert offenders == []


def test_no_import_cycles_between_modules() -> None:
    graph = _graph()
    # A package's __init__ re-exporting its own modules is not a cycle of the design.
    edges = {
        m: {t for t in targets if not (m.startswith(t + ".") and t in graph)}
        for m, targets in graph.items()
    }
    cycles, state = [], dict.fromkeys(edges, 0)

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state[nxt] == 1:
                cycles.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif state[nxt] == 0:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(edges):
        if state[node] == 0:
            visit(node, [node])
    assert cycles == []


def test_cli_export_and_generation_name_well_known_cells_through_cells_py():
    # A cell read by its role is spelled once, in cellgpt/gpt2/cells.py; a string literal in
    # a look-up (wb["top_k"], get_cell(wb, "config"), "prompt_ids" in wb) would be a second copy.
    from cellgpt.gpt2 import cells

    known = {v for k, v in vars(cells).items() if k.isupper() and isinstance(v, str)}
    root = ENGINE.parent
    files = [*(root / "cli").glob("*.py"), *(root / "export").glob("*.py")]
    files.append(root / "gpt2" / "generate.py")
    lookups = {"get_cell", "_get", "value", "pin", "set", "info", "table", "resolve", "get"}

    def literal(node: ast.AST) -> str | None:
        ok = isinstance(node, ast.Constant) and node.value in known
        return node.value if ok else None

    offenders = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            found: list[str | None] = []
            if isinstance(node, ast.Subscript):
                found = [literal(node.slice)]
            elif isinstance(node, ast.Compare) and isinstance(node.ops[0], ast.In | ast.NotIn):
                found = [literal(node.left)]
            elif isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in lookups:
                    found = [literal(a) for a in node.args]
            offenders += [f"{path.name}:{node.lineno}: {s!r}" for s in found if s]
    assert offenders == []
