"""`cellgpt cell NAME [PROMPT]`: any cell's value as a table, CSV, JSON or .npy."""

from __future__ import annotations

import argparse
import sys
from typing import IO, Any

import numpy as np

from cellgpt.cli import UserError
from cellgpt.cli.common import check_prompt_length, model_args, open_workbook
from cellgpt.cli.common import get_cell as _get
from cellgpt.cli.output import check_target, files_read, write_atomic
from cellgpt.cli.render import check_or_user_error, render


def register(subparsers: argparse._SubParsersAction) -> None:
    cell = subparsers.add_parser("cell", help="print the value of any cell")
    cell.add_argument("name", help="cell name, step alias or hook name (e.g. h3.attn.pattern)")
    model_args(cell, prompt="if_read")
    cell.add_argument("--format", choices=["table", "csv", "json", "npy"], default="table")
    cell.add_argument("--out", help="write to this file instead of standard output")
    cell.set_defaults(func=cmd_cell)


def cmd_cell(args: argparse.Namespace) -> int:
    from cellgpt.cli.cell_names import unknown_cell_message

    wb = open_workbook(args, cell=args.name)
    if args.name not in wb:
        if args.prompt is not None and args.prompt in wb:  # `cell PROMPT NAME`: swapped
            raise UserError(
                f"no cell named {args.name!r}; the cell name comes first: "
                f"cellgpt cell {args.prompt} {args.name!r}"
            )
        raise UserError(unknown_cell_message(wb, args.name))
    if args.prompt is not None:
        check_prompt_length(wb)
    protected = files_read(args, wb)
    if args.out:
        check_target(args.out, protected)  # before computing: a bad path fails fast
    elif args.format == "npy":
        raise UserError("--format npy needs --out FILE")
    value = _get(wb, args.name)
    if args.format == "npy":
        write_atomic(args.out, lambda f: _save_npy(f, args.name, value), protected)
        return 0
    text = render(wb, args.name, value, args.format)
    text += "" if text.endswith("\n") else "\n"
    if args.out:
        write_atomic(args.out, lambda f: f.write(text.encode("utf-8")), protected)
    else:
        sys.stdout.write(text)
    return 0


def _save_npy(handle: IO[bytes], name: str, value: Any) -> None:
    """np.save through a handle: the file is exactly --out (np.save on a name adds .npy)."""
    if not isinstance(value, np.ndarray):
        check_or_user_error(name, value, "save as .npy")
        value = np.asarray(value)
    if value.dtype == object:
        raise UserError(
            f"{name}: not an array of numbers (it holds Python objects); try --format json"
        )
    np.save(handle, value, allow_pickle=False)
