"""Step mode: run a workbook one stale cell at a time, in the engine's topological order, and
breakpoints that make "run everything" stop before a cell.

A step runs exactly one cell: the next stale cell has no stale inputs (they come before it in
topological order), so the runner computes it alone — never as part of a fused chain, whose
links would have to be stale too — with the same values a whole run gives. An evictable input
dropped to save memory is recomputed to be read, as in any run.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from cellgpt.engine.errors import CellError

Skip = Callable[[str], bool]
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Step:
    """One step: the cell run, what became of it, and how long it took."""

    name: str
    status: str  # "fresh", "error", "blocked", ...
    shape: tuple[int, ...] | None
    dtype: str | None
    seconds: float  # wall clock of the step, recomputing evicted inputs included
    error: str | None = None


def plan(wb: Any, target: str | None = None, skip: Skip | None = None) -> list[str]:
    """The cells steps toward `target` (None: everything stale) would run, in order."""
    if target is None:
        names = wb.needs_run()
    else:
        target = wb.resolve(target)
        wanted = wb.ancestors(target) | {target}
        names = [n for n in wb.needs_run() if n in wanted]
    return [n for n in names if skip is None or not skip(n)]


def next_step(wb: Any, target: str | None = None, skip: Skip | None = None) -> str | None:
    """The next stale cell in topological order (toward `target`), or None when done."""
    wanted = None if target is None else wb.ancestors(target) | {wb.resolve(target)}
    for name in wb.needs_run():
        if (skip is None or not skip(name)) and (wanted is None or name in wanted):
            return name
    return None


def step(wb: Any, target: str | None = None, skip: Skip | None = None) -> Step | None:
    """Run the next stale cell alone (see the module doc); None when nothing is left. A
    failure stays in the cell, as in a run."""
    name = next_step(wb, target, skip)
    return None if name is None else _run_one(wb, name)


def steps(wb: Any, target: str | None = None, skip: Skip | None = None) -> Iterator[Step]:
    """Step until nothing toward `target` is stale, yielding each step as it is done. The
    order is planned once (finding the next cell anew costs a topological sort per step),
    and again if running changed the cells (a block count that changed)."""
    while True:
        ran = False
        for name in plan(wb, target, skip):
            if wb.status(name) == "stale":  # not computed meanwhile as a skipped cell's input
                ran = True
                yield _run_one(wb, name)
        if not ran:
            return


def _run_one(wb: Any, name: str) -> Step:
    start = time.perf_counter()
    with contextlib.suppress(CellError):  # the error lives in the cell
        wb.run(name)
    seconds = time.perf_counter() - start
    state = wb.state(name)  # not wb.info(): that lists readers too, a cost per step
    error = state.error.message if state.error is not None else None
    return Step(name, str(state.status), state.shape, state.dtype, seconds, error)


def run_until(
    wb: Any,
    breakpoints: Iterable[str],
    *,
    skip: Skip | None = None,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
) -> str | None:
    """Run the stale cells in topological order up to the first breakpoint cell, which is
    left stale; returns it, or None if the run went through. The next cell in line is never
    a stop — continuing from a breakpoint runs it — so repeated calls go from one breakpoint
    to the next. Cells before the stop run as in `run()` (fused where they can be)."""
    order = plan(wb, None, skip)
    stops = {wb.resolve(b) for b in breakpoints if b in wb}
    stop = next((n for n in order[1:] if n in stops), None)
    before = order if stop is None else order[: order.index(stop)]
    chosen = set(before)  # a prefix of a topological order holds its own stale inputs
    sinks = [n for n in before if not any(d in chosen for d in wb.dependents(n))]
    total, offset = len(before), 0

    def counted(done: int, _total: int, cell: str = "") -> None:
        if progress is not None:
            progress(min(total, offset + done), total, cell)

    for name in sinks:
        left = len(wb.needs_run())
        with contextlib.suppress(CellError):  # an error lives in its cell; go on elsewhere
            wb.run(name, progress=counted, cancel=cancel)
        offset += max(0, left - len(wb.needs_run()))
    return stop
