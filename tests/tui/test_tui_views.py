"""Reading values in the TUI (Pilot): sort and filter a grid or a table, a jump to a found
token scrolls there at once, the next-token panel shows Δp and rank changes after an edit,
and the consistency points: 0-based heads, q backs out then quits with a hint, Ctrl+Q in the
footer (asking first about unsaved edits), a visible non-breaking space."""

from __future__ import annotations

from typing import Any

import numpy as np
from textual.widgets import Input, OptionList

from cellgpt.engine import Workbook
from cellgpt.tui.app import CellGptApp
from cellgpt.tui.labels import NBSP_MARK, visible
from cellgpt.tui.screens.confirm import ConfirmScreen
from cellgpt.tui.screens.find import FindScreen
from cellgpt.tui.screens.sort import SortScreen
from cellgpt.tui.widgets.topk import delta_text, render_top_k
from tests.tui import test_tui
from tests.tui.test_tui import Notes, edit, run_app, settle

tui_model, wb_path, wb = test_tui.tui_model, test_tui.wb_path, test_tui.wb


def title(app: CellGptApp) -> str:
    return str(app.value_pane.query_one("#value-title").render())


def visible_rows(widget: Any) -> range:
    y = round(widget.scroll_offset.y)
    return range(y, y + widget.scrollable_content_region.height - 1)


# ---------------------------------------------------------------------- sort and filter
def test_o_sorts_a_grid_by_the_cursor_column_high_low_then_off(wb: Workbook) -> None:
    app = CellGptApp(wb, start_cell="logits")

    async def scenario(pilot: Any) -> None:
        grid = app.value_pane.grid
        logits = wb.value("logits")
        app.value_pane.focus_value()
        await pilot.press("o")
        await pilot.pause()
        assert grid.data_row(0) == int(np.argmax(logits))  # the best guess on top
        shown = [float(logits[grid.data_row(i)]) for i in range(50)]
        assert shown == sorted(shown, reverse=True)
        assert "sorted by value ↓" in title(app)
        assert "↓ value" in grid.render_line(0).text  # and on the column's title
        await pilot.press("o")
        await pilot.pause()
        assert grid.data_row(0) == int(np.argmin(logits))
        await pilot.press("o")
        await pilot.pause()
        assert grid.data_row(0) == 0 and "sorted" not in title(app)
        await pilot.press("o", "down")  # the status line names the data row, not the display
        await pilot.pause()
        status = str(app.value_pane.query_one("#value-status").render())
        second = int(np.argsort(-logits, kind="stable")[1])
        assert f"{float(logits[second]):.9g}" in status

    run_app(app, scenario)


def test_a_filter_keeps_the_rows_whose_label_contains_a_text(wb: Workbook) -> None:
    app = CellGptApp(wb, start_cell="logits")

    async def scenario(pilot: Any) -> None:
        grid = app.value_pane.grid
        await pilot.press("vertical_line")
        await pilot.pause()
        app.screen.query_one(Input).value = "the"
        await pilot.press("enter")
        await pilot.pause()
        assert 0 < grid.shown_rows < wb.value("logits").shape[0]
        labels = [grid._rows(grid.data_row(i)) for i in range(grid.shown_rows)]
        assert all("the" in label.lower() for label in labels)
        assert "filter 'the'" in title(app) and f"{grid.shown_rows:,}/" in title(app)
        await pilot.press("vertical_line")
        await pilot.pause()
        app.screen.query_one(Input).value = ""  # empty: every row again
        await pilot.press("enter")
        await pilot.pause()
        assert grid.shown_rows == wb.value("logits").shape[0]

    run_app(app, scenario)


def test_o_on_a_table_sorts_by_a_picked_column(wb: Workbook) -> None:
    app = CellGptApp(wb, start_cell="vocab")

    async def scenario(pilot: Any) -> None:
        table = app.value_pane.table
        vocab = wb.value("vocab")
        await pilot.press("o")
        await pilot.pause()
        assert isinstance(app.screen, SortScreen)
        options = app.screen.query_one(OptionList)
        labels = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        pick = labels.index("by id  high → low")
        options.highlighted = pick
        await pilot.press("enter")
        await pilot.pause()
        assert table.record_row(0) == len(vocab) - 1  # the last id first
        assert "id↓" in table.render_line(0).text  # the sorted column's title says so
        await pilot.press("o")
        await pilot.pause()
        options = app.screen.query_one(OptionList)
        options.highlighted = labels.index("by n_bytes  high → low")
        await pilot.press("enter")
        await pilot.pause()
        longest = max(r[3] for r in vocab)
        assert vocab[table.record_row(0)][3] == longest and "sorted by n_bytes" in title(app)

    run_app(app, scenario)


