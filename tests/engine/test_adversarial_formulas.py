"""Formulas are untrusted input: a corpus of escape attempts and resource bombs.

Each attempt in `adversarial/formulas.tsv` (plus the generated long/odd-text ones below) must be
refused when it is defined or stopped in its own cell when it runs, with a message that says
why. While the corpus runs, `eval`/`exec`/`open`/`os.system`/... are watched (and `compile` may
only build syntax trees), a sentinel file must never appear and the working folder stays empty.
`python -m pytest tests/engine/test_adversarial_formulas.py -s` prints the counts per category.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cellgpt import full_library
from cellgpt.engine import Status, Workbook
from cellgpt.engine.errors import DefinitionError, FormulaError
from cellgpt.engine.formula import MAX_FORMULA_CHARS, parse_formula

CORPUS = Path(__file__).resolve().parents[1] / "adversarial" / "formulas.tsv"
LIBRARY = full_library()  # imported now: module imports compile bytecode, formulas must not


@dataclass(frozen=True)
class Attempt:
    category: str
    fragment: str
    formula: str

    @property
    def id(self) -> str:
        text = self.formula if len(self.formula) < 50 else self.formula[:47] + "..."
        return f"{self.category}:{text}"


def _load_corpus() -> list[Attempt]:
    attempts = []
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        category, fragment, formula = line.split("\t")
        attempts.append(Attempt(category, fragment, formula))
    return attempts


def _generated() -> list[Attempt]:
    """Attempts too long or too odd to keep in a text file."""
    return [
        Attempt("long", "characters long", "1+" * 15_000 + "1"),
        Attempt("long", "characters long", "x" * (MAX_FORMULA_CHARS + 1)),
        Attempt("long", "characters long", "'" + "a" * MAX_FORMULA_CHARS + "'"),
        Attempt("long", "nested|parts", "+".join(["x"] * 5_001)),
        Attempt("long", "more than 5000 parts", "[" + ",".join(["1"] * 5_001) + "]"),
        # token-id lists skip the checking walk below the part limit (formula_parse._int_list):
        # one number over it, and a number too long to read, are still refused
        Attempt("long", "more than 5000 parts", "[" + ",".join(["1"] * 5_000) + "]"),
        Attempt("huge", "4300 digits", "[1, " + "9" * 5_000 + "]"),
        Attempt("long", "nested", "m" + "[0]" * 3_000),
        Attempt("long", "nested", "(" * 5_000 + "1" + ")" * 5_000),
        Attempt("long", "characters long", "(" * 100_000 + "1" + ")" * 100_000),
        Attempt("long", "nested", "-" * 10_000 + "1"),
        Attempt("nesting", "nested|parenthes", "(" * 250 + "1" + ")" * 250),
        Attempt("nesting", "nested", "[" * 100 + "1" + "]" * 100),
        Attempt("nesting", "nested", "abs(" * 70 + "x" + ")" * 70),
        Attempt("nesting", "nested", "-" * 300 + "x"),
        Attempt("nesting", "nested", "not " * 100 + "x"),
        Attempt("nesting", "nested", "x if x else " * 100 + "x"),
        Attempt("nesting", "nested", "{'a': " * 80 + "1" + "}" * 80),
        Attempt("nesting", "nested", "x" + "[0]" * 100),
        Attempt("odd text", "null|syntax", "1\x00"),
        Attempt("odd text", "null|syntax", "x\x00.__class__"),
        Attempt("odd text", "syntax", "\ud800"),
        Attempt("odd text", "syntax", "x +\udcff 1"),
        Attempt("odd text", "syntax", "\ufeffx"),
        Attempt("odd text", "syntax", "x\u2028+ 1"),
        Attempt("odd text", "syntax", "\x1b[2Jx"),
        Attempt("odd text", "empty", " \t\r\n "),
        Attempt("odd text", "empty", ""),
        Attempt("odd text", "syntax", "# just a comment"),
        Attempt("odd text", "syntax", "x # \n import os"),
    ]


ATTEMPTS = _load_corpus() + _generated()


class Watch:
    """Records any call that would evaluate code, touch files or start processes."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def flag(self, what: str, real: Any = None) -> Any:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            if real is not None and _from_python_machinery(sys._getframe(1)):
                return real(*args, **kwargs)  # a lazy import or a dataclass being built
            self.calls.append(what)
            raise AssertionError(f"{what} called by the engine")

        return refuse


_MACHINERY = ("<frozen importlib", "dataclasses.py", f"collections{os.sep}__init__.py")


def _from_python_machinery(frame: FrameType) -> bool:
    return frame.f_code.co_filename.startswith(_MACHINERY[0]) or frame.f_code.co_filename.endswith(
        _MACHINERY[1:]
    )


@pytest.fixture
def watch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Watch]:
    w = Watch()
    real_compile = builtins.compile

    def ast_only_compile(source: Any, filename: Any, mode: str, flags: int = 0, **kw: Any) -> Any:
        # ast.parse goes through compile(); anything that would build code objects does not.
        if not flags & ast.PyCF_ONLY_AST and not _from_python_machinery(sys._getframe(1)):
            w.calls.append("compile")
            raise AssertionError("compile() to bytecode called by the engine")
        return real_compile(source, filename, mode, flags, **kw)

    monkeypatch.setattr(builtins, "compile", ast_only_compile)
    for name in ("eval", "exec", "open", "breakpoint", "input"):
        monkeypatch.setattr(builtins, name, w.flag(name, getattr(builtins, name)))
    for name in ("system", "popen", "remove", "unlink", "rename", "execv", "fork"):
        monkeypatch.setattr(os, name, w.flag(f"os.{name}"))
    monkeypatch.setattr(subprocess, "Popen", w.flag("subprocess.Popen"))
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    yield w
    assert sorted(os.listdir(work)) == [], "an attempt wrote into the working folder"


