"""Pick how a table's rows are sorted: a column high → low or low → high, or the value's own
order. Dismisses with (column, descending), None (own order), or False (Esc)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

Choice = tuple[int, bool] | bool | None


class SortScreen(ModalScreen[Choice]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    SortScreen { align: center middle; }
    #sort-box {
        width: 60; height: auto; max-height: 80%; padding: 0 1;
        border: thick $primary; background: $surface;
    }
    #sort-options { height: auto; max-height: 20; }
    """

    def __init__(self, columns: Sequence[str], current: tuple[int, bool] | None) -> None:
        super().__init__()
        self._choices: list[tuple[int, bool] | None] = [None]
        for c in range(len(columns)):
            self._choices += [(c, True), (c, False)]
        self._columns, self._current = list(columns), current

    def _label(self, choice: tuple[int, bool] | None) -> Text:
        if choice is None:
            text = Text("the value's own order")
        else:
            col, descending = choice
            text = Text.assemble(
                ("by ", "dim"),
                (self._columns[col], "bold"),
                "  ",
                ("high → low" if descending else "low → high", "cyan"),
            )
        if choice == self._current:
            text.append("  (now)", style="dim")
        return text

    def compose(self) -> ComposeResult:
        with Vertical(id="sort-box"):
            yield Label(Text("sort the rows", style="bold"))
            yield OptionList(
                *[Option(self._label(c), str(i)) for i, c in enumerate(self._choices)],
                id="sort-options",
            )

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        options.focus()
        options.highlighted = (
            self._choices.index(self._current) if self._current in self._choices else 0
        )

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(self._choices[int(event.option.id or 0)])

    def action_cancel(self) -> None:
        self.dismiss(False)
