"""The `/` screen: type to find a cell (fuzzy), a token of the prompt, a vocabulary entry or
a row of the table on screen; Enter jumps there."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from cellgpt.tui.search import Hit

Search = Callable[[str], list[Hit]]
_KIND_STYLE = {"cell": "bold", "token": "green", "vocab": "cyan", "row": "yellow"}


class FindScreen(ModalScreen[Hit | None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("down", "move(1)", "Next", show=False),
        Binding("up", "move(-1)", "Previous", show=False),
    ]

    def __init__(self, search: Search, initial: str = "") -> None:
        super().__init__()
        self._search = search
        self._initial = initial
        self._hits: list[Hit] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="find-box"):
            yield Label(Text("find a cell, a prompt token or a vocabulary token", style="bold"))
            yield Input(
                value=self._initial, placeholder="e.g. h3 pattern, logits, quick", id="find-input"
            )
            yield OptionList(id="find-results")

    def on_mount(self) -> None:
        self.query_one(Input).focus()
        self._update(self._initial)

    def on_input_changed(self, event: Input.Changed) -> None:
        self._update(event.value)

    def _update(self, query: str) -> None:
        self._hits = self._search(query)
        results = self.query_one(OptionList)
        options = [
            Option(Text.assemble((f"{h.kind:<6}", "dim"), (h.label, _KIND_STYLE[h.kind])), str(i))
            for i, h in enumerate(self._hits)
        ]
        results.set_options(options or [Option(Text("no match", style="dim"), disabled=True)])
        if options:
            results.highlighted = 0

    def action_move(self, delta: int) -> None:
        results = self.query_one(OptionList)
        if self._hits:
            current = results.highlighted or 0
            results.highlighted = max(0, min(len(self._hits) - 1, current + delta))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        index = self.query_one(OptionList).highlighted
        if self._hits and index is not None:
            self.dismiss(self._hits[index])

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id is not None and self._hits:
            self.dismiss(self._hits[int(event.option.id)])

    def action_cancel(self) -> None:
        self.dismiss(None)
