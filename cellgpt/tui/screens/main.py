"""The main screen: layout and keys. Keys live here (not on the app) so a modal on top never
triggers them; each key calls an `app.` action (see `action_table.py`). The panes are placed
by `layout.plan` on every resize, so the value keeps most of the width at any size."""

from __future__ import annotations

from typing import ClassVar

from textual import events
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Container, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer

from cellgpt.tui import layout
from cellgpt.tui.action_table import bindings
from cellgpt.tui.widgets.cell_tree import CellTree
from cellgpt.tui.widgets.details import DetailsPane
from cellgpt.tui.widgets.prompt_bar import PromptBar
from cellgpt.tui.widgets.topk import TopKPanel
from cellgpt.tui.widgets.value_pane import ValuePane


class MainScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = bindings()

    class PanesArranged(Message):
        """The panes moved (a resize, a toggle): the app re-fills what depends on it."""

    def __init__(self, *, show_timings: bool = True) -> None:
        super().__init__()
        self._show_timings = show_timings
        self.show_tree: bool | None = None  # the user's toggles; None: by the screen size
        self.show_info: bool | None = None
        self.plan = layout.plan(80, 24)

    def compose(self) -> ComposeResult:
        yield PromptBar(id="prompt-bar")
        with Container(id="body"):
            yield CellTree(id="tree", show_timings=self._show_timings)
            yield ValuePane(id="value")
            with Vertical(id="right"):
                yield DetailsPane(id="details", show_timings=self._show_timings)
                yield TopKPanel(id="topk")
        yield Footer()

    def on_mount(self) -> None:
        self.arrange_panes()

    def on_resize(self, _: events.Resize) -> None:
        self.arrange_panes()

    def arrange_panes(self) -> None:
        """Place the panes for the current size and toggles."""
        width, height = self.app.size
        plan = layout.plan(width, height, tree=self.show_tree, info=self.show_info)
        self.plan = plan
        body = self.query_one("#body")
        tree, right = self.query_one("#tree"), self.query_one("#right")
        tree.display = plan.tree > 0
        right.display = plan.info != "hidden"
        columns = ([f"{plan.tree}"] if plan.tree else []) + ["1fr"]
        if plan.info == "right":
            columns.append(f"{plan.info_size}")
        body.styles.grid_size_columns = len(columns)
        body.styles.grid_columns = " ".join(columns)
        bottom = plan.info == "bottom"
        body.styles.grid_size_rows = 2 if bottom else 1
        body.styles.grid_rows = f"1fr {plan.info_size}" if bottom else "1fr"
        tree.styles.row_span = 2 if bottom else 1
        right.set_class(bottom, "-bottom")
        self.query_one(ValuePane).show_formula_line(plan.info == "hidden")
        self.post_message(self.PanesArranged())
        # A hidden pane cannot hold the focus: move it to the value.
        focused = self.focused
        if focused is not None and not all(
            node.display for node in focused.ancestors_with_self if isinstance(node, Widget)
        ):
            self.query_one(ValuePane).focus_value()

    def toggle_tree(self) -> bool:
        shown = self.plan.tree == 0
        self.show_tree = shown
        if shown and self.plan.info == "right" and self.app.size.width < layout.WIDE:
            self.show_info = False  # one side pane at a time on a narrow screen
        self.arrange_panes()
        return shown

    def toggle_info(self) -> bool:
        shown = self.plan.info == "hidden"
        self.show_info = shown
        if shown and self.plan.tree and self.app.size.width < layout.MEDIUM:
            self.show_tree = None  # the details take the tree's place
        self.arrange_panes()
        return shown
