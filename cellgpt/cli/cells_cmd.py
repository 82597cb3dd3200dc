"""`cellgpt cells [PATTERN]`: every cell of a workbook with its stage, shape (once computed),
aliases and the first line of its doc — the map to read before `cellgpt cell NAME`. Function
cells (`def`) are listed too, in the "functions" stage, with their signature and doc."""

from __future__ import annotations

import argparse
import fnmatch
from typing import Any

from cellgpt.cli.common import open_workbook, workbook_args

MAX_DOC = 70  # characters of a doc's first line shown


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "cells", help="list a workbook's cells: stage, shape, aliases, what each is"
    )
    p.add_argument(
        "pattern",
        nargs="?",
        metavar="PATTERN",
        help="only cells whose name or alias matches (wildcards: 'h3.attn.*', '*hook_pattern')",
    )
    workbook_args(p)
    p.set_defaults(func=cmd_cells, prompt=None, prompt_rule="optional")


def cmd_cells(args: argparse.Namespace) -> int:
    from cellgpt.cli import UserError
    from cellgpt.cli.cell_names import no_match_message

    wb = open_workbook(args)
    rows = [_row(wb, name, stage) for name, stage in stages(wb).items()]
    if args.pattern:
        rows = [r for r in rows if _matches(args.pattern, r[0], r[3])]
        if not rows:
            raise UserError(no_match_message(wb, args.pattern))
    header = ("cell", "stage", "shape", "aliases", "doc")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(3)]
    for row in [header, *rows]:
        name, stage, shape, aliases, doc = row
        aliases_text = ", ".join(aliases) if isinstance(aliases, list) else aliases
        line = f"{name:<{widths[0]}}  {stage:<{widths[1]}}  {shape:<{widths[2]}}  {doc}"
        print(line.rstrip() + (f"  [{aliases_text}]" if aliases_text and row is not header else ""))
    return 0


def stages(wb: Any) -> dict[str, str]:
    """cell name → its stage, as the TUI's cell tree groups it (inputs, model, tokenize,
    embed, h0 … h11 and their parameters, output, …), in the tree's order."""
    from cellgpt.tui.grouping import group_cells  # plain Python: no Textual behind it

    found: dict[str, str] = {}

    def walk(group: Any, title: str) -> None:
        for name in group.cells:
            found[name] = title
        for child in group.children:
            walk(child, f"{title} {child.title}")

    for group in group_cells(wb):
        walk(group, group.title)
    return found


def _row(wb: Any, name: str, stage: str) -> tuple[str, str, str, list[str], str]:
    if name not in wb and name in wb.functions():  # a function cell: its signature and doc
        spec = wb.function(name)
        doc = spec.doc.strip().splitlines()[0] if spec.doc.strip() else ""
        return name, stage, "function", [], _short(f"{spec.signature()}  {doc}".strip())
    info = wb.info(name)
    # Only computed cells have a shape; text and scalars show their type instead.
    shape = "×".join(str(d) for d in info.shape) if info.shape and info.dtype != "str" else ""
    if not shape and info.dtype is not None:
        shape = info.dtype
    doc = (info.doc or "").strip().splitlines()[0] if (info.doc or "").strip() else ""
    return name, stage, shape, sorted(wb.aliases(name)), _short(doc)


def _short(doc: str) -> str:
    return doc[: MAX_DOC - 1] + "…" if len(doc) > MAX_DOC else doc


def _matches(pattern: str, name: str, aliases: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(n, pattern) for n in (name, *aliases))
