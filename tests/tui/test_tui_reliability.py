"""The TUI under bad input (Pilot): bombs and escape attempts typed into the formula editor,
odd prompts, a library function that crashes, odd cell values and keys pressed on broken
cells never freeze or exit the app. Complements tests/tui/test_tui.py (whose fixtures we reuse).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from textual.widgets import TextArea

from cellgpt.engine import Status, Workbook
from cellgpt.tui.app import CellGptApp
from cellgpt.tui.screens.changed import ChangedScreen
from cellgpt.tui.screens.edit import EditScreen
from cellgpt.tui.screens.prompt import PromptScreen
from tests.tui import test_tui
from tests.tui.test_tui import Notes, edit, only_on_demand, run_app, settle

# The shared fixtures (a random 4-block model, a private workbook copy, the loaded workbook).
tui_model, wb_path, wb = test_tui.tui_model, test_tui.wb_path, test_tui.wb

# Refused in the editor (the editor stays open with the message) ...
REFUSED = [
    ("__import__('os').system('touch pwned')", "not allowed"),
    ("().__class__.__bases__[0].__subclasses__()", "not allowed"),
    ("eval('1')", "unknown function"),
    ("open('pwned', 'w')", "unknown function"),
    ("f'{h3.attn.scores}'", "not allowed"),
    ("(" * 300 + "1" + ")" * 300, "nested"),
    ("1+" * 10_001, "characters long"),
    ("h3.attn.pattern", "cycle"),
]
# ... or accepted and stopped in the cell when it runs.
BOUNDED = [
    "zeros(10 ** 12)",
    "10 ** 10 ** 10",
    "'a' * 10 ** 9",
    "'%*d' % (10 ** 9, 1)",
    "zeros((2 ** 14, 2 ** 14)) @ zeros((2 ** 14, 2 ** 14))",
]


def test_escape_attempts_and_bombs_typed_into_the_editor(wb: Workbook, tmp_path: Any) -> None:
    app = CellGptApp(wb)

    async def scenario(pilot: Any) -> None:
        app.navigate("h3.attn.pattern")
        await pilot.pause()
        for text, message in REFUSED:
            await edit(pilot, text)
            screen = app.screen
            assert isinstance(screen, EditScreen), text
            assert message in str(screen.query_one("#edit-error").render()), text
            await pilot.press("escape")
            await pilot.pause()
            assert wb.info("h3.attn.pattern").formula == "softmax(h3.attn.scores)"
        for text in BOUNDED:
            await edit(pilot, text)
            assert app.screen is app.main, text
            await pilot.press("r")
            await settle(pilot)
            assert wb.status("h3.attn.pattern") == Status.ERROR, text
            assert wb.status("h3.attn.z") in (Status.BLOCKED, Status.STALE)
        assert app.is_running
        await edit(pilot, "softmax(h3.attn.scores)")  # and back to normal
        await pilot.press("R")
        await settle(pilot)
        assert only_on_demand(wb, wb.stale()) and wb.status("logits") == Status.FRESH

    run_app(app, scenario)
    assert not (tmp_path / "pwned").exists()


def test_odd_prompts_never_take_the_app_down(wb: Workbook) -> None:
    app = CellGptApp(wb)
    notes = Notes(app)

    async def scenario(pilot: Any) -> None:
        for prompt in [
            "",
            "   ",
            "\x1b[2J\x00\x07",
            "a\ud800b",
            "\U0001f600\U000e0001<|endoftext|>",
            "line one\nline two\r\n\ttabbed",
            "the " * 200,  # longer than this model's 64-token context
        ]:
            await pilot.press("p")
            await pilot.pause()
            assert isinstance(app.screen, PromptScreen)
            app.screen.query_one(TextArea).text = prompt
            await pilot.press("ctrl+s")
            await settle(pilot)
            if isinstance(app.screen, PromptScreen):  # refused inline: leave the editor
                await pilot.press("escape")
                await pilot.pause()
            assert app.is_running and app.screen is app.main, repr(prompt)
            await pilot.press("g")  # generating from a broken prompt is refused, not fatal
            await settle(pilot)
            assert app.is_running
        assert wb.status("top_k") in (Status.BLOCKED, Status.ERROR)  # the last one is too long
        assert "error" in notes.severities() or wb.state("wpe_rows").error is not None

    run_app(app, scenario)


def test_a_crashing_library_function_stays_in_its_cell(wb: Workbook) -> None:
    app = CellGptApp(wb)

    def explode(*args: Any) -> Any:
        raise RuntimeError("library bug")

    wb._functions["gelu"] = explode  # a bug in a library function, not a user error

    async def scenario(pilot: Any) -> None:
        app.navigate("h1.mlp.gelu")
        await pilot.pause()
        await edit(pilot, "gelu(h1.mlp.fc)")
        await pilot.press("R")
        await settle(pilot)
        assert wb.status("h1.mlp.gelu") == Status.ERROR
        assert "library bug" in str(wb.state("h1.mlp.gelu").error)
        for key in ("r", "R", "g", "enter", "escape", "down", "up"):
            await pilot.press(key)
            await settle(pilot)
        assert app.is_running

    run_app(app, scenario)


def test_odd_values_are_displayed_without_crashing(wb: Workbook) -> None:
    app = CellGptApp(wb)
    odd = {
        "none": "None",
        "huge_text": "'x' * 10 ** 6",
        "nested": "[[1, [2, [3, 'a']]], {'k': (1, 2)}]",
        "empty_matrix": "zeros((0, 5))",
        "cube": "zeros((2, 3, 4, 5))",
        "nan_inf": "array([nan, inf, -inf, 1e38, -0.0])",
        "flags": "array([1, 0, 1], dtype='bool')",
        "escape_text": "'\\x1b[2J\\x00\\u202e'",
        "markup": "'[bold red]not markup[/]'",
    }
    for name, formula in odd.items():
        wb.define(name, formula)

    async def scenario(pilot: Any) -> None:
        await pilot.press("R")
        await settle(pilot)
        for name in odd:
            app.navigate(name)
            await pilot.pause()
            for key in ("down", "end", "enter"):
                await pilot.press(key)
            await pilot.pause()
            if app.screen is not app.main:
                await pilot.press("escape")
                await pilot.pause()
            assert app.is_running, name
        assert wb.value("huge_text") is not None
        assert np.isnan(wb.value("nan_inf")[0])

    run_app(app, scenario)


# ---------------------------------------------------------------------- a file changed on disk
EDITED = "zero_head(softmax(h3.attn.scores), 0)"


def _change_behind_our_back(wb_path: Path, tui_model: Path) -> bytes:
    """Another program saves the workbook: our save must not drop its edit."""
    text = wb_path.read_text().replace('model = "gpt2-mini"', f"model = {str(tui_model)!r}")
    wb_path.write_text(text.replace('prompt = "Mike', 'prompt = "Anna'))
    return wb_path.read_bytes()


async def _save_refused(pilot: Any, app: CellGptApp, notes: Notes, theirs: bytes, path: Path):
    app.navigate("h3.attn.pattern")
    await pilot.pause()
    await edit(pilot, EDITED)
    await pilot.press("s")
    await pilot.pause()
    assert isinstance(app.screen, ChangedScreen)
    assert "changed on disk" in notes.text() and "error" in notes.severities()
    assert path.read_bytes() == theirs  # their edit is still there


def test_a_save_over_a_changed_file_offers_save_as(
    wb: Workbook, wb_path: Path, tui_model: Path, tmp_path: Path
) -> None:
    app = CellGptApp(wb, autorun=False)
    notes = Notes(app)
    theirs = _change_behind_our_back(wb_path, tui_model)
    target = tmp_path / "mine.py"

    async def scenario(pilot: Any) -> None:
        await _save_refused(pilot, app, notes, theirs, wb_path)
        await pilot.press("escape")  # neither: nothing written, the edit stays in memory
        await pilot.pause()
        assert app.screen is app.main and wb.info("h3.attn.pattern").formula == EDITED
        await pilot.press("s")
        await pilot.pause()
        await pilot.click("#save_as")
        await pilot.pause()
        assert isinstance(app.screen, EditScreen)
        app.screen.query_one("#edit-input").value = str(target)
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is app.main
        assert EDITED in target.read_text() and wb_path.read_bytes() == theirs
        await pilot.press("s")  # the copy is ours now: saving again just works
        await pilot.pause()
        assert app.screen is app.main and notes.items[-1] == (f"saved {target}", "information")

    run_app(app, scenario)


def test_a_save_over_a_changed_file_offers_reload(
    wb: Workbook, wb_path: Path, tui_model: Path
) -> None:
    app = CellGptApp(wb, autorun=False)
    notes = Notes(app)
    theirs = _change_behind_our_back(wb_path, tui_model)

    async def scenario(pilot: Any) -> None:
        await _save_refused(pilot, app, notes, theirs, wb_path)
        await pilot.click("#reload")
        await settle(pilot)
        assert app.screen is app.main and app.wb is not wb
        assert app.wb.info("h3.attn.pattern").formula == "softmax(h3.attn.scores)"  # from disk
        assert app.wb["prompt"].startswith("Anna") and "reloaded" in notes.text()
        assert wb_path.read_bytes() == theirs
        app.navigate("h3.attn.pattern")
        await pilot.pause()
        await edit(pilot, EDITED)  # the reloaded file saves normally
        await pilot.press("s")
        await pilot.pause()
        assert EDITED in wb_path.read_text() and "Anna" in wb_path.read_text()

    run_app(app, scenario)
