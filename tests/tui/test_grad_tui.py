"""Gradients and training in the TUI (Pilot): the parabola demo's loss history as a sparkline
and its fitted curve plotted against the target; GPT-2 attributions as a bar per token; the
gradient cells in the tree's last group, computed on demand with `r`."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
from textual.widgets import Sparkline, Static

import cellgpt
from cellgpt.engine import Status
from cellgpt.tui.app import CellGptApp
from cellgpt.tui.widgets.plots import bars, versus
from tests.tui.test_tui import run_app, settle

REPO = Path(__file__).resolve().parents[2]


async def _settle(pilot: Any) -> None:
    await settle(pilot, timeout=60.0)  # a backward pass can take a while on a busy machine


def _plot_text(app: CellGptApp) -> str:
    widget = app.value_pane.query_one("#value-plot", Static)
    return str(widget.render()) if widget.display else ""


def test_parabola_training_shows_the_loss_curve_and_the_fit(tmp_path: Path) -> None:
    path = tmp_path / "relu_parabola.py"
    shutil.copy(REPO / "workbooks" / "relu_parabola.py", path)
    book = cellgpt.open(path)
    app = CellGptApp(book, start_cell="loss_history")

    async def scenario(pilot: Any) -> None:
        history = book.value("loss_history")
        assert history.shape == (101,) and history[-1] < history[0]
        spark = app.value_pane.query_one(Sparkline)
        assert spark.display and np.allclose(spark.data, history)
        assert _plot_text(app) == ""  # a plain vector: the sparkline only
        app.navigate("fitted_prediction")
        await pilot.pause()
        text = _plot_text(app)
        assert "● fitted_prediction" in text and "· target" in text
        assert f"{float(np.max(book.value('target'))):8.3g}" in text  # the y range
        # a new number of neurons: trained again when asked, and the plot follows
        book.set("n_neurons", 2)
        await pilot.press("r")
        await _settle(pilot)
        assert book.status("fitted_prediction") == Status.FRESH
        assert book.value("hidden").shape == (21, 2)
        assert _plot_text(app) != text

    run_app(app, scenario)


def test_gpt2_attributions_are_bars_per_token_and_gradients_come_last(tmp_path: Path) -> None:
    path = tmp_path / "gpt2.py"
    shutil.copy(REPO / "workbooks" / "gpt2.py", path)
    book = cellgpt.open(path, prompt="Mike is quick. He moves")
    app = CellGptApp(book, start_cell="saliency")

    async def scenario(pilot: Any) -> None:
        groups = [n.label.plain.split()[1] for n in app.tree.root.children]
        assert groups[-1] == "gradients"
        assert book.status("saliency") == Status.STALE  # on demand: not run on start
        await pilot.press("r")
        await _settle(pilot)
        saliency = book.value("saliency")
        tokens = book.value("tokens")
        assert saliency.shape == (len(tokens),)
        lines = _plot_text(app).splitlines()
        assert len(lines) == len(tokens)
        top = int(np.argmax(saliency))
        assert "█" * 24 in lines[top]  # the largest gets the full bar
        assert lines[top].split()[-2] == f"{saliency[top]:+.4g}"
        app.navigate("grad.h0.mlp.c_fc.weight")
        await pilot.pause()
        await pilot.press("r")
        await _settle(pilot)
        assert book.value("grad.h0.mlp.c_fc.weight").shape == book.value("h0.mlp.c_fc.weight").shape

    run_app(app, scenario)


def test_text_plots() -> None:
    text = versus(np.array([0.0, 1.0, 2.0]), {"a": np.array([0.0, 1.0, 4.0])}, 11, 5).plain
    rows = text.splitlines()
    assert rows[0].endswith("·") and rows[4].split("┤")[1].startswith("·")  # corners
    assert "4 ┤" in rows[0] and "0 ┤" in rows[4]
    lines = bars(["x", "y"], np.array([2.0, -1.0]), width=8).plain.splitlines()
    assert lines[0].endswith("█" * 8) and lines[1].endswith("█" * 4)
    assert "+2" in lines[0] and "-1" in lines[1]


def test_training_shows_its_falling_loss_while_it_runs(tmp_path: Path, monkeypatch: Any) -> None:
    from cellgpt.tui import jobs

    path = tmp_path / "relu_parabola.py"
    shutil.copy(REPO / "workbooks" / "relu_parabola.py", path)
    book = cellgpt.open(path)
    app = CellGptApp(book, start_cell="steps")
    reported: list[tuple[int, int | None, str]] = []
    real = jobs.JobContext.progress

    def recording(self: Any, done: int, total: int | None, cell: str = "") -> None:
        reported.append((done, total, cell))
        real(self, done, total, cell)

    monkeypatch.setattr(jobs.JobContext, "progress", recording)

    async def scenario(pilot: Any) -> None:
        reported.clear()
        book.set("steps", 40)
        app.navigate("fitted_loss")
        await pilot.press("r")
        await _settle(pilot)
        training = [(d, t, c) for d, t, c in reported if c.startswith("training, loss")]
        assert [d for d, _, _ in training] == list(range(1, 41))
        assert all(t == 40 for _, t, _ in training)
        first, last = (float(c.split()[2]) for _, _, c in (training[0], training[-1]))
        assert last < first  # the loss falls as it trains
        assert any(ch in training[-1][2] for ch in "▁▂▃▄▅▆▇█")  # with a sparkline
        assert book.status("fitted_loss") == Status.FRESH

    run_app(app, scenario)
