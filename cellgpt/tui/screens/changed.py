"""The modal shown when a save is refused because the file changed on disk since it was opened
(another program or window saved it): reload the file (dropping this session's edits) or save
as another file. Escape does neither, and nothing is lost."""

from __future__ import annotations

from typing import ClassVar, Literal

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

Choice = Literal["reload", "save_as"]


class ChangedScreen(ModalScreen[Choice | None]):
    """Dismisses with "reload", "save_as", or None (Escape)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    ChangedScreen { align: center middle; }
    #changed-box {
        width: 100%; max-width: 90; height: auto; padding: 1 2;
        border: thick $warning; background: $surface;
    }
    #changed-buttons { height: auto; margin: 1 0 0 0; }
    #changed-buttons Button { margin: 0 2 0 0; }
    """

    def __init__(self, path: str) -> None:
        super().__init__()
        self._path = path

    def compose(self) -> ComposeResult:
        with Vertical(id="changed-box"):
            yield Label(Text("not saved: the file changed on disk", style="bold"))
            yield Static(
                Text.assemble(
                    (self._path, "bold"),
                    " was changed by another program or window since it was opened. "
                    "Saving would drop that change.",
                )
            )
            with Horizontal(id="changed-buttons"):
                yield Button("Reload from disk (drops my edits)", id="reload", variant="warning")
                yield Button("Save as…", id="save_as", variant="primary")
            yield Static(Text("Escape keeps both: nothing is written", style="dim"))

    def on_mount(self) -> None:
        self.query_one("#save_as", Button).focus()  # the choice that loses nothing

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss("reload" if event.button.id == "reload" else "save_as")

    def action_cancel(self) -> None:
        self.dismiss(None)
