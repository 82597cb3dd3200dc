"""The Textual TUI, driven with Pilot: every key, the edit → stale → re-run loop, errors that
must not crash anything, cancellation, the virtual grid on a 50257 × 768 matrix, and SVG
snapshots of the main screen on a tiny deterministic model."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from textual.actions import parse
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Static, TextArea

import cellgpt
from cellgpt.engine import Status, Workbook
from cellgpt.tui.action_table import OWN_KEYS, key_label
from cellgpt.tui.app import CellGptApp
from cellgpt.tui.numfmt import format_number
from cellgpt.tui.screens.edit import EditScreen
from cellgpt.tui.screens.find import FindScreen
from cellgpt.tui.screens.help import HelpScreen
from cellgpt.tui.screens.prompt import PromptScreen

REPO = Path(__file__).resolve().parents[2]
WORKBOOK = REPO / "workbooks" / "gpt2.py"
TOKENIZER = REPO / "cellgpt" / "tokenizer" / "data" / "gpt2"
PROMPT = "Mike is quick. He moves"
SIZE = (160, 50)


def only_on_demand(wb: Workbook, names: list[str]) -> bool:
    """`names` (what is stale) are only cells "run everything" leaves, computed when asked
    for: logits_all and the gradients stage (loss, backward, grad.*, attributions); never
    computed, they are pending rather than stale, so the list may be empty."""
    wanted = [n for n in wb.cells() if wb.cell(n).hints.get("on_demand")]
    return "logits_all" in wanted and set(names) <= set(wanted)


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def tui_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 4-block GPT-2 (so h3 exists) with the real vocabulary; fixed seed."""
    from cellgpt.weights.config import GPT2Config
    from cellgpt.weights.params import expected_shapes, save_params

    cfg = GPT2Config(n_layer=4, n_head=4, n_embd=32, n_ctx=64, vocab_size=50257)
    rng = np.random.default_rng(0)
    tensors = {
        k: (rng.standard_normal(s) * 0.2).astype(np.float32)
        for k, s in expected_shapes(cfg).items()
    }
    folder = tmp_path_factory.mktemp("tui") / "tinygpt"
    return save_params(folder, cfg, tensors, tokenizer_dir=TOKENIZER)


@pytest.fixture
def wb_path(tmp_path: Path) -> Path:
    """A private copy of the GPT-2 workbook, so saving never touches the repository."""
    path = tmp_path / "gpt2.py"
    shutil.copy(WORKBOOK, path)
    return path


@pytest.fixture
def wb(wb_path: Path, tui_model: Path) -> Workbook:
    book = cellgpt.open(wb_path, model=str(tui_model), prompt=PROMPT)
    book.run()
    return book


class Notes:
    """Records the app's notifications (message, severity)."""

    def __init__(self, app: CellGptApp) -> None:
        self.items: list[tuple[str, str]] = []
        original = app.notify

        def notify(message: str, *args: Any, **kwargs: Any) -> None:
            self.items.append((str(message), str(kwargs.get("severity", "information"))))
            original(message, *args, **kwargs)

        app.notify = notify  # type: ignore[method-assign]

    def text(self) -> str:
        return "\n".join(m for m, _ in self.items)

    def severities(self) -> set[str]:
        return {s for _, s in self.items}


def run_app(app: CellGptApp, scenario: Callable[[Any], Awaitable[None]]) -> None:
    async def main() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await scenario(pilot)

    asyncio.run(main())


async def settle(pilot: Any, timeout: float = 20.0) -> None:
    """Wait until no job is running and every message has been handled."""
    app = pilot.app
    deadline = time.monotonic() + timeout
    while True:
        await app.workers.wait_for_complete()
        await pilot.pause()
        if not app.jobs.busy:
            break
        assert time.monotonic() < deadline, f"job still running: {app.jobs.title}"
        await pilot.pause(0.02)
    await pilot.pause()


async def edit(pilot: Any, text: str, *, typed: bool = False) -> None:
    """Press e, replace the formula, press Enter."""
    await pilot.press("e")
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, EditScreen)
    field = screen.query_one("#edit-input")
    if typed:
        field.value = ""
        await pilot.press(*text)
    else:
        field.value = text
    await pilot.press("enter")
    await pilot.pause()


def details_text(app: CellGptApp) -> Any:
    return app.details.query_one("#details-text").render()


