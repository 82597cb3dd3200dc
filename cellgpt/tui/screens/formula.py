"""The formula editor: the one-line editor plus completion of cell and function names (Tab
takes the highlighted one, ↑ ↓ choose), the function reference (F1), and the cell's original
formula when it has been edited (Ctrl+O puts it back in the editor)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from cellgpt.tui.completion import (
    Completion,
    FunctionEntry,
    complete,
    function_entries,
    word_before,
)
from cellgpt.tui.screens.edit import Apply, EditScreen
from cellgpt.tui.screens.functions import FunctionsScreen

_KIND_STYLE = {"function": "cyan", "cell": "bold", "constant": "green"}


class FormulaScreen(EditScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        *EditScreen.BINDINGS,
        Binding("tab", "complete", "Complete", priority=True, show=False),
        Binding("down", "choose(1)", "Next completion", show=False),
        Binding("up", "choose(-1)", "Previous completion", show=False),
        Binding("f1", "reference", "Functions"),
        Binding("ctrl+o", "original", "Original", show=False),
    ]
    DEFAULT_CSS = """
    #edit-completions { height: auto; max-height: 9; border: none; padding: 0; }
    #edit-original { color: $text-muted; }
    """

    def __init__(
        self,
        title: str,
        initial: str,
        apply: Apply,
        *,
        hint: str = "",
        names: Iterable[str] = (),
        library: Any = None,
        original: str | None = None,
        functions: list[FunctionEntry] | None = None,
    ) -> None:
        keys = "Tab completes │ F1 function reference"
        if original is not None:
            keys += " │ Ctrl+O original"
        super().__init__(title, initial, apply, hint=f"{hint}\n{keys}" if hint else keys)
        self._names = list(names)
        # `functions`: the workbook's function cells and the library (all_function_entries)
        self._functions = functions if functions is not None else function_entries(library)
        self._constants = list(getattr(library, "constants", {}) or {})
        self._original = original
        self._choices: list[Completion] = []

    def above(self) -> ComposeResult:
        if self._original is not None:
            yield Static(
                Text.assemble(("original  ", "dim"), (self._original, "italic")),
                id="edit-original",
            )

    def below(self) -> ComposeResult:
        yield OptionList(id="edit-completions")

    def on_mount(self) -> None:
        super().on_mount()
        self._refresh_choices()

    @property
    def input(self) -> Input:
        return self.query_one("#edit-input", Input)

    def on_input_changed(self, event: Input.Changed) -> None:
        super().on_input_changed(event)
        self._refresh_choices()

    def _refresh_choices(self) -> None:
        field = self.input
        _, word = word_before(field.value, field.cursor_position)
        self._choices = complete(word, self._names, self._functions, self._constants)
        listing = self.query_one("#edit-completions", OptionList)
        listing.set_options(
            Option(
                Text.assemble(
                    (c.text, _KIND_STYLE.get(c.kind, "")), (f"  {c.kind} {c.detail}", "dim")
                )
            )
            for c in self._choices
        )
        listing.display = bool(self._choices)
        if self._choices:
            listing.highlighted = 0

    def action_choose(self, delta: int) -> None:
        listing = self.query_one("#edit-completions", OptionList)
        if self._choices:
            current = listing.highlighted or 0
            listing.highlighted = (current + delta) % len(self._choices)

    def action_complete(self) -> None:
        if not self._choices:
            return
        index = self.query_one("#edit-completions", OptionList).highlighted or 0
        choice = self._choices[index]
        self._insert(choice.text + ("(" if choice.kind == "function" else ""))

    def _insert(self, name: str) -> None:
        """Replace the name being typed at the cursor with `name`."""
        field = self.input
        start, _ = word_before(field.value, field.cursor_position)
        value = field.value
        field.value = value[:start] + name + value[field.cursor_position :]
        field.cursor_position = start + len(name)
        field.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.query_one("#edit-completions", OptionList).highlighted = event.option_index
        self.action_complete()

    def action_reference(self) -> None:
        field = self.input
        _, word = word_before(field.value, field.cursor_position)

        def chosen(name: str | None) -> None:
            if name:
                self._insert(name + "(")

        self.app.push_screen(FunctionsScreen(self._functions, word), chosen)

    def action_original(self) -> None:
        if self._original is not None:
            self.input.value = self._original
            self.input.cursor_position = len(self._original)
