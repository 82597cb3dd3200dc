"""What the keys do. A mixin of `CellGptApp`: every action checks that no job is running
before it changes the workbook, and turns every failure into a notification — the app never
crashes on a user's mistake."""

from __future__ import annotations

import contextlib
import importlib
import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cellgpt.engine import CellError, EngineError, FormulaError, Status
from cellgpt.tui.jobs import JobContext, JobResult
from cellgpt.tui.screens.edit import EditScreen, Problem
from cellgpt.tui.screens.find import FindScreen
from cellgpt.tui.screens.help import HelpScreen
from cellgpt.tui.search import Hit, find_cells, find_tokens, find_vocab

if TYPE_CHECKING:
    from cellgpt.tui.app import CellGptApp


def problem_from(exc: Exception, text: str = "") -> Problem:
    """A refused edit as a message, with the span of the formula at fault: the parser's, or
    for an unknown name the place that name is written."""
    if isinstance(exc, FormulaError):
        return Problem(exc.message, exc.span)
    if isinstance(exc, EngineError):
        found = re.search(r"unknown (?:name|function) '([^']+)'", str(exc))
        start = text.find(found.group(1)) if found else -1
        span = (start, start + len(found.group(1))) if found and start >= 0 else None
        return Problem(str(exc), span)
    return Problem(f"{type(exc).__name__}: {exc}")


def xlsx_exporter() -> Callable[..., Any] | None:
    """`cellgpt.export.xlsx.export_workbook`, or None while it does not exist."""
    try:
        module = importlib.import_module("cellgpt.export.xlsx")
    except ImportError:
        return None
    func = getattr(module, "export_workbook", None)
    return func if callable(func) else None


