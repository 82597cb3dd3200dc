"""Evaluate Formula through function cells: a call is explained by the function's own body,
walked with the call's arguments, and every intermediate equals numpy's."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import cellgpt

SOURCE = '''
def rms(x, eps=1e-5):
    """RMS norm without a gain."""
    return x / sqrt(mean(x * x, axis=-1, keepdims=True) + eps)

def twice(x):
    return rms(x) * 2

a = array([[1.0, 2.0, 3.0], [4.0, 0.5, -1.0]])
b = twice(a) + 1
'''


def test_a_call_is_explained_by_the_body_it_runs(tmp_path: Path) -> None:
    path = tmp_path / "wb.py"
    path.write_text(SOURCE, encoding="utf-8")
    wb = cellgpt.open(str(path))
    e = wb.explain("b")
    bodies = [n for n in e.nodes if n.kind == "step" and n.label == "body"]
    assert [n.explains for n in bodies] == ["rms()", "twice()"]  # inner body first
    a = np.array([[1.0, 2.0, 3.0], [4.0, 0.5, -1.0]])
    rms = a / np.sqrt(np.mean(a * a, axis=-1, keepdims=True) + 1e-5)
    mean_sq = next(n for n in e.nodes if n.text == "mean(x * x, axis=-1, keepdims=True)")
    np.testing.assert_allclose(e.value(mean_sq.index), np.mean(a * a, -1, keepdims=True))
    np.testing.assert_allclose(e.value(bodies[0].index), rms)
    np.testing.assert_allclose(e.value(bodies[1].index), rms * 2)
    calls = [n for n in e.nodes if n.check is not None]
    assert calls and all(n.check.equal for n in calls)
    np.testing.assert_allclose(e.value(len(e.nodes) - 1), wb["b"])


def test_a_failing_body_is_reported_on_its_step(tmp_path: Path) -> None:
    path = tmp_path / "wb.py"
    path.write_text(
        "def bad(x):\n    return matmul(x, x)\n\na = array([1.0, 2.0, 3.0])\nb = bad(ones((2, 3)))\n",
        encoding="utf-8",
    )
    wb = cellgpt.open(str(path))
    e = wb.explain("b")
    assert e.error is not None
    failed = [n for n in e.nodes if n.error]
    assert failed and "matmul" in failed[0].text
