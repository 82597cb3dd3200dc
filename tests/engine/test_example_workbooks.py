"""The small non-GPT workbooks are living examples: they load, run and respond to edits."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import cellgpt

WORKBOOKS = Path(__file__).resolve().parents[2] / "workbooks"


def test_relu_parabola_network_is_the_formula_it_says():
    wb = cellgpt.open(WORKBOOKS / "relu_parabola.py")
    x = np.linspace(-1, 1, 21)
    w1, b1, w2, b2 = (np.asarray(wb[k], dtype=np.float64) for k in ("w1", "b1", "w2", "b2"))
    assert w1.shape == (1, 8) and w2.shape == (8, 1)
    expected = (np.maximum(x[:, None] @ w1 + b1, 0) @ w2)[:, 0] + b2
    np.testing.assert_allclose(wb["prediction"], expected, atol=1e-5)
    assert abs(wb["loss"] - np.mean((expected - x**2) ** 2)) < 1e-5
    wb.set("n_neurons", 2)
    assert wb["hidden"].shape == (21, 2)
    assert wb["fitted_loss"] < wb["loss"]  # training helps (compared with PyTorch in test_fit)


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
