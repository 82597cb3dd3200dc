"""Cells computed only when asked for: a workbook marks them `cell(on_demand=True, ...)` (e.g.
`logits_all`, a vocabulary-wide score for every position, which nothing else reads). "Run
everything stale" in the TUI leaves them stale; `r` on one computes it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from cellgpt.engine import CellError

HINT = "on_demand"

Progress = Callable[[int, int | None, str], None]


def is_on_demand(wb: Any, name: str) -> bool:
    return bool(wb.cell(name).hints.get(HINT))


def stale_wanted(wb: Any) -> list[str]:
    """Stale cells to compute on "run everything": all but on-demand ones."""
    return [n for n in wb.needs_run() if not is_on_demand(wb, n)]


def run_stale(wb: Any, progress: Progress | None = None, cancel: Any = None) -> None:
    """Run every stale cell except on-demand ones (and what only they need): the cells no
    other wanted cell reads are run, each with its stale inputs. Progress counts over all."""
    wanted = stale_wanted(wb)
    if len(wanted) == len(wb.needs_run()):  # nothing on demand is stale: one plain run
        with contextlib.suppress(CellError):
            wb.run(None, progress=progress, cancel=cancel)
        return
    chosen = set(wanted)
    sinks = [n for n in wanted if not any(d in chosen for d in wb.dependents(n))]
    total, offset = len(wanted), 0

    def counted(done: int, _total: int | None, cell: str = "") -> None:
        if progress is not None:
            progress(min(total, offset + done), total, cell)

    for name in sinks:
        before = len(wb.needs_run())
        with contextlib.suppress(CellError):  # an error lives in its cell; go on elsewhere
            wb.run(name, progress=counted, cancel=cancel)
        offset += max(0, before - len(wb.needs_run()))
