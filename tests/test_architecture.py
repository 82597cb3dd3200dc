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
        "import sys, cellgpt.engine, cellgpt.engine.io;"
        f"bad=[m for m in sys.modules if m.startswith({FORBIDDEN!r})];print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_command_group_is_registered():
    from cellgpt.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert set(commands) == {"run", "cell", "tokenize", "weights", "tokenizer", "tui", "export"}


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