# ---------------------------------------------------------------------- the first screen
def test_first_screen_shows_the_stages_and_a_prediction(wb: Workbook) -> None:
    app = CellGptApp(wb)

    async def scenario(pilot: Any) -> None:
        tree = app.tree
        groups = [n.label.plain.split()[1] for n in tree.root.children]
        assert groups[:4] == ["inputs", "model", "tokenize", "embed"]
        assert groups[4:8] == ["h0", "h1", "h2", "h3"] and groups[-2:] == ["output", "gradients"]
        assert app.current == "h0.attn.pattern"
        grid = app.value_pane.grid
        assert grid.display and grid.data is not None and grid.data.shape == (6, 6)
        lines = [grid.render_line(y).text for y in range(4)]
        assert "Mike" in lines[1] and "·is" in lines[2]  # token labels on rows
        topk = app.main.query_one("#topk").render()
        assert str(wb["top_k"][0][1]).replace(" ", "·") in str(topk)
        assert "softmax(h0.attn.scores)" in str(details_text(app))

    run_app(app, scenario)


def test_startup_runs_a_stale_workbook_in_a_worker(wb_path: Path, tui_model: Path) -> None:
    book = cellgpt.open(wb_path, model=str(tui_model), prompt=PROMPT)
    assert book.needs_run()
    app = CellGptApp(book)

    async def scenario(pilot: Any) -> None:
        assert only_on_demand(book, book.needs_run())
        assert app.tree._leaves["logits"].label.plain.startswith("●")

    run_app(app, scenario)


def test_loader_runs_in_a_worker_and_a_load_error_is_shown() -> None:
    def boom() -> Any:
        raise RuntimeError("no such weights folder")

    app = CellGptApp(loader=boom)

    async def scenario(pilot: Any) -> None:
        assert app.wb is None
        assert "no such weights folder" in str(app.value_pane.query_one("#value-text").render())
        await pilot.press("e", "r", "g")  # keys do nothing harmful without a workbook
        await pilot.pause()
        assert app.is_running

    run_app(app, scenario)


# ---------------------------------------------------------------------- edit → stale → re-run
def test_zero_a_head_then_stale_then_recomputed_and_top_k_changes(wb: Workbook) -> None:
    app = CellGptApp(wb)
    before_top = wb["top_k"]
    before_h2 = wb.info("h2.resid_post").version

    async def scenario(pilot: Any) -> None:
        app.navigate("h3.attn.pattern")
        await pilot.pause()
        await edit(pilot, "zero_head(softmax(h3.attn.scores), 0)", typed=True)
        assert not isinstance(app.screen, EditScreen)
        assert wb.info("h3.attn.pattern").formula == "zero_head(softmax(h3.attn.scores), 0)"
        downstream = ["h3.attn.pattern", "h3.attn.z", "h3.resid_post", "ln_f", "logits", "top_k"]
        assert all(wb.status(n) == Status.STALE for n in downstream)
        assert wb.status("h2.resid_post") == Status.FRESH
        assert app.tree._leaves["h3.attn.z"].label.plain.startswith("○")
        assert "stale" in str(app.main.query_one("#topk").border_title)

        await pilot.press("R")
        await settle(pilot)
        assert only_on_demand(wb, wb.needs_run())
        assert np.all(wb.value("h3.attn.pattern")[0] == 0)
        assert wb.info("h2.resid_post").version == before_h2  # upstream was not recomputed
        assert wb.value("top_k") != before_top
        assert app.tree._leaves["top_k"].label.plain.startswith("●")
        assert "✎" in app.tree._leaves["h3.attn.pattern"].label.plain
        assert "edited" in str(details_text(app))

    run_app(app, scenario)


def test_r_reruns_only_the_selected_cell_and_its_stale_inputs(wb: Workbook) -> None:
    app = CellGptApp(wb)

    async def scenario(pilot: Any) -> None:
        app.navigate("h3.attn.pattern")
        await pilot.pause()
        await edit(pilot, "zero_head(softmax(h3.attn.scores), 1)")
        await pilot.press("r")
        await settle(pilot)
        assert wb.status("h3.attn.pattern") == Status.FRESH
        assert np.all(wb.value("h3.attn.pattern")[1] == 0)
        assert wb.status("h3.attn.z") == Status.STALE and wb.status("logits") == Status.STALE
        runs = wb.info("h3.attn.pattern").runs
        await pilot.press("r")  # a fresh cell is recomputed from its inputs anyway
        await settle(pilot)
        assert wb.info("h3.attn.pattern").runs == runs + 1

    run_app(app, scenario)


