"""`matmul(x, w) + b` adds the bias into the product (a temporary) instead of a new array:
the same numbers, and no cell's value is ever written to."""

from __future__ import annotations

import numpy as np

from cellgpt.engine import Workbook
from cellgpt.engine.functions import core


def _book() -> Workbook:
    wb = Workbook(core.copy())
    rng = np.random.default_rng(0)
    wb.define("x", "1")
    wb.set("x", rng.standard_normal((5, 4)).astype(np.float32))
    wb.define("w", "1")
    wb.set("w", rng.standard_normal((4, 3)).astype(np.float32))
    wb.define("b", "1")
    wb.set("b", rng.standard_normal(3).astype(np.float32))
    return wb


def test_a_temporary_takes_the_bias_in_place_with_the_same_numbers():
    wb = _book()
    wb.define("y", "matmul(x, w) + b")
    wb.define("z", "(matmul(x, w) * 2.0 - b) / 3")
    x, w, b = (np.array(wb[n]) for n in ("x", "w", "b"))
    np.testing.assert_array_equal(wb["y"], np.matmul(x, w) + b)
    np.testing.assert_array_equal(wb["z"], (np.matmul(x, w) * 2.0 - b) / 3)
    assert wb["y"].dtype == np.float32 and wb["z"].dtype == np.float32


def test_cell_values_are_never_written():
    wb = _book()
    wb.define("y", "matmul(x, w) + b")
    wb.define("z", "y + b")  # y is a cell's value: z must be a new array
    wb.define("t", "transpose(transpose(y)) + 1.0")  # a view of y, not a temporary
    y = np.array(wb["y"])
    wb.run()
    np.testing.assert_array_equal(wb["y"], y)
    np.testing.assert_array_equal(wb["z"], y + np.array(wb["b"]))
    np.testing.assert_array_equal(wb["t"], y + 1.0)
    assert not np.shares_memory(wb["z"], wb["y"]) and not np.shares_memory(wb["t"], wb["y"])


def test_no_in_place_when_the_result_would_change_dtype_or_shape():
    wb = _book()
    wb.define("wide", "matmul(x, w) + ones((2, 5, 3))")  # broadcasting grows the result
    wb.define("b64", "1")
    wb.set("b64", np.ones(3, dtype=np.float64))
    wb.define("f64", "matmul(x, w) + b64")  # a float64 bias: the result is float64
    assert wb["wide"].shape == (2, 5, 3)
    assert wb["f64"].dtype == np.float64
    np.testing.assert_array_equal(wb["f64"], np.matmul(wb["x"], wb["w"]) + np.ones(3))
