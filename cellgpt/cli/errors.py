"""A cell error in the user's words: the cell the command read may only be "blocked by" the
one that failed, so the message is the root cause, with the failing cell in parentheses."""

from __future__ import annotations

from typing import Any


def explain(wb: Any, exc: Any) -> str:
    """The message of the cell at the root of a CellError, e.g. 'the prompt is empty: type
    at least one character (in cell wpe_rows)'."""
    name, info = exc.name, exc.info
    seen = {name}
    while getattr(info, "kind", None) == "blocked" and info.blocked_by not in (None, *seen):
        name = info.blocked_by
        seen.add(name)
        root = wb.state(name).error
        if root is None:
            break
        info = root
    return f"{info.message} (in cell {name})"
