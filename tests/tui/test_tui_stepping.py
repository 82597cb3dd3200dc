"""Evaluate Formula and step mode in the TUI (Pilot): `v` opens the explain view and Enter
shows a sub-expression's value in the grid, `n` runs the next stale cell and selects it, `b`
marks a breakpoint that `R` stops before, and the help screen lists the three keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from textual.widgets import OptionList

import cellgpt
from cellgpt.engine import Status, Workbook, stepping
from cellgpt.tui.app import CellGptApp
from cellgpt.tui.screens.explain import ExplainScreen
from cellgpt.tui.screens.help import help_renderable
from tests.tui import test_tui
from tests.tui.test_tui import PROMPT, Notes, run_app, settle

tui_model, wb_path, wb = test_tui.tui_model, test_tui.wb_path, test_tui.wb


def unrun(wb_path: Path, tui_model: Path) -> Workbook:
    return cellgpt.open(wb_path, model=str(tui_model), prompt=PROMPT)


def on_demand(book: Workbook) -> Any:
    return lambda n: bool(book.cell(n).hints.get("on_demand"))


def test_v_explains_the_cell_and_enter_shows_a_step_in_the_grid(wb: Workbook) -> None:
    app = CellGptApp(wb)
    x = np.asarray(wb["h1.resid_pre"], dtype=np.float64)
    centred = x - x.mean(axis=-1, keepdims=True)

    async def scenario(pilot: Any) -> None:
        app.navigate("h1.ln_1")
        await pilot.pause()
        await pilot.press("v")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ExplainScreen)
        listing = screen.query_one(OptionList)
        labels = [str(listing.get_option_at_index(i).prompt) for i in range(listing.option_count)]
        assert any("mu = mean(x" in label for label in labels)
        assert listing.highlighted == listing.option_count - 1  # the result first
        listing.highlighted = next(i for i, t in enumerate(labels) if "centred = x - mu" in t)
        await pilot.press("enter")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        assert screen.grid.display and screen.grid.data is not None
        np.testing.assert_allclose(screen.grid.data, centred, rtol=1e-5, atol=1e-6)
        info = str(screen.query_one("#explain-info").render())
        assert "centred" in info and "float32" in info
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.main and app.current == "h1.ln_1"

    run_app(app, scenario)


def test_n_runs_the_next_stale_cell_and_selects_it(wb_path: Path, tui_model: Path) -> None:
    book = unrun(wb_path, tui_model)
    expected = stepping.plan(book, skip=on_demand(book))[:4]
    app = CellGptApp(book, autorun=False)
    notes = Notes(app)

    async def scenario(pilot: Any) -> None:
        for name in expected:
            stale_before = set(book.needs_run())
            await pilot.press("n")
            await settle(pilot)
            assert app.current == name
            assert book.status(name) == Status.FRESH
            assert stale_before - set(book.needs_run()) == {name}  # just that one cell
        assert f"ran {expected[-1]}" in notes.text()

    run_app(app, scenario)


def test_b_sets_a_breakpoint_that_R_stops_before(wb_path: Path, tui_model: Path) -> None:
    book = unrun(wb_path, tui_model)
    order = stepping.plan(book, skip=on_demand(book))
    stop = "h2.attn.pattern"
    app = CellGptApp(book, autorun=False)
    notes = Notes(app)

    async def scenario(pilot: Any) -> None:
        app.navigate(stop)
        await pilot.pause()
        await pilot.press("b")
        await pilot.pause()
        assert "◆" in str(app.tree._leaves[stop].label)
        await pilot.press("R")
        await settle(pilot)
        cut = order.index(stop)
        assert all(book.status(n) == Status.FRESH for n in order[:cut])
        assert all(book.status(n) == Status.STALE for n in order[cut:])
        assert app.current == stop and f"stopped before breakpoint {stop}" in notes.text()
        await pilot.press("R")  # goes on from the breakpoint: no other one, so to the end
        await settle(pilot)
        assert all(book.status(n) == Status.FRESH for n in order)
        await pilot.press("b")
        await pilot.pause()
        assert "◆" not in str(app.tree._leaves[stop].label)

    run_app(app, scenario)


def test_help_lists_v_n_and_b() -> None:
    from rich.console import Console

    console = Console(width=120, record=True)
    console.print(help_renderable())
    text = console.export_text()
    assert "evaluate formula" in text and "step: run just the next stale cell" in text
    assert "breakpoint on the selected cell" in text
    for key in ("v", "n", "b"):
        assert any(line.split()[:1] == [key] for line in text.splitlines())


def test_snapshot_explain_screen(wb: Workbook, snap_compare: Any) -> None:
    app = CellGptApp(wb, show_timings=False)

    async def before(pilot: Any) -> None:
        await settle(pilot)
        app.navigate("h1.attn.scores")
        await pilot.pause()
        await pilot.press("v")
        await settle(pilot)
        listing = app.screen.query_one(OptionList)
        prompts = [str(listing.get_option_at_index(i).prompt) for i in range(listing.option_count)]
        listing.highlighted = next(i for i, t in enumerate(prompts) if "masked = " in t)
        await pilot.press("enter")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    assert snap_compare(app, terminal_size=test_tui.SIZE, run_before=before)
