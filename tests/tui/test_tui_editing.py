"""Editing formulas in the TUI (Pilot): undo per cell, revert to the block template with the
original always visible next to an edit, completion of cell and function names, the function
reference, stale error text cleared once a formula is fixed, and a multi-line prompt."""

from __future__ import annotations

from typing import Any

from textual.widgets import Input, OptionList, TextArea

from cellgpt.engine import Status, Workbook
from cellgpt.tui.app import CellGptApp
from cellgpt.tui.completion import complete, function_entries, word_before
from cellgpt.tui.screens.formula import FormulaScreen
from cellgpt.tui.screens.functions import FunctionsScreen
from cellgpt.tui.screens.prompt import PromptScreen
from tests.tui import test_tui
from tests.tui.test_tui import Notes, details_text, edit, only_on_demand, run_app, settle

tui_model, wb_path, wb = test_tui.tui_model, test_tui.wb_path, test_tui.wb

CELL = "h3.attn.pattern"
TEMPLATE = "softmax(h3.attn.scores)"
ZERO0 = "zero_head(softmax(h3.attn.scores), 0)"
ZERO1 = "zero_head(softmax(h3.attn.scores), 1)"


def test_u_undoes_formula_edits_one_by_one(wb: Workbook) -> None:
    app = CellGptApp(wb)
    notes = Notes(app)

    async def scenario(pilot: Any) -> None:
        app.navigate(CELL)
        await pilot.pause()
        await edit(pilot, ZERO0)
        await edit(pilot, ZERO1)
        assert wb.info(CELL).formula == ZERO1
        text = str(details_text(app))
        assert f"= {ZERO1}" in text and f"was: {TEMPLATE}" in text  # the original stays in view
        await pilot.press("u")
        await pilot.pause()
        assert wb.info(CELL).formula == ZERO0
        assert wb.status(CELL) == Status.STALE
        await pilot.press("u")
        await pilot.pause()
        assert wb.info(CELL).formula == TEMPLATE and not wb.info(CELL).overridden
        assert "was:" not in str(details_text(app))
        await pilot.press("u")  # nothing left: said, not done
        await pilot.pause()
        assert "no edit of h3.attn.pattern to undo" in notes.text()
        await pilot.press("R")
        await settle(pilot)
        assert only_on_demand(wb, wb.stale())

    run_app(app, scenario)


def test_undo_is_per_cell(wb: Workbook) -> None:
    app = CellGptApp(wb)

    async def scenario(pilot: Any) -> None:
        app.navigate(CELL)
        await pilot.pause()
        await edit(pilot, ZERO0)
        app.navigate("h2.attn.pattern")
        await pilot.pause()
        await edit(pilot, "zero_head(softmax(h2.attn.scores), 2)")
        app.navigate(CELL)
        await pilot.pause()
        await pilot.press("u")
        await pilot.pause()
        assert wb.info(CELL).formula == TEMPLATE
        assert wb.info("h2.attn.pattern").formula == "zero_head(softmax(h2.attn.scores), 2)"

    run_app(app, scenario)


def test_U_reverts_a_block_cell_to_its_template_and_u_undoes_that(wb: Workbook) -> None:
    app = CellGptApp(wb)

    async def scenario(pilot: Any) -> None:
        app.navigate(CELL)
        await pilot.pause()
        await edit(pilot, ZERO0)
        await edit(pilot, ZERO1)
        await pilot.press("U")
        await pilot.pause()
        assert wb.info(CELL).formula == TEMPLATE and not wb.info(CELL).overridden
        await pilot.press("u")
        await pilot.pause()
        assert wb.info(CELL).formula == ZERO1

    run_app(app, scenario)


def test_the_editor_shows_the_original_and_ctrl_o_puts_it_back(wb: Workbook) -> None:
    app = CellGptApp(wb)

    async def scenario(pilot: Any) -> None:
        app.navigate(CELL)
        await pilot.pause()
        await edit(pilot, ZERO0)
        await pilot.press("e")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, FormulaScreen)
        assert TEMPLATE in str(screen.query_one("#edit-original").render())
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert screen.query_one(Input).value == TEMPLATE
        await pilot.press("enter")
        await pilot.pause()
        assert wb.info(CELL).formula == TEMPLATE

    run_app(app, scenario)


