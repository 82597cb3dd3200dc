"""grad(loss, wrt) as a formula: reverse mode through several cells and every formula
construct on the path (operators with broadcasting, calls, subscripts, lists, if/else),
checked against central finite differences of the workbook itself (re-running `loss` with
the input moved), in float64; staleness, names, errors and budgets."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cellgpt.engine import CellError, Status, Workbook

H = 1e-6


def _workbook(cells: dict[str, str]) -> Workbook:
    wb = Workbook()
    for name, formula in cells.items():
        wb.define(name, formula)
    return wb


def _finite_difference(wb: Workbook, loss: str, wrt: str) -> np.ndarray:
    base = np.array(wb[wrt], dtype=np.float64)
    numeric = np.zeros_like(base)
    for idx in np.ndindex(base.shape):
        moved = []
        for sign in (1, -1):
            x = base.copy()
            x[idx] += sign * H
            wb.pin(wrt, x)
            moved.append(float(np.sum(wb[loss])))
        numeric[idx] = (moved[0] - moved[1]) / (2 * H)
    wb.unpin(wrt)
    return numeric


FORMULAS = {
    "x": "random_normal((4, 3), 1) * 1.0 + cast(zeros((4, 3)), 'float64')",
    "w": "cast(random_normal((3, 5), 2), 'float64')",
    "b": "cast(random_normal((5,), 3), 'float64')",
    "h": "tanh(x @ w + b) * 2 - b / 3",
    "k": "softmax(h, axis=0)[1:, ::2] ** 2 + exp(-abs(h[:3, 1:4]))[:, :1]",
    "m": "[sum(k), mean(h * h, axis=1)]",
    "loss": "m[0] + sum(m[1] / (1 + x[:, 0] ** 2)) + (max(h) if sum(b) > -100 else 0)",
}


@pytest.mark.parametrize("wrt", ["x", "w", "b", "h"])
def test_gradient_through_every_construct_matches_finite_differences(wrt):
    wb = _workbook({**FORMULAS, "g": f"grad(loss, {wrt})"})
    got = wb["g"]
    assert got.shape == np.shape(wb[wrt])
    np.testing.assert_allclose(got, _finite_difference(wb, "loss", wrt), rtol=1e-5, atol=1e-7)


def test_layer_norm_mlp_with_broadcast_bias_and_mse():
    wb = _workbook(
        {
            "x": "cast(random_normal((6, 4), 5), 'float64')",
            "g": "cast(random_normal((4,), 6), 'float64') + 1",
            "bias": "cast(random_normal((1, 4), 7), 'float64')",
            "y": "gelu(layer_norm(x, g, zeros(4), 1e-5) + bias)",
            "loss": "mse(relu(y) - sqrt(y * y + 1), 0.5)",
            "d_g": "grad(loss, g)",
            "d_bias": "grad(loss, bias)",
        }
    )
    np.testing.assert_allclose(wb["d_g"], _finite_difference(wb, "loss", "g"), rtol=1e-5)
    np.testing.assert_allclose(wb["d_bias"], _finite_difference(wb, "loss", "bias"), rtol=1e-5)
    assert wb["d_bias"].shape == (1, 4)


def test_gradient_cells_are_ordinary_cells():
    wb = _workbook({"w": "array([1.0, 2.0])", "loss": "sum(w * w * w)", "g": "grad(loss, w)"})
    np.testing.assert_allclose(wb["g"], [3.0, 12.0])
    assert wb.info("g").shape == (2,) and set(wb.info("g").precedents) == {"loss", "w"}
    wb.set_formula("loss", "sum(w * w)")
    assert wb.status("g") == Status.STALE
    np.testing.assert_allclose(wb["g"], [2.0, 4.0])
    wb.set_formula("w", "array([5.0, 1.0])")
    assert wb.status("g") == Status.STALE
    np.testing.assert_allclose(wb["g"], [10.0, 2.0])


def test_aliases_and_pins_on_the_path():
    wb = _workbook({"w": "array([1.0, 2.0])", "y": "w * 3", "loss": "sum(y * y)"})
    wb.alias("weights_alias", "w")
    wb.define("g", "grad(loss, weights_alias)")
    np.testing.assert_allclose(wb["g"], [18.0, 36.0])
    wb.pin("y", np.array([1.0, 1.0]))  # a pinned cell no longer depends on w
    np.testing.assert_allclose(wb["g"], [0.0, 0.0])
    wb.unpin("y")
    np.testing.assert_allclose(wb["g"], [18.0, 36.0])
    wb.pin("loss", 3.0)  # nor does a pinned loss
    np.testing.assert_allclose(wb["g"], [0.0, 0.0])


def test_grads_table_by_pattern():
    wb = _workbook(
        {
            "a.w": "array([1.0, 2.0])",
            "a.v": "array([3.0])",
            "other": "array([7.0])",
            "loss": "sum(a.w * a.v) + sum(other)",
            "table": "grads(loss, 'a.*')",
            "gw": "grad_of(table, 'a.w')",
        }
    )
    assert set(wb["table"]) == {"a.w", "a.v"}
    np.testing.assert_allclose(wb["gw"], [3.0, 3.0])
    np.testing.assert_allclose(wb["table"]["a.v"], [3.0])


def test_unusable_arguments_and_functions_are_named():
    wb = _workbook(
        {
            "w": "array([1.0, 2.0])",
            "loss": "sum(w)",
            "by_text": "grad('loss', w)",
            "by_expression": "grad(loss * 2, w)",
            "idx": "argmax(w)",
            "through_argmax": "grad(idx, w)",
            "c": "cosine(w, array([1.0, 0.0]))",
            "no_rule": "grad(c, w)",
        }
    )
    for cell in ("by_text", "by_expression"):
        with pytest.raises(CellError, match="must be a cell named directly"):
            wb.run(cell)
    np.testing.assert_array_equal(wb["through_argmax"], [0.0, 0.0])  # piecewise constant
    with pytest.raises(CellError, match=r"cosine\(\) has no gradient rule.*'c'"):
        wb.run("no_rule")


def test_a_backward_pass_respects_the_cell_budgets():
    wb = _workbook(
        {
            "w": "random_normal((200, 200), 1)",
            "loss": "sum(tanh(w @ w))",
            "g": "grad(loss, w)",
        }
    )
    wb.run("loss")
    # 8M multiply-adds forward fit; the backward product's 16M do not
    wb.limits = dataclasses.replace(wb.limits, max_cost=10_000_000)
    wb.set_formula("loss", "sum(tanh(w @ w)) + 0")
    assert wb["loss"] > -1e9
    with pytest.raises(CellError, match=r"grad of matmul\(\) would cost 16,000,000"):
        wb.run("g")


def test_a_gradient_table_counts_against_the_workbook_memory_budget():
    wb = _workbook(
        {"w": "random_normal((500, 500), 1)", "loss": "sum(w * w)", "t": "grads(loss, 'w')"}
    )
    wb.run("loss")
    wb.limits = dataclasses.replace(wb.limits, store_bytes=wb.state("w").nbytes + 500_000)
    with pytest.raises(CellError, match="over the workbook memory budget"):
        wb.run("t")


def test_a_run_that_includes_the_backward_keeps_its_activations(monkeypatch):
    from cellgpt.engine import autodiff

    recomputed: list[str] = []
    forward = autodiff.Backward.forward

    def spy(self, order):
        out = forward(self, order)
        recomputed.extend(self.recomputed)
        return out

    monkeypatch.setattr(autodiff.Backward, "forward", spy)
    wb = Workbook()
    wb.define("w", "array([1.0, 2.0], 'float64')")
    wb.define("h", "tanh(w * 3)", hints={"evict": True})
    wb.define("loss", "sum(h * h)")
    wb.define("g", "grad(loss, w)")
    t = np.tanh(np.array([3.0, 6.0]))
    want = 2 * t * (1 - t * t) * 3
    np.testing.assert_allclose(wb.run("g"), want)  # forward and backward in one run
    assert recomputed == [] and wb.info("h").evicted  # held for the backward, dropped after
    wb.set_formula("g", "grad(loss, w) * 1")  # the forward is fresh and h was dropped:
    np.testing.assert_allclose(wb.run("g"), want)
    assert recomputed == ["h"]  # the backward computes it again (a checkpointed backward)