class Actions:
    """Key actions; `self` is the CellGptApp."""

    # ------------------------------------------------------------------ guards
    def _can_act(self: CellGptApp, *, needs_cell: bool = True) -> bool:
        if self.wb is None:
            self.notify("still loading the workbook", severity="warning")
            return False
        if self.jobs.busy:
            self.notify(
                f"busy: {self.jobs.title} — press c or Escape to cancel", severity="warning"
            )
            return False
        if needs_cell and self.current is None:
            self.notify("select a cell first", severity="warning")
            return False
        return True

    def start_run(self: CellGptApp, name: str | None, title: str) -> bool:
        """Run one cell (its stale inputs first) or everything stale, in the job thread."""
        wb = self.wb

        def work(ctx: JobContext) -> None:
            with contextlib.suppress(CellError):  # the error lives in the cell, shown there
                wb.run(name, progress=ctx.progress, cancel=ctx.cancelled)

        return self.jobs.start(title, work, self._after_run(name))

    def _after_run(self: CellGptApp, name: str | None) -> Callable[[JobResult], None]:
        def done(result: JobResult) -> None:
            if name is not None and self.wb.status(name) in (Status.ERROR, Status.BLOCKED):
                error = self.wb.info(name).error
                self.notify(f"{name}: {error.message if error else 'failed'}", severity="error")

        return done

    # ------------------------------------------------------------------ running
    def action_rerun(self: CellGptApp) -> None:
        if not self._can_act():
            return
        name = self.current
        assert name is not None
        if self.wb.status(name) == Status.FRESH:
            wb = self.wb

            def work(ctx: JobContext) -> None:
                with contextlib.suppress(CellError):
                    wb.rerun(name)

            self.jobs.start(f"Re-running {name}", work, self._after_run(name))
        else:
            self.start_run(name, f"Running {name}")

    def action_run_all(self: CellGptApp) -> None:
        if not self._can_act(needs_cell=False):
            return
        if not self.wb.stale():
            self.notify("nothing is stale")
            return
        self.start_run(None, "Running stale cells")

    def action_cancel(self: CellGptApp) -> None:
        if self.jobs.cancel():
            self.notify(f"cancelling {self.jobs.title}…")
        else:
            self.notify("nothing is running")

    def action_go_back(self: CellGptApp) -> None:
        """Escape: cancel a running job, else go back to the previous cell."""
        if self.jobs.busy:
            self.action_cancel()
            return
        while self.history:
            name = self.history.pop()
            if self.wb is not None and name in self.wb:
                self.navigate(name, push=False)
                return
        if self.current is not None:
            self.tree.focus()

    # ------------------------------------------------------------------ editing
    def action_edit_formula(self: CellGptApp) -> None:
        if not self._can_act():
            return
        name = self.current
        assert name is not None
        info = self.wb.info(name)
        hint = "Enter applies (bad formulas are refused; the old one stays) · Escape cancels"
        if info.template is not None and info.formula is not None and not info.overridden:
            hint = f"this block cell follows its template; an edit affects {name} only · " + hint

        def apply(text: str) -> Problem | None:
            if self.jobs.busy:
                return Problem("a job is running — cancel it first (c)")
            try:
                self.wb.set_formula(name, text)
            except Exception as exc:  # every refusal is shown, never raised
                return problem_from(exc, text)
            return None

        def done(text: str | None) -> None:
            if text is None:
                return
            stale = len(self.wb.stale())
            self.notify(f"{name} = {text}\n{stale} cells stale — r re-runs this cell, R runs all")
            self.show_current()

        self.push_screen(
            EditScreen(f"edit formula of {name}", info.formula or "", apply, hint=hint), done
        )

    def action_pin(self: CellGptApp) -> None:
        if not self._can_act():
            return
        name = self.current
        assert name is not None
        if self.wb.cell(name).pinned:
            self.wb.unpin(name)
            self.notify(f"unpinned {name}: its formula computes it again (stale until re-run)")
            return
        if self.wb.status(name) == Status.FRESH:
            self.wb.pin(name)
            self.notify(f"pinned {name}: downstream cells are stale — R re-runs them")
            return
        wb = self.wb

        def work(ctx: JobContext) -> None:
            wb.run(name, progress=ctx.progress, cancel=ctx.cancelled)
            wb.pin(name)

        self.jobs.start(f"Pinning {name}", work, lambda r: self.notify(f"pinned {name}"))

    def action_edit_prompt(self: CellGptApp) -> None:
        if not self._can_act(needs_cell=False):
            return
        if "prompt" not in self.wb:
            self.notify("this workbook has no prompt cell", severity="warning")
            return
        prompt = str(self.wb.value("prompt") or "")
        ids = self.wb.value("generated") if "generated" in self.wb else None
        tok = self.wb.value("tokenizer") if "tokenizer" in self.wb else None
        if ids and tok is not None:
            prompt += tok.decode(ids)  # edit the whole text, continuation included

        def apply(text: str) -> Problem | None:
            if self.jobs.busy:
                return Problem("a job is running — cancel it first (c)")
            try:
                self.wb.set("prompt", text)
                if "generated" in self.wb and self.wb.value("generated"):
                    self.wb.set("generated", [])
            except Exception as exc:
                return problem_from(exc)
            return None

        def done(text: str | None) -> None:
            if text is not None:
                self.refresh_panels()
                self.start_run(None, "Running the new prompt")

        self.push_screen(EditScreen("prompt", prompt, apply), done)

    def action_generate(self: CellGptApp) -> None:
        if not self._can_act(needs_cell=False):
            return
        if "next_token" not in self.wb or "generated" not in self.wb:
            self.notify("this workbook cannot generate (no next_token cell)", severity="warning")
            return
        from cellgpt.gpt2.generate import generate

        wb = self.wb

        def work(ctx: JobContext) -> list[int]:
            # Compute the prediction with cancel/progress first; generate() then only appends.
            wb.run("next_token", progress=ctx.progress, cancel=ctx.cancelled)
            ids = generate(wb, 1, greedy=True)
            wb.run(None, progress=ctx.progress, cancel=ctx.cancelled)
            return ids

        def done(result: JobResult) -> None:
            ids = result.value or []
            if not ids:
                self.notify("the context is full: no token appended", severity="warning")
                return
            tok = self.wb.value("tokenizer")
            text = tok.decode(ids) if tok is not None else str(ids)
            self.notify(f"generated {text!r} (id {ids[0]})")

        self.jobs.start("Generating", work, done)

    # ------------------------------------------------------------------ files
    def action_save(self: CellGptApp) -> None:
        if not self._can_act(needs_cell=False):
            return
        document = getattr(self.wb, "document", None)
        if document is None:
            self.action_save_as()
            return
        self._save_to(None)

    def _save_to(self: CellGptApp, path: str | None) -> Problem | None:
        try:
            self.wb.save(path)
        except Exception as exc:  # nothing is lost: the old file stays as it was
            self.notify(f"save failed: {exc}", severity="error", timeout=8)
            return Problem(str(exc))
        self.notify(f"saved {self.wb.document.path if self.wb.document else path}")
        return None

    def action_save_as(self: CellGptApp) -> None:
        if not self._can_act(needs_cell=False):
            return
        document = getattr(self.wb, "document", None)
        initial = document.path if document is not None else "workbook.py"
        self.push_screen(EditScreen("save the workbook as", str(initial), self._save_to))

    def action_export(self: CellGptApp) -> None:
        if not self._can_act(needs_cell=False):
            return
        exporter = xlsx_exporter()
        if exporter is None:
            self.notify(
                "Export to .xlsx is not available yet (cellgpt.export.xlsx has no export_workbook).",
                title="export",
                severity="warning",
                timeout=6,
            )
            return
        document = getattr(self.wb, "document", None)
        stem = os.path.splitext(os.path.basename(document.path))[0] if document else "cellgpt"
        wb = self.wb

        def apply(path: str) -> Problem | None:
            return None if path.strip() else Problem("give a file name")

        def done(path: str | None) -> None:
            if path:
                self.jobs.start(
                    f"Exporting {path}",
                    lambda ctx: exporter(wb, path),
                    lambda r: self.notify(f"exported {path}"),
                )

        self.push_screen(EditScreen("export to .xlsx", f"{stem}.xlsx", apply), done)

    # ------------------------------------------------------------------ finding, views
    def search(self: CellGptApp, query: str) -> list[Hit]:
        if self.wb is None:
            return []
        hits = find_cells(self.wb.cells(), self.wb.aliases(), query)
        tokens = self.wb.value("tokens") if "tokens" in self.wb else None
        if isinstance(tokens, list):
            hits += find_tokens(tokens, query)
        tok = self.wb.value("tokenizer") if "tokenizer" in self.wb else None
        if tok is not None:
            hits += find_vocab(tok, query)
        return hits

    def action_find(self: CellGptApp) -> None:
        if self.wb is None:
            return
        self.push_screen(FindScreen(self.search), self._found)

    def _found(self: CellGptApp, hit: Hit | None) -> None:
        if hit is None:
            return
        if hit.kind == "cell":
            self.navigate(str(hit.target))
            return
        if hit.kind == "vocab":
            self.navigate("wte")
        elif not self._shows_token_rows():
            self.navigate("embed" if "embed" in self.wb else "tokens")
        grid = self.value_pane.grid
        if self.value_pane.view is not None and self.value_pane.view.kind == "grid":
            grid.move_cursor(int(hit.target), grid.cursor[1])
            grid.focus()

    def _shows_token_rows(self: CellGptApp) -> bool:
        info: Any = self.wb.info(self.current) if self.current else None
        view = self.value_pane.view
        return (
            info is not None
            and info.hints.get("rows") == "tokens"
            and view is not None
            and view.kind == "grid"
        )

    def action_help(self: CellGptApp) -> None:
        self.push_screen(HelpScreen())

    def action_head(self: CellGptApp, delta: int) -> None:
        if self.wb is not None and not self.value_pane.set_head(self.wb, delta):
            self.notify("this value has no heads (only q, k, v, scores, pattern)")

    def action_precision(self: CellGptApp) -> None:
        self.notify(f"{self.value_pane.cycle_precision()} decimals")

    def action_compact(self: CellGptApp) -> None:
        self.value_pane.toggle_compact()