def test_a_bad_formula_is_shown_inline_and_the_old_one_is_kept(wb: Workbook) -> None:
    app = CellGptApp(wb)

    async def scenario(pilot: Any) -> None:
        app.navigate("h3.attn.pattern")
        await pilot.pause()
        for bad, message in [
            ("softmax(h3.attn.scores", "never closed"),
            ("softmax(h3.attn.scorez)", "unknown name"),
            ("__import__('os')", "not allowed"),
        ]:
            await edit(pilot, bad)
            screen = app.screen
            assert isinstance(screen, EditScreen), "a refused edit keeps the editor open"
            error = screen.query_one("#edit-error")
            assert error.display and message in str(error.render())
            assert wb.info("h3.attn.pattern").formula == "softmax(h3.attn.scores)"
            await pilot.press("escape")
            await pilot.pause()
        assert wb.stale() == [] and app.is_running
        underlined = app.screen  # back on the main screen
        assert underlined is app.main

    run_app(app, scenario)


def test_a_failing_cell_shows_its_error_and_blocks_dependents(wb: Workbook) -> None:
    app = CellGptApp(wb)

    async def scenario(pilot: Any) -> None:
        app.navigate("h3.attn.pattern")
        await pilot.pause()
        await edit(pilot, "zero_head(softmax(h3.attn.scores), 99)")  # no head 99
        await pilot.press("R")
        await settle(pilot)
        assert wb.status("h3.attn.pattern") == Status.ERROR
        assert wb.status("logits") == Status.BLOCKED
        text = details_text(app)
        assert "99" in str(text) and "✗" in app.tree._leaves["h3.attn.pattern"].label.plain
        assert any("underline" in str(span.style) for span in text.spans)  # the span at fault
        app.navigate("logits")
        await pilot.pause()
        assert "blocked by h3.attn.pattern" in str(details_text(app))
        refs = app.details.query_one("#refs")
        assert refs.get_option_at_index(0).id == "ref:h3.attn.pattern"  # jump to the culprit
        assert app.is_running

    run_app(app, scenario)


# ---------------------------------------------------------------------- pin, prompt, generate
def test_pin_and_unpin(wb: Workbook) -> None:
    app = CellGptApp(wb)

    async def scenario(pilot: Any) -> None:
        app.navigate("h3.attn.pattern")
        await pilot.pause()
        pinned = wb.value("h3.attn.pattern")
        await pilot.press("P")
        await settle(pilot)
        assert wb.cell("h3.attn.pattern").pinned
        assert app.tree._leaves["h3.attn.pattern"].label.plain.startswith("P")
        await pilot.press("R")
        await settle(pilot)
        wb.set("prompt", PROMPT)  # same text: everything upstream re-runs
        await pilot.press("R")
        await settle(pilot)
        assert np.array_equal(wb.value("h3.attn.pattern"), pinned)
        assert wb.status("h3.attn.pattern") == Status.PINNED
        await pilot.press("P")
        await settle(pilot)
        assert not wb.cell("h3.attn.pattern").pinned
        assert wb.status("h3.attn.pattern") == Status.STALE

    run_app(app, scenario)


def test_edit_prompt_reruns_the_model(wb: Workbook) -> None:
    app = CellGptApp(wb)

    async def scenario(pilot: Any) -> None:
        await pilot.press("p")
        await pilot.pause()
        assert isinstance(app.screen, PromptScreen)
        assert app.screen.query_one(TextArea).text == PROMPT
        app.screen.query_one(TextArea).text = "The cat sat"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert wb.value("prompt") == "The cat sat"
        assert wb.value("tokens") == ["The", " cat", " sat"]
        assert only_on_demand(wb, wb.needs_run())
        bar = str(app.main.query_one("#prompt-text").render())
        assert "The cat sat" in bar and "3 tokens" in bar

    run_app(app, scenario)


def test_generate_appends_the_predicted_token(wb: Workbook) -> None:
    app = CellGptApp(wb)
    expected = wb["next_token"]
    n_tokens = wb["n_tokens"]
    notes = Notes(app)

    async def scenario(pilot: Any) -> None:
        await pilot.press("g")
        await settle(pilot)
        assert wb.value("generated") == [expected]
        assert wb.value("n_tokens") == n_tokens + 1 and only_on_demand(wb, wb.needs_run())
        assert "generated" in notes.text()
        text = wb["tokenizer"].decode([expected]).replace(" ", "·")
        assert text in str(app.main.query_one("#prompt-text").render())

    run_app(app, scenario)


