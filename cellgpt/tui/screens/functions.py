"""The function reference: the workbook's function cells and every library function, with
signature and one-line doc, filtered as you type; Enter returns the chosen name (the formula
editor inserts it)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from cellgpt.tui.completion import FunctionEntry


def entry_text(entry: FunctionEntry) -> Text:
    text = Text.assemble((entry.name, "bold cyan"), (entry.signature, "cyan"))
    if entry.cell:
        text.append("  ƒ function cell of this workbook", "magenta")
    return text.append_text(Text.assemble("\n  ", (entry.doc or "—", "dim")))


class FunctionsScreen(ModalScreen[str | None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Close"),
        Binding("down", "move(1)", "Next", show=False),
        Binding("up", "move(-1)", "Previous", show=False),
    ]
    DEFAULT_CSS = """
    FunctionsScreen { align: center middle; }
    #functions-box {
        width: 100%; max-width: 100; height: 90%; padding: 0 1;
        border: thick $primary; background: $surface;
    }
    #functions-list { height: 1fr; }
    """

    def __init__(self, entries: list[FunctionEntry], initial: str = "") -> None:
        super().__init__()
        self._entries = entries
        self._shown: list[FunctionEntry] = []
        self._initial = initial

    def compose(self) -> ComposeResult:
        with Vertical(id="functions-box"):
            yield Label(
                Text.assemble(
                    (self._title(), "bold"),
                    (f"  {len(self._entries)} │ type to filter │ Enter inserts │ Esc", "dim"),
                )
            )
            yield Input(value=self._initial, placeholder="e.g. softmax", id="functions-filter")
            yield OptionList(id="functions-list")

    def _title(self) -> str:
        cells = sum(e.cell for e in self._entries)
        return f"library functions and {cells} function cells" if cells else "library functions"

    def on_mount(self) -> None:
        self.query_one(Input).focus()
        self._filter(self._initial)

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._filter(event.value)

    def _filter(self, query: str) -> None:
        query = query.strip().lower()
        self._shown = [
            e for e in self._entries if query in e.name.lower() or query in e.doc.lower()
        ]
        self._shown.sort(key=lambda e: not e.name.lower().startswith(query))
        options = [Option(entry_text(e), str(i)) for i, e in enumerate(self._shown)]
        listing = self.query_one(OptionList)
        listing.set_options(options or [Option(Text("no function matches", "dim"), disabled=True)])
        if options:
            listing.highlighted = 0

    def action_move(self, delta: int) -> None:
        listing = self.query_one(OptionList)
        if self._shown:
            current = listing.highlighted or 0
            listing.highlighted = max(0, min(len(self._shown) - 1, current + delta))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        index = self.query_one(OptionList).highlighted
        if self._shown and index is not None:
            self.dismiss(self._shown[index].name)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id is not None and self._shown:
            self.dismiss(self._shown[int(event.option.id)].name)

    def action_cancel(self) -> None:
        self.dismiss(None)
