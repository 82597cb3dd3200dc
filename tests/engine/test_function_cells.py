"""Function cells: evaluation against numpy written by hand, keywords and defaults, errors
that name the function, staleness through calls, budgets inside calls, and files (load, save
round trip, redefinition keeps the rest of the text)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cellgpt.engine import DefinitionError, Status, Workbook, load_workbook
from cellgpt.engine.limits import Limits

RMS = (
    "def rms_norm(x, w, eps=1e-5):\n"
    '    """Scale each row to unit root-mean-square, then by w."""\n'
    "    return x / sqrt(mean(x * x, axis=-1, keepdims=True) + eps) * w\n"
)


def _numpy_rms(x: np.ndarray, w: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def _wb() -> Workbook:
    wb = Workbook()
    wb.define("x", "random_normal((5, 8), seed=3)")
    wb.define("w", "random_normal((8,), seed=4)")
    return wb


def test_a_function_cell_computes_what_numpy_computes() -> None:
    wb = _wb()
    assert wb.define_function(RMS) == "rms_norm"
    wb.define("y", "rms_norm(x, w)")
    wb.define("y_eps", "rms_norm(x, w, eps=0.5)")
    wb.define("y_kw", "rms_norm(w=w, x=x * 2)")
    x, w = wb["x"], wb["w"]
    np.testing.assert_allclose(wb["y"], _numpy_rms(x, w), rtol=1e-6)
    np.testing.assert_allclose(wb["y_eps"], _numpy_rms(x, w, 0.5), rtol=1e-6)
    np.testing.assert_allclose(wb["y_kw"], _numpy_rms(x * 2, w), rtol=1e-6)
    spec = wb.function("rms_norm")
    assert spec.params == ("x", "w", "eps") and spec.defaults == {"eps": 1e-5}
    assert spec.doc == "Scale each row to unit root-mean-square, then by w."
    assert spec.signature() == "rms_norm(x, w, eps=1e-05)"


def test_functions_call_functions_and_a_relu_mlp_matches_numpy() -> None:
    wb = _wb()
    wb.define_function("def lin(a, m, b): return matmul(a, m) + b")
    wb.define_function("def relu_mlp(a, m1, b1, m2, b2): return lin(relu(lin(a, m1, b1)), m2, b2)")
    wb.define("m1", "random_normal((8, 16), seed=5)")
    wb.define("m2", "random_normal((16, 8), seed=6)")
    wb.define("out", "relu_mlp(x, m1, zeros(16), m2, w)")
    x, m1, m2, w = wb["x"], wb["m1"], wb["m2"], wb["w"]
    expected = np.maximum(x @ m1, 0) @ m2 + w
    np.testing.assert_allclose(wb["out"], expected, rtol=1e-5, atol=1e-5)


def test_a_parameter_named_like_a_cell_is_the_argument_not_the_cell() -> None:
    wb = _wb()
    wb.define_function("def scaled(x): return x * 10")
    wb.define("y", "scaled(w)")
    np.testing.assert_array_equal(wb["y"], wb["w"] * 10)


def test_redefining_marks_direct_and_indirect_callers_stale_only() -> None:
    wb = _wb()
    wb.define_function("def inner(a): return a + 1")
    wb.define_function("def outer(a): return inner(a) * 2")
    wb.define("direct", "inner(x)")
    wb.define("indirect", "outer(x)")
    wb.define("after", "indirect + 0")  # reads a caller: stale through the graph
    wb.define("other", "x * 3")  # calls nothing
    wb.run()
    assert wb.function_callers("inner") == {"direct", "indirect"}
    assert wb.function_callers("outer") == {"indirect"}
    wb.set_function("inner", "def inner(a): return a - 1")
    assert set(wb.stale()) == {"direct", "indirect", "after"}
    assert wb.status("other") == Status.FRESH
    np.testing.assert_allclose(wb["after"], (wb["x"] - 1) * 2, rtol=1e-6)


def test_a_refused_redefinition_changes_nothing() -> None:
    wb = _wb()
    wb.define_function("def f(a): return a + 1")
    wb.define_function("def g(a): return f(a)")
    wb.define("y", "g(2)")
    wb.run()
    with pytest.raises(DefinitionError, match="recursion"):
        wb.set_function("f", "def f(a): return g(a)")
    with pytest.raises(DefinitionError, match="reads the cell 'x'"):
        wb.set_function("f", "def f(a): return a + x")
    assert wb.function("f").source == "def f(a): return a + 1"
    assert wb.status("y") == Status.FRESH and wb["y"] == 3


def test_names_are_one_namespace() -> None:
    wb = _wb()
    wb.define_function("def f(a): return a")
    with pytest.raises(DefinitionError, match="function cell"):
        wb.define("f", "1")
    with pytest.raises(DefinitionError, match="function cell"):
        wb.alias("f", "x")
    with pytest.raises(DefinitionError, match="name of a cell"):
        wb.define_function("def x(a): return a")
    with pytest.raises(DefinitionError, match="library function"):
        wb.define_function("def softmax(a): return a")
    with pytest.raises(DefinitionError, match="defined twice"):
        wb.define_function("def f(b): return b")


def test_remove_refuses_while_called() -> None:
    wb = _wb()
    wb.define_function("def f(a): return a")
    wb.define_function("def g(a): return f(a)")
    with pytest.raises(DefinitionError, match="called by g"):
        wb.remove_function("f")
    wb.remove_function("g")
    wb.define("y", "f(1)")
    with pytest.raises(DefinitionError, match="called by y"):
        wb.remove_function("f")
    wb.remove("y")
    wb.remove_function("f")
    assert wb.functions() == []


def test_errors_inside_a_call_name_the_function_and_point_at_the_call() -> None:
    wb = _wb()
    wb.define_function("def pick(a, i): return a[i]")
    wb.define("y", "1 + pick(x, 99)")
    wb.run()
    error = wb.state("y").error
    assert error is not None
    assert "in pick(), at `a[i]`" in error.message and "IndexError" in error.message
    assert error.span == (4, 15)  # `pick(x, 99)` in the cell's own formula


def test_budgets_apply_inside_calls() -> None:
    wb = Workbook(limits=Limits(max_bytes=10**6, max_elements=10**6))
    wb.define_function("def grow(n): return zeros((n, n))")
    wb.define("small", "grow(10)")
    wb.define("big", "grow(10**4)")
    wb.run()
    assert wb["small"].shape == (10, 10)
    assert wb.status("big") == Status.ERROR
    assert "limit" in wb.state("big").error.message  # type: ignore[union-attr]


FILE = (
    '"""Functions in a file."""\n'
    "\n"
    "# RMSNorm, as in LLaMA\n" + RMS + "\n"
    "def double(v): return 2 * v  # a comment after\n"
    '"""Twice v."""\n'
    "\n"
    "x = random_normal((2, 3), seed=1)\n"
    "w = ones(3)\n"
    "y = double(rms_norm(x, w))  # keep me\n"
)


def test_a_file_loads_and_saves_back_byte_identical(tmp_path: Path) -> None:
    path = tmp_path / "wb.py"
    path.write_text(FILE)
    wb = load_workbook(path)
    assert wb.functions() == ["rms_norm", "double"]
    assert wb.function("double").doc == "Twice v."
    np.testing.assert_allclose(wb["y"], 2 * _numpy_rms(wb["x"], wb["w"]), rtol=1e-6)
    wb.save()
    assert path.read_text() == FILE


def test_a_redefinition_saves_only_the_def_and_reloads(tmp_path: Path) -> None:
    path = tmp_path / "wb.py"
    path.write_text(FILE)
    wb = load_workbook(path)
    wb.set_function("double", "def double(v): return 3 * v")
    wb.define_function("def half(v):\n    'Half v.'\n    return v / 2")
    wb.define("z", "half(y)")
    wb.save()
    text = path.read_text()
    assert text.replace("3 * v", "2 * v").startswith(FILE)  # nothing else moved
    assert "def half(v):\n    'Half v.'\n    return v / 2\n" in text
    again = load_workbook(path)
    assert again.function("double").doc == "Twice v."  # the docstring after the def stayed
    np.testing.assert_allclose(again["z"], 1.5 * _numpy_rms(again["x"], again["w"]), rtol=1e-6)
    again.remove("z")
    again.remove_function("half")
    again.set_function("double", "def double(v): return 2 * v")
    again.save()
    assert path.read_text() == FILE


def test_a_workbook_built_in_code_saves_its_functions(tmp_path: Path) -> None:
    wb = _wb()
    wb.define_function(RMS)
    wb.define("y", "rms_norm(x, w)")
    wb.save(tmp_path / "new.py")
    again = load_workbook(tmp_path / "new.py")
    np.testing.assert_allclose(again["y"], wb["y"])
    assert again.function("rms_norm").doc == wb.function("rms_norm").doc


def test_spelling_out_calls_gives_the_same_values() -> None:
    from cellgpt.engine.inline import InlineError, inline_text

    wb = _wb()
    wb.define_function(RMS)
    wb.define_function("def twice(a, k=-2): return rms_norm(a, k * a, eps=0.5) + a")
    functions = {f: wb.function(f) for f in wb.functions()}
    text = inline_text("twice(x) - rms_norm(w=w, x=x)", functions)
    assert text == (
        "x / sqrt(mean(x * x, axis=-1, keepdims=True) + 0.5) * (-2 * x) + x"
        " - x / sqrt(mean(x * x, axis=-1, keepdims=True) + 1e-05) * w"
    )
    wb.define("called", "twice(x) - rms_norm(w=w, x=x)")
    wb.define("spelled", text)
    np.testing.assert_allclose(wb["called"], wb["spelled"], rtol=1e-6)
    with pytest.raises(InlineError, match="missing argument"):
        inline_text("rms_norm(x)", functions)
    wb.define_function("def d(a): return a + a")
    functions["d"] = wb.function("d")
    with pytest.raises(InlineError, match="more than 20,000 parts"):
        inline_text("d(" * 20 + "x" + ")" * 20, functions)
