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

INTRO = """\
Every step of the model is a cell with a formula. The tree on the left lists them by stage:
tokenize → embed → h0 … h11 (transformer blocks) → output. The centre shows the selected
cell's value; the right its formula, the cells it reads (←) and is read by (→), and the
next-token prediction. Edit a formula, watch what turns stale, re-run, compare.

Marks: ● fresh  ○ stale (an input changed; the last value is shown)  ✗ error
       ⊘ blocked by an error upstream  ⟳ running  P pinned  ✎ formula edited

Colours: blue negative, white 0, red positive, scaled to the 99th percentile of |x|
(attention patterns use a fixed 0…1 scale)."""

KEYS: list[tuple[str, str]] = [
    ("↑ ↓  → ←", "browse the tree; → opens a group or moves into the value"),
    ("Enter", "on a cell: go to its references; on a reference: dive into it"),
    ("Esc  Backspace  q", "back to the previous cell (while a job runs: cancel it)"),
    ("Tab  Shift+Tab", "move between tree, value and references"),
    ("e", "edit the formula (a bad one is refused; the old one stays)"),
    ("r", "re-run the selected cell (its stale inputs first)"),
    ("R", "run every stale cell"),
    ("P", "pin the current value (an ablation that stays put) / unpin"),
    ("p", "edit the prompt, then re-run the model"),
    ("g", "generate: append the predicted next token and re-run"),
    ("[  ]", "previous / next attention head (q, k, v, scores, pattern)"),
    (".", "precision: 2 / 4 / 6 decimals"),
    ("m", "heatmap: colours only, more columns"),
    ("arrows PgUp PgDn", "move in the grid"),
    ("Home End", "first / last column"),
    ("Ctrl+Home Ctrl+End", "top-left / bottom-right"),
    ("/", "find a cell (fuzzy: 'h3 patt'), a prompt token or a vocabulary token"),
    ("s  S", "save the workbook (atomic) / save as"),
    ("x", "export to .xlsx"),
    ("c", "cancel the running job"),
    ("Ctrl+P", "command palette: every action by name"),
    ("?", "this help      Ctrl+Q quits"),
]


def help_renderable() -> Group:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=True)
    table.add_column("key", style="bold cyan", no_wrap=True)
    table.add_column("does")
    for key, what in KEYS:
        table.add_row(key, what)
    title = Text("cellgpt — GPT-2 as a living spreadsheet\n", style="bold")
    return Group(title, Text(INTRO), Text(""), table)


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
