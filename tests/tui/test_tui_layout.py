"""The TUI at 80×24, 120×40 and 200×60 (Pilot): the value grid gets most of the width at
every size, the panes never overlap or spill, a resize at runtime re-places them, t and d
toggle the side panes; SVG snapshots at the smallest and largest size."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from textual.widget import Widget

from cellgpt.engine import Workbook
from cellgpt.tui.app import CellGptApp
from tests.tui import test_tui
from tests.tui.test_tui import settle

tui_model, wb_path, wb = test_tui.tui_model, test_tui.wb_path, test_tui.wb

SIZES = [(80, 24), (120, 40), (200, 60)]
NUMBER = re.compile(r"\d\.\d{4}")


def run_at(
    app: CellGptApp, size: tuple[int, int], scenario: Callable[[Any], Awaitable[None]]
) -> None:
    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            await scenario(pilot)

    asyncio.run(main())


def pane(app: CellGptApp, name: str) -> Widget:
    return app.main.query_one(f"#{name}")


def check_layout(app: CellGptApp, width: int, height: int) -> None:
    """The value has most of the width and shows real columns; the panes fit, apart."""
    value = pane(app, "value").region
    assert value.width >= 0.55 * width, (width, value)
    shown = [pane(app, p).region for p in ("tree", "value", "right") if pane(app, p).display]
    for region in shown:
        assert region.right <= width and region.bottom <= height - 1  # the footer stays
        assert region.width >= 20 and region.height >= 8
    for i, a in enumerate(shown):
        assert not any(a.overlaps(b) for b in shown[i + 1 :]), shown
    # the 6 × 6 pattern: at least 4 numbers across, not the 1-2 of before
    numbers = NUMBER.findall(app.value_pane.grid.render_line(1).text)
    assert len(numbers) >= 4, app.value_pane.grid.render_line(1).text


@pytest.mark.parametrize("size", SIZES)
def test_the_value_gets_most_of_the_width_at_each_size(wb: Workbook, size: tuple[int, int]) -> None:
    app = CellGptApp(wb)

    async def scenario(pilot: Any) -> None:
        app.navigate("h3.attn.pattern")
        await pilot.pause()
        check_layout(app, *size)
        tree, right = pane(app, "tree"), pane(app, "right")
        assert tree.display  # the cells stay in reach at every size
        if size[0] >= 160:  # wide: details beside the value
            assert right.display and right.region.x >= pane(app, "value").region.right
        elif size[0] >= 100:  # medium: details under the value
            assert right.display and right.region.y >= pane(app, "value").region.bottom
        else:  # narrow: details on a key; the formula and the guess stay on screen
            assert not right.display
            assert "softmax" in str(app.value_pane.query_one("#value-formula").render())
            guess = app.main.query_one("#prompt-guess")
            assert guess.display and "next" in str(guess.render())

    run_at(app, size, scenario)


def test_a_resize_at_runtime_places_the_panes_again(wb: Workbook) -> None:
    app = CellGptApp(wb)

    async def scenario(pilot: Any) -> None:
        app.navigate("h3.attn.pattern")
        app.details.query_one("#refs").focus()  # focus in a pane that will be hidden
        await pilot.pause()
        for size in [(80, 24), (120, 40), (200, 60), (80, 24)]:
            await pilot.resize_terminal(*size)
            await pilot.pause()
            await pilot.pause()
            check_layout(app, *size)
            focused = app.focused
            assert focused is not None and all(
                n.display for n in focused.ancestors_with_self if isinstance(n, Widget)
            )  # the focus never stays in a hidden pane

    run_at(app, (200, 60), scenario)


def test_t_and_d_toggle_the_side_panes_on_a_narrow_screen(wb: Workbook) -> None:
    app = CellGptApp(wb)

    async def scenario(pilot: Any) -> None:
        tree, right = pane(app, "tree"), pane(app, "right")
        assert tree.display and not right.display
        await pilot.press("d")  # the details take the tree's place
        await pilot.pause()
        assert right.display and not tree.display
        assert pane(app, "value").region.width >= 40
        await pilot.press("t")  # and back
        await pilot.pause()
        assert tree.display and not right.display and app.focused is app.tree
        await pilot.press("t")  # the value alone, full width
        await pilot.pause()
        assert not tree.display and pane(app, "value").region.width == 80

    run_at(app, (80, 24), scenario)


def test_d_hides_the_details_on_a_wide_screen(wb: Workbook) -> None:
    app = CellGptApp(wb)

    async def scenario(pilot: Any) -> None:
        before = pane(app, "value").region.width
        await pilot.press("d")
        await pilot.pause()
        assert not pane(app, "right").display
        assert pane(app, "value").region.width > before

    run_at(app, (200, 60), scenario)


def _snapshot_app(wb: Workbook) -> CellGptApp:
    return CellGptApp(wb, show_timings=False, start_cell="h3.attn.pattern")


def test_snapshot_80_by_24(wb: Workbook, snap_compare: Any) -> None:
    assert snap_compare(_snapshot_app(wb), terminal_size=(80, 24))


def test_snapshot_200_by_60(wb: Workbook, snap_compare: Any) -> None:
    assert snap_compare(_snapshot_app(wb), terminal_size=(200, 60))
