"""`wb.stale()` lists only cells whose computed value is out of date; cells never computed are
`wb.pending()`; `wb.needs_run()` is both (what `run()` computes)."""

from __future__ import annotations

from cellgpt.engine import Workbook


def chain() -> Workbook:
    wb = Workbook()
    wb.define("a", "1")
    wb.define("b", "a + 1")
    wb.define("c", "b * 2")
    wb.define("d", "a * 10")
    return wb


def test_a_new_workbook_is_all_pending_and_nothing_stale() -> None:
    wb = chain()
    assert wb.stale() == []
    assert wb.pending() == ["a", "b", "c", "d"]
    assert wb.needs_run() == ["a", "b", "c", "d"]


def test_an_edit_makes_computed_cells_stale_and_leaves_the_rest_pending() -> None:
    wb = chain()
    assert wb["c"] == 4  # computes a, b, c; d was never needed
    wb.set_formula("b", "a + 2")
    assert wb.stale() == ["b", "c"]
    assert wb.pending() == ["d"]
    assert wb.needs_run() == ["b", "c", "d"]
    wb.run()
    assert wb.stale() == wb.pending() == []
