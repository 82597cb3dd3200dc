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
    assert set(commands) == {"run", "cell", "tokenize", "weights", "tokenizer", "tui", "export"}
