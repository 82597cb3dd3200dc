"""`--set NAME=VALUE`: give any input cell a value from the command line (the number of
candidates `show_k`, the analogy's words, the token to explore)."""

from __future__ import annotations

import argparse
import ast
import difflib
from collections.abc import Iterable
from typing import Any


def parse_set(text: str) -> tuple[str, Any]:
    """'show_k=20' → ('show_k', 20); a value that is not a Python literal stays text, as
    written (`--set a=' father'` and `--set token=king` both do what they say)."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        value = raw
    return name, value


def input_cells(wb: Any) -> list[str]:
    """The cells a user may set: inputs, not computed from anything."""
    return [n for n in wb.cells() if wb.info(n).is_input]


def apply_inputs(wb: Any, items: Iterable[tuple[str, Any]]) -> None:
    """Set each input cell; a name that is not an input is a UserError naming the inputs."""
    from cellgpt.cli import UserError

    for name, value in items:
        if name not in wb or not wb.info(name).is_input:
            known = input_cells(wb)
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
            what = "a computed cell, not an input" if name in wb else "no input cell"
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise UserError(
                f"--set {name}: {what}{hint} (inputs of this workbook: {', '.join(known)})"
            )
        wb.set(name, value)
