"""The prompt editor: a multi-line text area (Enter starts a new line, as prompts may have
several), Ctrl+S applies, Esc cancels. A refused prompt is shown inline and nothing is lost."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static, TextArea

from cellgpt.tui.screens.edit import Apply


class PromptScreen(ModalScreen[str | None]):
    """Dismisses with the applied prompt, or None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "apply", "Apply", priority=True),
    ]
    DEFAULT_CSS = """
    PromptScreen { align: center middle; }
    #prompt-box {
        width: 100%; max-width: 100; height: auto; max-height: 90%; padding: 1 2;
        border: thick $primary; background: $surface;
    }
    #prompt-area { height: auto; min-height: 3; max-height: 16; }
    """

    def __init__(self, initial: str, apply: Apply) -> None:
        super().__init__()
        self._initial, self._apply = initial, apply

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt-box"):
            yield Label(Text("prompt", style="bold"))
            yield TextArea(self._initial, id="prompt-area", soft_wrap=True, show_line_numbers=False)
            yield Static(id="prompt-error")
            yield Static(
                Text("Ctrl+S applies and runs │ Enter: new line │ Esc cancels", style="dim")
            )

    def on_mount(self) -> None:
        self.query_one("#prompt-error", Static).display = False
        area = self.query_one(TextArea)
        area.focus()
        area.move_cursor(area.document.end)

    def action_apply(self) -> None:
        text = self.query_one(TextArea).text
        problem = self._apply(text)
        if problem is None:
            self.dismiss(text)
            return
        error = self.query_one("#prompt-error", Static)
        error.update(Text.assemble(("✗ ", "bold red"), (problem.message, "red")))
        error.display = True

    def action_cancel(self) -> None:
        self.dismiss(None)
