"""The embedding explorer in the TUI (Pilot): it opens on the bundled model, runs every cell
without an error, groups its cells by stage, shows the position matrix as a grid and says
which tokenizer the model reads with."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

import cellgpt
from cellgpt.engine import Status
from cellgpt.tui.app import CellGptApp

REPO = Path(__file__).resolve().parents[2]
SIZE = (160, 50)


async def _settle(pilot: Any, timeout: float = 30.0) -> None:
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


def test_embedding_explorer_opens_runs_and_shows_its_stages(tmp_path: Path) -> None:
    path = tmp_path / "embeddings.py"
    shutil.copy(REPO / "workbooks" / "embeddings.py", path)
    book = cellgpt.open(path)
    app = CellGptApp(book, start_cell="wpe_cosine")
    errors: list[str] = []
    original = app.notify

    def notify(message: str, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("severity") == "error":
            errors.append(str(message))
        original(message, *args, **kwargs)

    app.notify = notify  # type: ignore[method-assign]

    async def main() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await _settle(pilot)
            assert errors == []
            assert all(book.status(n) == Status.FRESH for n in book.cells())
            groups = [n.label.plain.split()[1] for n in app.tree.root.children]
            assert groups == [
                "inputs",
                "model",
                "nearest",
                "analogy",
                "compare",
                "positions",
                "signs",
            ]
            assert app.current == "wpe_cosine" and app.value_is_grid()
            bar = str(app.main.query_one("#prompt-text").render())
            assert "tokenizer gpt2-mini's own (2,048 tokens)" in bar
            app.navigate("neighbours")
            await pilot.pause()
            assert app.current == "neighbours"

    asyncio.run(main())
