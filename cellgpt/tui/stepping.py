"""Evaluate Formula and step mode in the TUI: `v` explains the selected cell, `n` runs the
next stale cell (topological order) and selects it, `b` toggles a breakpoint, and `R` stops
before the next breakpoint cell (R again runs it and goes on to the next one)."""

from __future__ import annotations

from typing import Any

from cellgpt.engine import stepping
from cellgpt.tui.jobs import JobContext, JobResult
from cellgpt.tui.numfmt import format_duration
from cellgpt.tui.on_demand import is_on_demand
from cellgpt.tui.screens.explain import ExplainScreen


class StepActions:
    """What v, n and b do, and R when breakpoints are set; `breakpoints` is shared with the
    cell tree, which marks them."""

    def __init__(self, controller: Any) -> None:
        self.c = controller
        self.breakpoints: set[str] = set()

    def _skip(self, name: str) -> bool:
        return is_on_demand(self.c.wb, name)  # "run everything" leaves them too

    # ------------------------------------------------------------------ v
    def explain(self) -> None:
        c = self.c
        if not c.can_act():
            return
        name, wb = c.current, c.wb

        def work(ctx: JobContext) -> Any:
            return wb.explain(name)

        def done(result: JobResult) -> None:
            c.ui.push_screen(ExplainScreen(result.value, wb))

        c.jobs.start(f"Explaining {name}", work, done)

    # ------------------------------------------------------------------ n
    def step(self) -> None:
        c = self.c
        if not c.can_act(needs_cell=False):
            return
        wb = c.wb
        name = stepping.next_step(wb, skip=self._skip)
        if name is None:
            c.ui.notify("nothing is stale: every cell is up to date (p edits the prompt)")
            return

        def work(ctx: JobContext) -> Any:
            return stepping.step(wb, skip=self._skip)

        def done(result: JobResult) -> None:
            step = result.value
            if step is None:
                return
            c.navigate(step.name, push=False)
            upcoming = stepping.next_step(wb, skip=self._skip)
            after = f"next: {upcoming}" if upcoming else "nothing left to run"
            if upcoming in self.breakpoints:
                after += " (a breakpoint)"
            if step.error:
                c.ui.notify(f"{step.name}: {step.error} — {after}", severity="error")
                return
            shape = "×".join(map(str, step.shape)) if step.shape else (step.dtype or "")
            took = format_duration(step.seconds)
            c.ui.notify(f"ran {step.name} [{shape}] in {took} — {after} (n steps on)")

        c.jobs.start(f"Step: {name}", work, done)

    # ------------------------------------------------------------------ b
    def toggle_breakpoint(self) -> None:
        c = self.c
        if c.wb is None or c.current is None:
            c.ui.notify("select a cell first", severity="warning")
            return
        name = c.current
        if name in self.breakpoints:
            self.breakpoints.discard(name)
            c.ui.notify(f"breakpoint on {name} cleared")
        else:
            self.breakpoints.add(name)
            c.ui.notify(f"breakpoint on {name}: R stops before it (n still steps into it)")
        c.ui.refresh_marks({name})

    # ------------------------------------------------------------------ R
    def run_to_breakpoint(self) -> None:
        """R with breakpoints set (the controller checked that something is stale)."""
        c = self.c
        wb = c.wb
        self.breakpoints &= set(wb.cells())  # cells a reload removed are gone

        def work(ctx: JobContext) -> Any:
            return stepping.run_until(
                wb, self.breakpoints, skip=self._skip, progress=ctx.progress, cancel=ctx.cancelled
            )

        def done(result: JobResult) -> None:
            stop = result.value
            if stop is not None:
                c.navigate(stop, push=False)
                c.ui.notify(f"stopped before breakpoint {stop} — n runs it, R goes on, b clears it")

        c.jobs.start("Running to the next breakpoint", work, done)
