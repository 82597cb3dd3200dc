"""What every command that opens a workbook shares: its arguments and one opener, so that
`run`, `cell`, `cells`, `tui` and `export` resolve workbooks and models the same way."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Literal

from cellgpt.cli import UserError
from cellgpt.cli.inputs import apply_inputs, parse_set
from cellgpt.gpt2 import cells
from cellgpt.locations import DEFAULT_WORKBOOK, resolve_workbook

# When a command takes a prompt: when the workbook has a prompt cell (`run`); optional, the
# workbook keeping its own (`tui`, `export`); or when the cell asked for reads the prompt
# (`cell`: gpt2's logits do, its config and word_analogy's cells do not).
PromptRule = Literal["required", "optional", "if_read"]


def model_args(parser: argparse.ArgumentParser, *, prompt: PromptRule = "required") -> None:
    """The arguments every command that opens a workbook shares."""
    needed = {
        "required": "the text to run (for a workbook with a prompt cell, as gpt2 has)",
        "optional": "the text to run (default: the workbook's prompt)",
        "if_read": "the text to run, when the cell reads the prompt (gpt2's logits do; "
        "word_analogy has no prompt)",
    }[prompt]
    parser.add_argument("prompt", nargs="?", help=needed + "; text starting with '-' after --")
    parser.set_defaults(prompt_rule=prompt)
    workbook_args(parser)
    parser.add_argument(
        "--truncate",
        choices=["none", "left"],
        default="none",
        help="'left' drops the oldest tokens of a prompt longer than the context",
    )


def workbook_args(parser: argparse.ArgumentParser) -> None:
    """--model, --workbook and --set: which workbook, on which weights, with which inputs."""
    parser.add_argument(
        "--model", default=None, help="model name or weights folder (default: gpt2-mini)"
    )
    parser.add_argument(
        "--workbook",
        default=DEFAULT_WORKBOOK,
        help="workbook name (gpt2, tokenizer, word_analogy, embeddings, ...) or file "
        "(default: gpt2)",
    )
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        type=parse_set,
        default=[],
        metavar="NAME=VALUE",
        help="set an input cell, repeatable: --set show_k=20, --set a=' father' (a Python "
        "literal, else the text as written)",
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


def load_weights_with_progress(args: argparse.Namespace) -> None:
    """Load the chosen model's weights before the workbook does, with progress on stderr
    when it takes a while (the first load of real GPT-2 parses 1.5 GB of CSV into the
    binary cache); the workbook then finds them loaded. Errors are left to the workbook."""
    from cellgpt.cli.progress import Progress
    from cellgpt.locations import resolve_model
    from cellgpt.weights.errors import ParamsError
    from cellgpt.weights.models import load_model_params

    model = chosen_model(args)
    if model is None or _csv_bytes(resolve_model(model)) < SLOW_LOAD_BYTES:
        return
    bar = Progress(f"loading {model}", delay=SLOW_LOAD_DELAY)
    try:
        load_model_params(model, progress=bar)
    except (ParamsError, LookupError, OSError, ValueError):
        pass  # the workbook's weights cell reports it, naming the cell
    finally:
        bar.close()


SLOW_LOAD_BYTES = 100_000_000  # of CSV: a smaller model loads in about a second at most
SLOW_LOAD_DELAY = 1.0  # seconds: a load from the binary cache ends before and stays silent


def _csv_bytes(folder: Path) -> int:
    try:
        return sum(p.stat().st_size for p in folder.glob("*.csv"))
    except OSError:
        return 0


def workbook_path(args: argparse.Namespace) -> Path:
    """--workbook as a file: a path, or a name on the workbook search path."""
    from cellgpt.locations import NotFoundError

    try:
        return resolve_workbook(args.workbook)
    except NotFoundError as exc:
        raise UserError(str(exc)) from None


def open_workbook(
    args: argparse.Namespace,
    *,
    cell: str | None = None,
    defaults: dict[str, Any] | None = None,
    progress: bool = True,
) -> Any:
    """Load the workbook with the model, `defaults` (set where the workbook has such an
    input cell), --set and the prompt; user mistakes become UserError. `cell`: the cell the
    command will read, for the `if_read` prompt rule. `progress`: report a slow weights
    load on stderr (not under the TUI, which owns the terminal)."""
    import cellgpt
    from cellgpt.engine import EngineError

    model = chosen_model(args)
    path = workbook_path(args)  # an unknown name is a UserError before anything loads
    if progress:
        load_weights_with_progress(args)
    try:
        wb = cellgpt.open(args.workbook, **({cells.MODEL: model} if model is not None else {}))
        present = {k: v for k, v in (defaults or {}).items() if k in wb}
        apply_inputs(wb, [*present.items(), *getattr(args, "sets", [])])
        _give_prompt(wb, args, path.stem, cell)
    except EngineError as exc:
        raise UserError(str(exc)) from None
    if getattr(args, "truncate", "none") == "left" and cells.PROMPT_IDS in wb:
        truncate_left(wb)
    return wb


def _give_prompt(wb: Any, args: argparse.Namespace, workbook: str, cell: str | None) -> None:
    """Set the prompt cell to the PROMPT argument; whether one must be given depends on the
    command (see PromptRule) and on whether the workbook has a prompt cell at all."""
    has_prompt = cells.PROMPT in wb
    if args.prompt is None:
        if has_prompt and _needs_prompt(wb, args.prompt_rule, cell):
            example = f"cellgpt {args.command} {cell} " if cell else f"cellgpt {args.command} "
            raise UserError(
                f"the {workbook} workbook runs on a prompt: give the text"
                f'{" after the cell name" if cell else ""}, e.g. {example}"Mike is quick."'
            )
        return
    if not has_prompt:
        raise UserError(f"the {workbook} workbook has no prompt cell: leave out {args.prompt!r}")
    wb.set(cells.PROMPT, args.prompt)


def _needs_prompt(wb: Any, rule: PromptRule, cell: str | None) -> bool:
    if rule != "if_read":
        return rule == "required"
    if cell is None or cell not in wb:
        return False  # an unknown cell gets its own message
    name = wb.resolve(cell)
    return name == cells.PROMPT or cells.PROMPT in wb.ancestors(name)


def check_prompt_length(wb: Any) -> None:
    """An empty prompt or one longer than the model's context, said before anything runs on
    it (the cells would only say it deep inside, and an export would carry the errors)."""
    if cells.PROMPT_IDS not in wb or cells.CONFIG not in wb:
        return
    n_ctx = int(get_cell(wb, cells.CONFIG)["n_ctx"])
    n = len(get_cell(wb, cells.PROMPT_IDS))
    if n == 0:
        raise UserError("the prompt is empty: type at least one character")
    if n > n_ctx:
        raise UserError(
            f"the prompt has {n} tokens; this model reads at most {n_ctx} (n_ctx): "
            f"use --truncate left to keep the last {n_ctx}, or a shorter prompt"
        )


def truncate_left(wb: Any) -> None:
    """Keep the last n_ctx tokens by feeding the kept ids in as the prompt's ids."""
    n_ctx = int(get_cell(wb, cells.CONFIG)["n_ctx"])
    ids = list(get_cell(wb, cells.PROMPT_IDS))
    if len(ids) > n_ctx:
        wb.pin(cells.PROMPT_IDS, ids[-n_ctx:])


def get_cell(wb: Any, name: str) -> Any:
    """wb[name], with a cell error (said as its root cause) or an unknown name as a
    UserError."""
    from cellgpt.cli.cell_names import unknown_cell_message
    from cellgpt.cli.errors import explain
    from cellgpt.engine import CellError

    if name not in wb:
        raise UserError(unknown_cell_message(wb, name))
    try:
        return wb[name]
    except CellError as exc:
        raise UserError(explain(wb, exc)) from None
