"""`cellgpt tui [PROMPT]`: browse every stage of the model in a terminal UI, edit formulas,
re-run single cells. The workbook loads in a worker thread, so the screen opens at once."""

from __future__ import annotations

import argparse

from cellgpt.cli.common import chosen_model, model_args, open_workbook


def register(subparsers: argparse._SubParsersAction) -> None:
    tui = subparsers.add_parser(
        "tui", help="browse tokenize → embed → blocks → logits; edit formulas, re-run cells"
    )
    model_args(tui, prompt="optional")
    tui.add_argument("--cell", help="the cell to show first (e.g. h3.attn.pattern)")
    tui.add_argument("--no-run", action="store_true", help="do not run the model on start")
    tui.set_defaults(func=cmd_tui)


def cmd_tui(args: argparse.Namespace) -> int:
    from cellgpt.tui.app import CellGptApp

    chosen_model(args)  # a missing model is reported before the screen opens
    app = CellGptApp(
        loader=lambda: open_workbook(args, progress=False),  # in a worker: the screen opens at once
        autorun=not args.no_run,
        start_cell=args.cell,
        freeze_gc=True,  # this process is the app's: keep GC pauses off keypresses
    )
    app.run()
    return 0
