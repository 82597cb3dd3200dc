"""What the keys do to the workbook. `WorkbookController` holds the workbook, the job runner
and the navigation history; the app owns one and calls it. Every operation checks that no job
is running before it changes the workbook, and turns every failure into a notification — the
app never crashes on a user's mistake."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, Protocol

from textual.notifications import SeverityLevel
from textual.screen import Screen

from cellgpt.engine import (
    CellError,
    Status,
)
from cellgpt.engine import fit as training
from cellgpt.engine.errors import CellEvalError
from cellgpt.engine.workbook_save import render_text
from cellgpt.export.xlsx import export_workbook  # noqa: F401  (tests/export: the TUI's exporter)
from cellgpt.gpt2.cells import EMBED, GENERATED, NEXT_TOKEN, PROMPT, TOKENS, WorkbookCells
from cellgpt.gpt2.generate import generate
from cellgpt.tui.completion import all_function_entries
from cellgpt.tui.files import FileActions
from cellgpt.tui.function_cells import edit_function, undo_function
from cellgpt.tui.history import FormulaHistory
from cellgpt.tui.jobs import JobContext, JobResult, JobRunner
from cellgpt.tui.on_demand import is_on_demand, run_stale, stale_wanted
from cellgpt.tui.row_index import RowIndex
from cellgpt.tui.screens.edit import Problem, problem_from
from cellgpt.tui.screens.find import FindScreen
from cellgpt.tui.screens.formula import FormulaScreen
from cellgpt.tui.screens.prompt import PromptScreen
from cellgpt.tui.search import EXACT_NAME, Hit, find_cells, find_rows, find_tokens, find_vocab
from cellgpt.tui.stepping import StepActions
from cellgpt.tui.views import cell_text
from cellgpt.tui.widgets.plots import spark_text


class Ui(Protocol):
    """What the controller needs from the app (a Textual App, which also runs the jobs)."""

    def notify(
        self,
        message: str,
        *,
        title: str = ...,
        severity: SeverityLevel = ...,
        timeout: float | None = ...,
    ) -> None: ...

    def push_screen(self, screen: Screen[Any], callback: Any = ...) -> Any: ...

    def show_cell(self, name: str) -> None:
        """Select the cell in the tree and show it in the panes."""

    def show_current(self) -> None: ...

    def refresh_panels(self) -> None: ...

    def focus_tree(self) -> None: ...

    def rebuild_tree(self) -> None:
        """Rebuild the cell tree (a function cell's signature changed)."""

    def value_is_grid(self) -> bool: ...

    def point_at_row(self, row: int) -> None:
        """Move the grid's or table's cursor to a row and focus it."""

    def shown_table(self) -> Any:
        """The table widget (a `RecordTable`) when the value on screen is a table, else None."""

    def show_workbook(self, wb: Any) -> None:
        """Replace the workbook (a reload from disk) and show it."""

    def refresh_marks(self, names: set[str]) -> None:
        """Redraw these cells' labels in the tree (a breakpoint came or went)."""


class WorkbookController:
    """The workbook (None while it loads), the one running job and where we have been."""

    def __init__(self, ui: Ui, wb: Any = None) -> None:
        self.ui = ui
        self.wb: Any = wb
        self.jobs = JobRunner(ui)
        self.current: str | None = None
        self.current_function: str | None = None  # a function cell under the tree's cursor
        self.history: list[str] = []  # cells visited, for Escape
        self.formulas = FormulaHistory()  # formulas replaced, per cell, for undo
        self.unsaved = False  # a formula or the prompt changed since the last save
        self._saved_text: str | None = None  # what a save wrote / would have written then
        self.files = FileActions(self)  # s, S, x and what follows from them
        self.steps = StepActions(self)  # v, n, b, and R when breakpoints are set
        self._row_index: tuple[tuple[Any, ...], RowIndex] | None = None  # the shown table's

    @property
    def cells(self) -> WorkbookCells:
        return WorkbookCells(self.wb)

    def continuation(self) -> str:
        """The generated tokens as text ("" when none or no tokenizer can decode them)."""
        ids, tok = self.cells.value(GENERATED), self.cells.tokenizer
        return tok.decode(ids) if ids and hasattr(tok, "decode") else ""

    def has_unsaved_edits(self) -> bool:
        """Would saving write anything this session changed? (An edit undone is no edit.)
        Compared with the workbook's text before the first edit, or at the last save."""
        if not self.unsaved:
            return False
        now = _rendered(self.wb)
        return now is None or now != self._saved_text

    def _before_change(self) -> None:
        """Remember the text a save would write, before the session's first change."""
        if not self.unsaved:
            self._saved_text = _rendered(self.wb)

    # ------------------------------------------------------------------ guards
    def can_act(self, *, needs_cell: bool = True) -> bool:
        if self.wb is None:
            self.ui.notify("still loading the workbook", severity="warning")
            return False
        if self.jobs.busy:
            self.ui.notify(
                f"busy: {self.jobs.title} — press c or Escape to cancel", severity="warning"
            )
            return False
        if needs_cell and self.current is None:
            self.ui.notify("select a cell first", severity="warning")
            return False
        return True

    def _refuse_while_busy(self) -> Problem | None:
        return Problem("a job is running — cancel it first (c)") if self.jobs.busy else None

    # ------------------------------------------------------------------ navigating
    def navigate(self, name: str, *, push: bool = True) -> None:
        """Show a cell; with push, remember where we were for Escape."""
        if self.wb is None or name not in self.wb:
            self.ui.notify(f"no cell named {name!r}", severity="warning")
            return
        self.current_function = None  # a cell is shown: `e` and `u` are about it now
        name = self.wb.resolve(name)
        if push and self.current is not None and self.current != name:
            self.history.append(self.current)
        self.current = name
        self.ui.show_cell(name)

    def go_back(self) -> None:
        """Escape: cancel a running job, else go back to the previous cell."""
        if self.jobs.busy:
            self.cancel()
            return
        while self.history:
            name = self.history.pop()
            if self.wb is not None and name in self.wb:
                self.navigate(name, push=False)
                return
        if self.current is not None:
            self.ui.focus_tree()

    # ------------------------------------------------------------------ running
    def run(self, name: str | None, title: str) -> bool:
        """Run one cell (its stale inputs first) or everything stale but the on-demand
        cells, in the job thread."""
        wb = self.wb

        def work(ctx: JobContext) -> None:
            with _training_shown(ctx):
                if name is None:
                    run_stale(wb, ctx.progress, ctx.cancelled)
                    return
                with contextlib.suppress(CellError):  # the error lives in the cell, shown there
                    wb.run(name, progress=ctx.progress, cancel=ctx.cancelled)

        return self.jobs.start(title, work, self._after_run(name))

    def _after_run(self, name: str | None) -> Callable[[JobResult], None]:
        def done(result: JobResult) -> None:
            if name is not None and self.wb.status(name) in (Status.ERROR, Status.BLOCKED):
                error = self.wb.info(name).error
                self.ui.notify(f"{name}: {error.message if error else 'failed'}", severity="error")

        return done

    def rerun(self) -> None:
        if not self.can_act():
            return
        name = self.current
        assert name is not None
        if self.wb.status(name) != Status.FRESH:
            self.run(name, f"Running {name}")
            return
        wb = self.wb

        def work(ctx: JobContext) -> None:
            with _training_shown(ctx), contextlib.suppress(CellError):
                wb.rerun(name)

        self.jobs.start(f"Re-running {name}", work, self._after_run(name))

    def run_all(self) -> None:
        if not self.can_act(needs_cell=False):
            return
        if not stale_wanted(self.wb):
            waiting = [n for n in self.wb.needs_run() if is_on_demand(self.wb, n)]
            shown = ", ".join(waiting[:3]) + (
                f" and {len(waiting) - 3} more" if len(waiting) > 3 else ""
            )
            later = f" ({shown}: on demand, r on it computes it)" if waiting else ""
            self.ui.notify(f"nothing is stale{later}")
            return
        if self.steps.breakpoints:
            self.steps.run_to_breakpoint()
            return
        self.run(None, "Running stale cells")

    def cancel(self) -> None:
        if self.jobs.cancel():
            self.ui.notify(f"cancelling {self.jobs.title}…")
        else:
            self.ui.notify("nothing is running")

    def recompute_evicted(self, name: str) -> None:
        """An evictable cell's value was dropped to save memory: recompute it in the job
        thread (never while another job runs — it is shown again when that one ends)."""
        if self.jobs.busy:
            return
        wb = self.wb

        def work(ctx: JobContext) -> None:
            with contextlib.suppress(CellError):  # an error lives in the cell, shown there
                wb.run(name, cancel=ctx.cancelled)

        self.jobs.start(f"Recomputing {name}", work)

    # ------------------------------------------------------------------ editing
    def edit_formula(self) -> None:
        function = self.current_function
        if function is not None and self.wb is not None and function in self.wb.functions():
            return edit_function(self, function)
        if not self.can_act():
            return
        name = self.current
        assert name is not None
        info = self.wb.info(name)
        hint = "Enter applies (a bad formula is refused; the old one stays) │ Esc cancels"
        if info.template is not None and info.formula is not None and not info.overridden:
            hint = f"this block cell follows its template; an edit affects {name} only\n" + hint

        def apply(text: str) -> Problem | None:
            if problem := self._refuse_while_busy():
                return problem
            return self._set_formula(name, text)

        def done(text: str | None) -> None:
            if text is None:
                return
            stale = len(self.wb.needs_run())
            self.ui.notify(
                f"{name} = {text}\n{stale} cells stale — r re-runs this cell, R runs all, u undoes"
            )
            self.ui.show_current()

        original = self.formulas.original(self.wb, name)
        screen = FormulaScreen(
            f"edit formula of {name}",
            info.formula or "",
            apply,
            hint=hint,
            names=self.wb.cells(),
            library=self.wb.library,
            original=original if original != info.formula else None,
            functions=all_function_entries(self.wb),
        )
        self.ui.push_screen(screen, done)

    def _set_formula(self, name: str, text: str, *, record: bool = True) -> Problem | None:
        """Change a formula, remembering the old one for undo; a refusal changes nothing."""
        before = self.wb.info(name).formula
        self._before_change()
        try:
            self.wb.set_formula(name, text)
        except Exception as exc:  # every refusal is shown, never raised
            return problem_from(exc, text)
        if before is not None and before != text:
            if record:
                self.formulas.record(name, before)
            self.unsaved = True
        return None

    def undo(self) -> None:
        """u: put back the formula the selected cell had before its last edit."""
        function = self.current_function
        if function is not None and self.wb is not None and function in self.wb.functions():
            return undo_function(self, function)
        if not self.can_act():
            return
        name = self.current
        assert name is not None
        previous = self.formulas.pop(name)
        if previous is None:
            hint = " — U reverts to the original" if self._differs_from_original(name) else ""
            self.ui.notify(f"no edit of {name} to undo{hint}", severity="warning")
            return
        if problem := self._set_formula(name, previous, record=False):
            self.formulas.push_back(name, previous)
            self.ui.notify(f"cannot undo: {problem.message}", severity="error")
            return
        left = self.formulas.depth(name)
        more = f" ({left} more to undo)" if left else ""
        self.ui.notify(f"undone: {name} = {previous}{more} — R runs the stale cells")
        self.ui.show_current()

    def _differs_from_original(self, name: str) -> bool:
        original = self.formulas.original(self.wb, name)
        return original is not None and original != self.wb.info(name).formula

    def revert(self) -> None:
        """U: back to the original formula (a block instance: its template's), undoably."""
        if not self.can_act():
            return
        name = self.current
        assert name is not None
        original = self.formulas.original(self.wb, name)
        if original is None or not self._differs_from_original(name):
            self.ui.notify(f"{name} already has its original formula")
            return
        what = "its template's formula" if self.wb.cell(name).template_source else "the original"
        if problem := self._set_formula(name, original):
            self.ui.notify(f"cannot revert: {problem.message}", severity="error")
            return
        self.ui.notify(f"{name} back to {what}: {original} — u undoes, R runs the stale cells")
        self.ui.show_current()

    def pin(self) -> None:
        """Pin the current value (an ablation that stays put), or release a pinned one."""
        if not self.can_act():
            return
        name = self.current
        assert name is not None
        if self.wb.cell(name).pinned:
            self.wb.unpin(name)
            self.ui.notify(f"unpinned {name}: its formula computes it again (stale until re-run)")
            return
        if self.wb.status(name) == Status.FRESH:
            self.wb.pin(name)
            self.ui.notify(f"pinned {name}: downstream cells are stale — R re-runs them")
            return
        wb = self.wb

        def work(ctx: JobContext) -> None:
            wb.run(name, progress=ctx.progress, cancel=ctx.cancelled)
            wb.pin(name)

        self.jobs.start(f"Pinning {name}", work, lambda r: self.ui.notify(f"pinned {name}"))

    def edit_prompt(self) -> None:
        if not self.can_act(needs_cell=False):
            return
        if not self.cells.has(PROMPT):
            self.ui.notify("this workbook has no prompt cell", severity="warning")
            return
        text = self.cells.prompt + self.continuation()  # the whole text, continuation included

        def apply(text: str) -> Problem | None:
            if problem := self._refuse_while_busy():
                return problem
            self._before_change()
            try:
                self.wb.set(PROMPT, text)
                if self.cells.value(GENERATED):
                    self.wb.set(GENERATED, [])
            except Exception as exc:
                return problem_from(exc)
            self.unsaved = True
            return None

        def done(text: str | None) -> None:
            if text is not None:
                self.ui.refresh_panels()
                self.run(None, "Running the new prompt")

        self.ui.push_screen(PromptScreen(text, apply), done)

    def generate(self) -> None:
        if not self.can_act(needs_cell=False):
            return
        if not (self.cells.has(NEXT_TOKEN) and self.cells.has(GENERATED)):
            self.ui.notify("this workbook cannot generate (no next_token cell)", severity="warning")
            return
        wb = self.wb

        def work(ctx: JobContext) -> list[int]:
            # Compute the prediction with cancel/progress first; generate() then only appends.
            wb.run(NEXT_TOKEN, progress=ctx.progress, cancel=ctx.cancelled)
            ids = generate(wb, 1, greedy=True)
            run_stale(wb, ctx.progress, ctx.cancelled)
            return ids

        def done(result: JobResult) -> None:
            ids = result.value or []
            if not ids:
                self.ui.notify("the context is full: no token appended", severity="warning")
                return
            tok = self.cells.tokenizer
            text = tok.decode(ids) if tok is not None else str(ids)
            self.ui.notify(f"generated {text!r} (id {ids[0]})")

        self.jobs.start("Generating", work, done)

    # ------------------------------------------------------------------ finding
    def search(self, query: str) -> list[Hit]:
        if self.wb is None:
            return []
        cells = find_cells(self.wb.cells(), self.wb.aliases(), query)
        named = [h for h in cells if h.score >= EXACT_NAME]
        rows = self._table_rows(query)
        # An exact cell name first, then the shown table's exact rows (in the vocabulary,
        # " the" or 262 is a token), then everything else; rows that merely contain it last.
        hits = named + [h for h in rows if h.score >= 1] + [h for h in cells if h not in named]
        tokens = self.cells.value(TOKENS)
        if isinstance(tokens, list):
            hits += find_tokens(tokens, query)
        tok = self.cells.tokenizer
        if tok is not None:
            hits += find_vocab(tok, query)
        return hits + [h for h in rows if h.score < 1]

    def _table_rows(self, query: str) -> list[Hit]:
        """Rows of the table on screen that show the query (its index is built on first use
        and kept while the table's value is the same)."""
        table = self.ui.shown_table()
        if table is None or self.current is None or not table.row_count or not query.strip():
            return []
        records, columns = table.records, table.columns
        key = (self.current, self.wb.info(self.current).version, id(records), len(records))
        if self._row_index is None or self._row_index[0] != key:
            if not RowIndex.affordable(records, len(columns)):
                return []
            self._row_index = (key, RowIndex(records, len(columns), cell_text))
        return find_rows(self._row_index[1], columns, table.row_texts, query)

    def find(self) -> None:
        if self.wb is not None:
            self.ui.push_screen(FindScreen(self.search), self._found)

    def _found(self, hit: Hit | None) -> None:
        if hit is None:
            return
        if hit.kind == "cell":
            self.navigate(str(hit.target))
            return
        if hit.kind == "row":  # a row of the table on screen
            self.ui.point_at_row(int(hit.target))
            return
        if hit.kind == "vocab":
            self.navigate("wte")  # the token embeddings: a row per vocabulary entry
        elif not self._shows_token_rows():
            self.navigate(EMBED if self.cells.has(EMBED) else TOKENS)
        self.ui.point_at_row(int(hit.target))

    def _shows_token_rows(self) -> bool:
        if self.current is None or not self.ui.value_is_grid():
            return False
        return self.wb.info(self.current).hints.get("rows") == TOKENS


def _rendered(wb: Any) -> str | None:
    """The text a save would write (None when it cannot be rendered)."""
    try:
        return render_text(wb)
    except Exception:  # a workbook the renderer cannot write: the caller assumes the worst
        return None


def _training_shown(ctx: JobContext) -> contextlib.AbstractContextManager[None]:
    """While a job runs, a `fit(...)` cell's training shows its falling loss in the busy bar:
    the step, the current loss and a sparkline of the last steps."""

    def show(done: int, total: int, history: list[float]) -> None:
        if ctx.cancelled():
            raise CellEvalError("training cancelled (press r to train again)")
        ctx.progress(done, total, f"training, loss {history[-1]:.4g} {spark_text(history)}")

    return training.watching(show)
