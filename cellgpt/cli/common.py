"""What every command that opens a workbook shares: its arguments and one opener, so that
`run`, `cell`, `tui` and `export` resolve workbooks and models the same way."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Literal

from cellgpt.cli import UserError
from cellgpt.gpt2 import cells
from cellgpt.locations import DEFAULT_WORKBOOK, resolve_workbook

# When a command takes a prompt: always (`run`); optional, the workbook keeping its own
# (`tui`, `export`); or exactly when the workbook has a prompt cell (`cell`: gpt2 needs one,
# word_analogy has none).
PromptRule = Literal["required", "optional", "if_read"]


def model_args(parser: argparse.ArgumentParser, *, prompt: PromptRule = "required") -> None:
    """The arguments every command that opens a workbook shares."""
    if prompt == "required":
        parser.add_argument("prompt", help="the text to run")
    elif prompt == "optional":
        parser.add_argument(
            "prompt", nargs="?", help="the text to run (default: the workbook's prompt)"
        )
    else:
        parser.add_argument(
            "prompt",
            nargs="?",
            help="the text to run, for a workbook with a prompt cell (gpt2 has one, "
            "word_analogy has none)",
        )
    parser.set_defaults(prompt_rule=prompt)
    parser.add_argument(
        "--model", default=None, help="model name or weights folder (default: gpt2-mini)"
    )
    parser.add_argument(
        "--workbook",
        default=DEFAULT_WORKBOOK,
        help="workbook name (gpt2, tokenizer, word_analogy, ...) or file (default: gpt2)",
    )
    parser.add_argument(
        "--truncate",
        choices=["none", "left"],
        default="none",
        help="'left' drops the oldest tokens of a prompt longer than the context",
    )


def chosen_model(args: argparse.Namespace) -> str | None:
    """--model, or the bundled default for the GPT-2 workbook; checked to exist (UserError
    says how to get one). None: the workbook keeps its own `model` input, if any."""
    from cellgpt.locations import DEFAULT_MODEL, NotFoundError, resolve_model

    model = args.model
    if model is None and workbook_path(args) == resolve_workbook(DEFAULT_WORKBOOK):
        model = DEFAULT_MODEL
    if model is not None:
        try:
            resolve_model(model)
        except NotFoundError as exc:
            raise UserError(str(exc)) from None
    return model


def workbook_path(args: argparse.Namespace) -> Path:
    """--workbook as a file: a path, or a name on the workbook search path."""
    from cellgpt.locations import NotFoundError

    try:
        return resolve_workbook(args.workbook)
    except NotFoundError as exc:
        raise UserError(str(exc)) from None


def open_workbook(args: argparse.Namespace, **inputs: Any) -> Any:
    """Load the workbook, setting the model and the prompt when given; user mistakes become
    UserError. Other workbooks (e.g. the tokenizer workbench) keep their own inputs."""
    import cellgpt
    from cellgpt.engine import EngineError

    model = chosen_model(args)
    inputs = {**({cells.MODEL: model} if model is not None else {}), **inputs}
    path = workbook_path(args)  # an unknown name is a UserError before anything loads
    try:
        wb = cellgpt.open(args.workbook, **inputs)  # as given: a name or a path
        _give_prompt(wb, args, path.stem)
    except EngineError as exc:
        raise UserError(str(exc)) from None
    if args.truncate == "left" and cells.PROMPT_IDS in wb:
        truncate_left(wb)
    return wb


def _give_prompt(wb: Any, args: argparse.Namespace, workbook: str) -> None:
    """Set the prompt cell to the PROMPT argument; whether one must be given depends on the
    command (see PromptRule) and on whether the workbook has a prompt cell at all."""
    has_prompt = cells.PROMPT in wb
    if args.prompt is None:
        if has_prompt and getattr(args, "prompt_rule", "required") == "if_read":
            raise UserError(
                f"the {workbook} workbook runs on a prompt: give the text after the cell "
                f'name, e.g. cellgpt cell {getattr(args, "name", "NAME")} "Mike is quick."'
            )
        return
    if not has_prompt:
        raise UserError(f"the {workbook} workbook has no prompt cell: leave out {args.prompt!r}")
    wb.set(cells.PROMPT, args.prompt)


def truncate_left(wb: Any) -> None:
    """Keep the last n_ctx tokens by feeding the kept ids in as the prompt's ids."""
    n_ctx = int(get_cell(wb, cells.CONFIG)["n_ctx"])
    ids = list(get_cell(wb, cells.PROMPT_IDS))
    if len(ids) > n_ctx:
        wb.pin(cells.PROMPT_IDS, ids[-n_ctx:])


def get_cell(wb: Any, name: str) -> Any:
    """wb[name], with a cell error or an unknown name as a UserError."""
    from cellgpt.engine import CellError

    try:
        return wb[name]
    except CellError as exc:
        raise UserError(str(exc)) from None
    except KeyError as exc:
        raise UserError(str(exc.args[0])) from None
