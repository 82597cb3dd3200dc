"""take(): indices that are not whole numbers are refused by name, not truncated or cast."""

from __future__ import annotations

import pytest

from cellgpt.api import full_library
from cellgpt.engine import Status, Workbook


@pytest.mark.parametrize(
    ("indices", "shown"),
    [
        ("[1, 2.5]", "entry 1 is 2.5"),
        ("[0, nan]", "entry 1 is nan"),
        ("[inf]", "entry 0 is inf"),
        ("2.5", "entry 0 is 2.5"),
    ],
)
def test_take_refuses_indices_that_are_not_whole_numbers(indices: str, shown: str) -> None:
    wb = Workbook(full_library())
    wb.define("table", "[[1, 2], [3, 4], [5, 6]]")
    wb.define("picked", f"take(table, {indices})")
    wb.run()
    assert wb.status("picked") == Status.ERROR
    message = wb.state("picked").error.message
    assert "indices must be whole numbers" in message and shown in message


def test_take_accepts_whole_floats_and_ints() -> None:
    wb = Workbook(full_library())
    wb.define("table", "[[1, 2], [3, 4], [5, 6]]")
    wb.define("by_float", "take(table, [2.0, 0.0])")
    wb.define("by_int", "take(table, [2, 0])")
    assert wb["by_float"].tolist() == wb["by_int"].tolist() == [[5, 6], [1, 2]]
    wb.define("one_row", "take(table, 1.0)")
    assert wb["one_row"].tolist() == [3, 4]
