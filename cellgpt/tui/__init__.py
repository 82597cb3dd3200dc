"""The Textual TUI: browse every stage of the model, edit a formula, re-run one cell."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cellgpt.tui.app import CellGptApp

__all__ = ["CellGptApp"]


def __getattr__(name: str) -> object:
    # Imported lazily so `import cellgpt.tui` stays cheap for the CLI's --help.
    if name == "CellGptApp":
        from cellgpt.tui.app import CellGptApp

        return CellGptApp
    raise AttributeError(name)
