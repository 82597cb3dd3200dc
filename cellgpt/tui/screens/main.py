"""The main screen: layout and keys. Keys live here (not on the app) so a modal on top never
triggers them; each key calls an `app.` action (see `action_table.py`)."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer

from cellgpt.tui.action_table import bindings
from cellgpt.tui.widgets.cell_tree import CellTree
from cellgpt.tui.widgets.details import DetailsPane
from cellgpt.tui.widgets.prompt_bar import PromptBar
from cellgpt.tui.widgets.topk import TopKPanel
from cellgpt.tui.widgets.value_pane import ValuePane


class MainScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = bindings()

    def __init__(self, *, show_timings: bool = True) -> None:
        super().__init__()
        self._show_timings = show_timings

    def compose(self) -> ComposeResult:
        yield PromptBar(id="prompt-bar")
        with Horizontal(id="body"):
            yield CellTree(id="tree", show_timings=self._show_timings)
            yield ValuePane(id="value")
            with Vertical(id="right"):
                yield DetailsPane(id="details", show_timings=self._show_timings)
                yield TopKPanel(id="topk")
        yield Footer()
