"""`v`: Evaluate Formula for the selected cell. The left list is the formula's tree of
sub-expressions in evaluation order (a line's inputs above it, indented one level more) with
each value's shape; the right side shows the highlighted one's stats, and Enter computes its
value again (explanations keep no values) and shows it in the grid. Escape returns."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from cellgpt.tui import labels
from cellgpt.tui.colors import robust_max
from cellgpt.tui.views import classify
from cellgpt.tui.widgets.matrix_grid import MatrixGrid

TEXT_CHARS = 60  # of a sub-expression in the list


def node_label(node: Any) -> Text:
    text = " ".join(node.text.split())
    text = text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 1] + "…"
    label = Text(f"{node.index:>3} " + "  " * node.depth)
    if node.kind in ("step", "inlined"):
        label.append(f"{node.label} = ", style="bold green" if node.kind == "step" else "bold")
    label.append(text, style="cyan" if node.kind == "cell" else "")
    if node.error:
        label.append("  ✗", style="bold red")
    elif node.summary is not None:
        label.append(f"  {node.summary.shape_text()}", style="dim")
    if node.check is not None:
        label.append(
            " ✓" if node.check.equal else " ✗ differs",
            style="green" if node.check.equal else "bold red",
        )
    return label


def node_info(explanation: Any, node: Any) -> Text:
    """What the right side says about a node before (and while) its value is shown."""
    info = Text.assemble((node.text, "bold"), "\n")
    where = {
        "step": f"step {node.label!r} of {node.explains}, in the formula language",
        "inlined": f"the formula of {node.label}, a cell computed together with this one",
        "cell": "a cell's value, read",
        "constant": "a constant",
    }.get(node.kind, f"operation {node.op}")
    info.append(where + "\n", style="dim")
    if node.error:
        info.append(f"✗ {node.error}\n", style="bold red")
    if node.summary is not None:
        info.append(node.summary.shape_text(), style="cyan")
        stats = node.summary.stats_text()
        info.append(f"   {stats}\n" if stats else "\n")
    if node.check is not None:
        check = node.check
        diff = f" (max |diff| {check.max_diff:.2g})" if check.max_diff else ""
        if check.equal:
            info.append(f"✓ equals {check.what}{diff}\n", style="green")
        else:
            info.append(f"✗ differs from {check.what}{diff} {check.note}\n", style="bold red")
    return info


class ExplainScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back"),
        Binding("q", "close", "Back", show=False),
        Binding("left_square_bracket", "head(-1)", "Previous head", show=False),
        Binding("right_square_bracket", "head(1)", "Next head", show=False),
    ]
    DEFAULT_CSS = """
    #explain-title { height: auto; padding: 0 1; background: $boost; }
    #explain-body { height: 1fr; }
    #explain-nodes { width: 1fr; height: 1fr; border: round $primary 40%; }
    #explain-nodes:focus { border: round $primary; }
    #explain-side { width: 1fr; height: 1fr; }
    #explain-info { height: auto; max-height: 10; padding: 0 1; }
    #explain-grid { height: 1fr; border: round $primary 40%; }
    #explain-grid:focus { border: round $primary; }
    #explain-text-box { height: 1fr; border: round $primary 40%; }
    """

    def __init__(self, explanation: Any, wb: Any = None) -> None:
        super().__init__()
        self.explanation = explanation
        self.wb = wb  # for row and column labels (tokens), as the cell's hints name them
        self.shown: int | None = None  # the node whose value the grid shows
        self.value: Any = None
        self.head = 0

    def compose(self) -> ComposeResult:
        e = self.explanation
        title = Text.assemble(
            ("Evaluate formula  ", "bold"), (f"{e.name} = {e.formula}", "cyan"), "\n"
        )
        title.append("↑↓ a sub-expression │ Enter shows its value │ [ ] head │ Esc back", "dim")
        for note in e.notes:
            title.append(f"\n{note}", style="yellow")
        if e.check is not None and not e.check.equal:
            title.append("\n✗ the tree's result differs from the cell's value", style="bold red")
        yield Static(title, id="explain-title")
        with Horizontal(id="explain-body"):
            yield OptionList(
                *(Option(node_label(n), id=str(n.index)) for n in e.nodes), id="explain-nodes"
            )
            with Vertical(id="explain-side"):
                yield Static(id="explain-info")
                yield MatrixGrid(id="explain-grid")
                with VerticalScroll(id="explain-text-box"):
                    yield Static(id="explain-text")
        yield Footer()

    def on_mount(self) -> None:
        listing = self.query_one(OptionList)
        listing.highlighted = len(self.explanation.nodes) - 1  # the result: read upwards
        listing.focus()
        self._show_kind("text")
        self.query_one("#explain-text", Static).update(
            Text("Enter on a sub-expression shows its value here", "dim")
        )
        if self.explanation.error:
            self.notify(f"stopped: {self.explanation.error}", severity="error")

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id is not None:
            node = self.explanation.nodes[int(event.option.id)]
            self.query_one("#explain-info", Static).update(node_info(self.explanation, node))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id is None:
            return
        index = int(event.option.id)
        if self.explanation.nodes[index].error:
            return
        self.query_one("#explain-text", Static).update(Text("computing…", "cyan"))
        self._show_kind("text")
        explanation = self.explanation

        def work() -> None:
            try:
                value = explanation.value(index)
            except Exception as exc:  # shown, never raised: the screen stays up
                self.app.call_from_thread(self._failed, index, exc)
                return
            self.app.call_from_thread(self._show_value, index, value)

        self.run_worker(work, group="explain", thread=True, exclusive=True, exit_on_error=False)

    def _failed(self, index: int, exc: BaseException) -> None:
        self.query_one("#explain-text", Static).update(Text(f"✗ {exc}", "bold red"))

    def _show_value(self, index: int, value: Any) -> None:
        if index != self.shown:
            self.head = 0
        self.shown, self.value = index, value
        self._draw()

    def _draw(self) -> None:
        view = classify(self.value)
        if view.kind != "grid" or view.array is None:
            self._show_kind("text")
            text = view.text if view.kind == "text" else repr(self.value)
            self.query_one("#explain-text", Static).update(Text(text[:20_000]))
            return
        self._show_kind("grid")
        self.head = min(self.head, max(view.heads - 1, 0))
        matrix = view.array[self.head] if view.heads else view.array
        corner = f"head {self.head}/{view.heads - 1}" if view.heads else ""
        finite = matrix[np.isfinite(matrix)] if matrix.dtype.kind == "f" else matrix
        vmax = robust_max(finite) if finite.size else 1.0
        rows, cols = self._labels(matrix.shape)
        grid = self.query_one(MatrixGrid)
        grid.set_data(matrix, rows=rows, cols=cols, vmax=vmax, corner=corner, keep_cursor=False)

    def _labels(self, shape: tuple[int, ...]) -> tuple[Any, Any]:
        """The cell's row / column labels (tokens) where an axis has their length."""
        if self.wb is None or self.explanation.name not in self.wb:
            return str, str
        hints = self.wb.cell(self.explanation.name).hints
        rows = labels.for_axis(self.wb, hints.get("rows"), shape[0])
        cols = labels.for_axis(self.wb, hints.get("cols"), shape[1], rows=False)
        return rows, cols

    def _show_kind(self, kind: str) -> None:
        self.query_one(MatrixGrid).display = kind == "grid"
        self.query_one("#explain-text-box").display = kind != "grid"

    @property
    def grid(self) -> MatrixGrid:
        return self.query_one(MatrixGrid)

    def action_head(self, delta: int) -> None:
        if self.value is not None and isinstance(self.value, np.ndarray) and self.value.ndim == 3:
            self.head = (self.head + delta) % self.value.shape[0]
            self._draw()

    def action_close(self) -> None:
        self.dismiss(None)
