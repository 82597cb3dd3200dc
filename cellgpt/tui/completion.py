"""What the formula editor offers: completions of the cell or function name being typed, and
the function reference (every library function and the workbook's function cells, with their
signatures and one-line docs)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*$")
MAX_COMPLETIONS = 8


@dataclass(frozen=True)
class FunctionEntry:
    name: str
    signature: str  # "(x, axis=-1)"; "(…)" when Python cannot tell
    doc: str  # one line
    cell: bool = False  # a function cell of the workbook (def ...), not a library function

    @property
    def call(self) -> str:
        return f"{self.name}{self.signature}"


def signature_of(impl: Any) -> str:
    try:
        return str(inspect.signature(impl))
    except (TypeError, ValueError):  # a builtin or C function without a signature
        return "(…)"


def function_entries(library: Any) -> list[FunctionEntry]:
    """The library's functions, by name."""
    functions = getattr(library, "functions", {}) or {}
    return [
        FunctionEntry(name, signature_of(fn.impl), fn.doc or "")
        for name, fn in sorted(functions.items())
    ]


def workbook_function_entries(wb: Any) -> list[FunctionEntry]:
    """The workbook's function cells, in definition order."""
    entries = []
    for name in wb.functions() if wb is not None else []:
        spec = wb.function(name)
        doc = spec.doc.strip().splitlines()[0] if spec.doc.strip() else "function cell"
        entries.append(FunctionEntry(name, spec.signature()[len(name) :], doc, cell=True))
    return entries


def all_function_entries(wb: Any) -> list[FunctionEntry]:
    """The workbook's function cells first, then the library's functions."""
    return workbook_function_entries(wb) + function_entries(wb.library)


def word_before(text: str, cursor: int) -> tuple[int, str]:
    """The (dotted) name being typed just before `cursor`: (its start, its text)."""
    found = _WORD.search(text[:cursor])
    if found is None or (found.start() > 0 and text[found.start() - 1].isdigit()):
        return cursor, ""
    return found.start(), found.group()


@dataclass(frozen=True)
class Completion:
    text: str  # what replaces the word
    kind: str  # "cell", "function" or "constant"
    detail: str = ""  # a function's signature and doc


def complete(
    prefix: str,
    cells: Iterable[str],
    functions: list[FunctionEntry],
    constants: Iterable[str] = (),
    limit: int = MAX_COMPLETIONS,
) -> list[Completion]:
    """Names starting with `prefix` (functions first, then cells), then names containing it."""
    if not prefix:
        return []
    pool = [Completion(f.name, "function", f"{f.signature}  {f.doc}") for f in functions]
    pool += [Completion(c, "constant") for c in sorted(constants)]
    pool += [Completion(c, "cell") for c in sorted(cells)]
    starts = [c for c in pool if c.text.startswith(prefix) and c.text != prefix]
    inside = [c for c in pool if prefix in c.text and not c.text.startswith(prefix)]
    return (starts + inside)[:limit]
