"""Formula spans are found exactly where Python's tokenizer puts them, whatever line-break-like
characters (form feed, \\x1c-\\x1e, NEL, U+2028/9, \\x0b) hide in comments and strings, and a
save changes only the edited span. The references are `ast.get_source_segment` and
`tokenize`, never our own offsets.

`python -m pytest tests/engine/test_workbook_spans.py -s` prints the corpus counts.
"""

from __future__ import annotations

import ast
import io
import json
import tokenize
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cellgpt.engine import WorkbookFileError, load_workbook
from cellgpt.engine import workbook_file as wio

CORPUS = Path(__file__).resolve().parents[1] / "adversarial" / "spans_line_breaks.json"
BREAKS = ["\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\x0b"]
NEWLINES = ["\n", "\r\n", "\r"]
SKIP = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}


# ------------------------------------------------------------------ independent references
def ast_formulas(text: str) -> dict[str, str]:
    """Each top-level cell's formula text, as `ast.get_source_segment` finds it."""
    found = {}
    for stmt in ast.parse(text).body:
        if isinstance(stmt, ast.Assign | ast.AnnAssign):
            target = stmt.targets[0] if isinstance(stmt, ast.Assign) else stmt.target
            found[ast.unparse(target)] = ast.get_source_segment(text, stmt.value)
    return found


def ast_span(text: str, name: str) -> tuple[int, int]:
    """Character offsets of a cell's formula, from ast line/col via splitlines-free slicing."""
    segment = ast_formulas(text)[name]
    for stmt in ast.parse(text).body:
        if isinstance(stmt, ast.Assign) and ast.unparse(stmt.targets[0]) == name:
            lines = _tokenizer_lines(text)
            start = sum(len(x) for x in lines[: stmt.value.lineno - 1])
            col = len(lines[stmt.value.lineno - 1].encode()[: stmt.value.col_offset].decode())
            assert text[start + col : start + col + len(segment)] == segment
            return start + col, start + col + len(segment)
    raise AssertionError(name)


def _tokenizer_lines(text: str) -> list[str]:
    # tokenize's own reading of the lines: readline hands out what it splits at.
    return [tok_line for tok_line in io.StringIO(text, newline="")]


def token_strings(text: str) -> list[str]:
    """The significant tokens of a formula (or of a file fragment), comments and breaks out."""
    toks = tokenize.generate_tokens(_universal(text))
    return [t.string for t in toks if t.type not in SKIP and t.type != tokenize.ENDMARKER]


def _universal(text: str) -> Callable[[], str]:
    # The pure-Python tokenize module only knows \n endings: io translates \r and \r\n.
    return io.StringIO(text, newline=None).readline


def tokenize_formulas(text: str) -> dict[str, list[str]]:
    """Each top-level cell's formula tokens, found with tokenize alone: what follows the `=`
    at bracket depth 0 up to the end of the logical line, outer brackets removed."""
    found: dict[str, list[str]] = {}
    line: list[tokenize.TokenInfo] = []
    for tok in tokenize.generate_tokens(_universal(text)):
        ends_statement = tok.type == tokenize.OP and tok.string == ";"
        if ends_statement or tok.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
            _cell_of(line, found)
            line = []
        elif tok.type not in SKIP:
            line.append(tok)
    return found


def _cell_of(line: list[tokenize.TokenInfo], found: dict[str, list[str]]) -> None:
    depth = 0
    for i, tok in enumerate(line):
        depth += tok.string in "([{" and tok.type == tokenize.OP
        depth -= tok.string in ")]}" and tok.type == tokenize.OP
        if tok.type == tokenize.OP and tok.string == "=" and depth == 0:
            name = "".join(t.string for t in line[:i]).split(":")[0]
            found[name] = _unwrap([t.string for t in line[i + 1 :]])
            return


def _unwrap(tokens: list[str]) -> list[str]:
    while tokens and tokens[0] == "(" and _closes_at_end(tokens):
        tokens = tokens[1:-1]
    return tokens


def _closes_at_end(tokens: list[str]) -> bool:
    depth = 0
    for i, tok in enumerate(tokens):
        depth += tok in "([{"
        depth -= tok in ")]}"
        if depth == 0:
            return i == len(tokens) - 1
    return False


# ------------------------------------------------------------------ hostile workbook texts
_junk = st.text(alphabet=st.sampled_from([*"ab =(){}'\"x9#", *BREAKS]), max_size=12)
_plain = st.text(alphabet=st.sampled_from([*"ab x=9#()", *BREAKS]), max_size=10)


