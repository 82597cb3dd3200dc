"""Function cells in the TUI (Pilot): their own "functions" group in the cell tree, the
details pane with signature, doc, source and callers, `e` edits a function like a formula
(its callers go stale, the doc is kept, a bad edit is refused and changes nothing), and the
function reference (F1 / f) lists them beside the library."""

from __future__ import annotations

from typing import Any

import numpy as np
from textual.widgets import Input, OptionList

from cellgpt.engine import Status, Workbook
from cellgpt.tui.app import CellGptApp
from cellgpt.tui.function_cells import FUNCTION_PREFIX, edit_text, source_from_edit
from cellgpt.tui.screens.formula import FormulaScreen
from cellgpt.tui.screens.functions import FunctionsScreen
from tests.tui import test_tui
from tests.tui.test_tui import Notes, details_text, run_app, settle

tui_model, wb_path, wb = test_tui.tui_model, test_tui.wb_path, test_tui.wb

RMS = (
    "def rms_norm(x, w, eps=1e-5):\n"
    '    """Root-mean-square norm (LLaMA), no centring, no bias."""\n'
    "    return x / sqrt(mean(x * x, axis=-1, keepdims=True) + eps) * w"
)


def _with_function(wb: Workbook) -> Workbook:
    wb.define_function(RMS)
    wb.define("rms_probe", "rms_norm(h0.resid_pre, h0.ln_1.weight)")
    wb.run()
    return wb


def _function_leaves(app: CellGptApp) -> Any:
    group = next(n for n in app.tree.root.children if "functions" in str(n.label))
    return group.children


def test_function_cells_have_their_own_group_and_details(wb: Workbook) -> None:
    app = CellGptApp(_with_function(wb))

    async def scenario(pilot: Any) -> None:
        titles = [str(n.label) for n in app.tree.root.children]
        assert any("functions" in t for t in titles[:3]), titles  # near the top, after inputs
        leaves = _function_leaves(app)
        assert [leaf.data for leaf in leaves] == [FUNCTION_PREFIX + "rms_norm"]
        assert "rms_norm(x, w, eps=1e-05)" in str(leaves[0].label)
        assert app.tree.select_function("rms_norm")
        await pilot.pause()
        text = str(details_text(app))
        assert "rms_norm(x, w, eps=1e-05)" in text and "Root-mean-square norm" in text
        assert "return x / sqrt(" in text and "called by 1 cells" in text
        refs = app.details.query_one("#refs", OptionList)
        assert "rms_probe" in str(refs.get_option_at_index(0).prompt)

    run_app(app, scenario)


def test_e_on_a_function_edits_it_and_its_callers_go_stale(wb: Workbook) -> None:
    book = _with_function(wb)
    app = CellGptApp(book)
    notes = Notes(app)
    before = np.array(book["rms_probe"])

    async def scenario(pilot: Any) -> None:
        assert app.tree.select_function("rms_norm")
        await pilot.pause()
        await pilot.press("e")
        await pilot.pause()
        editor = app.screen
        assert isinstance(editor, FormulaScreen)
        field = editor.query_one(Input)
        assert field.value == edit_text(book.function("rms_norm"))
        # a body reading a cell is refused; the editor stays open, nothing changes
        field.value = "def rms_norm(x, w, eps=1e-5): return x * w + prompt"
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is editor and "reads the cell 'prompt'" in str(
            editor.query_one("#edit-error").render()
        )
        assert book.status("rms_probe") == Status.FRESH
        field.value = "def rms_norm(x, w, eps=1e-5): return 2 * x * w"
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen is app.main
        assert book.status("rms_probe") == Status.STALE
        assert "rms_norm redefined" in notes.text()
        assert book.function("rms_norm").doc.startswith("Root-mean-square norm")  # kept
        await pilot.press("R")
        await settle(pilot)
        x, w = book["h0.resid_pre"], book["h0.ln_1.weight"]
        np.testing.assert_allclose(book["rms_probe"], 2 * x * w, rtol=1e-6)
        assert not np.allclose(book["rms_probe"], before)

    run_app(app, scenario)


def test_the_function_reference_lists_function_cells_beside_the_library(wb: Workbook) -> None:
    app = CellGptApp(_with_function(wb))

    async def scenario(pilot: Any) -> None:
        await pilot.press("f")
        await pilot.pause()
        reference = app.screen
        assert isinstance(reference, FunctionsScreen)
        listing = reference.query_one(OptionList)
        shown = [str(listing.get_option_at_index(i).prompt) for i in range(listing.option_count)]
        assert "function cell of this workbook" in shown[0] and "rms_norm(x, w" in shown[0]
        assert any(s.startswith("softmax(") for s in shown)
        await pilot.press(*"rms")
        await pilot.pause()
        assert listing.option_count == 1

    run_app(app, scenario)


def test_edit_text_and_doc_keeping() -> None:
    book = Workbook()
    book.define_function(RMS)
    spec = book.function("rms_norm")
    one_line = edit_text(spec)
    assert one_line == (
        "def rms_norm(x, w, eps=1e-05): return "
        "x / sqrt(mean(x * x, axis=-1, keepdims=True) + eps) * w"
    )
    source = source_from_edit(one_line.replace("* w", "* w * 1"), spec)
    book.set_function("rms_norm", source)
    assert book.function("rms_norm").doc == spec.doc
    assert book.function("rms_norm").body.endswith("* w * 1")


def test_a_calling_cell_links_to_its_function_and_u_undoes_a_function_edit(wb: Workbook) -> None:
    book = _with_function(wb)
    app = CellGptApp(book)
    original = book.function("rms_norm").source

    async def scenario(pilot: Any) -> None:
        app.navigate("rms_probe")
        await pilot.pause()
        refs = app.details.query_one("#refs", OptionList)
        prompts = [str(refs.get_option_at_index(i).prompt) for i in range(refs.option_count)]
        index = next(i for i, p in enumerate(prompts) if "ƒ rms_norm" in p)
        refs.focus()
        refs.highlighted = index
        await pilot.press("enter")
        await pilot.pause()
        assert app.controller.current_function == "rms_norm"
        assert "function cell" in str(details_text(app))
        await pilot.press("e")
        await pilot.pause()
        app.screen.query_one(Input).value = "def rms_norm(x, w, eps=1e-5): return x"
        await pilot.press("enter")
        await settle(pilot)
        assert book.function("rms_norm").body == "x"
        await pilot.press("u")
        await settle(pilot)
        assert book.function("rms_norm").source == original
        assert book.status("rms_probe") == Status.STALE

    run_app(app, scenario)
