"""A virtual matrix grid on Textual's Line API: only the visible window of the numpy array is
read, formatted and coloured, so a 50257 × 768 embedding table scrolls as fast as a 5 × 5
attention pattern. Row labels and the column header stay put while the numbers scroll."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from rich.cells import set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from cellgpt.tui.colors import CURSOR_STYLE, levels, style_for
from cellgpt.tui.numfmt import cell_width, format_number

Labeler = Callable[[int], str]
MAX_LABEL = 20  # widest row label, in cells
LABEL_SAMPLE = 400  # rows looked at to size the label column

_HEADER = Style(bold=True, dim=False)
_LABEL = Style(bold=True)
_MARK = Style(bold=True, reverse=True)


@dataclass
class _Frame:
    """Everything drawn for one scroll position: built once, read line by line."""

    key: tuple[object, ...]
    lines: list[Strip]


class MatrixGrid(ScrollView, can_focus=True):
    """Shows a 2-D array; `cursor` is the selected (row, column)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "move(-1, 0)", "Up", show=False),
        Binding("down", "move(1, 0)", "Down", show=False),
        Binding("left", "move(0, -1)", "Left", show=False),
        Binding("right", "move(0, 1)", "Right", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "edge('left')", "First column", show=False),
        Binding("end", "edge('right')", "Last column", show=False),
        Binding("ctrl+home", "edge('top')", "Top-left", show=False),
        Binding("ctrl+end", "edge('bottom')", "Bottom-right", show=False),
    ]

    class CursorMoved(Message):
        def __init__(self, grid: MatrixGrid, row: int, col: int) -> None:
            super().__init__()
            self.grid, self.row, self.col = grid, row, col

        @property
        def control(self) -> MatrixGrid:
            return self.grid

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._data: np.ndarray | None = None
        self._rows: Labeler = str
        self._cols: Labeler = str
        self._corner = ""
        self._vmax = 1.0
        self._precision = 4
        self._compact = False  # heatmap mode: colours only, two cells per value
        self._cw = cell_width(self._precision)
        self._label_w = 6
        self._cursor = (0, 0)  # (display row, column); see `_order`
        self._order: np.ndarray | None = None  # display row -> data row; None: all, in order
        self._sorted_by: tuple[int, bool] | None = None
        self._frame: _Frame | None = None
        self._generation = 0  # bumps when the data changes, invalidating cached frames

    # ------------------------------------------------------------------ data
    @property
    def data(self) -> np.ndarray | None:
        return self._data

    @property
    def cursor(self) -> tuple[int, int]:
        return self._cursor

    @property
    def shown_rows(self) -> int:
        """Rows on display (fewer than the data's under a filter)."""
        if self._data is None:
            return 0
        return len(self._order) if self._order is not None else self._data.shape[0]

    def data_row(self, display_row: int) -> int:
        return int(self._order[display_row]) if self._order is not None else display_row

    def set_order(
        self, order: np.ndarray | None, sorted_by: tuple[int, bool] | None = None
    ) -> None:
        """Show these data rows in this order (a sort, a filter); None shows all in order.
        `sorted_by` (column, descending) puts ↓ or ↑ on that column's title."""
        self._order, self._sorted_by = order, sorted_by
        self._generation += 1
        self._cursor = (0, self._cursor[1])
        self.scroll_to(None, 0, animate=False, immediate=True, force=True)
        self._resize_virtual()
        self._clamp_cursor()

    def show_row(self, row: int) -> bool:
        """Jump the cursor to a data row, a third down the view so the rows around it show
        too (False when a filter hides it)."""
        if self._data is None or not 0 <= row < self._data.shape[0]:
            return False
        if self._order is None:
            display = row
        else:
            where = np.flatnonzero(self._order == row)
            if not where.size:
                return False
            display = int(where[0])
        rows_visible, _ = self._viewport()
        y = max(0, display - rows_visible // 3)
        self.scroll_to(None, y, animate=False, immediate=True, force=True)
        self.move_cursor(display, self._cursor[1])
        return True

    @property
    def precision(self) -> int:
        return self._precision

    @precision.setter
    def precision(self, value: int) -> None:
        self._precision = value
        self._update_width()

    @property
    def compact(self) -> bool:
        return self._compact

    @compact.setter
    def compact(self, value: bool) -> None:
        self._compact = value
        self._update_width()

    def _update_width(self) -> None:
        self._cw = 2 if self._compact else cell_width(self._precision)
        self._resize_virtual()
        if self._data is not None:
            self._scroll_to_cursor()

    def set_data(
        self,
        data: np.ndarray,
        *,
        rows: Labeler = str,
        cols: Labeler = str,
        vmax: float = 1.0,
        corner: str = "",
        keep_cursor: bool = True,
    ) -> None:
        """Show a 2-D array. Labels are functions of the index, called for visible rows only."""
        if data.ndim != 2:
            raise ValueError(f"MatrixGrid shows 2-D arrays, got shape {data.shape}")
        same_shape = self._data is not None and self._data.shape == data.shape
        self._data, self._rows, self._cols = data, rows, cols
        self._order, self._sorted_by = None, None
        self._vmax, self._corner = vmax if vmax > 0 else 1.0, corner
        self._generation += 1
        self._label_w = self._measure_labels()
        if not (keep_cursor and same_shape):
            self._cursor = (0, 0)
            self.scroll_to(0, 0, animate=False, immediate=True, force=True)
        self._resize_virtual()
        self._clamp_cursor()

    def clear(self) -> None:
        self._data = None
        self._generation += 1
        self.virtual_size = Size(0, 0)
        self.refresh()

    def _measure_labels(self) -> int:
        assert self._data is not None
        n = self._data.shape[0]
        sample = list(range(min(n, LABEL_SAMPLE))) + list(range(max(0, n - 5), n))
        widest = max([len(self._corner), *(len(self._rows(i)) for i in sample)], default=1)
        return min(MAX_LABEL, widest) + 1

    def _resize_virtual(self) -> None:
        if self._data is None:
            return
        n_rows, n_cols = self.shown_rows, self._data.shape[1]
        # One header line on top; the label column on the left is part of the width; one
        # spare column lets the last columns scroll into place without cutting the first.
        self.virtual_size = Size(self._label_w + (n_cols + 1) * self._cw, n_rows + 1)
        self._frame = None
        self.refresh()

    # ------------------------------------------------------------------ cursor
    def value_at(self, row: int, col: int) -> float | None:
        """The value at a data row (not a display row) and column."""
        if self._data is None or not (
            0 <= row < self._data.shape[0] and 0 <= col < self._data.shape[1]
        ):
            return None
        return float(self._data[row, col])

    def move_cursor(self, row: int, col: int) -> None:
        """Put the cursor on a display row; `CursorMoved` names the data row."""
        if self._data is None or not self.shown_rows:
            return
        n_rows, n_cols = self.shown_rows, self._data.shape[1]
        row = max(0, min(n_rows - 1, row))
        col = max(0, min(n_cols - 1, col))
        self._cursor = (row, col)
        self._scroll_to_cursor()
        if not self.size.height:  # not laid out yet (just shown): scroll once it is
            self.call_after_refresh(self._scroll_to_cursor)
        self.refresh()
        self.post_message(self.CursorMoved(self, self.data_row(row), col))

    def _clamp_cursor(self) -> None:
        if self._data is not None:
            self.move_cursor(*self._cursor)

    def _viewport(self) -> tuple[int, int]:
        """(data rows, data columns' width in cells) visible at once."""
        width, height = self.scrollable_content_region.size
        return max(1, height - 1), max(1, width - self._label_w)

    def _scroll_to_cursor(self) -> None:
        row, col = self._cursor
        rows_visible, data_w = self._viewport()
        x, y = self.scroll_offset
        if row < y:
            y = row
        elif row >= y + rows_visible:
            y = row - rows_visible + 1
        # Scroll by whole columns so the leftmost one is never cut in half.
        shown = max(1, data_w // self._cw)
        first = x // self._cw
        if col < first:
            first = col
        elif col >= first + shown:
            first = col - shown + 1
        x = first * self._cw
        if (x, y) != tuple(self.scroll_offset):
            # force: right after new data the scrollbars are not updated yet, and without it
            # Textual ignores the scroll (a jump to row 297 stayed on row 0)
            self.scroll_to(x, y, animate=False, immediate=True, force=True)

    def action_move(self, d_row: int, d_col: int) -> None:
        self.move_cursor(self._cursor[0] + d_row, self._cursor[1] + d_col)

    def action_page(self, direction: int) -> None:
        rows_visible, _ = self._viewport()
        self.move_cursor(self._cursor[0] + direction * max(1, rows_visible - 1), self._cursor[1])

    def action_edge(self, where: str) -> None:
        if self._data is None:
            return
        last_row, last_col = self.shown_rows - 1, self._data.shape[1] - 1
        row = self._cursor[0]
        target = {
            "left": (row, 0),
            "right": (row, last_col),
            "top": (0, 0),
            "bottom": (last_row, last_col),
        }[where]
        self.move_cursor(*target)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or self._data is None or offset.y == 0 or offset.x < self._label_w:
            return
        x, y = self.scroll_offset
        self.move_cursor(y + offset.y - 1, (x + offset.x - self._label_w) // self._cw)

    # ------------------------------------------------------------------ drawing
    def render_line(self, y: int) -> Strip:
        frame = self._current_frame()
        if frame is None or y >= len(frame.lines):
            return Strip.blank(self.size.width, self.rich_style)
        return frame.lines[y]

    def _current_frame(self) -> _Frame | None:
        if self._data is None:
            return None
        width, height = self.scrollable_content_region.size
        x, y = self.scroll_offset
        key = (self._generation, self._cw, width, height, x, y, self._cursor)
        if self._frame is None or self._frame.key != key:
            try:
                lines = self._draw(width, height, x, y)
            except Exception as exc:  # a value we cannot draw must not take the app down
                lines = [Strip([Segment(f"cannot draw this value: {exc}", Style(color="red"))])]
            self._frame = _Frame(key, lines)
        return self._frame

    def _draw(self, width: int, height: int, sx: int, sy: int) -> list[Strip]:
        """Read the visible window once, then draw every line of it."""
        assert self._data is not None
        n_rows, n_cols = self.shown_rows, self._data.shape[1]
        cw, label_w = self._cw, self._label_w
        data_w = max(0, width - label_w)
        r0, r1 = sy, min(n_rows, sy + max(0, height - 1))
        c0 = min(sx // cw, n_cols)
        off = sx - c0 * cw
        c1 = min(n_cols, c0 + (off + data_w + cw - 1) // cw)
        if self._order is None:
            data_rows = list(range(r0, r1))
            block = np.asarray(self._data[r0:r1, c0:c1])
        else:
            data_rows = self._order[r0:r1].tolist()
            block = np.asarray(self._data[data_rows, c0:c1]).reshape(len(data_rows), c1 - c0)
        codes = levels(block, self._vmax).tolist()
        values = block.astype(np.float64, copy=False).tolist()
        base = self.rich_style
        compact = self._compact
        text_w, prec = (cw if compact else cw - 1), self._precision
        cur_r, cur_c = self._cursor
        gaps = [] if compact else [Segment(" ", base)]
        blank = " " * text_w
        head_style, mark_style, label_style_ = base + _HEADER, base + _MARK, base + _LABEL

        def finish(label: Segment, cells: list[Segment]) -> Strip:
            data = Strip(cells).crop(off, off + data_w) if cells else Strip([])
            return Strip.join([Strip([label]), data]).adjust_cell_length(width, base)

        header: list[Segment] = []
        for c in range(c0, c1):
            if compact:  # no room for labels: mark every 5th column
                text = str(c)[-2:].rjust(2) if c % 5 == 0 else blank
            else:
                title = self._cols(c)
                if self._sorted_by is not None and self._sorted_by[0] == c:
                    title = ("↓ " if self._sorted_by[1] else "↑ ") + title
                text = set_cell_size(title, text_w)
                if text.strip().isdigit():
                    text = text.strip().rjust(text_w)
            header += [Segment(text, mark_style if c == cur_c else head_style), *gaps]
        corner = Segment(set_cell_size(self._corner, label_w), head_style)
        lines = [finish(corner, header)]
        for i, row in enumerate(range(r0, r1)):
            label_style = mark_style if row == cur_r else label_style_
            text = self._rows(data_rows[i])
            label = Segment(set_cell_size(text, label_w - 1) + " ", label_style)
            cells: list[Segment] = []
            row_codes, row_values = codes[i], values[i]
            for j, col in enumerate(range(c0, c1)):
                style = CURSOR_STYLE if (row == cur_r and col == cur_c) else style_for(row_codes[j])
                text = blank if compact else format_number(row_values[j], text_w, prec)
                cells += [Segment(text, style), *gaps]
            lines.append(finish(label, cells))
        return lines
