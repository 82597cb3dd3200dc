"""The cell tree: every cell grouped by stage, with a status mark and its last run time."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from cellgpt.engine import Status
from cellgpt.engine.steps import step_number
from cellgpt.tui.function_cells import FUNCTION_PREFIX
from cellgpt.tui.grouping import FUNCTIONS, Group, group_cells, initially_expanded
from cellgpt.tui.numfmt import format_duration

MARKS: dict[str, tuple[str, str]] = {
    "fresh": ("●", "green"),
    "stale": ("○", "yellow"),
    "error": ("✗", "bold red"),
    "blocked": ("⊘", "magenta"),
    "running": ("⟳", "bold cyan"),
    "pinned": ("P", "bold blue"),
}
# Worst first: a group shows the mark of its worst cell.
_SEVERITY = ["error", "blocked", "running", "stale", "pinned", "fresh"]


def mark(status: str) -> Text:
    symbol, style = MARKS.get(str(status), ("?", "dim"))
    return Text(symbol, style=style)


class CellTree(Tree[str]):
    """Leaves carry the cell name as data; group nodes carry None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("right", "open", "Open", show=False),
        Binding("left", "close", "Close", show=False),
    ]

    class OpenValue(Message):
        """Right arrow on a cell: the user wants to move into its value."""

    def __init__(self, *, id: str | None = None, show_timings: bool = True) -> None:
        super().__init__("cells", id=id)
        self.show_root = False
        self.guide_depth = 2
        self.show_timings = show_timings
        self._leaves: dict[str, TreeNode[str]] = {}
        self._groups: list[tuple[TreeNode[str], Group]] = []
        self._prefix: dict[str, str] = {}  # cell -> its block prefix, trimmed in labels
        self.breakpoints: set[str] = set()  # cells R stops before (the app's set, shared)

    @property
    def names(self) -> set[str]:
        return set(self._leaves)

    def build(self, wb: Any) -> None:
        """(Re)build every node from the workbook's current cells."""
        self.clear()
        self._leaves.clear()
        self._groups.clear()
        for group in group_cells(wb):
            node = self.root.add(group.title, expand=initially_expanded(group))
            self._groups.append((node, group))
            self._add_cells(node, group, wb)
            for child in group.children:
                sub = node.add(child.title, expand=False)
                self._groups.append((sub, child))
                self._add_cells(sub, child, wb)
        self.refresh_marks(wb, set(self._leaves))

    def _add_cells(self, node: TreeNode[str], group: Group, wb: Any) -> None:
        if group.key == FUNCTIONS:  # function cells: data "fn:name", no status of their own
            for name in group.cells:
                label = Text.assemble(("ƒ ", "magenta"), wb.function(name).signature())
                node.add_leaf(label, data=FUNCTION_PREFIX + name)
            return
        block = group.key.split(":", 1)[1] + "." if ":" in group.key else ""
        for name in group.cells:
            if group.key.startswith(("block:", "params:")) and name.startswith(block):
                self._prefix[name] = block
            self._leaves[name] = node.add_leaf(name, data=name)

    def refresh_marks(self, wb: Any, names: set[str]) -> None:
        """Update the labels of the named cells and of every group."""
        for name in names:
            leaf = self._leaves.get(name)
            if leaf is not None and name in wb:
                leaf.set_label(self._leaf_label(wb, name))
        for node, group in self._groups:
            node.set_label(self._group_label(wb, group))

    def _leaf_label(self, wb: Any, name: str) -> Text:
        state = wb.state(name)
        status = Status.PINNED if wb.cell(name).pinned else state.status
        short = name[len(self._prefix.get(name, "")) :]
        label = Text.assemble(mark(status), " ")
        info = wb.cell(name)
        if info.hints.get("block"):  # the course's step number, aligned: " 2 ln_1.normalized"
            step = step_number(info.hints.get("alias"))
            label.append(f"{step:>2} " if step is not None else "   ", style="dim")
        label.append(short)
        if name in self.breakpoints:
            label.append(" ◆", style="bold red")  # R stops before it
        title = info.hints.get("title")
        if isinstance(title, str) and title.lower().replace(" ", "_") != short.lower():
            label.append(f"  {title}", style="italic")  # the course's name for the section
        if info.hints.get("on_demand") and status == Status.STALE:
            label.append("  on demand: r", style="dim")  # left stale by "run everything"
        if wb.cell(name).overridden:
            label.append(" ✎", style="bold yellow")  # its formula was edited
        computed = not wb.cell(name).is_input
        if self.show_timings and computed and state.duration > 0 and status != Status.STALE:
            label.append(f"  {format_duration(state.duration)}", style="dim")
        return label

    def _group_label(self, wb: Any, group: Group) -> Text:
        if group.key == FUNCTIONS:
            return Text.assemble(
                ("ƒ ", "magenta"), ("functions", "bold"), (f"  {len(group.cells)}", "dim")
            )
        # an on-demand cell left stale is not a job left undone: it does not mark its group
        statuses = [
            str(wb.status(n))
            for n in group.all_cells()
            if n in wb and not (wb.cell(n).hints.get("on_demand") and wb.status(n) == Status.STALE)
        ]
        worst = min(statuses, key=_SEVERITY.index, default="fresh")
        label = Text.assemble(mark(worst), " ", Text(group.title, style="bold"))
        bad = sum(1 for s in statuses if s != "fresh" and s != "pinned")
        if bad:
            label.append(
                f"  {bad} {worst if len(set(statuses)) <= 2 else 'not fresh'}", style="dim"
            )
        return label

    def action_open(self) -> None:
        node = self.cursor_node
        if node is None:
            return
        if node.data is not None:
            self.post_message(self.OpenValue())
        elif not node.is_expanded:
            node.expand()
        elif node.children:
            self.move_cursor(node.children[0])

    def action_close(self) -> None:
        node = self.cursor_node
        if node is None:
            return
        if node.data is None and node.is_expanded:
            node.collapse()
        elif node.parent is not None and node.parent is not self.root:
            self.move_cursor(node.parent)

    def select_function(self, name: str) -> bool:
        """Put the cursor on a function cell's leaf."""
        for node, group in self._groups:
            if group.key == FUNCTIONS:
                for leaf in node.children:
                    if leaf.data == FUNCTION_PREFIX + name:
                        node.expand()
                        _ = self.last_line
                        self.move_cursor(leaf)
                        return True
        return False

    def select_cell(self, name: str) -> bool:
        """Open the groups above a cell and put the cursor on it (no event if already there)."""
        leaf = self._leaves.get(name)
        if leaf is None:
            return False
        parent = leaf.parent
        while parent is not None:
            parent.expand()
            parent = parent.parent
        _ = self.last_line  # expanding invalidates line numbers; this rebuilds them now
        if self.cursor_node is not leaf:
            self.move_cursor(leaf)
        return True
