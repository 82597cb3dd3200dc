"""The centre pane: one cell's value as a virtual grid (matrices; 3-D values one head at a
time), a table (BPE passes, top-k, lists) or text, with a title and a cursor status line."""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Sparkline, Static

from cellgpt.engine import Status
from cellgpt.gpt2.cells import WorkbookCells
from cellgpt.tui import labels
from cellgpt.tui.colors import robust_max
from cellgpt.tui.numfmt import PRECISIONS
from cellgpt.tui.row_order import RowOrder, grid_order, next_sort, table_order
from cellgpt.tui.screens.edit import EditScreen
from cellgpt.tui.screens.sort import SortScreen
from cellgpt.tui.views import View, cell_text, classify
from cellgpt.tui.widgets import plots
from cellgpt.tui.widgets.cell_tree import mark
from cellgpt.tui.widgets.matrix_grid import MatrixGrid
from cellgpt.tui.widgets.record_table import RecordTable

SPARK_POINTS = 2000  # a sparkline never needs more points than this


def _is_probability_map(array: np.ndarray, hints: dict[str, Any]) -> bool:
    """Attention patterns (token × token, values in [0, 1]) get a fixed 0..1 scale, so heads
    and blocks can be compared by colour."""
    if not hints.get("rows") or hints.get("rows") != hints.get("cols"):
        return False
    finite = _sample(array)
    finite = finite[np.isfinite(finite)]
    return finite.size > 0 and float(finite.min()) >= 0.0 and float(finite.max()) <= 1.0


