"""Function cells in the TUI: `e` on one edits its `def` in the formula editor (one line; the
docstring is kept, since the one-line editor cannot show it), `u` undoes such edits, and the
details pane describes a function and the cells that call it."""

from __future__ import annotations

import ast
from typing import Any

from rich.text import Text

from cellgpt.tui.completion import all_function_entries
from cellgpt.tui.screens.edit import Problem, problem_from
from cellgpt.tui.screens.formula import FormulaScreen

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


def edit_function(controller: Any, name: str) -> None:
    """e on a function cell: edit its `def` like a formula; its callers go stale."""
    ui, wb = controller.ui, controller.wb
    if controller.jobs.busy:
        ui.notify("a job is running — cancel it first (c)", severity="warning")
        return
    old = wb.function(name)

    def apply(text: str) -> Problem | None:
        return _redefine(controller, name, source_from_edit(text, old), record=True)

    def done(text: str | None) -> None:
        if text is not None:
            stale = len(wb.function_callers(name))
            ui.notify(f"{name} redefined\n{stale} cells that call it are stale — R runs them")
            ui.rebuild_tree()

    screen = FormulaScreen(
        f"edit function {name}",
        edit_text(old),
        apply,
        hint="a function cell: one `return <formula>` of its parameters │ u undoes",
        library=wb.library,
        functions=all_function_entries(wb),
    )
    ui.push_screen(screen, done)


def undo_function(controller: Any, name: str) -> None:
    """u on a function cell: its definition before the last edit."""
    previous = controller.formulas.pop(FUNCTION_PREFIX + name)
    if previous is None:
        controller.ui.notify(f"no edit of function {name} to undo", severity="warning")
        return
    if problem := _redefine(controller, name, previous, record=False):
        controller.formulas.push_back(FUNCTION_PREFIX + name, previous)
        controller.ui.notify(f"cannot undo: {problem.message}", severity="error")
        return
    controller.ui.notify(f"undone: {name} is again {previous.splitlines()[0]}")
    controller.ui.rebuild_tree()


def _redefine(controller: Any, name: str, source: str, *, record: bool) -> Problem | None:
    if controller.jobs.busy:
        return Problem("a job is running — cancel it first (c)")
    before = controller.wb.function(name).source
    try:
        controller.wb.set_function(name, source)
    except Exception as exc:  # every refusal is shown, never raised
        return problem_from(exc, source)
    if record and before != source:
        controller.formulas.record(FUNCTION_PREFIX + name, before)
    controller.unsaved = True
    return None
