"""A one-line editor in a modal: edit a formula or a file name. The `apply`
callback does the change and returns None, or a `Problem` which is shown inline (with the
faulty span underlined) while the modal stays open — so nothing is lost on a bad edit."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from cellgpt.engine import EngineError, FormulaError


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
        self._problem_text: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="edit-box"):
            yield Label(Text(self._title, style="bold"), id="edit-title")
            yield from self.above()
            yield Input(value=self._initial, id="edit-input", select_on_focus=False)
            yield from self.below()
            yield Static(id="edit-error")
            yield Static(Text(self._hint or "Enter applies │ Esc cancels", style="dim"))

    def above(self) -> ComposeResult:
        """Widgets between the title and the input (for subclasses)."""
        yield from ()

    def below(self) -> ComposeResult:
        """Widgets between the input and the error line (for subclasses)."""
        yield from ()

    def on_mount(self) -> None:
        self.query_one("#edit-error", Static).display = False
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.submit(event.value)

    def submit(self, text: str) -> None:
        problem = self._apply(text)
        if problem is None:
            self.dismiss(text)
            return
        self.show_problem(text, problem)

    def on_input_changed(self, event: Input.Changed) -> None:
        # The message was about the text as it was: once that changes it is stale.
        if event.input.id == "edit-input" and event.value != self._problem_text:
            self.query_one("#edit-error", Static).display = False

    def show_problem(self, text: str, problem: Problem) -> None:
        self._problem_text = text
        error = self.query_one("#edit-error", Static)
        shown = Text(text or " ")
        if problem.span is not None:
            start, end = problem.span
            shown.stylize("underline bold red", max(0, start), max(end, start + 1))
        error.update(Text.assemble(("✗ ", "bold red"), (problem.message, "red"), "\n", shown))
        error.display = True

    def action_cancel(self) -> None:
        self.dismiss(None)


def problem_from(exc: Exception, text: str = "") -> Problem:
    """A refused edit as a message, with the span of the formula at fault: the parser's, or
    for an unknown name the place that name is written."""
    if isinstance(exc, FormulaError):
        return Problem(exc.message, exc.span)
    if isinstance(exc, EngineError):
        found = re.search(r"unknown (?:name|function) '([^']+)'", str(exc))
        start = text.find(found.group(1)) if found else -1
        span = (start, start + len(found.group(1))) if found and start >= 0 else None
        return Problem(str(exc), span)
    return Problem(f"{type(exc).__name__}: {exc}")
