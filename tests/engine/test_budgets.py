"""Every cell has a budget: time per cell, cost and bytes per library call, live bytes and
cells per workbook, and names that cannot shadow the library.

`adversarial/budgets_formulas.tsv` holds one attempt per line; each must end in its own cell
with an error naming the budget, well within the time budget, with nothing executed (the
watch of `test_adversarial_formulas.py`). `pytest tests/engine/test_budgets.py -s` prints the
counts per category.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from test_adversarial_formulas import LIBRARY, Attempt, Watch, _try, watch  # noqa: F401

from cellgpt.engine import CellSpec, Status, Template, Workbook
from cellgpt.engine.errors import CellError, DefinitionError
from cellgpt.engine.limits import DEFAULT_LIMITS, Limits

CORPUS = Path(__file__).resolve().parents[1] / "adversarial" / "budgets_formulas.tsv"


def _load() -> list[Attempt]:
    lines = CORPUS.read_text(encoding="utf-8").splitlines()
    rows = [line.split("\t") for line in lines if line.strip() and not line.startswith("#")]
    return [Attempt(category, fragment, formula) for category, fragment, formula in rows]


ATTEMPTS = _load()


@pytest.mark.parametrize("attempt", ATTEMPTS, ids=[a.id for a in ATTEMPTS])
def test_attempt_ends_in_a_bounded_error(
    attempt: Attempt,
    watch: Watch,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    outcome, message = _try(attempt, tmp_path / "pwned")
    assert outcome == "bounded", f"{attempt.formula!r}: {outcome}: {message}"
    assert re.search(attempt.fragment, message, re.IGNORECASE), message
    # Stopped by an up-front budget before the work, not by running into the cell's
    # deadline (what a wall-clock bound would say, without depending on the machine's load).
    assert "time budget" not in message, f"{attempt.formula!r} ran until the deadline"
    assert watch.calls == []


def test_counts_per_category(capsys: pytest.CaptureFixture[str]) -> None:
    counts = Counter(a.category for a in ATTEMPTS)
    counts["many cells"] = len(MANY_CELLS)
    counts["names"] = len(LIBRARY_NAMES)
    with capsys.disabled():
        print("\nbudget attempts per category:", dict(sorted(counts.items())))
    assert len({a.formula for a in ATTEMPTS}) == len(ATTEMPTS), "duplicate attempts"
    for category in ("time", "broadcast", "fancy index", "shape array", "sets", "strings"):
        assert counts[category] >= 3, category
    for category in ("float64 copy", "growth", "many cells", "names"):
        assert counts[category] >= 3, category


def test_error_names_the_cell_and_the_budget() -> None:
    wb = Workbook(LIBRARY)
    wb.define("h3.x", "zeros((2**13, 2**13)) @ zeros((2**13, 2**13))")
    with pytest.raises(CellError, match=r"'h3\.x'.*multiply-adds.*limit"):
        wb["h3.x"]


# ---------------------------------------------------------------------------------------
# Time: a deadline checked between operations.


def _big_input(wb: Workbook, name: str) -> None:
    """2M zeros as an input value: computing them could itself overrun a tiny time budget on
    a busy machine (and block the cell under test instead of timing it out)."""
    wb.define(name, "0")
    wb.set(name, np.zeros(2**21, dtype=np.float32))


def test_a_cell_past_its_time_budget_stops_with_an_error_naming_it() -> None:
    wb = Workbook(LIBRARY, limits=Limits(cell_seconds=0.05))
    _big_input(wb, "a")
    wb.define("slow", "[" + ", ".join(["exp(a)"] * 1000) + "]")
    wb.run()  # without the deadline: 1000 passes over 2M numbers, seconds of work
    error = wb.state("slow").error
    assert error is not None and "time budget of 0.05 s" in error.message
    with pytest.raises(CellError, match="'slow'"):
        wb["slow"]


def test_the_user_may_raise_the_time_budget() -> None:
    wb = Workbook(LIBRARY, limits=Limits(cell_seconds=0.05))
    _big_input(wb, "a")
    wb.define("slow", "[" + ", ".join(["exp(a)"] * 40) + "]")
    wb.limits = wb.limits.with_(cell_seconds=60)
    assert len(wb["slow"]) == 40


def test_negations_of_big_arrays_are_timed_too() -> None:
    wb = Workbook(LIBRARY, limits=Limits(cell_seconds=0.02))
    _big_input(wb, "a")
    wb.define("slow", "[" + ", ".join(["-a"] * 2000) + "]")
    wb.run()
    assert "time budget" in wb.state("slow").error.message


def test_the_user_may_raise_the_element_limit() -> None:
    wb = Workbook(LIBRARY, limits=Limits(max_elements=2**10))
    wb.define("a", "zeros(2**11)")
    wb.run()
    assert "limit is 1,024" in wb.state("a").error.message
    wb.limits = wb.limits.with_(max_elements=2**12)
    wb.set_formula("a", "zeros(2**11)")
    assert wb["a"].shape == (2**11,)


def test_formulas_outside_a_run_have_no_stale_deadline() -> None:
    wb = Workbook(LIBRARY, limits=Limits(cell_seconds=0.01))
    wb.define("a", "zeros(4) + 1")
    wb.run()
    time.sleep(0.05)  # the last cell's deadline has long passed
    wb.set_formula("a", "zeros(4) + 2")
    assert list(wb["a"]) == [2, 2, 2, 2]


# ---------------------------------------------------------------------------------------
# The workbook-wide budget: live bytes and cells.

MANY_CELLS = [
    ("200 cells of 512 MiB", 200, "zeros(2**27)"),
    ("60 cells of 128 MiB (float64)", 60, "zeros(2**24, 'float64')"),
    ("40 views of their own temporaries", 40, "zeros(2**28, 'bool')[::2]"),
]


@pytest.mark.parametrize(("what", "count", "formula"), MANY_CELLS, ids=[m[0] for m in MANY_CELLS])
def test_many_legal_cells_cannot_add_up_past_the_store_budget(
    what: str, count: int, formula: str
) -> None:
    # zeros() is calloc'd: the budget counts the bytes without the test touching them.
    wb = Workbook(LIBRARY)
    wb.define_many([CellSpec(f"big{i}", formula) for i in range(count)])
    start = time.perf_counter()
    wb.run()
    assert time.perf_counter() - start < 10
    failed = [n for n in wb.cells() if wb.status(n) == Status.ERROR]
    assert failed, what
    first = failed[0]
    error = wb.state(first).error
    assert error is not None and "workbook memory budget" in error.message
    live = [n for n in wb.cells() if wb.status(n) == Status.FRESH]
    per_cell = wb.state(live[0]).nbytes
    assert len(live) == DEFAULT_LIMITS.store_bytes // per_cell  # exactly up to the line


def test_views_of_other_cells_and_dropped_values_do_not_count() -> None:
    wb = Workbook(LIBRARY, limits=Limits(store_bytes=100 * 2**20))
    wb.define("a", "zeros((2**12, 2**12))")  # 64 MiB
    wb.define_many([CellSpec(f"v{i}", f"a[{i}:]") for i in range(50)])
    wb.run()
    assert all(wb.status(f"v{i}") == Status.FRESH for i in range(50))
    wb.set_formula("a", "zeros(4)")
    wb.run()
    wb.define("b", "zeros((2**12, 2**12))")
    assert wb["b"].shape == (2**12, 2**12)


def test_the_cell_budget_holds_for_define_many_and_blocks() -> None:
    wb = Workbook(LIBRARY, limits=Limits(max_cells=100))
    with pytest.raises(DefinitionError, match="budget of 100 cells"):
        wb.define_many([CellSpec(f"c{i}", "1") for i in range(101)])
    assert wb.cells() == []
    wb.define("n", "200")
    wb.define("x0", "1")
    block = Template("blk", "n", "x0", "y", [CellSpec("y", "prev + i")])
    wb.define_template(block)
    wb.run()
    assert wb.status("n") == Status.ERROR
    assert "budget of 100 cells" in wb.state("n").error.message


# ---------------------------------------------------------------------------------------
# Names: a cell or alias cannot be named like a library function or constant.

LIBRARY_NAMES = ["pi", "e", "inf", "nan", "softmax", "matmul", "zeros", "text", "BPE_COLUMNS"]


@pytest.mark.parametrize("name", LIBRARY_NAMES)
def test_a_cell_named_like_the_library_is_refused(name: str) -> None:
    wb = Workbook(LIBRARY)
    with pytest.raises(DefinitionError, match=f"'{name}'.*library"):
        wb.define(name, "1")
    assert name not in wb


@pytest.mark.parametrize("name", LIBRARY_NAMES)
def test_an_alias_named_like_the_library_is_refused(name: str) -> None:
    wb = Workbook(LIBRARY)
    wb.define("x", "1")
    with pytest.raises(DefinitionError, match=f"alias '{name}'.*library"):
        wb.alias(name, "x")
    with pytest.raises(DefinitionError, match="library"):
        wb.define("y", "2", hints={"alias": name})
    assert wb.aliases() == {}


# ---------------------------------------------------------------------------------------
# Every library function declares its cost.


def test_every_library_function_declares_its_cost() -> None:
    undeclared = [n for n, f in LIBRARY.functions.items() if f.cost is None]
    assert undeclared == []


def test_workbook_files_cannot_shadow_the_library_or_raise_budgets(tmp_path: Path) -> None:
    from cellgpt.engine.loader import load_workbook
    from cellgpt.engine.workbook_file import WorkbookFileError

    shadow = tmp_path / "shadow.py"
    shadow.write_text("softmax = 1\n", encoding="utf-8")
    with pytest.raises(WorkbookFileError, match=r"softmax.*library"):
        load_workbook(shadow, LIBRARY)
    aliased = tmp_path / "aliased.py"
    aliased.write_text('x: cell(alias="pi") = 1\n', encoding="utf-8")
    with pytest.raises(WorkbookFileError, match=r"pi.*library"):
        load_workbook(aliased, LIBRARY)
    budgets = tmp_path / "budgets.py"
    budgets.write_text("limits = 10**12\ncell_seconds = 10**6\n", encoding="utf-8")
    assert load_workbook(budgets, LIBRARY).limits == DEFAULT_LIMITS


def test_broadcast_size_agrees_with_numpy() -> None:
    import itertools
    import math

    from cellgpt.engine.limits import _broadcast_size

    shapes = [(), (1,), (3,), (0,), (2, 3), (1, 3), (2, 1), (0, 3), (4, 1, 3), (4, 2, 3), (1, 0)]
    for a, b in itertools.product(shapes, shapes):
        try:
            want = math.prod(np.broadcast_shapes(a, b))
        except ValueError:
            want = None
        assert _broadcast_size(a, b) == want, (a, b)
    assert _broadcast_size((10**9, 1), (1, 10**12)) == 10**21  # exact, no float rounding
