"""CellGptApp: owns the `WorkbookController` (the workbook, the one running job, the
navigation history) and keeps the panes in step with the workbook. Its `action_*` methods,
bound by `action_table.py`, hand the work to the controller or to a pane."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from rich.text import Text
from textual import _time, events
from textual.app import App, SystemCommand
from textual.await_complete import AwaitComplete
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import OptionList, Tree

from cellgpt.engine import Status
from cellgpt.gpt2.cells import (
    MODEL,
    NEXT_TEXT,
    PANEL,
    START,
    TOKEN_IDS,
    TOP_K,
    WorkbookCells,
)
from cellgpt.tui.action_table import ACTIONS
from cellgpt.tui.completion import all_function_entries
from cellgpt.tui.controller import WorkbookController
from cellgpt.tui.function_cells import FUNCTION_PREFIX, describe_function
from cellgpt.tui.jobs import (
    CellsChanged,
    ChangeBridge,
    JobFinished,
    JobProgress,
    JobResult,
    JobRunner,
)
from cellgpt.tui.numfmt import format_stats, summarize
from cellgpt.tui.on_demand import stale_wanted
from cellgpt.tui.screens.confirm import ConfirmScreen
from cellgpt.tui.screens.functions import FunctionsScreen
from cellgpt.tui.screens.help import HelpScreen
from cellgpt.tui.screens.main import MainScreen
from cellgpt.tui.widgets.cell_tree import CellTree
from cellgpt.tui.widgets.details import DetailsPane
from cellgpt.tui.widgets.prompt_bar import PromptBar
from cellgpt.tui.widgets.record_table import RecordTable
from cellgpt.tui.widgets.topk import TopKPanel
from cellgpt.tui.widgets.value_pane import ValuePane

SYNC_STATS_LIMIT = 2_000_000  # bigger arrays get their stats computed in a thread


def _tokenizer_text(tokenizer: Any, model: str) -> str:
    """Which tokenizer the workbook reads text with ("" until its cell has a value)."""
    from cellgpt.tokenizer.bpe import Tokenizer
    from cellgpt.tokenizer.named import describe_tokenizer

    if not isinstance(tokenizer, Tokenizer):
        return ""
    return describe_tokenizer(tokenizer, model or "this workbook")


class StatsReady(Message):
    def __init__(self, key: tuple[str, int], text: str) -> None:
        super().__init__()
        self.key, self.text = key, text


class CellGptApp(App[None]):
    """The TUI. Give it a workbook, or a `loader` that builds one (run in a thread)."""

    CSS_PATH = "app.tcss"
    TITLE = "cellgpt"
    # Ctrl+Q from any screen, shown in the footer, asking first when edits are unsaved.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "request_quit", "Quit", priority=True),
        Binding("ctrl+c", "help_quit", show=False, system=True),
    ]
    QUIT_AGAIN = 3.0  # seconds in which a second q at the top quits

    def __init__(
        self,
        workbook: Any = None,
        *,
        loader: Callable[[], Any] | None = None,
        autorun: bool = True,
        show_timings: bool = True,
        start_cell: str | None = None,
        freeze_gc: bool = False,
    ) -> None:
        super().__init__()
        self._freeze_gc = freeze_gc
        if workbook is None and loader is None:
            raise ValueError("CellGptApp needs a workbook or a loader")
        self.controller = WorkbookController(self, workbook)
        self._loader = loader
        self._autorun = autorun
        self._start_cell = start_cell
        self.main = MainScreen(show_timings=show_timings)
        self.bridge = ChangeBridge(self)
        self._stats: dict[tuple[str, int], str] = {}
        self._structure_dirty = False
        self._dialog_closed_at = 0.0  # when a dialog last closed (Textual's clock)
        self._quit_armed_at = -1e9  # when q at the top last asked for a second q

    # The controller's state, read often enough to name here.
    @property
    def wb(self) -> Any:
        return self.controller.wb

    @property
    def jobs(self) -> JobRunner:
        return self.controller.jobs

    @property
    def current(self) -> str | None:
        return self.controller.current

    # ------------------------------------------------------------------ start-up
    async def on_mount(self) -> None:
        await self.push_screen(self.main)  # wait: the panes must exist before we fill them
        if self.wb is not None:
            self._attach()
            return
        loader = self._loader
        assert loader is not None
        self.value_pane.message(Text("loading the model…", "cyan"))
        self.jobs.start("Loading the workbook", lambda ctx: loader(), self._loaded)

    def _loaded(self, result: JobResult) -> None:
        self.controller.wb = result.value
        self._attach()

    def show_workbook(self, wb: Any) -> None:
        """Show another workbook in place of this one (a reload from disk)."""
        self.controller.wb = wb
        self._attach()

    def _load_failed(self, error: BaseException) -> None:
        message = Text.assemble(
            ("could not load the workbook\n\n", "bold red"), str(error), ("\n\nCtrl+Q quits", "dim")
        )
        self.value_pane.message(message)

    def _attach(self) -> None:
        self.wb.subscribe(self.bridge)
        self.tree.breakpoints = self.controller.steps.breakpoints  # shared: b marks them
        self.tree.build(self.wb)
        start = self._start_cell or self._start_cell_of_workbook()
        start = start or (self.wb.cells() or [None])[0]
        if start is not None:
            self.navigate(start, push=False)
        self.tree.focus()
        self.refresh_panels()
        self._settle_heap()
        if self._autorun and stale_wanted(self.wb):
            self.controller.run(None, "Running the model")

    def _start_cell_of_workbook(self) -> str | None:
        return next((c for c in START if c in self.wb), None)

    def _settle_heap(self) -> None:
        """Move the long-lived objects (tokenizer tables, the cell graph, widgets) out of the
        garbage collector's sight: a full collection over them takes 50-100 ms, a visible
        stutter when it lands on a keypress."""
        if self._freeze_gc:
            gc.collect()
            gc.freeze()

    def on_unmount(self) -> None:
        self.jobs.cancel()  # a running job stops at its next cell instead of outliving us
        if self._freeze_gc:
            gc.unfreeze()

    # ------------------------------------------------------------------ keys and dialogs
    def pop_screen(self) -> AwaitComplete:
        # Textual stamps every message with this clock (`Message.time`), so a key's stamp
        # tells whether it was typed before the dialog closed.
        self._dialog_closed_at = _time.get_time()
        return super().pop_screen()

    async def on_event(self, event: events.Event) -> None:
        # Keys typed while a dialog was closing (queued behind the Enter that closed it, or the
        # rest of a pasted line) were meant for that dialog: they must neither run main-screen
        # commands such as r or x nor answer the next dialog (a stray y would confirm an
        # overwrite).
        if isinstance(event, events.Key) and event.time < self._dialog_closed_at:
            event.stop()
            return
        await super().on_event(event)

    # ------------------------------------------------------------------ panes
    @property
    def tree(self) -> CellTree:
        return self.main.query_one(CellTree)

    @property
    def value_pane(self) -> ValuePane:
        return self.main.query_one(ValuePane)

    @property
    def details(self) -> DetailsPane:
        return self.main.query_one(DetailsPane)

    def navigate(self, name: str, *, push: bool = True) -> None:
        """Show a cell; with push, remember where we were for Escape."""
        self.controller.navigate(name, push=push)

    # What the controller asks of the panes (its `Ui`).
    def show_cell(self, name: str) -> None:
        self.tree.select_cell(name)
        self.show_current(new=True)

    def focus_tree(self) -> None:
        self.tree.focus()

    def refresh_marks(self, names: set[str]) -> None:
        self.tree.refresh_marks(self.wb, names)

    def rebuild_tree(self) -> None:
        name = self.controller.current_function
        self.tree.build(self.wb)
        if name is not None and self.tree.select_function(name):
            self.show_function(name)

    def value_is_grid(self) -> bool:
        view = self.value_pane.view
        return view is not None and view.kind == "grid"

    def point_at_row(self, row: int) -> None:
        self.value_pane.show_row(row)

    def shown_table(self) -> RecordTable | None:
        view = self.value_pane.view
        return self.value_pane.table if view is not None and view.kind == "table" else None

    def show_current(self, *, new: bool = False) -> None:
        if self.wb is None or self.current is None or self.current not in self.wb:
            return
        name = self.current
        self.value_pane.show(self.wb, name)
        original = self.controller.formulas.original(self.wb, name)
        self.details.show(
            self.wb, name, self._stats_text(name), same_cell=not new, original=original
        )
        if self.wb.info(name).evicted:
            self.controller.recompute_evicted(name)

    def _stats_text(self, name: str) -> str:
        """Stats of an array value: cached per version; big arrays are summed in a thread."""
        value = self.wb.value(name)
        if not isinstance(value, np.ndarray) or self.wb.status(name) == Status.RUNNING:
            return ""
        key = (name, self.wb.info(name).version)
        if key in self._stats:
            return self._stats[key]
        if value.size <= SYNC_STATS_LIMIT:
            stats = summarize(value)
            self._stats[key] = format_stats(stats) if stats else ""
            return self._stats[key]

        def work() -> None:
            stats = summarize(value)
            self.post_message(StatsReady(key, format_stats(stats) if stats else ""))

        self.run_worker(work, group="stats", thread=True, exclusive=True, exit_on_error=False)
        return "stats: computing…"

    def on_stats_ready(self, message: StatsReady) -> None:
        self._stats[message.key] = message.text
        if self.is_running and self.current == message.key[0]:
            self.show_current()

    def refresh_panels(self) -> None:
        """The prompt bar and the next-token panel."""
        wb = self.wb
        if wb is None:
            return
        cells = WorkbookCells(wb)
        tokens = cells.value(TOKEN_IDS)
        model = str(cells.value(MODEL) or "")
        tokenizer = _tokenizer_text(cells.tokenizer, model)
        self.sub_title = f"tokenizer {tokenizer}" if tokenizer else ""
        self.main.query_one(PromptBar).show_prompt(
            cells.prompt,
            self.controller.continuation(),
            Path(model).name or model,
            len(tokens) if isinstance(tokens, list) else None,
            tokenizer,
        )
        panel = self.main.query_one(TopKPanel)
        panel.display = cells.has(TOP_K)
        if cells.has(TOP_K):
            stale = wb.status(TOP_K) != Status.FRESH
            panel.show(cells.value(TOP_K), stale=stale, next_text=cells.value(NEXT_TEXT))
        # With the next-token panel out of sight (a narrow screen), its best guess goes on top.
        guess = panel.best() if cells.has(TOP_K) and self.main.plan.info == "hidden" else None
        self.main.query_one(PromptBar).show_guess(guess)

    def on_main_screen_panes_arranged(self, _: MainScreen.PanesArranged) -> None:
        if self.wb is not None and self.is_running:
            self.refresh_panels()

    # ------------------------------------------------------------------ events
    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[str]) -> None:
        if event.node is not self.tree.cursor_node:
            return  # a stale event from a programmatic move (expanding shifts lines)
        name = event.node.data
        if name and name.startswith(FUNCTION_PREFIX) and self.wb is not None:
            self.controller.current_function = name.removeprefix(FUNCTION_PREFIX)
            self.show_function(self.controller.current_function)
            return
        self.controller.current_function = None
        if name and name != self.current and self.wb is not None and name in self.wb:
            self.controller.current = name  # browsing the tree is not history: no push
            self.show_current(new=True)

    def show_function(self, name: str) -> None:
        """A function cell in the details pane, the cells that call it as references."""
        if self.wb is None or name not in self.wb.functions():
            return
        self.details.show_text(
            describe_function(self.wb, name), sorted(self.wb.function_callers(name))
        )

    def on_tree_node_selected(self, event: Tree.NodeSelected[str]) -> None:
        if event.node.data:  # a cell: Enter moves to its references, ready to dive
            self.details.query_one("#refs", OptionList).focus()

    def on_cell_tree_open_value(self, _: CellTree.OpenValue) -> None:
        self.value_pane.focus_value()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        option_id = event.option.id or ""
        if event.option_list.id == "refs" and option_id.startswith("ref:" + FUNCTION_PREFIX):
            if self.tree.select_function(option_id.removeprefix("ref:" + FUNCTION_PREFIX)):
                self.tree.focus()
        elif event.option_list.id == "refs" and option_id.startswith("ref:"):
            self.navigate(option_id[4:])

    def on_cells_changed(self, _: CellsChanged) -> None:
        if self.wb is None or not self.is_running:
            return  # not loaded yet, or closing: a worker's last changes have no pane left
        names = self.bridge.drain()
        known = self.tree.names
        if any((n in self.wb) != (n in known) for n in names):
            self._structure_dirty = True  # cells came or went (e.g. a new model's block count)
        if self._structure_dirty and not self.jobs.busy:
            self._rebuild()
            return
        self.tree.refresh_marks(self.wb, {n for n in names if n in known and n in self.wb})
        if self.current in names:
            self.show_current()
        if names & PANEL:
            self.refresh_panels()

    def _rebuild(self) -> None:
        self._structure_dirty = False
        self.tree.build(self.wb)
        controller = self.controller
        if controller.current is None or controller.current not in self.wb:
            controller.current = self._start_cell_of_workbook()
        if controller.current is not None:
            self.tree.select_cell(controller.current)
        controller.history = [h for h in controller.history if h in self.wb]
        self.show_current(new=True)
        self.refresh_panels()
        self._settle_heap()

    def on_job_progress(self, message: JobProgress) -> None:
        if self.jobs.busy and self.is_running:
            where = f": {message.cell}" if message.cell else ""
            total = f" ({message.done}/{message.total})" if message.total else ""
            self.main.query_one(PromptBar).set_busy(
                f"{message.title}{where}{total}", message.done, message.total
            )

    def on_job_finished(self, message: JobFinished) -> None:
        self.jobs.finished()
        if not self.is_running:
            return  # closing (quit while a job ran): the panes are already gone
        self.main.query_one(PromptBar).set_busy(None)
        result = message.result
        if result.cancelled:
            stale = len(stale_wanted(self.wb)) if self.wb is not None else 0
            left = f" — {stale} cells left stale (R runs them)" if stale else ""
            self.notify(f"{result.title}: cancelled{left}", severity="warning")
        elif result.error is not None:
            self.notify(f"{result.title} failed: {result.error}", severity="error", timeout=8)
            if self.wb is None:
                self._load_failed(result.error)
        elif message.on_done is not None:
            message.on_done(result)
        if self.wb is not None:
            if self._structure_dirty:
                self._rebuild()
            else:
                self.tree.refresh_marks(self.wb, self.tree.names)
                self.show_current()
                self.refresh_panels()

    # ------------------------------------------------------------------ command palette
    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if screen is not self.main:
            return
        for action in ACTIONS:
            run = partial(getattr(self, f"action_{action.name}"), *action.args)
            yield SystemCommand(action.title, f"{action.key_label} — {action.description}", run)

    # ------------------------------------------------------------------ actions (action_table.py)
    def action_edit_formula(self) -> None:
        self.controller.edit_formula()

    def action_undo(self) -> None:
        self.controller.undo()

    def action_revert(self) -> None:
        self.controller.revert()

    def action_functions(self) -> None:
        if self.wb is not None:
            self.push_screen(FunctionsScreen(all_function_entries(self.wb)))

    def action_sort(self) -> None:
        self.value_pane.sort()

    def action_filter(self) -> None:
        self.value_pane.ask_filter()

    def action_rerun(self) -> None:
        self.controller.rerun()

    def action_run_all(self) -> None:
        self.controller.run_all()

    def action_pin(self) -> None:
        self.controller.pin()

    def action_explain(self) -> None:
        self.controller.steps.explain()

    def action_step(self) -> None:
        self.controller.steps.step()

    def action_breakpoint(self) -> None:
        self.controller.steps.toggle_breakpoint()

    def action_edit_prompt(self) -> None:
        self.controller.edit_prompt()

    def action_generate(self) -> None:
        self.controller.generate()

    def action_find(self) -> None:
        self.controller.find()

    def action_save(self) -> None:
        self.controller.files.save()

    def action_save_as(self) -> None:
        self.controller.files.save_as()

    def action_export(self) -> None:
        self.controller.files.export()

    def action_go_back(self) -> None:
        self.controller.go_back()

    def action_cancel(self) -> None:
        self.controller.cancel()

    def action_head(self, delta: int) -> None:
        if self.wb is not None and not self.value_pane.set_head(self.wb, delta):
            self.notify("this value has no heads (only q, k, v, scores, pattern)")

    def action_precision(self) -> None:
        self.notify(f"{self.value_pane.cycle_precision()} decimals")

    def action_compact(self) -> None:
        self.value_pane.toggle_compact()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_toggle_tree(self) -> None:
        if self.main.toggle_tree():
            self.tree.focus()

    def action_toggle_info(self) -> None:
        self.main.toggle_info()

    def action_back_or_quit(self) -> None:
        """q: back like Escape; at the top (nothing to go back to), a second q quits."""
        if self.jobs.busy or self.controller.history:
            self.controller.go_back()
            return
        now = _time.get_time()
        if now - self._quit_armed_at <= self.QUIT_AGAIN:
            self.action_request_quit()
            return
        self._quit_armed_at = now
        self.notify("nothing to go back to — press q again to quit (Ctrl+Q quits anywhere)")

    async def action_quit(self) -> None:
        """Textual's quit (the palette's Quit command) asks about unsaved edits too."""
        self.action_request_quit()

    def action_request_quit(self) -> None:
        """Quit, after asking when formula or prompt edits are not saved."""
        if self.wb is None or not self.controller.has_unsaved_edits():
            self.exit()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.exit()

        message = "Formula or prompt edits are not saved: quitting drops them (s saves)."
        self.push_screen(ConfirmScreen("quit without saving?", message, yes="Quit"), answered)
