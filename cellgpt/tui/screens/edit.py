"""A one-line editor in a modal: edit a formula, the prompt or a file name. The `apply`
callback does the change and returns None, or a `Problem` which is shown inline (with the
faulty span underlined) while the modal stays open — so nothing is lost on a bad edit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static


@dataclass(frozen=True)
class Problem:
    message: str
    span: tuple[int, int] | None = None  # offsets into the edited text


Apply = Callable[[str], Problem | None]


class EditScreen(ModalScreen[str | None]):
    """Dismisses with the accepted text, or None when cancelled with Escape."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, initial: str, apply: Apply, *, hint: str = "") -> None:
        super().__init__()
        self._title, self._initial, self._apply, self._hint = title, initial, apply, hint

    def compose(self) -> ComposeResult:
        with Vertical(id="edit-box"):
            yield Label(Text(self._title, style="bold"), id="edit-title")
            yield Input(value=self._initial, id="edit-input", select_on_focus=False)
            yield Static(id="edit-error")
            yield Static(Text(self._hint or "Enter applies · Escape cancels", style="dim"))

    def on_mount(self) -> None:
        self.query_one("#edit-error", Static).display = False
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value
        problem = self._apply(text)
        if problem is None:
            self.dismiss(text)
            return
        error = self.query_one("#edit-error", Static)
        shown = Text(text or " ")
        if problem.span is not None:
            start, end = problem.span
            shown.stylize("underline bold red", max(0, start), max(end, start + 1))
        error.update(Text.assemble(("✗ ", "bold red"), (problem.message, "red"), "\n", shown))
        error.display = True

    def action_cancel(self) -> None:
        self.dismiss(None)
