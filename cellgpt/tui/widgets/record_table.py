"""A virtual table of records on Textual's Line API: only the rows on screen are formatted, so
GPT-2's 50,257-row vocabulary scrolls as fast as a five-row BPE table. Column titles stay put
while the rows scroll; the cursor is a whole row."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

Formatter = Callable[[Any], str]
MAX_COLUMN = 24  # widest column, in cells; longer text is cut (the status line has it whole)
MIN_COLUMN = 3
WIDTH_SAMPLE = 20_000  # cells looked at to size the columns (rows spread over the table)
WIDTH_QUANTILE = 0.99  # a column is as wide as this share of its sampled cells needs,
WIDTH_QUANTILE_MIN = 200  # when there are at least this many (else as its widest cell)

_HEADER = Style(bold=True, underline=True)
_CURSOR = Style(reverse=True, bold=True)
_RULE = Style(dim=True)
_SEPARATOR = "│"
_PAD = 3  # a space either side of a cell's text, then the separator


@dataclass
class _Frame:
    key: tuple[object, ...]
    lines: list[Strip]


def cells_of(record: Any) -> Sequence[Any]:
    """A record's cells: a tuple or list is a row of cells; anything else one cell."""
    return record if isinstance(record, tuple | list) else (record,)


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class RecordTable(ScrollView, can_focus=True):
    """Shows a sequence of records under column titles; `cursor` is the selected row."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "move(-1)", "Up", show=False),
        Binding("down", "move(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("left", "columns(-1)", "Left", show=False),
        Binding("right", "columns(1)", "Right", show=False),
        Binding("home", "edge('left')", "First column", show=False),
        Binding("end", "edge('right')", "Last column", show=False),
        Binding("ctrl+home", "edge('top')", "First row", show=False),
        Binding("ctrl+end", "edge('bottom')", "Last row", show=False),
    ]

    class CursorMoved(Message):
        def __init__(self, table: RecordTable, row: int) -> None:
            super().__init__()
            self.table, self.row = table, row

        @property
        def control(self) -> RecordTable:
            return self.table

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._records: Sequence[Any] = ()
        self._columns: tuple[str, ...] = ()
        self._format: Formatter = str
        self._widths: list[int] = []
        self._right: list[bool] = []  # columns of numbers: titles right-aligned
        self._starts: list[int] = [0]  # x of each column's left edge; the last is the width
        self._cursor = 0  # a display row (see `_order`)
        self._order: Sequence[int] | None = None  # display row -> record; None: all, in order
        self._sorted_by: tuple[int, bool] | None = None
        self._frame: _Frame | None = None
        self._generation = 0  # bumps when the data changes, invalidating cached frames

    # ------------------------------------------------------------------ data
    @property
    def cursor(self) -> int:
        return self._cursor

    @property
    def row_count(self) -> int:
        return len(self._records)

    @property
    def shown_count(self) -> int:
        """Rows on display (fewer than `row_count` under a filter)."""
        return len(self._order) if self._order is not None else len(self._records)

    def record_row(self, display_row: int) -> int:
        return int(self._order[display_row]) if self._order is not None else display_row

    @property
    def cursor_row(self) -> int:
        """The record under the cursor."""
        return self.record_row(self._cursor) if self.shown_count else 0

    def set_order(
        self, order: Sequence[int] | None, sorted_by: tuple[int, bool] | None = None
    ) -> None:
        """Show these records in this order (a sort, a filter); None shows all in order.
        `sorted_by` (column, descending) puts ↓ or ↑ after that column's title."""
        self._order, self._sorted_by = order, sorted_by
        self._generation += 1
        self._cursor = 0
        self.scroll_to(0, 0, animate=False, immediate=True, force=True)
        self.virtual_size = Size(self._starts[-1] + 1, self.shown_count + 1)
        self._frame = None
        self.refresh()
        self.move_cursor(0)

    def show_row(self, row: int) -> bool:
        """Jump the cursor to a record, a third down the view so the rows around it show too
        (False when a filter hides it)."""
        if not 0 <= row < len(self._records):
            return False
        if self._order is None:
            display = row
        else:
            try:
                display = list(self._order).index(row)
            except ValueError:
                return False
        y = max(0, display - self._rows_visible() // 3)
        self.scroll_to(None, y, animate=False, immediate=True, force=True)
        self.move_cursor(display)
        return True

    @property
    def columns(self) -> tuple[str, ...]:
        return self._columns

    @property
    def records(self) -> Sequence[Any]:
        return self._records

    def set_data(
        self,
        records: Sequence[Any],
        columns: Sequence[str],
        *,
        format: Formatter = str,
        keep_cursor: bool = False,
    ) -> None:
        """Show `records` (never copied: rows are read when they come on screen)."""
        self._records, self._columns, self._format = records, tuple(columns), format
        self._order, self._sorted_by = None, None
        self._generation += 1
        self._widths = self._measure()
        self._starts = [0]
        for w in self._widths:
            self._starts.append(self._starts[-1] + w + _PAD)
        if not keep_cursor:
            self._cursor = 0
            self.scroll_to(0, 0, animate=False, immediate=True, force=True)
        # One title line on top; one spare column so the last one scrolls fully into view.
        self.virtual_size = Size(self._starts[-1] + 1, self.shown_count + 1)
        self._frame = None
        self.refresh()
        self.move_cursor(self._cursor)

    def row_texts(self, row: int) -> list[str]:
        """The displayed text of every cell of a row, uncut."""
        cells = cells_of(self._records[row])
        return [self._format(cells[c]) if c < len(cells) else "" for c in range(len(self._columns))]

    def _sample_rows(self) -> list[int]:
        n = len(self._records)
        budget = max(1, WIDTH_SAMPLE // max(1, len(self._columns)))
        if n <= budget:
            return list(range(n))
        head = budget // 2  # the first rows, then rows spread evenly over the rest
        step = max(1, (n - head) // (budget - head))
        return [*range(head), *range(head, n, step), n - 1]

    def _measure(self) -> list[int]:
        """Each column fits its title and nearly all of the sampled cells: a few very long
        ones (a 64-dash token) are cut rather than widening the column for everyone."""
        lengths: list[list[int]] = [[] for _ in self._columns]
        numbers = [0] * len(self._columns)  # a number is never cut: its column fits them all
        texty = [False] * len(self._columns)
        for row in self._sample_rows():
            cells = cells_of(self._records[row])
            for c, text in enumerate(self.row_texts(row)):
                lengths[c].append(cell_len(text))
                if c < len(cells) and _numeric(cells[c]):
                    numbers[c] = max(numbers[c], len(text))
                elif c < len(cells) and cells[c] is not None:
                    texty[c] = True
        # a column of numbers (blanks allowed) has its title right-aligned over them
        self._right = [n > 0 and not t for n, t in zip(numbers, texty, strict=True)]
        widths = []
        for title, found, number in zip(self._columns, lengths, numbers, strict=True):
            found.sort()
            typical = found[int(WIDTH_QUANTILE * (len(found) - 1))] if found else 0
            if len(found) < WIDTH_QUANTILE_MIN:
                typical = found[-1] if found else 0
            # the title has room for a sort mark (↓ ↑) after it
            widths.append(max(MIN_COLUMN, cell_len(title) + 1, number, min(MAX_COLUMN, typical)))
        return widths

    # ------------------------------------------------------------------ cursor
    def move_cursor(self, row: int) -> None:
        """Put the cursor on a display row; `CursorMoved` names the record."""
        if not self.shown_count:
            return
        self._cursor = max(0, min(self.shown_count - 1, row))
        self._scroll_to_cursor()
        self.refresh()
        self.post_message(self.CursorMoved(self, self.record_row(self._cursor)))

    def _rows_visible(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def _scroll_to_cursor(self) -> None:
        y = round(self.scroll_offset.y)
        shown = self._rows_visible()
        if self._cursor < y:
            y = self._cursor
        elif self._cursor >= y + shown:
            y = self._cursor - shown + 1
        if y != round(self.scroll_offset.y):
            self.scroll_to(None, y, animate=False, immediate=True, force=True)

    def action_move(self, delta: int) -> None:
        self.move_cursor(self._cursor + delta)

    def action_page(self, direction: int) -> None:
        self.move_cursor(self._cursor + direction * max(1, self._rows_visible() - 1))

    def action_columns(self, delta: int) -> None:
        """Scroll sideways by one column, so the leftmost column is never cut."""
        x = round(self.scroll_offset.x)
        first = bisect.bisect_right(self._starts, x) - 1
        target = max(0, min(len(self._widths) - 1, first + delta))
        self.scroll_to(self._starts[target], None, animate=False, immediate=True, force=True)

    def action_edge(self, where: str) -> None:
        if where == "top":
            self.move_cursor(0)
        elif where == "bottom":
            self.move_cursor(self.shown_count - 1)
        else:
            x = 0 if where == "left" else self._starts[-1]
            self.scroll_to(x, None, animate=False, immediate=True, force=True)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is not None and offset.y > 0:
            self.move_cursor(round(self.scroll_offset.y) + offset.y - 1)

    # ------------------------------------------------------------------ drawing
    def render_line(self, y: int) -> Strip:
        frame = self._current_frame()
        if frame is None or y >= len(frame.lines):
            return Strip.blank(self.size.width, self.rich_style)
        return frame.lines[y]

    def _current_frame(self) -> _Frame | None:
        if not self._columns:
            return None
        width, height = self.scrollable_content_region.size
        x, y = round(self.scroll_offset.x), round(self.scroll_offset.y)
        key = (self._generation, width, height, x, y, self._cursor)
        if self._frame is None or self._frame.key != key:
            try:
                lines = self._draw(width, height, x, y)
            except Exception as exc:  # a value we cannot draw must not take the app down
                lines = [Strip([Segment(f"cannot draw this table: {exc}", Style(color="red"))])]
            self._frame = _Frame(key, lines)
        return self._frame

    def _sort_mark(self, column: int) -> str:
        if self._sorted_by is None or self._sorted_by[0] != column:
            return ""
        return "↓" if self._sorted_by[1] else "↑"

    def _draw(self, width: int, height: int, sx: int, sy: int) -> list[Strip]:
        """Format the visible rows and columns once, then draw every line of them."""
        base = self.rich_style
        c0 = max(0, bisect.bisect_right(self._starts, sx) - 1)
        c1 = min(len(self._widths), bisect.bisect_left(self._starts, sx + width))
        off = sx - self._starts[c0]
        r0, r1 = sy, min(self.shown_count, sy + max(0, height - 1))
        rule = Segment(_SEPARATOR, base + _RULE)

        def line(texts: list[str], numeric: list[bool], style: Style) -> Strip:
            segments: list[Segment] = []
            for c, text in zip(range(c0, c1), texts, strict=True):
                w = self._widths[c]
                if cell_len(text) > w:
                    text = set_cell_size(text, w - 1) + "…"
                text = text.rjust(w) if numeric[c - c0] else set_cell_size(text, w)
                segments += [Segment(f" {text} ", style), rule]
            return Strip(segments).crop(off, off + width).adjust_cell_length(width, base)

        titles = [self._columns[c] + self._sort_mark(c) for c in range(c0, c1)]
        lines = [line(titles, self._right[c0:c1], base + _HEADER)]
        for row in range(r0, r1):
            cells = cells_of(self._records[self.record_row(row)])
            values = [cells[c] if c < len(cells) else "" for c in range(c0, c1)]
            texts = [self._format(v) for v in values]
            style = base + _CURSOR if row == self._cursor else base
            lines.append(line(texts, [_numeric(v) for v in values], style))
        return lines
