"""The `?` screen: what the panes show and every key."""

from __future__ import annotations

from typing import ClassVar

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from cellgpt.tui.action_table import ACTIONS, GROUPS, OWN_KEYS

# Paragraphs without hard line breaks, so the text wraps to any width (80 columns and up);
# the short lines of marks each fit in 76.
INTRO = "\n".join(
    [
        "Every step of the model is a cell with a formula. The tree lists them by stage: "
        "tokenize → embed → h0 … h11 (transformer blocks) → output. The value pane shows the "
        "selected cell's value; the details (beside it on a wide screen, under it on a medium "
        "one, on d on a narrow one) its formula, the cells it reads (←) and is read by (→), "
        "and the next-token prediction. Edit a formula, watch what turns stale, re-run, "
        "compare; u undoes an edit.",
        "",
        "Marks  ● fresh  ○ stale (an input changed; the last value is shown)",
        "       ✗ error  ⊘ blocked by an error upstream  ⟳ running",
        "       P pinned  ✎ formula edited",
        'Tokens · a space at a token\'s edge (" the" is ·the)  ⍽ a non-breaking space',
        "       ↵ a line break  → a tab  \\xNN a byte that is not a whole character",
        "",
        "Colours: blue negative, white 0, red positive, scaled to the 99th percentile of |x| "
        "(attention patterns use a fixed 0…1 scale). Heads are numbered from 0, as "
        "zero_head(x, 0) and the blocks h0 … h11 count.",
    ]
)


def keys_table() -> Table:
    """The keys by section: the widgets' own, then the table's actions."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=True)
    table.add_column("key", style="bold cyan", no_wrap=True)
    table.add_column("does")
    for group, heading in GROUPS.items():
        actions = [(a.key_label, a.description) for a in ACTIONS if a.group == group]
        rows = [*OWN_KEYS.get(group, ()), *actions]
        if table.row_count:
            table.add_row("", "")
        table.add_row(Text(heading, style="bold"), "")
        for key, what in rows:
            table.add_row(key, what)
    return table


def help_renderable() -> Group:
    title = Text("cellgpt — GPT-2 as a living spreadsheet\n", style="bold")
    return Group(title, Text(INTRO), Text(""), keys_table())


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("q", "close", "Close", show=False),
        Binding("question_mark", "close", "Close", show=False),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(help_renderable(), id="help-text")

    def action_close(self) -> None:
        self.dismiss(None)