def test_a_table_filter_and_a_jump_to_a_row_it_hides(wb: Workbook) -> None:
    app = CellGptApp(wb, start_cell="vocab")

    async def scenario(pilot: Any) -> None:
        table = app.value_pane.table
        await pilot.press("vertical_line")
        await pilot.pause()
        app.screen.query_one(Input).value = "ing"
        await pilot.press("enter")
        await pilot.pause()
        vocab = wb.value("vocab")
        assert 0 < table.shown_count < len(vocab)
        rows = [vocab[table.record_row(i)] for i in range(table.shown_count)]
        assert all(any("ing" in str(c).lower() for c in r) for r in rows)
        app.point_at_row(0)  # "!" is filtered out: the filter goes, the jump lands
        await pilot.pause()
        assert table.shown_count == len(vocab) and table.cursor_row == 0

    run_app(app, scenario)


# ---------------------------------------------------------------------- jumping
def test_jumping_to_a_found_token_scrolls_the_grid_to_it_at_once(wb: Workbook) -> None:
    app = CellGptApp(wb)

    async def scenario(pilot: Any) -> None:
        app.navigate("h3.attn.pattern")  # a small grid first, then the 50257-row table
        await pilot.pause()
        await pilot.press("slash", *"quickly")
        await pilot.pause()
        assert isinstance(app.screen, FindScreen)
        hits = app.screen._hits
        index = next(i for i, h in enumerate(hits) if h.kind == "vocab")
        row = int(hits[index].target)
        assert row > 1000  # far below the first screen
        app.screen.query_one("#find-results").highlighted = index
        await pilot.press("enter")
        await pilot.pause()
        grid = app.value_pane.grid
        assert app.current == "wte" and grid.cursor[0] == row
        assert row in visible_rows(grid)  # on screen now, not after another key
        assert (
            grid.render_line(1 + row - round(grid.scroll_offset.y))
            .text.lstrip()
            .startswith(str(row))
        )

    run_app(app, scenario)


def test_jumping_in_a_sorted_grid_lands_on_the_data_row(wb: Workbook) -> None:
    app = CellGptApp(wb, start_cell="logits")

    async def scenario(pilot: Any) -> None:
        grid = app.value_pane.grid
        await pilot.press("o")
        await pilot.pause()
        app.point_at_row(5)
        await pilot.pause()
        assert grid.data_row(grid.cursor[0]) == 5 and grid.cursor[0] in visible_rows(grid)

    run_app(app, scenario)


# ---------------------------------------------------------------------- the next token
def test_top_k_shows_the_change_in_probability_after_an_edit(wb: Workbook) -> None:
    app = CellGptApp(wb)

    async def scenario(pilot: Any) -> None:
        before = {int(r[0]): float(r[2]) for r in wb.value("top_k")}
        app.navigate("h3.attn.pattern")
        await pilot.pause()
        await edit(pilot, "zero_head(softmax(h3.attn.scores), 0)")
        await pilot.press("R")
        await settle(pilot)
        after = wb.value("top_k")
        text = str(app.main.query_one("#topk").render())
        assert "Δp" in text and "rank" in text
        token_id, _, prob, _ = after[0]
        if int(token_id) in before:
            assert delta_text(float(prob) - before[int(token_id)]) in text.splitlines()[1]

    run_app(app, scenario)


def test_render_top_k_rank_and_delta_columns() -> None:
    old = [(1, "a", 0.5, 0.0), (2, "b", 0.3, 0.0)]
    new = [(2, "b", 0.6, 0.0), (1, "a", 0.2, 0.0), (3, "c", 0.1, 0.0)]
    lines = render_top_k(new, old, width=60).plain.splitlines()
    assert "Δp" in lines[0]
    assert "▲1" in lines[1] and "+30.00pp" in lines[1]
    assert "▼1" in lines[2] and "-30.00pp" in lines[2]
    assert "new" in lines[3]
    assert all(len(line) <= 60 for line in lines)