def _workbook() -> Workbook:
    wb = Workbook(LIBRARY)
    wb.define("x", "3")
    wb.define("s", "'abc'")
    wb.define("m", "ones((2, 2))")
    return wb


def _try(attempt: Attempt, sentinel: Path, keep: list[Workbook] | None = None) -> tuple[str, str]:
    """Run one attempt; ('refused' | 'bounded' | 'ran', message). `keep` gets the workbook."""
    wb = _workbook()
    if keep is not None:
        keep.append(wb)
    *helpers, evil = attempt.formula.replace("{SENTINEL}", str(sentinel)).split(" ;; ")
    for i, helper in enumerate(helpers):
        wb.define(f"c{i}", helper)
    try:
        wb.define("evil", evil)
    except (FormulaError, DefinitionError) as exc:
        assert "evil" in str(exc), f"message does not name the cell: {exc}"
        assert "evil" not in wb
        return "refused", str(exc)
    wb.run()
    state = wb.state("evil")
    if state.status != Status.ERROR:
        return "ran", repr(wb.value("evil"))[:200]
    assert state.error is not None
    return "bounded", state.error.message


@pytest.mark.parametrize("attempt", ATTEMPTS, ids=[a.id for a in ATTEMPTS])
def test_attempt_is_refused_or_bounded(attempt: Attempt, watch: Watch, tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    outcome, message = _try(attempt, sentinel)
    assert outcome != "ran", f"{attempt.formula[:80]!r} ran: {message}"
    assert re.search(attempt.fragment, message, re.IGNORECASE), message
    assert not sentinel.exists()
    assert watch.calls == []


def test_corpus_counts_per_category(capsys: pytest.CaptureFixture[str]) -> None:
    counts = Counter(a.category for a in ATTEMPTS)
    with capsys.disabled():
        print("\nadversarial formulas per category:", dict(sorted(counts.items())))
    assert len(ATTEMPTS) >= 50
    assert len({a.formula for a in ATTEMPTS}) == len(ATTEMPTS), "duplicate attempts"
    for category in ("dunder", "builtin", "format", "exponent", "allocation", "nesting", "long"):
        assert counts[category] >= 5, category


def test_a_bounded_error_names_the_cell_and_the_span() -> None:
    wb = _workbook()
    wb.define("evil", "1 + zeros(10 ** 12)")
    err = wb.state("evil").error
    wb.run()
    err = wb.state("evil").error
    assert err is not None and "limit" in err.message
    start, end = err.span
    assert wb.cell("evil").source[start:end] == "zeros(10 ** 12)"
    with pytest.raises(Exception, match="cell 'evil'"):
        wb["evil"]


def test_cells_that_failed_leave_the_rest_of_the_sheet_working() -> None:
    wb = _workbook()
    wb.define("bomb", "'%*d' % (10 ** 9, 1)")
    wb.define("fine", "x * 2")
    wb.run()
    assert wb.status("bomb") == Status.ERROR
    assert wb["fine"] == 6


# ---------------------------------------------------------------------------------------
# Fuzzing: the parser returns a Formula or raises FormulaError, nothing else.

_TOKENS = st.sampled_from(
    [
        "x", "s", "m", "1", "2.5", "1e308", "10", "'s'", "b''", "None", "...", "zeros", "x.y",
        "__a", "_", "f", "(", ")", "[", "]", "{", "}", ",", ":", ".", " + ", " * ", " ** ",
        " @ ", " % ", " // ", " if ", " else ", " and ", " not ", " in ", " is ", " lambda ",
        " for ", "=", ":=", "*", "**", "\n", "\\", "#", "'", '"', "f'", "{x}", "\x00", "\ud800",
        "＿＿", "ｅｖａｌ", "import ", "yield ", "await ",
    ]
)  # fmt: skip


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_TOKENS, max_size=16))
def test_fuzz_token_soup_parses_or_raises_formula_error(parts: list[str]) -> None:
    with contextlib.suppress(FormulaError):
        parse_formula("".join(parts), cell="fuzz")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec=None), max_size=60))
def test_fuzz_any_unicode_parses_or_raises_formula_error(text: str) -> None:
    with contextlib.suppress(FormulaError):
        parse_formula(text)


_EXPR_ATOMS = st.sampled_from(
    ["x", "s", "m", "1", "-1", "0", "2.5", "'ab'", "[1, 2]", "(1,)", "{'k': 1}", "inf", "nan"]
)
_EXPR_FUNCS = st.sampled_from(
    ["zeros", "ones", "text", "join", "array", "sum", "len", "softmax", "reshape", "take"]
)
_EXPR_BINOPS = st.sampled_from(["+", "-", "*", "/", "//", "%", "**", "@", "<", "==", "in"])


def _expressions() -> st.SearchStrategy[str]:
    return st.recursive(
        _EXPR_ATOMS,
        lambda inner: st.one_of(
            st.tuples(inner, _EXPR_BINOPS, inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            st.tuples(_EXPR_FUNCS, st.lists(inner, min_size=1, max_size=2)).map(
                lambda t: f"{t[0]}({', '.join(t[1])})"
            ),
            st.tuples(inner, inner).map(lambda t: f"{t[0]}[{t[1]}]"),
            st.lists(inner, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        ),
        max_leaves=8,
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_expressions())
def test_fuzz_valid_expressions_run_or_fail_in_their_cell(text: str) -> None:
    wb = _workbook()
    try:
        wb.define("z", text)
    except (FormulaError, DefinitionError):
        return
    wb.run()  # a failure must stay in the cell: run() itself never raises
    assert wb.status("z") in (Status.FRESH, Status.ERROR)
