"""Every main-screen action, declared once. The key bindings, the command palette and the help
screen are all built from `ACTIONS`, so a key cannot be added to one and forgotten in another.
`OWN_KEYS` documents the keys the tree, the grid and Textual handle themselves."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding, BindingType
from textual.keys import format_key


@dataclass(frozen=True)
class Action:
    keys: tuple[str, ...]  # Textual key names; the first one is shown in the footer
    name: str  # the app's `action_<name>` method
    title: str  # the palette's entry
    description: str  # the help screen's line (and the palette's hint)
    group: str  # the help screen's section
    footer: str | None = None  # the footer's short label; None keeps the key out of the footer
    args: tuple[int, ...] = ()

    @property
    def call(self) -> str:
        """The action string a binding runs, e.g. `head(-1)`."""
        return f"{self.name}({', '.join(map(str, self.args))})" if self.args else self.name

    @property
    def key_label(self) -> str:
        return "  ".join(key_label(k) for k in self.keys)


# The order is the footer's order: what a newcomer needs first, for a narrow terminal.
ACTIONS: tuple[Action, ...] = (
    Action(("question_mark",), "help", "Help", "this help", "help", footer="Help"),
    Action(
        ("q",),
        "back_or_quit",
        "Back or quit",
        "back to the previous cell; with nowhere to go back to, q again quits",
        "move",
        footer="Back/Quit",
    ),
    Action(
        ("e",),
        "edit_formula",
        "Edit formula",
        "edit the selected cell's formula (a bad one is refused; the old one stays)",
        "edit",
        footer="Edit",
    ),
    Action(
        ("u",),
        "undo",
        "Undo formula edit",
        "undo: the selected cell's formula before its last edit",
        "edit",
        footer="Undo",
    ),
    Action(
        ("U",),
        "revert",
        "Revert to the original formula",
        "revert the selected cell to its original formula (a block cell: its template's)",
        "edit",
    ),
    Action(
        ("f",),
        "functions",
        "Function reference",
        "the library's functions with signatures and docs (F1 in the formula editor)",
        "help",
    ),
    Action(
        ("r",),
        "rerun",
        "Re-run cell",
        "re-run the selected cell (its stale inputs first)",
        "run",
        footer="Re-run",
    ),
    Action(
        ("R",),
        "run_all",
        "Run all stale",
        "run every stale cell (stopping before a breakpoint cell; R again goes on)",
        "run",
        footer="Run stale",
    ),
    Action(
        ("n",),
        "step",
        "Step: run the next stale cell",
        "step: run just the next stale cell (topological order) and select it",
        "run",
    ),
    Action(
        ("b",),
        "breakpoint",
        "Toggle breakpoint",
        "breakpoint on the selected cell (◆): R stops before it",
        "run",
    ),
    Action(
        ("v",),
        "explain",
        "Evaluate formula",
        "evaluate formula: the selected cell's sub-expressions with shapes and stats; Enter "
        "on one shows its value",
        "view",
    ),
    Action(
        ("P",),
        "pin",
        "Pin / unpin",
        "pin the current value (an ablation that stays put) / unpin",
        "edit",
    ),
    Action(
        ("p",),
        "edit_prompt",
        "Edit prompt",
        "edit the prompt, then re-run the model",
        "edit",
        footer="Prompt",
    ),
    Action(
        ("g",),
        "generate",
        "Generate next token",
        "generate: append the predicted next token and re-run",
        "run",
        footer="Generate",
    ),
    Action(
        ("slash",),
        "find",
        "Find cell or token",
        "find a cell (fuzzy: 'h3 patt'), a prompt token or a vocabulary token",
        "move",
        footer="Find",
    ),
    Action(
        ("s",), "save", "Save workbook", "save the workbook file (atomic)", "files", footer="Save"
    ),
    Action(("S",), "save_as", "Save workbook as", "save the workbook to another file", "files"),
    Action(
        ("x",),
        "export",
        "Export to .xlsx",
        "export to a .xlsx spreadsheet",
        "files",
        footer="Export",
    ),
    Action(
        ("left_square_bracket",),
        "head",
        "Previous head",
        "previous attention head (q, k, v, scores, pattern)",
        "view",
        args=(-1,),
    ),
    Action(
        ("right_square_bracket",),
        "head",
        "Next head",
        "next attention head (q, k, v, scores, pattern)",
        "view",
        args=(1,),
    ),
    Action(
        ("full_stop",), "precision", "Toggle precision", "precision: 2 / 4 / 6 decimals", "view"
    ),
    Action(
        ("o",),
        "sort",
        "Sort rows",
        "sort rows: a grid by the cursor's column (high → low → low → high → off); a table "
        "by a column you pick",
        "view",
    ),
    Action(
        ("vertical_line",),
        "filter",
        "Filter rows",
        "filter rows: keep those whose label (grid) or any cell (table) contains a text",
        "view",
    ),
    Action(("m",), "compact", "Toggle heatmap", "heatmap: colours only, more columns", "view"),
    Action(("t",), "toggle_tree", "Show / hide the cell tree", "show / hide the cell tree", "view"),
    Action(
        ("d",),
        "toggle_info",
        "Show / hide the details",
        "show / hide the details and next-token panes (beside or under the value)",
        "view",
    ),
    Action(
        ("escape", "backspace"),
        "go_back",
        "Back",
        "back to the previous cell (while a job runs: cancel it)",
        "move",
    ),
    Action(("c",), "cancel", "Cancel job", "cancel the running job at its next cell", "run"),
)

# The help screen's sections, in order.
GROUPS: dict[str, str] = {
    "move": "moving around",
    "run": "running",
    "edit": "editing",
    "view": "viewing",
    "files": "files",
    "help": "help",
}

# Keys the widgets and Textual bind themselves, by help section: documented, not bound here.
OWN_KEYS: dict[str, tuple[tuple[str, str], ...]] = {
    "move": (
        ("↑ ↓  → ←", "browse the tree; → opens a group or moves into the value"),
        ("Enter", "on a cell: go to its references; on a reference: dive into it"),
        ("Tab  Shift+Tab", "move between tree, value and references"),
        ("arrows PgUp PgDn", "move in the grid or table"),
        ("Home End", "first / last column"),
        ("Ctrl+Home Ctrl+End", "top-left / bottom-right (in a table: first / last row)"),
    ),
    "help": (
        ("Ctrl+P", "command palette: every action here by name"),
        ("Ctrl+Q", "quit, from any screen (asks first when edits are not saved)"),
    ),
}

_KEY_NAMES = {"escape": "Esc", "backspace": "Backspace"}  # clearer than Textual's esc and ⌫


def key_label(key: str) -> str:
    return _KEY_NAMES.get(key) or format_key(key)


def bindings() -> list[BindingType]:
    """The main screen's bindings: each runs an `app.` action."""
    # Ctrl+Q is the app's (it works on every screen); it is listed here to be in the footer.
    return [
        Binding("ctrl+q", "app.request_quit", "Quit"),
        *(
            Binding(
                key,
                f"app.{action.call}",
                action.footer or action.title,
                show=action.footer is not None and i == 0,
            )
            for action in ACTIONS
            for i, key in enumerate(action.keys)
        ),
    ]
