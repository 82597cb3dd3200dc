"""Per-cell formula history for undo, and each cell's original formula (its block template's,
else the one in the workbook file as loaded, else the first one this session saw), shown next
to an edited formula and restored by 'revert'."""

from __future__ import annotations

from typing import Any


class FormulaHistory:
    def __init__(self) -> None:
        self._past: dict[str, list[str]] = {}
        self._first: dict[str, str] = {}  # the formula a cell had before its first edit

    def record(self, name: str, previous: str) -> None:
        """Remember `previous` before the cell's formula changes."""
        self._first.setdefault(name, previous)
        past = self._past.setdefault(name, [])
        if not past or past[-1] != previous:
            past.append(previous)

    def can_undo(self, name: str) -> bool:
        return bool(self._past.get(name))

    def pop(self, name: str) -> str | None:
        """The formula before the last edit, taken off the history (None: nothing to undo)."""
        past = self._past.get(name)
        return past.pop() if past else None

    def push_back(self, name: str, formula: str) -> None:
        """Put a popped formula back (the undo it was for was refused)."""
        self._past.setdefault(name, []).append(formula)

    def depth(self, name: str) -> int:
        return len(self._past.get(name, ()))

    def original(self, wb: Any, name: str) -> str | None:
        """The formula to revert to: the block template's, else the file's, else the first."""
        cell = wb.cell(name)
        if cell.template_source is not None:
            return str(cell.template_source)
        document = getattr(wb, "document", None)
        entry = document.parsed.entries.get(name) if document is not None else None
        if entry is not None and entry.formula is not None:
            return str(entry.formula)
        return self._first.get(name)
