"""Step mode: one stale cell at a time in the engine's topological order, never fused, ending
at `next_token` with the values of a normal run; breakpoints stop `run_until` before a cell."""

from __future__ import annotations

import numpy as np
import pytest

import cellgpt
from cellgpt.engine import Status, Workbook, stepping

PROMPT = "Mike is quick. He moves"


def fresh() -> Workbook:
    return cellgpt.open("gpt2", model="gpt2-mini", prompt=PROMPT)


def same(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b))
    return a == b


@pytest.fixture(scope="module")
def reference() -> Workbook:
    wb = fresh()
    wb.run("next_token")
    return wb


def test_steps_follow_the_topological_order_and_end_at_next_token(reference: Workbook) -> None:
    # the normal run computed attention fused (scores and pattern never built)
    assert reference.state("h0.attn.scores").fused_into == "h0.attn.z"
    wb = fresh()
    wanted = wb.ancestors("next_token") | {"next_token"}
    expected = [n for n in wb.cells() if n in wanted and wb.status(n) == Status.STALE]
    assert stepping.plan(wb, "next_token") == expected
    visited = []
    while (step := wb.step("next_token")) is not None:
        assert step.name == expected[len(visited)]
        assert step.status == "fresh", (step.name, step.error)
        visited.append(step.name)
    assert visited == expected and visited[-1] == "next_token"
    assert wb.next_step("next_token") is None
    assert int(wb["next_token"]) == int(reference["next_token"])
    for name in visited:  # every value equals the normal (fused) run's
        assert same(wb[name], reference[name]), name
    # stepping ran cell by cell: no chain was computed fused
    assert all(wb.state(n).fused_into is None for n in visited)


def test_a_step_runs_exactly_one_cell() -> None:
    wb = fresh()
    wb.run("h0.resid_pre")
    name = wb.next_step()
    before = {n for n in wb.cells() if wb.status(n) == Status.STALE}
    step = wb.step()
    assert step is not None and step.name == name
    after = {n for n in wb.cells() if wb.status(n) == Status.STALE}
    assert before - after == {name}
    assert step.shape == wb.info(name).shape and step.seconds >= 0


def test_run_until_stops_before_a_breakpoint_and_continues_from_it(reference: Workbook) -> None:
    wb = fresh()
    order = stepping.plan(wb)
    stop = stepping.run_until(wb, {"h1.ln_1", "ln_f"})
    assert stop == "h1.ln_1"
    cut = order.index("h1.ln_1")
    assert all(wb.status(n) == Status.FRESH for n in order[:cut])
    assert all(wb.status(n) == Status.STALE for n in order[cut:])
    # continuing from a breakpoint runs it, and stops at the next one
    assert stepping.run_until(wb, {"h1.ln_1", "ln_f"}) == "ln_f"
    assert wb.status("h1.ln_1") == Status.FRESH and wb.status("ln_f") == Status.STALE
    assert stepping.run_until(wb, {"h1.ln_1", "ln_f"}) is None
    assert wb.needs_run() == []
    assert int(wb["next_token"]) == int(reference["next_token"])
    assert same(wb["logits"], reference["logits"])


def test_skip_leaves_cells_alone() -> None:
    wb = fresh()
    wb.run("next_token")
    left = wb.needs_run()
    assert "logits_all" in left
    names = [s.name for s in stepping.steps(wb, skip=lambda n: n == "logits_all")]
    assert "logits_all" not in names and wb.needs_run() == ["logits_all"]