# ---------------------------------------------------------------------- files
def test_save_writes_the_edited_formula(wb: Workbook, wb_path: Path) -> None:
    app = CellGptApp(wb)
    notes = Notes(app)

    async def scenario(pilot: Any) -> None:
        app.navigate("h3.attn.pattern")
        await pilot.pause()
        await edit(pilot, "zero_head(softmax(h3.attn.scores), 0)")
        await pilot.press("s")
        await pilot.pause()
        assert "zero_head(softmax(h3.attn.scores), 0)" in wb_path.read_text()
        assert "saved" in notes.text() and "error" not in notes.severities()

    run_app(app, scenario)


def test_save_as_writes_a_new_file(wb: Workbook, wb_path: Path, tmp_path: Path) -> None:
    app = CellGptApp(wb)
    target = tmp_path / "copy.py"

    async def scenario(pilot: Any) -> None:
        await pilot.press("S")
        await pilot.pause()
        assert isinstance(app.screen, EditScreen)
        assert app.screen.query_one("#edit-input").value == str(wb_path)
        app.screen.query_one("#edit-input").value = str(target)
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is app.main
        assert f"prompt = {PROMPT!r}" in target.read_text()  # inputs are saved as they are
        assert 'model = "gpt2-mini"' in wb_path.read_text()  # the original is untouched
        assert cellgpt.open(target)["tokens"][0] == "Mike"

    run_app(app, scenario)


