"""Tables in the TUI: the virtual record table browses GPT-2's whole vocabulary (50,257 rows)
and merge list, and `/` finds a row by what it shows — a token's text or its id."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import cellgpt
from cellgpt.engine import Workbook
from cellgpt.tui.app import CellGptApp
from cellgpt.tui.row_index import RowIndex
from cellgpt.tui.screens.find import FindScreen
from cellgpt.tui.views import cell_text, classify

REPO = Path(__file__).resolve().parents[2]
TOKENIZER = REPO / "cellgpt" / "tokenizer" / "data" / "gpt2"
SIZE = (120, 30)


@pytest.fixture(scope="module")
def wb(tmp_path_factory: pytest.TempPathFactory) -> Workbook:
    """The GPT-2 workbook on a random 1-block model with the real 50,257-token vocabulary."""
    from cellgpt.weights.config import GPT2Config
    from cellgpt.weights.params import expected_shapes, save_params

    cfg = GPT2Config(n_layer=1, n_head=2, n_embd=8, n_ctx=32, vocab_size=50257)
    rng = np.random.default_rng(0)
    tensors = {
        k: rng.standard_normal(s).astype(np.float32) for k, s in expected_shapes(cfg).items()
    }
    folder = save_params(
        tmp_path_factory.mktemp("tables") / "tiny", cfg, tensors, tokenizer_dir=TOKENIZER
    )
    path = tmp_path_factory.mktemp("book") / "gpt2.py"
    shutil.copy(REPO / "workbooks" / "gpt2.py", path)
    book = cellgpt.open(path, model=str(folder), prompt="Mike is quick")
    book.run()
    return book


def run_app(app: CellGptApp, scenario: Callable[[Any], Awaitable[None]]) -> None:
    async def main() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await app.workers.wait_for_complete()
            await pilot.pause()
            await scenario(pilot)

    asyncio.run(main())


def screen_lines(table: Any) -> list[str]:
    return [table.render_line(y).text for y in range(table.scrollable_content_region.height)]


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.split("│")]


async def find(pilot: Any, query: str) -> list[Any]:
    """Press /, type the query; the hits on offer."""
    await pilot.press("slash")
    await pilot.pause()
    assert isinstance(pilot.app.screen, FindScreen)
    await pilot.press(*query)
    await pilot.pause()
    return list(pilot.app.screen._hits)


def test_the_whole_vocabulary_scrolls_to_its_last_row(wb: Workbook) -> None:
    app = CellGptApp(wb, start_cell="vocab")

    async def scenario(pilot: Any) -> None:
        pane = app.value_pane
        assert pane.view is not None and pane.view.kind == "table"
        assert pane.view.records is wb.value("vocab")  # shown in place, never copied
        table = pane.table
        assert table.row_count == 50257
        pane.focus_value()
        await pilot.press("ctrl+end")
        await pilot.pause()
        assert table.cursor == 50256
        lines = screen_lines(table)
        assert cells(lines[0])[:2] == ["id", "token"]
        rows = [line for line in lines[1:] if line.strip()]
        assert cells(rows[-1])[:2] == ["50256", "<|endoftext|>"]
        assert cells(rows[-2])[:2] == ["50255", "·gazed"]
        status = str(pane.query_one("#value-status").render())
        assert "50,256/50,257" in status and "b'<|endoftext|>'" in status
        await pilot.press("end")  # the last columns, scrolled into view
        await pilot.pause()
        assert cells(screen_lines(table)[0])[-2] == "rank"
        await pilot.press("home")
        await pilot.pause()
        visible_rows = len(lines) - 1
        await pilot.press("pageup")
        await pilot.pause()
        assert table.cursor == 50256 - (visible_rows - 1)
        await pilot.press("ctrl+home")
        await pilot.pause()
        assert table.cursor == 0 and cells(screen_lines(table)[1])[:2] == ["0", "!"]

    run_app(app, scenario)


def test_slash_finds_a_token_by_text_or_id_and_jumps_to_its_row(wb: Workbook) -> None:
    app = CellGptApp(wb, start_cell="vocab")

    async def scenario(pilot: Any) -> None:
        table = app.value_pane.table
        hits = await find(pilot, " the")
        assert (hits[0].kind, hits[0].target) == ("row", 262)  # the original's token → id
        await pilot.press("enter")
        await pilot.pause()
        assert table.cursor == 262 and app.focused is table
        assert ["262", "·the"] in [cells(line)[:2] for line in screen_lines(table)]

        hits = await find(pilot, "the")  # without the space: "the" first, then " the"
        assert [h.target for h in hits if h.kind == "row"][:2] == [1169, 262]
        await pilot.press("escape")
        await pilot.pause()

        await find(pilot, "31373")  # an id
        await pilot.press("enter")
        await pilot.pause()
        assert table.cursor == 31373 and wb.value("vocab")[31373][1] == "hello"

        app.navigate("merges")
        await pilot.pause()
        hits = await find(pilot, " the")  # merges that use " the", and the one that makes it
        makes = next(i for i, h in enumerate(hits) if h.kind == "row" and "(result)" in h.label)
        app.screen.query_one("#find-results").highlighted = makes
        await pilot.press("enter")
        await pilot.pause()
        merges = wb.value("merges")
        assert merges[app.value_pane.table.cursor][3:] == ("·the", 262)

    run_app(app, scenario)


def test_a_cell_named_exactly_still_comes_before_rows(wb: Workbook) -> None:
    app = CellGptApp(wb, start_cell="vocab")

    async def scenario(pilot: Any) -> None:
        hits = await find(pilot, "logits")
        assert (hits[0].kind, hits[0].target) == ("cell", "logits")

    run_app(app, scenario)


def test_row_index_ranks_exact_cells_then_the_spaced_form_then_containing() -> None:
    rows = [(0, "the"), (1, " the"), (2, "There"), (3, "a\nb"), (4, "İx"), (5, " the")]
    index = RowIndex(rows, 2, cell_text)
    assert [(m.row, m.exact) for m in index.find("the", 10)] == [
        (0, True),
        (1, True),
        (5, True),
        (2, False),
    ]
    assert [m.row for m in index.find(" the", 10)] == [
        1,
        5,
    ]  # · the spaced form; There has no space
    assert [m.row for m in index.find("a↵b", 10)] == [3]  # a line break is shown (and found) as ↵
    assert [m.row for m in index.find("x", 10)] == [4]  # lower-casing İ lengthens the text
    assert [(m.row, m.column) for m in index.find("2", 10)] == [(2, 0)]
    assert index.find("the", 2) == index.find("the", 10)[:2]


def test_a_table_is_shown_in_place_with_its_titles() -> None:
    rows = [(i, str(i)) for i in range(100_000)]
    view = classify(rows, columns=["n", "text"])
    assert view.kind == "table" and view.records is rows and view.columns == ("n", "text")
    wider = classify([(1,), (1, 2, 3)], columns=["a"])
    assert wider.columns == ("a", "1", "2")  # untitled columns are numbered
    assert classify(["x", None]).columns == ("value",)
