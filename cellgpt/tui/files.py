"""What the file keys do: save (s), save as (S), reload after a refused save, export (x).
Nothing is overwritten without a yes, a path is checked before anything is written, and a
failure is a message in the app with the old file intact."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cellgpt.engine import CellError, RunCancelled, load_workbook
from cellgpt.engine.workbook_file import WorkbookChangedError
from cellgpt.export.xlsx import export_workbook
from cellgpt.tui import paths
from cellgpt.tui.history import FormulaHistory
from cellgpt.tui.jobs import JobContext, JobResult
from cellgpt.tui.screens.changed import ChangedScreen, Choice
from cellgpt.tui.screens.confirm import ConfirmScreen
from cellgpt.tui.screens.edit import EditScreen, Problem
from cellgpt.tui.screens.export import ExportRequest, ExportScreen

if TYPE_CHECKING:
    from cellgpt.tui.controller import WorkbookController


class FileActions:
    """The controller's file operations (it owns one as `files`)."""

    def __init__(self, controller: WorkbookController) -> None:
        self.c = controller

    def save(self) -> None:
        """s: save over the file the workbook came from. A shipped (read-only) workbook, or
        one never saved, goes through 'save as', whose default is the user's folder."""
        if not self.c.can_act(needs_cell=False):
            return
        document = getattr(self.c.wb, "document", None)
        if document is None:
            self.save_as()
            return
        if document.save_path:
            self.save_as(
                title="the bundled workbook is read-only: save a copy in your folder as",
                initial=document.save_path,
            )
            return
        try:
            self.c.wb.save(None)
        except WorkbookChangedError as exc:  # someone else saved it: never overwrite them
            self.c.ui.notify(str(exc), severity="error", timeout=8)
            self.c.ui.push_screen(ChangedScreen(exc.path), self._resolve_change(exc.path))
            return
        except Exception as exc:  # nothing is lost: the old file stays as it was
            self.c.ui.notify(f"save failed: {exc}", severity="error", timeout=8)
            return
        self.c.unsaved = False
        self.c.ui.notify(f"saved {self.c.wb.document.path}")

    def _resolve_change(self, path: str) -> Callable[[Choice | None], None]:
        def chosen(choice: Choice | None) -> None:
            if choice == "reload":
                self.reload(path)
            elif choice == "save_as":
                self.save_as()

        return chosen

    def reload(self, path: str) -> None:
        """Open the file again as it is on disk (this session's edits are dropped)."""
        if not self.c.can_act(needs_cell=False):
            return
        library = self.c.wb.library

        def done(result: JobResult) -> None:
            self.c.current, self.c.history = None, []
            self.c.formulas, self.c.unsaved = FormulaHistory(), False
            self.c.ui.show_workbook(result.value)
            self.c.ui.notify(f"reloaded {path}")

        self.c.jobs.start(f"Reloading {path}", lambda ctx: load_workbook(path, library), done)

    def save_as(self, *, title: str = "save the workbook as", initial: str | None = None) -> None:
        """S: save to a file named in a dialog; an existing other file is only overwritten
        after a yes."""
        if not self.c.can_act(needs_cell=False):
            return
        document = getattr(self.c.wb, "document", None)
        if initial is None:
            initial = (document.save_path or document.path) if document else "workbook.py"
        base = paths.base_folder()

        def check(text: str) -> Problem | None:
            path = paths.resolve(text, base)
            if document is not None and document.save_path and path == Path(document.save_path):
                with contextlib.suppress(OSError):  # the user's folder, made on first use
                    path.parent.mkdir(parents=True, exist_ok=True)
            problem = paths.write_problem(path)
            return Problem(problem) if problem else None

        def chosen(text: str | None) -> None:
            if text is None:
                return
            path = paths.resolve(text, base)
            own = document is not None and _same_file(path, document.path)
            if path.exists() and not own:
                # no: back to the dialog with the name as typed, to change it
                again = partial(self.save_as, title=title, initial=str(path))
                self._confirm_overwrite(path, partial(self._save_to, path), again)
            else:
                self._save_to(path)

        hint = f"~ is your home; a relative name is in {paths.shown(base)} │ Esc cancels"
        self.c.ui.push_screen(
            EditScreen(title, paths.shown(Path(initial)), check, hint=hint), chosen
        )

    def _confirm_overwrite(
        self, path: Path, write: Callable[[], None], back: Callable[[], None]
    ) -> None:
        """Ask before replacing an existing file: yes writes, no goes back to the dialog."""

        def answered(yes: bool | None) -> None:
            if yes:
                write()
            else:
                back()

        message = f"{paths.shown(path)} exists. Replace it? (its old content is lost)"
        self.c.ui.push_screen(ConfirmScreen("replace the file?", message, yes="Replace"), answered)

    def _save_to(self, path: Path) -> None:
        try:
            self.c.wb.save(str(path))
        except Exception as exc:  # nothing is lost: the old file stays as it was
            self.c.ui.notify(f"save failed: {exc}", severity="error", timeout=8)
            return
        self.c.unsaved = False
        self.c.ui.notify(f"saved {self.c.wb.document.path if self.c.wb.document else path}")

    def export(self, request: ExportRequest | None = None) -> None:
        """x: ask for the mode and the file, confirm an overwrite, then write it in a job
        with progress (c or Esc cancels; a cancelled export leaves no file behind)."""
        if not self.c.can_act(needs_cell=False):
            return
        base = paths.base_folder()
        if request is None:
            document = getattr(self.c.wb, "document", None)
            stem = Path(document.path).stem if document else "cellgpt"
            request = ExportRequest("values", f"{stem}.xlsx")

        def check(request: ExportRequest) -> Problem | None:
            problem = paths.write_problem(paths.resolve(request.path, base))
            return Problem(problem) if problem else None

        def chosen(request: ExportRequest | None) -> None:
            if request is None:
                return
            path = paths.resolve(request.path, base)
            if path.exists():
                self._confirm_overwrite(
                    path, lambda: self._export_to(path, request), lambda: self.export(request)
                )
            else:
                self._export_to(path, request)

        self.c.ui.push_screen(ExportScreen(request, check, paths.shown(base)), chosen)

    def _export_to(self, path: Path, request: ExportRequest) -> None:
        wb = self.c.wb

        def work(ctx: JobContext) -> Any:
            def progress(done: int, total: int, what: str) -> None:
                if ctx.cancelled():
                    raise RunCancelled("export cancelled")
                ctx.progress(done, total, what)

            # Compute what is stale first, cancellably (the exporter's own run cannot stop).
            with contextlib.suppress(CellError):
                wb.run(None, progress=ctx.progress, cancel=ctx.cancelled)
            return export_workbook(wb, path, mode=request.mode, progress=progress)

        self.c.jobs.start(
            f"Exporting {path.name} ({request.mode})",
            work,
            lambda r: self.c.ui.notify(f"exported {paths.shown(path)} ({request.mode})"),
        )


def _same_file(a: Path, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)