def test_a_failed_save_notifies_and_loses_nothing(
    wb: Workbook, wb_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = CellGptApp(wb)
    notes = Notes(app)
    original = wb_path.read_text()

    def refuse(path: Any = None) -> None:
        raise PermissionError("read-only file system")

    async def scenario(pilot: Any) -> None:
        app.navigate("h3.attn.pattern")
        await pilot.pause()
        await edit(pilot, "zero_head(softmax(h3.attn.scores), 0)")
        monkeypatch.setattr(wb, "save", refuse)
        await pilot.press("s")
        await pilot.pause()
        assert "error" in notes.severities() and "read-only" in notes.text()
        assert wb_path.read_text() == original
        assert wb.info("h3.attn.pattern").formula == "zero_head(softmax(h3.attn.scores), 0)"
        assert app.is_running

    run_app(app, scenario)


# ---------------------------------------------------------------------- finding, navigating
def test_find_a_cell_a_token_and_a_vocabulary_entry(wb: Workbook) -> None:
    app = CellGptApp(wb)

    async def scenario(pilot: Any) -> None:
        await pilot.press("slash")
        await pilot.pause()
        assert isinstance(app.screen, FindScreen)
        await pilot.press(*"h1 patt")
        await pilot.press("enter")
        await pilot.pause()
        assert app.current == "h1.attn.pattern"

        await pilot.press("slash", *"blocks.2.attn.hook_z", "enter")
        await pilot.pause()
        assert app.current == "h2.attn.z"  # hook names work too

        app.navigate("embed")
        await pilot.pause()
        await pilot.press("slash", *"quick")
        await pilot.pause()
        hits = app.screen._hits
        token_hit = next(i for i, h in enumerate(hits) if h.kind == "token")
        app.screen.query_one("#find-results").highlighted = token_hit
        await pilot.press("enter")
        await pilot.pause()
        assert app.current == "embed" and app.value_pane.grid.cursor[0] == 2  # " quick"

        await pilot.press("slash", *"quick")
        await pilot.pause()
        hits = app.screen._hits
        vocab_hit = next(i for i, h in enumerate(hits) if h.kind == "vocab")
        app.screen.query_one("#find-results").highlighted = vocab_hit
        await pilot.press("enter")
        await pilot.pause()
        assert app.current == "wte"
        assert app.value_pane.grid.cursor[0] == hits[vocab_hit].target

    run_app(app, scenario)


def test_enter_dives_and_escape_goes_back(wb: Workbook) -> None:
    app = CellGptApp(wb)

    async def scenario(pilot: Any) -> None:
        app.navigate("h3.attn.pattern", push=False)
        await pilot.pause()
        app.tree.focus()
        await pilot.press("enter")  # from the tree to the references list
        await pilot.pause()
        assert app.focused is not None and app.focused.id == "refs"
        await pilot.press("enter")  # first reference: the input
        await pilot.pause()
        assert app.current == "h3.attn.scores"
        await pilot.press("enter")
        await pilot.pause()
        assert app.current == "h3.q"
        await pilot.press("escape")
        await pilot.pause()
        assert app.current == "h3.attn.scores"
        await pilot.press("backspace")
        await pilot.pause()
        assert app.current == "h3.attn.pattern"
        await pilot.press("escape")  # nothing left: stays
        await pilot.pause()
        assert app.current == "h3.attn.pattern"
        app.navigate("h3.q")
        await pilot.pause()
        await pilot.press("q")  # q goes back too (VisiData style); Ctrl+Q quits
        await pilot.pause()
        assert app.current == "h3.attn.pattern" and app.is_running
        app.tree.focus()
        await pilot.press("right")  # from the tree into the value
        await pilot.pause()
        assert app.focused is app.value_pane.grid

    run_app(app, scenario)


def test_help_screen_opens_and_closes(wb: Workbook) -> None:
    app = CellGptApp(wb)

    async def scenario(pilot: Any) -> None:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("g")  # main-screen keys do nothing under the help screen
        await pilot.pause()
        assert wb.value("generated") == []
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.main

    run_app(app, scenario)


def test_heads_precision_and_heatmap(wb: Workbook) -> None:
    app = CellGptApp(wb)

    async def scenario(pilot: Any) -> None:
        app.navigate("h3.attn.pattern")
        await pilot.pause()
        pane, grid = app.value_pane, app.value_pane.grid
        assert np.array_equal(grid.data, wb.value("h3.attn.pattern")[0])
        await pilot.press("right_square_bracket")
        await pilot.pause()
        assert pane.head == 1 and np.array_equal(grid.data, wb.value("h3.attn.pattern")[1])
        await pilot.press("left_square_bracket", "left_square_bracket")
        await pilot.pause()
        assert pane.head == 3  # wraps around
        assert "head 3 of 0–3" in str(pane.query_one("#value-title").render())  # 0-based
        assert grid.render_line(0).text.startswith("head 3")  # the corner says the same
        await pilot.press("full_stop")
        await pilot.pause()
        assert grid.precision == 6 and format_number(float(grid.data[0, 0]), 12, 6) in (
            grid.render_line(1).text
        )
        await pilot.press("m")
        await pilot.pause()
        assert grid.compact and "1.0" not in grid.render_line(1).text

    run_app(app, scenario)


def test_an_evicted_cell_is_recomputed_on_view(wb: Workbook) -> None:
    assert wb.state("h0.attn.scores").evicted  # dropped after the run (evict=True)
    app = CellGptApp(wb)

    async def scenario(pilot: Any) -> None:
        app.navigate("h0.attn.scores")
        await settle(pilot)
        grid = app.value_pane.grid
        value = wb.value("h0.attn.scores")
        assert value is not None and grid.display and grid.data is not None
        assert np.array_equal(grid.data, value[0])
        assert wb.status("h0.attn.scores") == Status.FRESH
        assert "recomputed on view" in str(details_text(app))
        await pilot.press("R")  # nothing stale: the app says so and keeps showing it
        await settle(pilot)
        assert np.array_equal(app.value_pane.grid.data, value[0])

    run_app(app, scenario)


def test_command_palette_lists_the_actions(wb: Workbook) -> None:
    app = CellGptApp(wb)

    async def scenario(pilot: Any) -> None:
        titles = [c.title for c in app.get_system_commands(app.main)]
        for title in ("Edit formula", "Re-run cell", "Run all stale", "Generate next token"):
            assert title in titles
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert app.screen.__class__.__name__ == "CommandPalette"
        await pilot.press(*"Generate next", "enter")
        await settle(pilot)
        assert len(wb.value("generated")) == 1

    run_app(app, scenario)


def test_bindings_palette_and_help_list_the_same_actions(wb: Workbook) -> None:
    """Built from one table, checked on the running app: every main-screen key is in the
    palette and in help with the same words, and neither lists an action without a key."""
    app = CellGptApp(wb)

    async def scenario(pilot: Any) -> None:
        textual_own = set(Binding.make_bindings(Screen.BINDINGS))  # Tab, Shift+Tab, Ctrl+C
        bound: dict[tuple[str, tuple[Any, ...]], set[str]] = {}
        for key, active in app.main.active_bindings.items():
            if active.node is app.main and active.binding not in textual_own:
                namespace, name, args = parse(active.binding.action)
                assert namespace == "app" and callable(getattr(app, f"action_{name}", None))
                bound.setdefault((name, args), set()).add(key_label(key))
        palette = {
            (c.callback.func.__name__.removeprefix("action_"), c.callback.args): c.help
            for c in app.get_system_commands(app.main)
            if isinstance(c.callback, partial)  # ours; Textual's own (Quit, Theme...) are not
        }
        assert set(palette) == set(bound)

        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        table = app.screen.query_one("#help-text", Static).content.renderables[-1]
        keys, does = (list(column.cells) for column in table.columns)
        own = {row for rows in OWN_KEYS.values() for row in rows}
        rows = [(k, d) for k, d in zip(keys, does, strict=True) if d and (k, d) not in own]
        helped = {frozenset(k.split("  ")): f"{k} — {d}" for k, d in rows}
        assert len(helped) == len(rows)  # no key listed twice
        assert set(helped) == {frozenset(labels) for labels in bound.values()}
        for action, labels in bound.items():
            assert palette[action] == helped[frozenset(labels)]

    run_app(app, scenario)


# ---------------------------------------------------------------------- long work
def hold_worker(book: Workbook) -> threading.Event:
    """Make the job thread wait at its first cell change until the event is set, so a test
    can act while a run is in progress (the UI thread is never held)."""
    gate = threading.Event()
    main = threading.get_ident()
    book.subscribe(lambda name: None if threading.get_ident() == main else gate.wait(10))
    return gate


def test_cancelling_a_run_leaves_cells_stale_and_the_ui_alive(wb: Workbook) -> None:
    app = CellGptApp(wb)
    notes = Notes(app)

    async def scenario(pilot: Any) -> None:
        app.navigate("h3.attn.out")  # a kept cell: viewing an evictable one starts a job
        await settle(pilot)
        wb.set("prompt", "Another prompt entirely")
        gate = hold_worker(wb)
        await pilot.press("R")
        await pilot.pause()
        assert app.jobs.busy
        assert app.main.query_one("#job-progress").display  # progress is shown meanwhile
        await pilot.press("down")  # the UI still answers keys while the worker runs
        await pilot.pause()
        assert app.current == "h3.resid_mid"
        await pilot.press("escape")
        await pilot.pause()
        gate.set()
        await settle(pilot)
        assert "cancelling" in notes.text() and "cancelled" in notes.text()
        assert wb.status("logits") == Status.STALE and wb.status("h3.attn.z") == Status.STALE
        assert not app.main.query_one("#job-progress").display
        assert app.current == "h3.resid_mid"  # Escape cancelled; it did not navigate back
        await pilot.press("R")  # the rest can be run afterwards
        await settle(pilot)
        assert only_on_demand(wb, wb.needs_run())

    run_app(app, scenario)


def test_actions_wait_for_the_running_job(wb: Workbook) -> None:
    app = CellGptApp(wb)
    notes = Notes(app)

    async def scenario(pilot: Any) -> None:
        wb.set("prompt", "Something else")
        gate = hold_worker(wb)
        await pilot.press("R")
        await pilot.pause()
        for key in ("e", "p", "g", "P"):
            await pilot.press(key)
            await pilot.pause()
            assert app.screen is app.main
        assert notes.text().count("busy") == 4
        await pilot.press("c")
        gate.set()
        await settle(pilot)
        assert "cancelled" in notes.text()

    run_app(app, scenario)


# ---------------------------------------------------------------------- the virtual grid
def test_virtual_grid_scrolls_wte_50257_by_768_to_the_bottom_right() -> None:
    from cellgpt.api import full_library

    rng = np.random.default_rng(1)
    wte = rng.standard_normal((50257, 768), dtype=np.float32)
    book = Workbook(full_library())
    book.define("wte", "0", hints={"kind": "param"})
    book.set("wte", wte)
    book.run()
    app = CellGptApp(book, start_cell="wte")

    async def scenario(pilot: Any) -> None:
        grid = app.value_pane.grid
        assert grid.data is not None and grid.data.shape == (50257, 768)
        grid.focus()
        frames: list[float] = []

        def timed_draw() -> None:
            grid._frame = None  # force a fresh draw of the visible window
            start = time.perf_counter()
            for y in range(grid.scrollable_content_region.height):
                grid.render_line(y)
            frames.append(time.perf_counter() - start)

        for key in ["pagedown"] * 5 + ["right"] * 10 + ["ctrl+end", "up", "left", "pageup"]:
            await pilot.press(key)
            await pilot.pause()
            timed_draw()
        await pilot.press("ctrl+end")
        await pilot.pause()
        assert grid.cursor == (50256, 767)
        height = grid.scrollable_content_region.height
        lines = [grid.render_line(y).text for y in range(height)]
        last = next(line for line in reversed(lines) if line.strip())
        text_w = grid._cw - 1
        assert last.startswith("50256")
        assert last.rstrip().endswith(format_number(float(wte[-1, -1]), text_w, 4).strip())
        assert format_number(float(wte[-1, -2]), text_w, 4).strip() in last
        assert lines[0].rstrip().endswith("767")
        status = str(app.value_pane.query_one("#value-status").render())
        assert "50256" in status and f"{float(wte[-1, -1]):.6g}"[:6] in status
        print(
            f"\nwte 50257x768 grid frame: mean {1000 * np.mean(frames):.2f} ms, "
            f"max {1000 * np.max(frames):.2f} ms over {len(frames)} frames"
        )

    run_app(app, scenario)


# ---------------------------------------------------------------------- snapshots
def _snapshot_app(wb: Workbook) -> CellGptApp:
    return CellGptApp(wb, show_timings=False)


def test_snapshot_main_screen(wb: Workbook, snap_compare: Any) -> None:
    assert snap_compare(_snapshot_app(wb), terminal_size=SIZE)


def test_snapshot_after_zeroing_a_head(wb: Workbook, snap_compare: Any) -> None:
    wb.set_formula("h3.attn.pattern", "zero_head(softmax(h3.attn.scores), 0)")
    app = CellGptApp(wb, show_timings=False, autorun=False)  # show the stale wave

    async def before(pilot: Any) -> None:
        app.navigate("h3.attn.pattern")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_snapshot_bpe_table(wb: Workbook, snap_compare: Any) -> None:
    app = CellGptApp(wb, show_timings=False, start_cell="bpe")
    assert snap_compare(app, terminal_size=SIZE)


# ---------------------------------------------------------------------- the pieces
def test_number_format_fits_its_column() -> None:
    assert format_number(0.12345, 8, 4) == "  0.1235"
    assert format_number(-123.5, 9, 4) == "-123.5000"
    for x in (1e9, -3.5e-12, 123456.0, float("-inf"), float("nan")):
        assert len(format_number(x, 8, 4)) == 8
    assert format_number(float("-inf"), 8, 4).strip() == "-inf"


def test_visible_marks_edge_spaces_only() -> None:
    from cellgpt.tui.labels import visible

    assert visible(" quick") == "·quick"
    assert visible("a b") == "a b"
    assert visible("\n") == "↵" and visible("  ") == "··"


def test_colour_scale_is_robust_and_centred() -> None:
    from cellgpt.tui.colors import LEVELS, NONFINITE, levels, robust_max

    x = np.concatenate([np.linspace(-1, 1, 1001), [1e6]]).astype(np.float32)
    vmax = robust_max(x)
    assert 0.9 < vmax < 1.01  # the one outlier does not set the scale
    codes = levels(np.array([0.0, vmax, -vmax, 1e6, -np.inf, np.nan]), vmax)
    assert list(codes) == [0, LEVELS, -LEVELS, LEVELS, NONFINITE, NONFINITE]


def test_values_are_classified_for_display() -> None:
    from cellgpt.tui.views import classify

    assert classify(np.zeros((3, 4))).kind == "grid"
    heads = classify(np.zeros((12, 5, 5)))
    assert heads.kind == "grid" and heads.heads == 12
    assert classify(np.zeros(50257), vocab_size=50257).vector == "column"
    assert classify(np.zeros(768)).array.shape == (1, 768)
    table = classify([(0, "Mike", 0)], columns=["word", "text", "pass"])
    assert table.kind == "table" and table.columns == ("word", "text", "pass")
    assert classify("hi").text == "'hi'" and classify(None).kind == "empty"


def test_cells_are_grouped_by_stage_and_block(wb: Workbook) -> None:
    from cellgpt.tui.grouping import group_cells

    groups = {g.title: g for g in group_cells(wb)}
    assert "prompt" in groups["inputs"].cells and "wte" in groups["model"].cells
    assert groups["tokenize"].cells[:2] == ["words", "bpe"]
    assert "n_tokens" in groups["tokenize"].cells  # an unhinted cell joins its input's stage
    assert groups["h3"].cells[0] == "h3.resid_pre" and groups["h3"].cells[-1] == "h3.resid_post"
    assert groups["h3"].children[0].title == "parameters"
    assert "h3.attn.c_attn.weight" in groups["h3"].children[0].cells
    assert groups["output"].cells[-1] == "sample"


def test_find_ranks_exact_names_first(wb: Workbook) -> None:
    from cellgpt.tui.search import find_cells, find_tokens

    hits = find_cells(wb.cells(), wb.aliases(), "logits")
    assert hits[0].target == "logits"
    assert find_cells(wb.cells(), wb.aliases(), "h3.step7")[0].target == "h3.attn.pattern"
    assert [h.target for h in find_tokens(wb["tokens"], "quick")] == [2]


def test_tokenizer_workbench_opens_with_its_stages_and_labelled_columns(tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.py"
    shutil.copy(REPO / "workbooks" / "tokenizer.py", path)
    book = cellgpt.open(path)
    app = CellGptApp(book, start_cell="training")

    async def scenario(pilot: Any) -> None:
        groups = [n.label.plain.split()[1] for n in app.tree.root.children]
        assert groups[:3] == ["inputs", "train", "encode"]  # the workbook's own order
        header = app.value_pane.table.columns[5]
        assert header == "␣newest ×6"  # column labels from the `pass_columns` cell
        await pilot.press("p")  # the prompt key edits this workbook's prompt too
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, PromptScreen)
        screen.query_one(TextArea).text = "slowest"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert book["decoded"] == "slowest"

    run_app(app, scenario)


def test_a_jobs_last_messages_after_quitting_are_ignored(wb: Workbook):
    """Quitting while a job runs: its progress, its changed cells and its end arrive after the
    panes are gone. The app must close quietly, not crash on a missing pane."""
    from cellgpt.tui.app import StatsReady
    from cellgpt.tui.jobs import CellsChanged, JobFinished, JobProgress, JobResult

    app = CellGptApp(wb)
    run_app(app, lambda pilot: pilot.pause())
    assert not app.is_running
    app.jobs.title = "late"  # a job still running when the app closed
    app.on_job_progress(JobProgress("late", 1, 2, "h0.ln_1"))
    app.on_cells_changed(CellsChanged())
    app.on_stats_ready(StatsReady(("h0.ln_1", 0), "stats"))
    app.on_job_finished(JobFinished(JobResult("late"), None))


def _deep_list(n: int) -> list[Any]:
    top: list[Any] = []
    inner = top
    for _ in range(n):
        inner.append([])
        inner = inner[0]
    return top


def test_hostile_values_show_a_bounded_summary_in_the_value_pane(wb: Workbook) -> None:
    """Pinned hostile values (deep, shared-huge, giant text, degenerate shapes, odd label cells)
    are shown as a clipped preview or a grid; the app never hangs or crashes."""
    app = CellGptApp(wb)
    hostile = {
        "deep": _deep_list(100_000),
        "shared": [[0] * 10**7] * 10**7,
        "text": "x" * 10**8,
        "keys": {"k" * 10**7: 1},
        "empty": np.zeros((0, 10**9), np.float32),
        "objects": np.array([_deep_list(5000), None], dtype=object),
    }

    async def scenario(pilot: Any) -> None:
        wb.pin("tokens", [[0] * 10**6] * 10**6)  # a label cell (rows="tokens") gone wrong
        for label, value in hostile.items():
            start = time.monotonic()
            wb.pin("h0.attn.z", value)
            app.navigate("h0.attn.z")
            await settle(pilot)
            text = str(app.value_pane.query_one("#value-text", Static).render())
            assert app.value_pane.view is not None, label
            assert len(text) <= 200_000, label
            assert time.monotonic() - start < 30, label
        wb.pin("h0.attn.z", np.ones((3, 3), np.float32))
        app.navigate("h0.attn.z")
        await settle(pilot)
        assert app.value_pane.view is not None and app.value_pane.view.kind == "grid"

    run_app(app, scenario)
