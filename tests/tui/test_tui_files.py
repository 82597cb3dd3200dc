"""Files from the TUI (Pilot): nothing is overwritten without a yes, keys typed while a
dialog closes never reach the main screen, the bundled workbook is saved as a copy in the
user's folder, and the export dialog asks for the mode and the file, shows progress and can
be cancelled. Bad paths are refused in the dialog, never by a crash."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from textual import events
from textual.widgets import Input, Label, RadioSet

import cellgpt
from cellgpt.engine import Status, Workbook
from cellgpt.tui.app import CellGptApp
from cellgpt.tui.screens.confirm import ConfirmScreen
from cellgpt.tui.screens.edit import EditScreen
from cellgpt.tui.screens.export import ExportScreen
from tests.tui import test_tui
from tests.tui.test_tui import PROMPT, Notes, edit, run_app, settle

tui_model, wb_path, wb = test_tui.tui_model, test_tui.wb_path, test_tui.wb


# ---------------------------------------------------------------------- saving
def test_save_as_over_another_file_asks_first(wb: Workbook, tmp_path: Path) -> None:
    app = CellGptApp(wb)
    notes = Notes(app)
    other = tmp_path / "other.py"
    other.write_text("kept = 1\n")

    async def scenario(pilot: Any) -> None:
        await pilot.press("S")
        await pilot.pause()
        assert isinstance(app.screen, EditScreen)
        app.screen.query_one(Input).value = str(other)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)  # it exists: ask
        await pilot.press("n")  # no: back to the file name, nothing written
        await pilot.pause()
        assert isinstance(app.screen, EditScreen)
        assert other.read_text() == "kept = 1\n"
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert app.screen is app.main
        assert "prompt" in other.read_text(), notes.text()
        assert wb.document is not None and Path(wb.document.path) == other

    run_app(app, scenario)


def test_save_as_refuses_a_bad_folder_in_the_dialog(wb: Workbook, tmp_path: Path) -> None:
    app = CellGptApp(wb)

    async def scenario(pilot: Any) -> None:
        await pilot.press("S")
        await pilot.pause()
        app.screen.query_one(Input).value = str(tmp_path / "no such folder" / "x.py")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, EditScreen)  # still open, saying why
        assert "does not exist" in str(app.screen.query_one("#edit-error").render())
        app.screen.query_one(Input).value = str(tmp_path)  # a folder, not a file
        await pilot.press("enter")
        await pilot.pause()
        assert "is a folder" in str(app.screen.query_one("#edit-error").render())
        assert app.is_running

    run_app(app, scenario)


def test_s_on_the_bundled_workbook_offers_a_copy_in_the_users_folder(
    tui_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CELLGPT_HOME", str(tmp_path / "home"))
    book = cellgpt.open("gpt2", model=str(tui_model), prompt=PROMPT)
    assert book.document is not None and book.document.save_path
    bundled = Path(book.document.path)
    original = bundled.read_bytes()
    app = CellGptApp(book)

    async def scenario(pilot: Any) -> None:
        app.navigate("h3.attn.pattern")
        await pilot.pause()
        await edit(pilot, "zero_head(softmax(h3.attn.scores), 0)")
        assert app.controller.unsaved
        await pilot.press("s")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, EditScreen)  # save as, not a silent write
        assert "read-only" in str(screen.query_one("#edit-title").render())
        target = Path(book.document.save_path)
        assert Path(screen.query_one(Input).value).expanduser() == target
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is app.main
        assert target.is_file() and bundled.read_bytes() == original
        assert not app.controller.unsaved

    run_app(app, scenario)


# ---------------------------------------------------------------------- keys after a dialog
def test_keys_typed_while_a_dialog_closes_do_not_reach_the_main_screen(wb: Workbook) -> None:
    app = CellGptApp(wb, autorun=False)

    async def scenario(pilot: Any) -> None:
        app.navigate("h3.attn.pattern")
        await pilot.pause()
        await pilot.press("e")
        for _ in range(100):  # the editor is up (a loaded machine may take a few frames)
            if app.screen.query(Input):
                break
            await pilot.pause(0.02)
        typed_meanwhile = events.Key("r", "r")  # typed while the editor was still open
        app.screen.query_one(Input).value = "zero_head(softmax(h3.attn.scores), 0)"
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is app.main
        app.post_message(typed_meanwhile)  # ... arriving after it closed
        await settle(pilot)
        assert wb.status("h3.attn.pattern") == Status.STALE  # r did not run
        await pilot.press("r")  # a key typed now does
        await settle(pilot)
        assert wb.status("h3.attn.pattern") == Status.FRESH

    run_app(app, scenario)


def test_a_key_typed_while_save_as_closes_does_not_answer_the_overwrite_question(
    wb: Workbook, tmp_path: Path
) -> None:
    app = CellGptApp(wb)
    other = tmp_path / "other.py"
    other.write_text("kept = 1\n")

    async def scenario(pilot: Any) -> None:
        await pilot.press("S")
        await pilot.pause()
        typed_meanwhile = events.Key("y", "y")
        app.screen.query_one(Input).value = str(other)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        app.post_message(typed_meanwhile)
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)  # still asking
        assert other.read_text() == "kept = 1\n"

    run_app(app, scenario)


# ---------------------------------------------------------------------- export
class FakeExport:
    """Stands in for export_workbook: records its calls, reports progress, and (with
    `hold`) waits until the job is cancelled."""

    def __init__(self, hold: bool = False) -> None:
        self.calls: list[tuple[Any, Path, str]] = []
        self.hold = hold
        self.started = threading.Event()

    def __call__(self, book: Any, path: Any, *, mode: str, progress: Any) -> None:
        self.calls.append((book, Path(path), mode))
        for i in range(1000 if self.hold else 3):
            progress(i, 1000, f"sheet {i}")  # raises once the job is cancelled
            self.started.set()
            if self.hold:
                threading.Event().wait(0.01)
        Path(path).write_bytes(b"xlsx")


def test_export_asks_mode_and_path_and_expands_the_home(
    wb: Workbook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeExport()
    monkeypatch.setattr("cellgpt.tui.files.export_workbook", fake)
    monkeypatch.setenv("HOME", str(tmp_path))
    app = CellGptApp(wb)

    async def scenario(pilot: Any) -> None:
        await pilot.press("x")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ExportScreen)
        labels = [str(label.render()) for label in screen.query(Label)]
        assert any("relative to" in text for text in labels)  # where a bare name goes
        modes = screen.query_one(RadioSet)
        modes.focus()
        await pilot.press("down", "enter")  # formulas
        screen.query_one(Input).focus()
        screen.query_one(Input).value = "~/book.xlsx"
        await pilot.press("enter")
        await settle(pilot)
        assert fake.calls == [(wb, tmp_path / "book.xlsx", "formulas")]

    run_app(app, scenario)


def test_export_over_an_existing_file_asks_and_no_keeps_it(
    wb: Workbook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeExport()
    monkeypatch.setattr("cellgpt.tui.files.export_workbook", fake)
    target = tmp_path / "out.xlsx"
    target.write_bytes(b"mine")
    app = CellGptApp(wb)

    async def scenario(pilot: Any) -> None:
        await pilot.press("x")
        await pilot.pause()
        app.screen.query_one(Input).value = str(target)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("escape")  # no: back in the export dialog, the file kept
        await pilot.pause()
        assert isinstance(app.screen, ExportScreen)
        assert target.read_bytes() == b"mine" and not fake.calls
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("y")
        await settle(pilot)
        assert target.read_bytes() == b"xlsx" and len(fake.calls) == 1

    run_app(app, scenario)


def test_export_to_a_missing_folder_is_refused_in_the_dialog(
    wb: Workbook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeExport()
    monkeypatch.setattr("cellgpt.tui.files.export_workbook", fake)
    app = CellGptApp(wb)

    async def scenario(pilot: Any) -> None:
        await pilot.press("x")
        await pilot.pause()
        app.screen.query_one(Input).value = str(tmp_path / "missing" / "out.xlsx")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ExportScreen)
        assert "does not exist" in str(app.screen.query_one("#export-error").render())
        assert not fake.calls

    run_app(app, scenario)


def test_export_shows_progress_and_can_be_cancelled(
    wb: Workbook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeExport(hold=True)
    monkeypatch.setattr("cellgpt.tui.files.export_workbook", fake)
    app = CellGptApp(wb)
    notes = Notes(app)
    target = tmp_path / "slow.xlsx"

    async def scenario(pilot: Any) -> None:
        await pilot.press("x")
        await pilot.pause()
        app.screen.query_one(Input).value = str(target)
        await pilot.press("enter")
        assert fake.started.wait(5)
        await pilot.pause(0.2)
        label = str(app.main.query_one("#job-label").render())
        assert "Exporting slow.xlsx" in label and "sheet" in label and "cancels" in label
        await pilot.press("c")
        await settle(pilot)
        assert "cancelled" in notes.text()
        assert not target.exists() and app.is_running

    run_app(app, scenario)


def test_a_real_export_writes_a_workbook_file(wb_path: Path, tmp_path: Path) -> None:
    """The dialog drives the real exporter (the bundled small model keeps it quick)."""
    from openpyxl import load_workbook

    book = cellgpt.open(wb_path, prompt="Mike is quick")
    app = CellGptApp(book)
    target = tmp_path / "real.xlsx"

    async def scenario(pilot: Any) -> None:
        await pilot.press("x")
        await pilot.pause()
        app.screen.query_one(Input).value = str(target)
        await pilot.press("enter")
        await settle(pilot, timeout=120)
        assert target.is_file()
        assert "Index" in load_workbook(target, read_only=True).sheetnames

    run_app(app, scenario)
