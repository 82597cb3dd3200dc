"""The small non-GPT workbooks are living examples: they load, run and respond to edits."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import cellgpt

WORKBOOKS = Path(__file__).resolve().parents[2] / "workbooks"


def test_relu_parabola_fits_and_reacts_to_a_weight_edit():
    wb = cellgpt.open(WORKBOOKS / "relu_parabola.py")
    x = np.linspace(-1, 1, 21)
    # Independent check: the piecewise-linear interpolant of x^2 at knots 0, ±0.5, ±1.
    expected = np.interp(x, [-1, -0.5, 0, 0.5, 1], [1, 0.25, 0, 0.25, 1])
    np.testing.assert_allclose(wb["prediction"], expected, atol=1e-6)
    assert abs(wb["loss"] - np.mean((expected - x**2) ** 2)) < 1e-7
    df = wb.table("hidden")
    assert list(df.columns) == ["relu(x)", "relu(-x)", "relu(x-0.5)", "relu(-x-0.5)"]
    wb.set_formula("w2", "array([[0.0], [0.0], [0.0], [0.0]])")
    assert wb["loss"] > 0.1  # an all-zero output is far from the parabola


def test_word_analogy_finds_queen_and_follows_the_question():
    wb = cellgpt.open(WORKBOOKS / "word_analogy.py")
    assert wb["answer"] == "queen"
    assert wb["ranking"][0][0] == "queen"
    wb.set("a", "prince")
    assert wb["answer"] == "princess"
    wb.set("a", "queen")
    wb.set("b", "woman")
    wb.set("c", "man")
    assert wb["answer"] == "king"
