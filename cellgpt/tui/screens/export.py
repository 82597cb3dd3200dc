"""The export dialog: the mode (values: every cell's numbers; formulas: a live workbook that
Excel or LibreOffice recompute) and the file (`~` expanded; a relative name goes into the
folder shown). Dismisses with an `ExportRequest`, or None on Esc."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, RadioButton, RadioSet, Static

from cellgpt.tui.screens.edit import Problem

MODES = {
    "values": "values — every cell's numbers, a sheet per cell",
    "formulas": "formulas — a live workbook Excel / LibreOffice recompute",
}


@dataclass(frozen=True)
class ExportRequest:
    mode: str  # "values" or "formulas"
    path: str  # as typed


class ExportScreen(ModalScreen[ExportRequest | None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    ExportScreen { align: center middle; }
    #export-box {
        width: 100%; max-width: 90; height: auto; padding: 1 2;
        border: thick $primary; background: $surface;
    }
    #export-mode { width: 100%; margin: 0 0 1 0; }
    """

    def __init__(
        self, request: ExportRequest, check: Callable[[ExportRequest], Problem | None], base: str
    ) -> None:
        super().__init__()
        self._request, self._check, self._base = request, check, base

    def compose(self) -> ComposeResult:
        with Vertical(id="export-box"):
            yield Label(Text("export to .xlsx", style="bold"))
            with RadioSet(id="export-mode"):
                for mode, text in MODES.items():
                    yield RadioButton(text, value=mode == self._request.mode, name=mode)
            yield Label(Text.assemble(("file ", "bold"), (f"(relative to {self._base})", "dim")))
            yield Input(value=self._request.path, id="export-path", select_on_focus=False)
            yield Static(id="export-error")
            yield Static(
                Text(
                    "Enter exports │ Tab to the mode, ↑ ↓ to change it │ Esc cancels\n"
                    "the export runs with progress; c or Esc cancels it",
                    style="dim",
                )
            )

    def on_mount(self) -> None:
        self.query_one("#export-error", Static).display = False
        self.query_one(Input).focus()

    @property
    def mode(self) -> str:
        pressed = self.query_one(RadioSet).pressed_button
        return pressed.name if pressed is not None and pressed.name else "values"

    def on_input_changed(self, _: Input.Changed) -> None:
        self.query_one("#export-error", Static).display = False

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        request = ExportRequest(self.mode, event.value)
        problem = self._check(request)
        if problem is None:
            self.dismiss(request)
            return
        error = self.query_one("#export-error", Static)
        error.update(Text.assemble(("✗ ", "bold red"), (problem.message, "red")))
        error.display = True

    def action_cancel(self) -> None:
        self.dismiss(None)