@st.composite
def workbook_texts(draw: st.DrawFn) -> str:
    parts: list[str] = []
    count = draw(st.integers(1, 6))
    for i in range(count):
        nl = draw(st.sampled_from(NEWLINES))
        ff = draw(st.sampled_from(["", "\x0c"]))  # a form feed may start a line
        if draw(st.booleans()):
            parts.append(f"#{draw(_junk)} c{i} = 999{nl}")  # a comment that looks like code
        value = draw(_values(i))
        comment = f"  #{draw(_junk)}" if draw(st.booleans()) else ""
        sep = nl if draw(st.integers(0, 4)) else "; "  # sometimes two cells on one line
        parts.append(f"{ff}c{i} = {value}{comment}{nl if comment else sep}")
        if draw(st.booleans()):
            parts.append(f"'''{draw(_plain)}{nl}{draw(_plain)}'''{nl}")
    return "".join(parts)


def _values(i: int) -> st.SearchStrategy[str]:
    refs = [f"c{j}" for j in range(i)] or ["1"]
    literal = _plain.map(lambda s: repr(s))
    expr = st.tuples(st.sampled_from(refs), literal).map(
        lambda p: f"len({p[1]}) + 0 * len(text({p[0]}))"
    )
    multi = st.tuples(literal, _junk, st.sampled_from(NEWLINES)).map(
        lambda p: f"(  # {p[1]}{p[2]}    {p[0]}  # {p[1]}{p[2]})"
    )
    return st.one_of(literal, expr, multi, st.integers(0, 99).map(str))


def engine_formulas(text: str, tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "wb.py"
    path.write_bytes(text.encode())
    wb = load_workbook(path)
    return {name: wb.cell(name).source for name in wb.cells()}


def assert_spans_match_references(text: str, tmp_path: Path) -> None:
    engine = engine_formulas(text, tmp_path)
    assert engine == ast_formulas(text)
    assert {n: token_strings(f) for n, f in engine.items()} == tokenize_formulas(text)
    parsed = wio.parse_text(text)
    for name, entry in parsed.entries.items():
        start, end = entry.value_span
        assert text[start:end] == entry.formula and (start, end) == ast_span(text, name)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(workbook_texts())
def test_spans_equal_the_tokenizers(tmp_path: Path, text: str) -> None:
    assert_spans_match_references(text, tmp_path)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(workbook_texts(), st.data())
def test_an_edit_changes_only_its_span(tmp_path: Path, text: str, data: st.DataObject) -> None:
    path = tmp_path / "wb.py"
    path.write_bytes(text.encode())
    wb = load_workbook(path)
    name = data.draw(st.sampled_from(sorted(ast_formulas(text))))
    new = data.draw(st.sampled_from(["42", "'a\x0cb\u2028c'", "(1 +\n 2)", "len('\x85')"]))
    wb.set_formula(name, new)
    wb.save()
    start, end = ast_span(text, name)
    after = path.read_bytes()
    head, tail = text[:start].encode(), text[end:].encode()
    assert after.startswith(head) and after.endswith(tail)
    middle = after[len(head) : len(after) - len(tail)].decode()
    assert ast.dump(ast.parse(f"(\n{middle}\n)", mode="eval")) == ast.dump(
        ast.parse(f"(\n{new}\n)", mode="eval")
    )
    written = path.read_bytes().decode()
    assert ast_formulas(written).keys() == ast_formulas(text).keys()
    assert engine_formulas(written, tmp_path)[name] == ast_formulas(written)[name]


# ------------------------------------------------------------------ concrete cases
@pytest.mark.parametrize("newline", NEWLINES)
def test_line_endings_load_and_are_kept(tmp_path: Path, newline: str) -> None:
    text = "a = 1  # x\x0c b = 2\nb = a + 1\n".replace("\n", newline)
    path = tmp_path / "wb.py"
    path.write_bytes(text.encode())
    wb = load_workbook(path)
    assert wb["b"] == 2
    wb.set_formula("b", "a + 5")
    wb.define("c", "b")
    wb.save()
    assert path.read_bytes() == text.replace("a + 1", "a + 5").encode() + f"c = b{newline}".encode()


def test_deleting_a_cell_keeps_its_neighbour_on_the_same_line(tmp_path: Path) -> None:
    path = tmp_path / "wb.py"
    path.write_bytes(b"a = 1; b = 2  # both\nc = b\n")
    wb = load_workbook(path)
    wb.remove("a")
    wb.save()
    assert path.read_bytes() == b"b = 2  # both\nc = b\n"


def test_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = json.loads(CORPUS.read_text(encoding="utf-8"))
    outcomes: Counter[str] = Counter()
    for case in cases:
        text = case["text"]
        try:
            ast.parse(text)
        except SyntaxError:
            with pytest.raises(WorkbookFileError):
                engine_formulas(text, tmp_path)
            outcomes["refused"] += 1
            continue
        assert_spans_match_references(text, tmp_path)
        assert engine_formulas(text, tmp_path) == case["cells"], case["why"]
        outcomes["correct"] += 1
    with capsys.disabled():
        print(f"\nspans corpus: {len(cases)} tried, {dict(outcomes)}")
    assert sum(outcomes.values()) == len(cases) >= 20