def test_tab_completes_cell_and_function_names(wb: Workbook) -> None:
    app = CellGptApp(wb)

    async def scenario(pilot: Any) -> None:
        app.navigate(CELL)
        await pilot.pause()
        await pilot.press("e")
        await pilot.pause()
        field = app.screen.query_one(Input)
        field.value = ""
        await pilot.press(*"zero_he")
        await pilot.pause()
        listing = app.screen.query_one("#edit-completions", OptionList)
        assert listing.display and listing.option_count >= 1
        await pilot.press("tab")
        assert field.value == "zero_head("
        await pilot.press(*"softm", "tab")
        await pilot.press(*"h3.attn.sc", "tab")
        assert field.value == "zero_head(softmax(h3.attn.scores"
        await pilot.press(*"), 3)", "enter")
        await pilot.pause()
        assert wb.info(CELL).formula == "zero_head(softmax(h3.attn.scores), 3)"

    run_app(app, scenario)


def test_f1_in_the_editor_opens_the_function_reference_and_inserts_a_name(
    wb: Workbook,
) -> None:
    app = CellGptApp(wb)

    async def scenario(pilot: Any) -> None:
        app.navigate(CELL)
        await pilot.pause()
        await pilot.press("e")
        await pilot.pause()
        editor = app.screen
        editor.query_one(Input).value = ""
        await pilot.press("f1")
        await pilot.pause()
        reference = app.screen
        assert isinstance(reference, FunctionsScreen)
        listing = reference.query_one(OptionList)
        every = listing.option_count
        assert every >= 20  # the whole library
        shown = " ".join(str(listing.get_option_at_index(i).prompt) for i in range(every))
        assert "softmax(" in shown and "zero_head(" in shown  # names with signatures
        await pilot.press(*"zero_h")
        await pilot.pause()
        assert listing.option_count < every
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is editor
        assert editor.query_one(Input).value == "zero_head("

    run_app(app, scenario)


def test_f_on_the_main_screen_opens_the_function_reference(wb: Workbook) -> None:
    app = CellGptApp(wb)

    async def scenario(pilot: Any) -> None:
        await pilot.press("f")
        await pilot.pause()
        assert isinstance(app.screen, FunctionsScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.main

    run_app(app, scenario)


def test_completion_pieces(wb: Workbook) -> None:
    assert word_before("zero_head(h3.attn.pa", 20) == (10, "h3.attn.pa")
    assert word_before("x * 1e5", 7) == (7, "")  # not a name: a number's exponent
    entries = function_entries(wb.library)
    softmax = next(e for e in entries if e.name == "softmax")
    assert softmax.signature.startswith("(") and softmax.doc
    found = complete("h3.attn.pat", wb.cells(), entries)
    assert found[0].text == "h3.attn.pattern" and found[0].kind == "cell"


def test_a_fixed_formula_clears_the_old_error_text(wb: Workbook) -> None:
    app = CellGptApp(wb)

    async def scenario(pilot: Any) -> None:
        app.navigate(CELL)
        await pilot.pause()
        await edit(pilot, "zero_head(softmax(h3.attn.scores), 99)")  # no head 99
        await pilot.press("R")
        await settle(pilot)
        assert wb.status(CELL) == Status.ERROR
        message = wb.info(CELL).error.message
        assert message in str(details_text(app))
        await edit(pilot, ZERO0)  # fixed; stale until run
        assert wb.status(CELL) == Status.STALE
        assert message not in str(details_text(app))
        app.navigate("logits")  # and its dependents no longer say they are blocked
        await pilot.pause()
        assert "blocked" not in str(details_text(app))

    run_app(app, scenario)


def test_the_prompt_editor_takes_several_lines(wb: Workbook) -> None:
    app = CellGptApp(wb)

    async def scenario(pilot: Any) -> None:
        await pilot.press("p")
        await pilot.pause()
        assert isinstance(app.screen, PromptScreen)
        area = app.screen.query_one(TextArea)
        area.text = ""
        await pilot.press(*"Dear Mike,", "enter", *"He moves")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert wb.value("prompt") == "Dear Mike,\nHe moves"
        assert "\n" in "".join(wb.value("tokens"))
        bar = str(app.main.query_one("#prompt-text").render())
        assert "Dear Mike,↵He moves" in bar  # the line break shown, on one line

    run_app(app, scenario)
