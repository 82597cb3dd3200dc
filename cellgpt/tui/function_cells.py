"""Function cells in the TUI: the one-line text the formula editor shows for a `def`, the
source an edit becomes (the docstring is kept: the one-line editor cannot show it), and the
details pane's description of a function."""

from __future__ import annotations

import ast
from typing import Any

from rich.text import Text

FUNCTION_PREFIX = "fn:"  # the tree leaf data of a function cell (cells carry their name)


def edit_text(spec: Any) -> str:
    """`def name(params): return body` on one line (the body's own text when it is one line,
    else its ast spelling)."""
    tree = ast.parse(spec.source.strip()).body[0]
    assert isinstance(tree, ast.FunctionDef)
    params = ast.unparse(tree.args)
    body = spec.body if "\n" not in spec.body else ast.unparse(spec.formula.tree.body)
    return f"def {spec.name}({params}): return {body}"


def source_from_edit(text: str, old: Any) -> str:
    """The definition an edit stands for: the text itself, with the old docstring put back
    in when the edit has none (a docstring written after the def in a file stays there)."""
    try:
        node = ast.parse(text.strip()).body[0]
    except (SyntaxError, IndexError):
        return text  # the engine refuses it with its own message
    has_doc = (
        isinstance(node, ast.FunctionDef)
        and len(node.body) > 1
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    )
    if has_doc or not old.doc or old.outer_doc or not isinstance(node, ast.FunctionDef):
        return text
    ret = node.body[-1]
    lines = text.strip().splitlines()
    if len(lines) != 1 or not isinstance(ret, ast.Return):
        return text
    line = lines[0].encode()  # ast columns count UTF-8 bytes
    header = line[: ret.col_offset].decode().rstrip()
    body = line[ret.col_offset :].decode()
    doc = old.doc.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    return f'{header}\n    """{doc}"""\n    {body}'


def describe_function(wb: Any, name: str) -> Text:
    spec = wb.function(name)
    out = Text.assemble(("ƒ ", "magenta"), (spec.signature(), "bold"), ("  function cell", "dim"))
    if spec.doc:
        out.append("\n" + spec.doc.strip())
    out.append("\n\n")
    out.append(spec.source.strip(), style="cyan")
    callers = sorted(wb.function_callers(name))
    out.append(
        f"\n\ncalled by {len(callers)} cells" if callers else "\n\ncalled by no cell yet",
        style="dim",
    )
    out.append("\ne edits it; the cells that call it go stale", style="dim")
    return out
