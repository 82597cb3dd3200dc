"""Row-append recompute in the engine: a cell with a row-append variant computes only the
new rows when its inputs only gained rows, and falls back to its formula otherwise."""

from __future__ import annotations

import numpy as np
import pytest

from cellgpt.engine import CellSpec, Workbook
from cellgpt.engine.append import RowExtender, join_rows, prefix_rows, shared_prefix


class Spy:
    """Wraps an extender and records the grown inputs of every call."""

    def __init__(self, inner: RowExtender) -> None:
        self.inner, self.calls = inner, []

    def __call__(self, prev, env, grown, evaluate):
        self.calls.append(dict(grown))
        return self.inner(prev, env, grown, evaluate)


def _book() -> tuple[Workbook, Spy]:
    wb = Workbook()
    wb.define_many(
        [
            CellSpec("xs", "[1.0, 2.0]"),
            CellSpec("x", "array(xs)"),
            CellSpec("w", "array([10.0, 100.0])"),
            CellSpec("y", "matmul(reshape(x, [-1, 1]), reshape(w, [1, 2])) + 1"),
            CellSpec("total", "sum(y)"),
        ]
    )
    spy = Spy(RowExtender({"x": 0}))
    wb.set_extender("y", spy)
    return wb, spy


def test_appending_rows_computes_only_the_new_rows():
    wb, spy = _book()
    np.testing.assert_array_equal(wb["y"], [[11, 101], [21, 201]])
    assert spy.calls == []  # first run: no previous value
    wb.set("xs", [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(wb["y"], [[11, 101], [21, 201], [31, 301]])
    assert spy.calls == [{"x": 2}]
    assert wb.state("y").appended_from == 2
    assert wb["total"] == float(np.sum(wb["y"]))


def test_other_changes_recompute_in_full():
    wb, spy = _book()
    wb.run()
    wb.set("xs", [5.0, 2.0, 3.0])  # an earlier row changed: not an append
    np.testing.assert_array_equal(wb["y"][0], [51, 501])
    wb.set_formula("w", "array([1.0, 1.0])")  # a whole-matrix input changed
    np.testing.assert_array_equal(wb["y"][:, 1], [6, 3, 4])
    assert spy.calls == []


def test_editing_the_formula_drops_the_extender():
    wb, spy = _book()
    wb.run()
    wb.set_formula("y", "matmul(reshape(x, [-1, 1]), reshape(w, [1, 2])) + 2")
    assert wb.extender("y") is None
    wb.run()
    wb.set("xs", [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(wb["y"][-1], [32, 302])
    assert spy.calls == []


def test_two_appends_before_a_run_still_extend_correctly():
    wb, spy = _book()
    wb.run()
    wb.set("xs", [1.0, 2.0, 3.0])
    wb.run("x")
    wb.set("xs", [1.0, 2.0, 3.0, 4.0])  # x recomputed twice since y last ran
    np.testing.assert_array_equal(wb["y"][-2:], [[31, 301], [41, 401]])
    assert spy.calls == []  # the engine cannot vouch for the middle step: full recompute


def test_prefix_rows_and_join_rows():
    assert prefix_rows([1, 2], [1, 2, 3]) == 2
    assert prefix_rows([1, 2], [0, 2, 3]) is None
    assert prefix_rows(np.zeros((2, 3)), np.zeros((4, 3))) == 2
    assert prefix_rows(np.zeros((2, 3)), np.zeros((4, 2))) is None
    assert prefix_rows(3, 4) is None
    prev = np.arange(4.0).reshape(1, 2, 2)
    new = np.full((1, 1, 3), 7.0)
    joined = join_rows(prev, new, axis=1, pad=-np.inf)
    assert joined.shape == (1, 3, 3)
    np.testing.assert_array_equal(joined[0, :2, 2], [-np.inf, -np.inf])
    np.testing.assert_array_equal(joined[0, 2], [7, 7, 7])


def test_join_rows_extends_only_its_newest_view_in_place():
    first = join_rows(np.zeros((2, 3), np.float32), np.ones((1, 3), np.float32), 0, None)
    second = join_rows(first, np.full((1, 3), 2, np.float32), 0, None)
    assert second.base is first.base  # the newest view grows into the spare rows
    np.testing.assert_array_equal(second[:, 0], [0, 0, 1, 2])
    # An older view, or another view of the same rows (same shape even), must not write
    # into the rows the newest already holds: those get a buffer of their own.
    for stale in (first, second[:], second[::-1]):
        kept = second.copy()
        other = join_rows(stale, np.full((1, 3), 9, np.float32), 0, None)
        assert other.base is not second.base
        np.testing.assert_array_equal(other[-1], [9, 9, 9])
        np.testing.assert_array_equal(second, kept)
    third = join_rows(second, np.full((1, 3), 3, np.float32), 0, None)
    assert third.base is second.base  # still the newest: in place again
    np.testing.assert_array_equal(third[:, 0], [0, 0, 1, 2, 3])
    wider = join_rows(third, np.full((1, 3), 4.0), 0, None)  # float64 rows: a new buffer
    assert wider.dtype == np.float64 and wider.base is not third.base


@pytest.mark.parametrize("bad", [np.zeros((2, 5)), [1, 2]])
def test_extender_refuses_what_it_cannot_extend(bad):
    ext = RowExtender({"x": 0})
    assert ext(bad, {"x": np.zeros(3)}, {"x": 1}, lambda env: env["x"]) is None


def test_a_value_rewritten_upstream_is_not_compared_row_by_row(monkeypatch):
    from cellgpt.engine import runner

    compared: list[int] = []

    def counting(prev, new):
        compared.append(1)
        return prefix_rows(prev, new)

    monkeypatch.setattr(runner, "prefix_rows", counting)
    wb = Workbook()
    wb.define_many(
        [
            CellSpec("xs", "[1.0, 2.0, 3.0]"),
            CellSpec("x", "array(xs)"),
            CellSpec("y", "x * 2"),
            CellSpec("z", "y + 1"),
        ]
    )
    wb.run()
    compared.clear()
    wb.set("xs", [5.0, 6.0, 7.0])  # a rewrite: xs and x (the user's input) compared, y and z not
    wb.run()
    assert len(compared) == 2 and wb.state("x").appended_from is None
    assert wb.state("z").appended_from is None and list(wb["z"]) == [11.0, 13.0, 15.0]
    compared.clear()
    wb.set("xs", [5.0, 6.0, 7.0, 8.0])  # rows appended: found, and passed down the chain
    wb.run()
    assert len(compared) == 4
    assert wb.state("x").appended_from == wb.state("z").appended_from == 3


def test_shared_prefix_needs_the_same_read_only_memory():
    table = np.arange(24.0).reshape(8, 3).copy()  # its own memory: the root
    table.flags.writeable = False  # as memory-mapped parameters are
    assert shared_prefix(table[:3], table[:5]) == 3  # rows 0..2 are rows 0..2: no compare
    assert shared_prefix(table[:5], table[:3]) is None  # shorter
    assert shared_prefix(table[1:4], table[:5]) is None  # another first row
    assert shared_prefix(table[:3, :2], table[:5, :2]) == 3
    assert shared_prefix(table[:3, :2], table[:5]) is None  # other columns
    assert shared_prefix(table[:3], table[:6:2]) is None  # other strides
    assert shared_prefix(table, table) is None  # the root itself: not a view of anything
    writeable = np.arange(24.0).reshape(8, 3).copy()
    assert shared_prefix(writeable[:3], writeable[:5]) is None  # its rows could have changed
    copy = np.array(table[:5])
    copy.flags.writeable = False
    assert shared_prefix(table[:3], copy) is None  # equal numbers, other memory


def test_a_growing_view_of_read_only_rows_is_known_to_have_grown():
    """wpe_rows-like: a slice of a read-only table, one row longer each time; the cell after
    it then extends its rows instead of recomputing them all."""
    table = np.arange(40.0).reshape(10, 4).copy()
    table.flags.writeable = False
    wb = Workbook()
    wb.define_many(
        [
            CellSpec("table", "0"),
            CellSpec("ids", "[7, 8, 9]"),
            CellSpec("n", "len(ids)"),  # a count, as n_tokens: not rows that grew
            CellSpec("part", "table[:n]"),
            CellSpec("doubled", "part * 2"),
        ]
    )
    wb.pin("table", table)  # a parameter table: read-only memory
    wb.set_extender("doubled", RowExtender({"part": 0}))
    wb.run()
    wb.set("ids", [7, 8, 9, 10, 11])
    wb.run()
    assert wb.state("part").appended_from == 3
    assert wb.state("doubled").appended_from == 3
    np.testing.assert_array_equal(wb["doubled"], table[:5] * 2)
