"""The argument parser every `cellgpt` command uses. Two things plain argparse gets wrong for
a command line whose main argument is free text:

- positionals after options: `cellgpt export OUT --mode formulas "PROMPT"` (argparse fills the
  optional PROMPT together with OUT, before it has seen the option, and then refuses the
  text as unrecognised), so each command's own parser reads its arguments intermixed;
- text that starts with `-`: everything after `--` is an argument, wherever `--` stands
  (Python 3.11's intermixed parsing would read `-x` after `--` as an option again)."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Sequence
from pathlib import PurePath
from typing import Any, NoReturn

# Marks an argument that followed `--`: no option starts with it, and no user text does.
_LITERAL = "\x00cellgpt-literal\x00"


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose leaf commands read positionals and options in any order."""

    _mixing = False
    _command = "cellgpt COMMAND"  # the last command parsed, for the hint in error()

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        # Command groups (with sub-commands) parse as usual: argparse cannot intermix them.
        if self._mixing or self._subparsers is not None:
            return super().parse_known_args(args, namespace)
        Parser._command = self.prog
        items = list(args) if args is not None else []
        if "--" in items:
            cut = items.index("--")
            # `--` stays: it ends an option's list (`--cells a b -- TEXT`).
            items = [*items[: cut + 1], *(_LITERAL + a for a in items[cut + 1 :])]
        self._mixing = True
        try:
            parsed, extras = self.parse_known_intermixed_args(items, namespace)
        finally:
            self._mixing = False
        for key, value in vars(parsed).items():
            setattr(parsed, key, _unmark(value))
        return parsed, [_unmark(e) for e in extras]

    def error(self, message: str) -> NoReturn:
        # A prompt such as "-x" reads as an unknown option: say how to pass it.
        found = re.search(r"unrecognized arguments: (-\S*)", message)
        if found and not found.group(1).startswith("--"):
            message += f"\n(text that starts with '-' goes after `--`: {Parser._command} -- {found.group(1)!r})"
        super().error(message)


def _unmark(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_LITERAL):
        return value[len(_LITERAL) :]
    if isinstance(value, PurePath) and os.fspath(value).startswith(_LITERAL):
        return type(value)(os.fspath(value)[len(_LITERAL) :])
    if isinstance(value, list):
        return [_unmark(v) for v in value]
    return value
