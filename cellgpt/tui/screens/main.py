"""The main screen: layout and keys. Keys live here (not on the app) so a modal on top never
triggers them; each key calls an `app.` action."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer

from cellgpt.tui.widgets.cell_tree import CellTree
from cellgpt.tui.widgets.details import DetailsPane
from cellgpt.tui.widgets.prompt_bar import PromptBar
from cellgpt.tui.widgets.topk import TopKPanel
from cellgpt.tui.widgets.value_pane import ValuePane


class MainScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("e", "app.edit_formula", "Edit"),
        Binding("r", "app.rerun", "Re-run"),
        Binding("R", "app.run_all", "Run stale"),
        Binding("P", "app.pin", "Pin"),
        Binding("p", "app.edit_prompt", "Prompt"),
        Binding("g", "app.generate", "Generate"),
        Binding("slash", "app.find", "Find"),
        Binding("s", "app.save", "Save"),
        Binding("S", "app.save_as", "Save as", show=False),
        Binding("x", "app.export", "Export"),
        Binding("left_square_bracket", "app.head(-1)", "Head-", show=False),
        Binding("right_square_bracket", "app.head(1)", "Head+", show=False),
        Binding("full_stop", "app.precision", "Precision", show=False),
        Binding("m", "app.compact", "Heatmap", show=False),
        Binding("escape", "app.go_back", "Back"),
        Binding("backspace", "app.go_back", "Back", show=False),
        Binding("q", "app.go_back", "Back", show=False),
        Binding("c", "app.cancel", "Cancel", show=False),
        Binding("question_mark", "app.help", "Help"),
    ]

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
