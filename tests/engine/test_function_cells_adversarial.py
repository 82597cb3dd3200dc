"""Function cells are untrusted too: a corpus of recursion bombs, exploding call trees, name
shadowing, capture of outer cells, dunder tricks and budget attempts inside calls.

Each attempt in `adversarial/function_cells.tsv` (plus the generated ones below) must be
refused when defined or stopped in its own cell when it runs, with a message saying why, while
the same watch as the formula corpus checks that nothing is evaluated, opened or started.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from cellgpt import full_library
from cellgpt.engine import Status, Workbook
from cellgpt.engine.errors import DefinitionError, FormulaError
from cellgpt.engine.function_def import parse_function_source
from cellgpt.engine.user_functions import MAX_CALL_DEPTH, MAX_INLINED_NODES
from tests.engine.test_adversarial_formulas import Watch, watch  # noqa: F401 (fixture)

CORPUS = Path(__file__).resolve().parents[1] / "adversarial" / "function_cells.tsv"
LIBRARY = full_library()
_DEF = ("def ", "async ", "class ", "@")


@dataclass(frozen=True)
class Attempt:
    category: str
    fragment: str
    text: str

    @property
    def id(self) -> str:
        text = self.text if len(self.text) < 60 else self.text[:57] + "..."
        return f"{self.category}:{text}"


def _load_corpus() -> list[Attempt]:
    attempts = []
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            category, fragment, text = line.split("\t")
            attempts.append(Attempt(category, fragment, text.replace("\\n", "\n")))
    return attempts


def _generated() -> list[Attempt]:
    """Call trees too big to write by hand."""
    doubling = ["def f0(y): return y + 1"] + [
        f"def f{i}(y): return f{i - 1}(f{i - 1}(y))" for i in range(1, 31)
    ]
    chain = ["def f0(y): return y + 1"] + [
        f"def f{i}(y): return f{i - 1}(y) * 2" for i in range(1, 41)
    ]
    wide = "(" + ", ".join(["y"] * 2500) + ")"
    fan = "def g(y): return " + wide + " ;; def f(y): return (" + ", ".join(["g(y)"] * 20) + ")"
    # each body within the formula nesting limit, together past Python's recursion limit
    tower = [
        f"def f{i}(y): return " + "abs(" * 60 + ("y" if i == 0 else f"f{i - 1}(y)") + ")" * 60
        for i in range(16)
    ]
    return [
        Attempt("blowup", "nests .* deep with every call spelled out", " ;; ".join(tower)),
        Attempt("blowup", "expands to .* parts", " ;; ".join(doubling)),
        Attempt("blowup", "expands to .* parts", " ;; ".join(doubling[:20])),
        Attempt("blowup", f"nest {MAX_CALL_DEPTH + 1} function cells deep", " ;; ".join(chain)),
        Attempt("blowup", "expands to .* parts", fan),
        Attempt("blowup", "characters long", "def f(y): return " + "y + " * 6000 + "y"),
    ]


ATTEMPTS = _load_corpus() + _generated()


def _workbook() -> Workbook:
    wb = Workbook(LIBRARY)
    wb.define("x", "3")
    wb.define("s", "'abc'")
    wb.define("m", "ones((2, 2))")
    return wb


def _try(attempt: Attempt, sentinel: Path) -> tuple[str, str]:
    """Run one attempt; ('refused' | 'bounded' | 'ran', message)."""
    wb = _workbook()
    parts = attempt.text.replace("{SENTINEL}", str(sentinel)).split(" ;; ")
    defs = [p for p in parts if p.startswith(_DEF)]
    redefs = [p.removeprefix("redef ") for p in parts if p.startswith("redef ")]
    cells = [p for p in parts if not p.startswith((*_DEF, "redef "))]
    defined = False
    try:
        wb.define_functions([parse_function_source(d) for d in defs])
        defined = True
        for source in redefs:
            before = wb.function(parse_function_source(source).name).source
            try:
                wb.set_function(parse_function_source(source).name, source)
            except (FormulaError, DefinitionError):
                assert wb.function(parse_function_source(source).name).source == before
                raise
        for i, formula in enumerate(cells[:-1]):
            wb.define(f"c{i}", formula)
        if cells:
            wb.define("evil", cells[-1])
    except (FormulaError, DefinitionError, KeyError) as exc:
        if not defined:
            assert wb.functions() == [], "a refused batch left functions behind"
        return "refused", str(exc)
    wb.run()
    state = wb.state("evil")
    if state.status != Status.ERROR:
        return "ran", repr(wb.value("evil"))[:200]
    assert state.error is not None
    return "bounded", state.error.message


@pytest.mark.parametrize("attempt", ATTEMPTS, ids=[a.id for a in ATTEMPTS])
def test_attempt_is_refused_or_bounded(attempt: Attempt, watch: Watch, tmp_path: Path) -> None:  # noqa: F811
    sentinel = tmp_path / "pwned"
    outcome, message = _try(attempt, sentinel)
    assert outcome != "ran", f"{attempt.text[:80]!r} ran: {message}"
    assert re.search(attempt.fragment, message, re.IGNORECASE), message
    assert "Traceback" not in message and len(message) < 600, message
    assert not sentinel.exists()
    assert watch.calls == []


def test_corpus_counts_per_category() -> None:
    counts = Counter(a.category for a in ATTEMPTS)
    assert len({a.text for a in ATTEMPTS}) == len(ATTEMPTS), "duplicate attempts"
    for category in ("recursion", "blowup", "shadowing", "capture", "dunder", "budget"):
        assert counts[category] >= 5, category


def test_a_file_of_too_many_functions_is_refused_fast(tmp_path: Path) -> None:
    from cellgpt.engine import WorkbookFileError, load_workbook
    from cellgpt.engine.user_functions import MAX_FUNCTIONS

    path = tmp_path / "many.py"
    path.write_text("".join(f"def f{i}(y): return y\n" for i in range(MAX_FUNCTIONS + 1)))
    with pytest.raises(WorkbookFileError, match="would pass the limit"):
        load_workbook(path)


def test_the_bounds_leave_room_for_real_functions() -> None:
    """A chain exactly MAX_CALL_DEPTH deep and a body just under the expansion bound load
    and run: the limits refuse bombs, not ordinary workbooks."""
    wb = _workbook()
    chain = ["def f0(y): return y + 1"] + [
        f"def f{i}(y): return f{i - 1}(y) + 1" for i in range(1, MAX_CALL_DEPTH)
    ]
    wb.define_functions([parse_function_source(d) for d in chain])
    wb.define("r", f"f{MAX_CALL_DEPTH - 1}(x)")
    assert wb["r"] == 3 + MAX_CALL_DEPTH
    assert 0.9 * MAX_INLINED_NODES < 4 * 1600 * 3  # `bigger` is close to the bound
    wb.define_function("def big(y): return (" + ", ".join(["y * y"] * 1600) + ")")
    wb.define_function("def bigger(y): return (" + ", ".join(["big(y)"] * 4) + ")")
    wb.define("b", "bigger(2)")
    assert wb["b"] == ((4,) * 1600,) * 4
