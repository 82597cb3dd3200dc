"""TUI speed on a big matrix: scroll a 50257 × 768 embedding table (GPT-2 small's `wte`).

    python benchmarks/bench_tui.py [--model FOLDER] [--size 180x50]

For each key (arrows, PgDn/PgUp, Home/End, Ctrl+End/Ctrl+Home) it measures
  - draw: the grid's own work for one frame — read the visible numpy window, colour it,
    format it, build every visible line (cache cleared first);
  - key→frame: from the key event entering the app to the app handing the composed screen
    update to the terminal driver, plus encoding that update as terminal output (headless
    run, so no terminal I/O).
Target: any scroll/keypress on a 50257 × 768 matrix < 50 ms.

Without --model the table is random float32 data in memory (the grid does not care where
its array comes from); with --model FOLDER the real `wte` of that weights folder is shown.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import numpy as np

KEYS = (
    ["down"] * 10
    + ["pagedown"] * 10
    + ["right"] * 10
    + ["end", "ctrl+end", "up", "left", "pageup", "home", "ctrl+home"]
)


def build_workbook(model: str | None) -> Any:
    import cellgpt
    from cellgpt.api import full_library
    from cellgpt.engine import Workbook

    if model:
        wb = cellgpt.open("workbooks/gpt2.py", model=model, prompt="Hello world")
        wb.run()
        return wb
    wte = np.random.default_rng(0).standard_normal((50257, 768), dtype=np.float32)
    wb = Workbook(full_library())
    wb.define("wte", "0", hints={"kind": "param"})
    wb.set("wte", wte)
    wb.run()
    return wb


async def measure(wb: Any, size: tuple[int, int]) -> list[tuple[str, float, float]]:
    from textual.app import App

    from cellgpt.tui.app import CellGptApp

    app = CellGptApp(wb, start_cell="wte", autorun=False, freeze_gc=True)  # as `cellgpt tui`
    displays: list[float] = []
    encode: list[float] = []

    original = App._display

    def display(screen: Any, renderable: Any) -> None:  # timestamps every screen update
        original(app, screen, renderable)
        if renderable is not None and hasattr(renderable, "render_segments"):
            start = time.perf_counter()
            renderable.render_segments(app.console)
            encode.append(time.perf_counter() - start)
        displays.append(time.perf_counter())

    app._display = display  # type: ignore[method-assign]
    rows: list[tuple[str, float, float]] = []
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        grid = app.value_pane.grid
        shape = grid.data.shape if grid.data is not None else None
        print(f"wte {shape[0]} x {shape[1]} shown; terminal {size[0]}x{size[1]}")
        grid.focus()
        await app.workers.wait_for_complete()  # the table's stats are summed in a thread
        await pilot.pause()
        for key in KEYS:
            displays.clear()
            encode.clear()
            start = time.perf_counter()
            await pilot.press(key)
            await pilot.pause()
            frame = (displays[0] - start + (encode[0] if encode else 0.0)) if displays else 0.0
            grid._frame = None  # the grid's own cost for this position, uncached
            t0 = time.perf_counter()
            for y in range(grid.scrollable_content_region.height):
                grid.render_line(y)
            rows.append((key, time.perf_counter() - t0, frame))
        print(f"cursor ends at {grid.cursor}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="weights folder whose wte to show (default: random)")
    parser.add_argument("--size", default="180x50", help="terminal size, WIDTHxHEIGHT")
    args = parser.parse_args()
    width, height = (int(x) for x in args.size.split("x"))
    wb = build_workbook(args.model)
    rows = asyncio.run(measure(wb, (width, height)))
    print(f"\n{'key':<10} {'draw ms':>9} {'key→frame ms':>13}")
    for key, draw, frame in rows:
        print(f"{key:<10} {draw * 1e3:9.2f} {frame * 1e3:13.2f}")
    draws = [d * 1e3 for _, d, _ in rows]
    frames = [f * 1e3 for _, _, f in rows if f > 0]
    print(
        f"\ndraw:      median {statistics.median(draws):.2f} ms, max {max(draws):.2f} ms"
        f"\nkey→frame: median {statistics.median(frames):.2f} ms, max {max(frames):.2f} ms"
        f"  (target < 50 ms)"
    )


if __name__ == "__main__":
    main()
