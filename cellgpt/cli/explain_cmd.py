"""`cellgpt explain NAME [PROMPT]`: Evaluate Formula — the cell's formula as a tree of
sub-expressions, each with its shape, dtype, finite min / max / mean and a preview, in
evaluation order (a line's inputs are listed above it, indented one level deeper)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cellgpt.cli import UserError
from cellgpt.cli.common import check_prompt_length, model_args, open_workbook
from cellgpt.cli.render import json_text

TEXT_WIDTH = 72  # characters of a sub-expression shown on its line
INDENT = "  "


def register(subparsers: argparse._SubParsersAction) -> None:
    cmd = subparsers.add_parser(
        "explain",
        help="evaluate a cell's formula step by step: every sub-expression's shape and stats",
    )
    cmd.add_argument("name", help="cell name, step alias or hook name (e.g. h0.ln_1)")
    model_args(cmd, prompt="if_read")
    cmd.add_argument("--json", action="store_true", help="print one JSON object")
    cmd.add_argument(
        "--inline",
        nargs="*",
        default=None,
        metavar="CELL",
        help="show these read cells' formulas in place (default: the cells fused with this "
        "one, e.g. ln_1.normalized for ln_1); give none to inline nothing",
    )
    cmd.set_defaults(func=cmd_explain)


def cmd_explain(args: argparse.Namespace) -> int:
    from cellgpt.cli.cell_names import unknown_cell_message
    from cellgpt.cli.errors import explain as root_cause
    from cellgpt.engine import CellError

    wb = open_workbook(args, cell=args.name)
    if args.name not in wb:
        raise UserError(unknown_cell_message(wb, args.name))
    if args.prompt is not None:
        check_prompt_length(wb)
    for name in args.inline or ():
        if name not in wb:
            raise UserError(f"--inline: {unknown_cell_message(wb, name)}")
    try:
        explanation = wb.explain(args.name, inline=args.inline)
    except CellError as exc:  # an input failed: say why, as `cell` does
        raise UserError(root_cause(wb, exc)) from None
    if args.json:
        print(json_text(explanation.to_json()))
    else:
        sys.stdout.write(explanation_text(explanation))
    return 1 if explanation.error else 0


def explanation_text(explanation: Any) -> str:
    """The tree as indented lines: `#  sub-expression`, then its value's shape and stats,
    its preview, and what it was checked against."""
    lines = [f"{explanation.name} = {explanation.formula}"]
    lines += [f"note: {note}" for note in explanation.notes]
    lines.append("(evaluation order: each line's inputs are above it, indented one level more)")
    for node in explanation.nodes:
        pad = INDENT * node.depth
        lines.append(f"{node.index:>3}  {pad}{node_title(node)}")
        more = f"     {pad}   "
        if node.error:
            lines.append(f"{more}✗ {node.error}")
            continue
        if node.summary is not None:
            stats = node.summary.stats_text()
            lines.append(f"{more}{node.summary.shape_text()}" + (f"  {stats}" if stats else ""))
            if node.summary.preview:
                lines.append(f"{more}{node.summary.preview}")
        if node.check is not None:
            lines.append(f"{more}{check_text(node.check)}")
    if explanation.check is not None:
        lines.append(check_text(explanation.check))
    if explanation.error:
        lines.append(f"error: {explanation.error}")
    return "\n".join(lines) + "\n"


def node_title(node: Any) -> str:
    text = " ".join(node.text.split())
    if len(text) > TEXT_WIDTH:
        text = text[: TEXT_WIDTH - 1] + "…"
    if node.kind == "step":
        return f"{node.label} = {text}"
    if node.kind == "inlined":
        return f"{node.label} = {text}   (its cell, shown inline)"
    if node.kind == "cell":
        return f"{text}   (cell)"
    return text


def check_text(check: Any) -> str:
    if check.equal:
        diff = f" (max |diff| {check.max_diff:.2g})" if check.max_diff else ""
        return f"✓ equals {check.what}{diff}"
    why = f": {check.note}" if check.note else ""
    diff = f" (max |diff| {check.max_diff:.2g})" if check.max_diff else ""
    return f"✗ differs from {check.what}{diff}{why}"
