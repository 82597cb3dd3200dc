"""`cellgpt tui [PROMPT]`: browse every stage of the model in a terminal UI, edit formulas,
re-run single cells. The workbook loads in a worker thread, so the screen opens at once."""

from __future__ import annotations

import argparse
from typing import Any

from cellgpt.cli import UserError
from cellgpt.cli.run_cmd import DEFAULT_WORKBOOK, _model_args


def register(subparsers: argparse._SubParsersAction) -> None:
    tui = subparsers.add_parser(
        "tui", help="browse tokenize → embed → blocks → logits; edit formulas, re-run cells"
    )
    _model_args(tui)
    for action in tui._actions:  # the prompt is optional: the workbook has its own
        if action.dest == "prompt":
            action.nargs = "?"
            action.default = None
            action.help = "the text to run (default: the workbook's prompt)"
    tui.add_argument("--cell", help="the cell to show first (e.g. h3.attn.pattern)")
    tui.add_argument("--no-run", action="store_true", help="do not run the model on start")
    tui.set_defaults(func=cmd_tui)


def cmd_tui(args: argparse.Namespace) -> int:
    from cellgpt.gpt2.models import DEFAULT_MODEL, ModelNotFoundError, resolve_model
    from cellgpt.tui.app import CellGptApp

    try:  # a missing model is reported before the screen opens
        if args.model or args.workbook == str(DEFAULT_WORKBOOK):
            resolve_model(args.model or DEFAULT_MODEL)
    except ModelNotFoundError as exc:
        raise UserError(str(exc)) from None
    app = CellGptApp(
        loader=lambda: _load(args),
        autorun=not args.no_run,
        start_cell=args.cell,
        freeze_gc=True,  # this process is the app's: keep GC pauses off keypresses
    )
    app.run()
    return 0


def _load(args: argparse.Namespace) -> Any:
    """The workbook with the inputs given on the command line; a workbook without a `model`
    or `prompt` input (e.g. the tokenizer workbench) opens as it is."""
    import cellgpt
    from cellgpt.cli.run_cmd import _truncate_left
    from cellgpt.engine import EngineError

    try:
        wb = cellgpt.open(args.workbook)
        for name, value in (("model", args.model), ("prompt", args.prompt)):
            if value is None:
                continue
            if name not in wb:
                raise UserError(f"{args.workbook} has no {name!r} input to set")
            wb.set(name, value)
        if args.truncate == "left" and "prompt_ids" in wb:
            _truncate_left(wb)
    except EngineError as exc:
        raise UserError(str(exc)) from None
    return wb