# ---------------------------------------------------------------------- consistency
def test_q_goes_back_then_asks_for_a_second_q_to_quit(wb: Workbook) -> None:
    app = CellGptApp(wb)
    notes = Notes(app)

    async def scenario(pilot: Any) -> None:
        start = app.current
        app.navigate("logits")
        await pilot.pause()
        await pilot.press("q")  # back, like Escape
        await pilot.pause()
        assert app.current == start and app.is_running
        await pilot.press("q")  # at the top: a hint, not a surprise exit
        await pilot.pause()
        assert app.is_running and "press q again to quit" in notes.text()
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running

    run_app(app, scenario)


def test_ctrl_q_is_in_the_footer_and_asks_about_unsaved_edits(wb: Workbook) -> None:
    app = CellGptApp(wb)

    async def scenario(pilot: Any) -> None:
        shown = {k for k, b in app.screen.active_bindings.items() if b.binding.show}
        assert "ctrl+q" in shown and "question_mark" in shown
        app.navigate("h3.attn.pattern")
        await pilot.pause()
        await edit(pilot, "zero_head(softmax(h3.attn.scores), 0)")
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen) and app.is_running
        await pilot.press("n")
        await pilot.pause()
        assert app.screen is app.main and app.is_running
        await pilot.press("ctrl+q")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert not app.is_running

    run_app(app, scenario)


def test_the_palettes_quit_asks_about_unsaved_edits_too(wb: Workbook) -> None:
    app = CellGptApp(wb)

    async def scenario(pilot: Any) -> None:
        app.navigate("h3.attn.pattern")
        await pilot.pause()
        await edit(pilot, "zero_head(softmax(h3.attn.scores), 0)")
        await app.action_quit()  # what the command palette's "Quit" runs
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen) and app.is_running

    run_app(app, scenario)


def test_ctrl_q_does_not_ask_when_every_edit_was_undone(wb: Workbook) -> None:
    app = CellGptApp(wb)

    async def scenario(pilot: Any) -> None:
        app.navigate("h3.attn.pattern")
        await pilot.pause()
        await edit(pilot, "zero_head(softmax(h3.attn.scores), 0)")
        await pilot.press("u")
        await pilot.pause()
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert not app.is_running  # nothing to lose: no question

    run_app(app, scenario)


def test_one_meaning_per_mark() -> None:
    assert visible(" the") == "·the"  # · is a space at a token's edge
    assert visible("\xa0the") == f"{NBSP_MARK}the"  # a non-breaking space has its own mark
    assert visible("a\u200bb") == "a\\u200bb"  # other invisible characters are spelled out
    from cellgpt.tui.screens.help import INTRO
    from cellgpt.tui.widgets.details import REFS_TITLE

    assert "·" not in REFS_TITLE.plain  # no second meaning as a separator
    assert NBSP_MARK in INTRO and "·" in INTRO


def test_logits_all_is_computed_only_on_demand(wb_path: Any, tui_model: Any) -> None:
    import cellgpt

    book = cellgpt.open(wb_path, model=str(tui_model), prompt=test_tui.PROMPT)
    app = CellGptApp(book)  # runs what is stale on start
    notes = Notes(app)

    async def scenario(pilot: Any) -> None:
        assert test_tui.only_on_demand(book, book.needs_run()) and book.value("top_k")
        assert "on demand" in app.tree._leaves["logits_all"].label.plain
        await pilot.press("R")
        await pilot.pause()
        # logits_all, then the gradients stage's cells (loss, backward, grad.*, attributions)
        assert "nothing is stale (logits_all, loss, backward and " in notes.text()
        assert " more: on demand, r on it computes it" in notes.text()
        app.navigate("logits_all")
        await pilot.pause()
        await pilot.press("r")
        await settle(pilot)
        assert "logits_all" not in book.stale() and book.value("logits_all").shape[0] == len(
            book["tokens"]
        )

    run_app(app, scenario)
