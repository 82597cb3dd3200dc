"""The `cellgpt` command line. Each sub-command group lives in its own module with a
`register(subparsers)` function that adds its parsers and sets `func` on them."""

from __future__ import annotations

import argparse
import importlib
import sys

# Sub-command modules, imported lazily so `cellgpt --help` stays fast.
COMMAND_MODULES = [
    "cellgpt.cli.run_cmd",
    "cellgpt.cli.cell_cmd",
    "cellgpt.cli.explain_cmd",
    "cellgpt.cli.cells_cmd",
    "cellgpt.cli.weights",
    "cellgpt.cli.tokenizer_cmd",
    "cellgpt.cli.tui_cmd",
    "cellgpt.cli.export_cmd",
]


class UserError(Exception):
    """A mistake in the user's input: printed as one clear line, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    from cellgpt import __version__
    from cellgpt.cli.parsing import Parser

    parser = Parser(
        prog="cellgpt",
        description="GPT-2 as a living spreadsheet: run a prompt, inspect any cell, browse "
        "every stage in a terminal UI, export to Excel, manage weights and tokenizers.",
    )
    parser.add_argument("--version", action="version", version=f"cellgpt {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"cellgpt: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cellgpt: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _closed_stdout()


def _closed_stdout() -> int:
    """The reader went away (`| head`): stop quietly. Python would still try to flush
    stdout at exit and print a traceback, so point it at /dev/null first."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141  # 128 + SIGPIPE, what a shell reports for a killed writer


if __name__ == "__main__":
    sys.exit(main())
