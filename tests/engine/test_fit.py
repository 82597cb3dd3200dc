"""Training in the workbook: the parabola demo's gradient descent (fit) against PyTorch's
autograd and SGD from the same starting weights and schedule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import cellgpt
from cellgpt.engine import CellError, Workbook

WORKBOOK = Path(__file__).resolve().parents[2] / "workbooks" / "relu_parabola.py"


def _torch_sgd(init: dict[str, np.ndarray], lr: float, steps: int) -> tuple[list[float], dict]:
    x = torch.tensor(np.linspace(-1.0, 1.0, 21).astype(np.float32))
    target = x**2
    params = {k: torch.tensor(v, requires_grad=True) for k, v in init.items()}
    history = []

    def loss_of() -> torch.Tensor:
        hidden = torch.relu(x[:, None] @ params["w1"] + params["b1"])
        prediction = (hidden @ params["w2"])[:, 0] + params["b2"]
        return torch.mean((prediction - target) ** 2)

    for _ in range(steps):
        loss = loss_of()
        history.append(loss.item())
        loss.backward()
        with torch.no_grad():
            for p in params.values():
                p -= lr * p.grad
                p.grad = None
    with torch.no_grad():
        history.append(loss_of().item())
    return history, {k: v.detach().numpy() for k, v in params.items()}


@pytest.mark.parametrize("n_neurons", [2, 8, 200])
def test_parabola_training_matches_pytorch_sgd(n_neurons):
    wb = cellgpt.open(WORKBOOK)
    wb.set("n_neurons", n_neurons)
    steps, lr = wb["steps"], wb["learning_rate"]
    assert steps == 100
    np.testing.assert_array_equal(wb["x"], np.linspace(-1.0, 1.0, 21).astype(np.float32))
    init = {k: np.array(wb[k]) for k in ("w1", "b1", "w2", "b2")}
    want_history, want_params = _torch_sgd(init, lr, steps)
    history = wb["loss_history"]
    assert history.shape == (steps + 1,)
    np.testing.assert_allclose(history, want_history, atol=1e-5, rtol=0)
    for name, want in want_params.items():
        np.testing.assert_allclose(wb["trained"]["params"][name], want, atol=1e-5, rtol=0)
    assert np.all(np.diff(history) < 0)  # at this learning rate every step helps
    assert wb["fitted_loss"] == pytest.approx(want_history[-1], abs=1e-5)
    x = np.linspace(-1.0, 1.0, 21).astype(np.float32)
    hidden = np.maximum(x[:, None] @ want_params["w1"] + want_params["b1"], 0)
    want_curve = (hidden @ want_params["w2"])[:, 0] + want_params["b2"]
    np.testing.assert_allclose(wb["fitted_prediction"], want_curve, atol=1e-5)
    # the starting cells keep their values: training is a what-if, not an edit
    np.testing.assert_array_equal(wb["w1"], init["w1"])


def test_the_parabola_refits_when_an_input_changes():
    wb = cellgpt.open(WORKBOOK)
    before = wb["fitted_loss"]
    wb.set("steps", 300)
    assert wb.status("loss_history").name == "STALE"
    assert len(wb["loss_history"]) == 301
    assert wb["fitted_loss"] < before


def test_fit_refuses_what_it_cannot_train():
    wb = Workbook()
    wb.define("w", "array([1.0, 2.0])")
    wb.define("loss", "sum(w * w)")
    wb.define("bad_steps", "fit(loss, [w], 0.1, -1)")
    wb.define("not_cells", "fit(loss, [w * 2], 0.1, 3)")
    wb.define("ok", "entry(fit(loss, [w], 0.25, 2), 'params')")
    with pytest.raises(CellError, match="steps must be a whole number"):
        wb.run("bad_steps")
    with pytest.raises(CellError, match="must be a cell named directly"):
        wb.run("not_cells")
    # d/dw sum(w²) = 2w: each step halves w at lr 0.25
    np.testing.assert_allclose(wb["ok"]["w"], [0.25, 0.5])


def test_a_watcher_sees_every_step_as_it_trains() -> None:
    import threading

    from cellgpt.engine import fit as training

    book = cellgpt.open(WORKBOOK)
    seen: list[tuple[int, int, list[float]]] = []
    with training.watching(lambda done, total, history: seen.append((done, total, history[:]))):
        history = book["loss_history"]
    steps = int(book["steps"])
    assert [s[0] for s in seen] == list(range(1, steps + 1))
    assert all(total == steps for _, total, _ in seen)
    # each report holds the loss before every step so far: the history, as it grows
    assert [len(h) for _, _, h in seen] == list(range(1, steps + 1))
    np.testing.assert_allclose(seen[-1][2], history[:-1])
    # another thread's training is not reported to this thread's watcher
    seen.clear()
    other = cellgpt.open(WORKBOOK)
    with training.watching(lambda *args: seen.append(args)):
        worker = threading.Thread(target=lambda: other["loss_history"])
        worker.start()
        worker.join()
    assert seen == []