def _sample(array: np.ndarray, points: int = 1 << 20) -> np.ndarray:
    """At most `points` values, strided: a 10**8-value array is never copied whole."""
    return array.flat[:: max(1, array.size // points)]


class ValuePane(Vertical):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.head = 0
        self.precision = 4
        self.compact = False
        self._name: str | None = None
        self._view: View | None = None
        self._key: tuple[Any, ...] | None = None  # (name, version, head) last drawn
        self._scale: dict[tuple[str, int], float] = {}
        self._row_labels: labels.Labeler = str
        self._col_labels: labels.Labeler = str
        self.order = RowOrder()  # the shown cell's sort and filter (reset on another cell)
        self._info: Any = None

    def compose(self) -> ComposeResult:
        yield Static(id="value-title")
        yield Static(id="value-formula")  # when the details pane is hidden (a narrow screen)
        yield Sparkline([], id="value-spark")
        yield Static(id="value-plot")  # a text plot some cells ask for (plots.py)
        yield MatrixGrid(id="grid")
        yield RecordTable(id="table")
        with VerticalScroll(id="text-scroll"):
            yield Static(id="value-text")
        yield Static(id="value-status")

    def on_mount(self) -> None:
        self.query_one("#value-plot", Static).display = False
        self._show_kind("empty")
        self.show_formula_line(False)

    def show_formula_line(self, shown: bool) -> None:
        """The cell's formula under the title, for when the details pane is out of sight."""
        self.query_one("#value-formula", Static).display = shown

    def message(self, text: Text) -> None:
        """Show a message instead of a value (loading, load errors)."""
        self._show_kind("empty")
        self.query_one("#value-text", Static).update(text)

    @property
    def grid(self) -> MatrixGrid:
        return self.query_one(MatrixGrid)

    @property
    def table(self) -> RecordTable:
        return self.query_one(RecordTable)

    @property
    def view(self) -> View | None:
        return self._view

    @property
    def heads(self) -> int:
        return self._view.heads if self._view is not None else 0

    # ------------------------------------------------------------------ showing a cell
    def show(self, wb: Any, name: str, *, force: bool = False) -> None:
        """Show the cell's current value (never computes: a stale cell shows its last value)."""
        info = wb.info(name)
        value = wb.value(name)
        key = (name, info.version, info.status, self.head, id(value))
        if key == self._key and not force:
            self._title(info)  # only the status may have changed
            return
        same_cell = self._name == name
        if not same_cell:
            self.order = RowOrder()
        self._name, self._key, self._info = name, key, info
        vocab = getattr(WorkbookCells(wb).tokenizer, "vocab_size", None)
        view = classify(value, vocab_size=vocab, columns=self._columns(wb, info.hints))
        self._view = view
        if view.heads:
            self.head = min(self.head, view.heads - 1)
        self._show_kind(view.kind)
        self._show_plot(wb, info, value)
        if view.kind == "grid":
            self._show_grid(wb, info, view, keep_cursor=same_cell)
        elif view.kind == "table":
            self._show_table(view, keep_cursor=same_cell)
        if self.order.active:
            self._apply_order()
        elif view.kind == "text":
            self.query_one("#value-text", Static).update(Text(view.text))
        else:
            self.query_one("#value-text", Static).update(self._empty_message(info))
        self._title(info)

    def _show_plot(self, wb: Any, info: Any, value: Any) -> None:
        plot = plots.render(wb, info, value)
        widget = self.query_one("#value-plot", Static)
        widget.display = plot is not None
        widget.update(plot or "")

    def _columns(self, wb: Any, hints: dict[str, Any]) -> Any:
        return labels.hint_values(wb, hints.get("cols"))

    def _show_kind(self, kind: str) -> None:
        self.query_one(MatrixGrid).display = kind == "grid"
        self.query_one(RecordTable).display = kind == "table"
        self.query_one("#text-scroll").display = kind in ("text", "empty")
        if kind not in ("grid", "table"):  # no cursor: the last one's line would mislead
            self.query_one("#value-status", Static).update("")
        vector = self._view is not None and bool(self._view.vector)
        self.query_one(Sparkline).display = kind == "grid" and vector

    def _empty_message(self, info: Any) -> Text:
        if info.status == Status.ERROR and info.error is not None:
            return Text(f"✗ {info.error.message}", style="bold red")
        if info.status == Status.BLOCKED and info.error is not None:
            return Text(f"⊘ {info.error.message}", style="magenta")
        if info.status == Status.RUNNING:
            return Text("⟳ computing…", style="cyan")
        if info.evicted:
            return Text("⟳ recomputing (the value was dropped to save memory)…", style="cyan")
        return Text("not computed yet — press r to run this cell (R runs everything stale)", "dim")

    def _show_grid(self, wb: Any, info: Any, view: View, *, keep_cursor: bool) -> None:
        assert view.array is not None
        array = view.array
        hints = info.hints
        scale_key = (info.name, info.version)
        if scale_key not in self._scale:
            self._scale = {
                scale_key: 1.0 if _is_probability_map(array, hints) else robust_max(array)
            }
        matrix = array[self.head] if view.heads else array
        if view.vector == "row":
            rows: labels.Labeler = lambda i: info.name.rsplit(".", 1)[-1]  # noqa: E731
            cols = labels.for_axis(wb, None, matrix.shape[1], rows=False)
        elif view.vector == "column":
            rows = labels.for_axis(wb, None, matrix.shape[0])
            cols = lambda j: "value"  # noqa: E731
        else:
            rows = labels.for_axis(wb, hints.get("rows"), matrix.shape[0])
            cols = labels.for_axis(wb, hints.get("cols"), matrix.shape[1], rows=False)
        self._row_labels, self._col_labels = rows, cols
        corner = f"head {self.head}" if view.heads else ""
        grid = self.query_one(MatrixGrid)
        grid.precision, grid.compact = self.precision, self.compact
        grid.set_data(
            matrix,
            rows=rows,
            cols=cols,
            vmax=self._scale[scale_key],
            corner=corner,
            keep_cursor=keep_cursor,
        )
        if view.vector:
            data = _sample(view.array, SPARK_POINTS).astype(np.float64)
            self.query_one(Sparkline).data = np.where(np.isfinite(data), data, 0.0).tolist()

    def _show_table(self, view: View, *, keep_cursor: bool) -> None:
        self.table.set_data(view.records, view.columns, format=cell_text, keep_cursor=keep_cursor)

    def _title(self, info: Any) -> None:
        status = Status.PINNED if info.pinned else info.status
        title = Text.assemble((info.name, "bold"), "  ", mark(status), f" {status}")
        if self._view is not None and self._view.kind == "grid" and self._view.array is not None:
            shape = " × ".join(str(d) for d in (info.shape or ()))
            title.append(f"   {shape}", style="cyan")
            if self._view.heads:
                # 0-based, as zero_head(x, 0) and the h0..h11 blocks count
                last = self._view.heads - 1
                title.append(f"   head {self.head} of 0–{last}  [ ] change", style="bold")
            if self._view.text:
                title.append(f"   {self._view.text}", style="dim")
        if self._view is not None and self._view.kind == "table" and not self.order.active:
            title.append(f"   {len(self._view.records):,} rows", style="cyan")
        if self.order.active and self._view is not None and self._view.kind in ("grid", "table"):
            title.append(f"   {self._order_text()}", style="bold magenta")
        if status == Status.STALE and self._view is not None and self._view.kind != "empty":
            title.append("   last value; r runs", style="yellow")
        self.query_one("#value-title", Static).update(title)
        formula = Text("= ", style="dim")
        formula.append(info.formula if info.formula is not None else "(a value)", style="italic")
        if status == Status.ERROR and info.error is not None:
            formula.append(f"  ✗ {info.error.message}", style="red")
        self.query_one("#value-formula", Static).update(formula)

    # ------------------------------------------------------------------ sort and filter
    def _order_text(self) -> str:
        kind = self._view.kind if self._view is not None else ""
        name = self._col_labels if kind == "grid" else self._table_column
        if kind == "grid":
            data = self.grid.data
            shown, total = self.grid.shown_rows, data.shape[0] if data is not None else 0
        else:
            shown, total = self.table.shown_count, self.table.row_count
        count = f"{total:,} rows" if shown == total else f"{shown:,}/{total:,} rows"
        return f"{count}  {self.order.describe(name)}"

    def _table_column(self, col: int) -> str:
        columns = self.table.columns
        return columns[col] if col < len(columns) else str(col)

    def _apply_order(self) -> None:
        """Re-order the grid's or table's rows by `self.order` (on new data too)."""
        view = self._view
        if view is None:
            return
        if view.kind == "grid" and self.grid.data is not None:
            order = grid_order(self.grid.data, self.order, self._row_labels)
            self.grid.set_order(order, self.order.sort)
        elif view.kind == "table":
            self.table.set_order(table_order(view.records, self.order, cell_text), self.order.sort)
        if self._info is not None:
            self._title(self._info)

    def sort(self) -> None:
        """o: a grid by the cursor's column (high → low, low → high, off); a table by a
        column picked from a list."""
        kind = self._view.kind if self._view is not None else ""
        if kind == "grid":
            col = self.grid.cursor[1]
            self.set_order(RowOrder(next_sort(self.order.sort, col), self.order.filter))
        elif kind == "table":
            self.app.push_screen(SortScreen(self.table.columns, self.order.sort), self._sorted)
        else:
            self.app.notify("only a grid or a table can be sorted", severity="warning")

    def _sorted(self, choice: tuple[int, bool] | bool | None) -> None:
        if choice is False:  # cancelled
            return
        self.set_order(RowOrder(choice if isinstance(choice, tuple) else None, self.order.filter))

    def ask_filter(self) -> None:
        """|: keep the rows whose label (grid) or any cell (table) contains a text."""
        if self._view is None or self._view.kind not in ("grid", "table"):
            self.app.notify("only a grid or a table can be filtered", severity="warning")
            return
        where = "row label" if self._view.kind == "grid" else "cell"
        screen = EditScreen(
            f"keep the rows whose {where} contains (empty: all rows)",
            self.order.filter,
            lambda text: None,
            hint="case-insensitive │ Enter filters │ Esc cancels",
        )

        def chosen(text: str | None) -> None:
            if text is not None:
                self.set_order(RowOrder(self.order.sort, text.strip()))

        self.app.push_screen(screen, chosen)

    def set_order(self, order: RowOrder) -> None:
        self.order = order
        self._apply_order()
        self.focus_value()

    def show_row(self, row: int) -> None:
        """Put the cursor on a row of the value (a filter hiding it is cleared) and focus."""
        kind = self._view.kind if self._view is not None else ""
        widget: MatrixGrid | RecordTable | None = (
            self.grid if kind == "grid" else self.table if kind == "table" else None
        )
        if widget is None:
            return
        if not widget.show_row(row) and self.order.filter:
            self.set_order(RowOrder(self.order.sort, ""))
            widget.show_row(row)
        widget.focus()

    # ------------------------------------------------------------------ controls
    def focus_value(self) -> None:
        """Focus whatever shows the value (the grid or the table)."""
        kind = self._view.kind if self._view is not None else "empty"
        if kind == "grid":
            self.query_one(MatrixGrid).focus()
        elif kind == "table":
            self.table.focus()
        else:
            self.query_one("#text-scroll").focus()

    def set_head(self, wb: Any, delta: int) -> bool:
        if not self.heads or self._name is None:
            return False
        self.head = (self.head + delta) % self.heads
        self.show(wb, self._name, force=True)
        return True

    def cycle_precision(self) -> int:
        self.precision = PRECISIONS[(PRECISIONS.index(self.precision) + 1) % len(PRECISIONS)]
        self.grid.precision = self.precision
        return self.precision

    def toggle_compact(self) -> bool:
        self.compact = not self.compact
        self.grid.compact = self.compact
        return self.compact

    def on_record_table_cursor_moved(self, event: RecordTable.CursorMoved) -> None:
        """The cursor row in full (columns may be cut on screen): `title value` pairs."""
        table = event.table
        text = Text.assemble(("row ", "dim"), f"{event.row:,}", (f"/{table.row_count:,}", "dim"))
        for title, cell in zip(table.columns, table.row_texts(event.row), strict=True):
            text.append(f"  {title} ", style="dim")
            text.append(cell, style="bold")
        self.query_one("#value-status", Static).update(text)

    def on_matrix_grid_cursor_moved(self, event: MatrixGrid.CursorMoved) -> None:
        value = event.grid.value_at(event.row, event.col)
        text = Text.assemble(
            ("row ", "dim"),
            self._row_labels(event.row),
            ("   col ", "dim"),
            self._col_labels(event.col),
            ("   = ", "dim"),
            (f"{value:.9g}" if value is not None else "", "bold"),
        )
        self.query_one("#value-status", Static).update(text)
