"""What to say about a cell name the workbook does not have: the closest names ("did you
mean …") and, for a block cell past the last block (`h15.attn.pattern` on a 12-block model,
or its hook name `blocks.15.…`), the blocks that exist."""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Callable
from typing import Any

_NUMBER = re.compile(r"\d+")


def unknown_cell_message(wb: Any, name: str) -> str:
    """One line naming `name` and what the user probably meant."""
    message = f"no cell named {name!r}"
    if name in wb.functions():  # a function cell has no value of its own to show
        spec = wb.function(name)
        return f"{message}: {spec.signature()} is a function cell (`cellgpt cells {name}`)"
    blocks = block_range(wb, name)
    if blocks:
        return f"{message}: {blocks}"
    close = closest_cells(wb, name)
    if close:
        return f"{message}; did you mean {' or '.join(repr(c) for c in close)}?"
    return f"{message} (`cellgpt cells` lists them; names look like h3.attn.pattern)"


def closest_cells(wb: Any, name: str, n: int = 3) -> list[str]:
    """Up to n cell names or aliases that look like `name`."""
    known = [*wb.cells(), *wb.aliases()]
    return difflib.get_close_matches(name, known, n=n, cutoff=0.6)


def block_range(wb: Any, name: str, exists: Callable[[str], bool] | None = None) -> str | None:
    """'this model has 12 blocks, h0…h11' when `name` is a block cell (or alias) whose block
    number is out of range; None otherwise. `exists` says whether a name (or a wildcard
    pattern) finds anything: by default, whether the workbook has that cell."""
    exists = exists or (lambda n: n in wb)
    counts = [t.instances for t in wb.templates() if t.instances > 0]
    if not counts:
        return None
    for match in _NUMBER.finditer(name):
        if int(match.group()) < min(counts):
            continue
        start, end = match.span()
        first = f"{name[:start]}0{name[end:]}"  # the same cell in block 0
        if exists(first):
            n = _instances(wb, first, counts)
            head = name[:start]
            return f"this model has {n} blocks, {head}0…{head}{n - 1}"
    return None


def _instances(wb: Any, first: str, counts: list[int]) -> int:
    """How many blocks the template of cell `first` (in block 0) has."""
    resolved = wb.resolve(first) if first in wb else first
    for template in wb.templates():
        if resolved.startswith(f"{template.prefix}0.") and template.instances > 0:
            return int(template.instances)
    return min(counts)


def no_match_message(wb: Any, pattern: str) -> str:
    """For a wildcard pattern (`cells PATTERN`, `export --cells`) that matches no cell."""
    names = [*wb.cells(), *wb.aliases()]
    blocks = block_range(wb, pattern, lambda p: any(fnmatch.fnmatchcase(n, p) for n in names))
    if blocks:
        return f"no cell matches {pattern!r}: {blocks}"
    close = closest_cells(wb, pattern)
    hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
    return f"no cell matches {pattern!r}{hint}"


def unmatched(wb: Any, patterns: list[str]) -> list[str]:
    """The patterns that match no cell name or alias."""
    names = [*wb.cells(), *wb.aliases()]
    return [p for p in patterns if not any(fnmatch.fnmatchcase(n, p) for n in names)]
