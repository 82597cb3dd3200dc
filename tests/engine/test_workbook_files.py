"""Workbook files: never executed, byte-exact round trips, minimal edits, atomic saves and
clear errors with line and column."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from cellgpt import full_library
from cellgpt.engine import Status, WorkbookFileError, load_workbook
from cellgpt.engine import workbook_save as wio

WORKBOOKS = Path(__file__).resolve().parents[2] / "workbooks"

SAMPLE = '''"""A sample workbook."""
# a comment that must survive
n = 2   # number of blocks
x0 = 1.5
"""The starting value."""

with block("h", count=n, input=x0, output="out"):
    """Each block doubles and adds its index."""
    double: cell(alias="h{i}.step1") = prev * 2
    out = (
        double  # keep this comment
        + i
    )

final: cell(rows="labels") = h.out + 1
labels = ["only"]
'''


def write(tmp_path: Path, text: str, name: str = "wb.py", newline: str = "\n") -> Path:
    path = tmp_path / name
    path.write_bytes(text.replace("\n", newline).encode("utf-8"))
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sample_loads_and_runs(tmp_path):
    wb = load_workbook(write(tmp_path, SAMPLE))
    assert wb.doc == "A sample workbook."
    assert wb.cell("x0").doc == "The starting value."
    # x0 = 1.5 -> h0: 3 + 0 -> h1: 6 + 1 -> final 8
    assert wb["final"] == 8.0
    assert wb["h1.step1"] == 6.0
    assert wb.cell("final").hints == {"rows": "labels"}


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_load_then_save_is_byte_identical(tmp_path, newline):
    path = write(tmp_path, SAMPLE, newline=newline)
    before = path.read_bytes()
    wb = load_workbook(path)
    wb.run()
    wb.save()
    assert path.read_bytes() == before


def test_example_workbooks_round_trip(tmp_path):
    for src in WORKBOOKS.glob("*.py"):
        path = tmp_path / src.name
        path.write_bytes(src.read_bytes())
        # The GPT-2 workbook calls domain functions, so load with the full library.
        wb = load_workbook(path, full_library())
        wb.save()
        assert path.read_bytes() == src.read_bytes(), src.name


def test_bom_is_kept(tmp_path):
    path = tmp_path / "bom.py"
    path.write_bytes(b"\xef\xbb\xbf" + SAMPLE.encode())
    wb = load_workbook(path)
    wb.set("x0", 2.0)
    wb.save()
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    assert load_workbook(path)["final"] == 2 * (2 * 2.0) + 1 + 1


def test_editing_one_formula_rewrites_only_its_span(tmp_path):
    path = write(tmp_path, SAMPLE)
    wb = load_workbook(path)
    wb.set_formula("final", "h.out * 100")
    wb.set("x0", 2.0)
    wb.save()
    expected = SAMPLE.replace("= h.out + 1", "= h.out * 100").replace("x0 = 1.5", "x0 = 2.0")
    assert path.read_text() == expected
    assert load_workbook(path)["final"] == 900.0


def test_multiline_formula_edit_stays_inside_its_parentheses(tmp_path):
    path = write(tmp_path, SAMPLE)
    wb = load_workbook(path)
    wb.set_formula("final", "(h.out\n + 2)")
    wb.save()
    again = load_workbook(path)
    assert again["final"] == 9.0


def test_instance_override_is_appended_and_removed_again(tmp_path):
    path = write(tmp_path, SAMPLE)
    wb = load_workbook(path)
    wb.set_formula("h1.double", "h0.out * 0")
    wb.save()
    text = path.read_text()
    assert text.startswith(SAMPLE)
    assert text.endswith("h1.double = h0.out * 0\n")
    wb2 = load_workbook(path)
    assert wb2["final"] == 0 + 1 + 1
    assert wb2.overrides() == {"h1.double": "h0.out * 0"}
    wb2.reset_formula("h1.double")
    wb2.save()
    assert path.read_text() == SAMPLE


def test_new_cells_are_appended(tmp_path):
    path = write(tmp_path, SAMPLE)
    wb = load_workbook(path)
    wb.define("extra", "final * 3", doc="Three times the result.")
    wb.save()
    assert path.read_text() == SAMPLE + 'extra = final * 3\n"""Three times the result."""\n'
    assert load_workbook(path)["extra"] == 24.0


def test_workbook_built_in_code_saves_to_a_loadable_file(tmp_path):
    from tests.engine.test_workbook import chain_workbook

    wb = chain_workbook(3)
    path = tmp_path / "built.py"
    wb.save(str(path))
    again = load_workbook(path)
    assert again["final"] == wb["final"] == 48.5
    assert again["blocks.2.hook_out"] == 48.0


def test_crash_during_save_leaves_previous_file_intact(tmp_path, monkeypatch):
    path = write(tmp_path, SAMPLE)
    before = digest(path)
    wb = load_workbook(path)
    wb.set_formula("final", "h.out * 7")

    def killed(*args, **kwargs):
        raise OSError("killed mid-save")

    monkeypatch.setattr(wio.os, "replace", killed)
    with pytest.raises(OSError, match="killed"):
        wb.save()
    assert digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wb.py"]  # no temp file left


def test_crash_while_writing_leaves_previous_file_intact(tmp_path, monkeypatch):
    path = write(tmp_path, SAMPLE)
    before = digest(path)
    wb = load_workbook(path)
    wb.set("x0", 9.0)
    real_fsync = os.fsync

    def dying_fsync(fd):
        real_fsync(fd)
        raise KeyboardInterrupt  # the writer is interrupted after writing part of the data

    monkeypatch.setattr(wio.os, "fsync", dying_fsync)
    with pytest.raises(KeyboardInterrupt):
        wb.save()
    assert digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wb.py"]


BAD_FILES = [
    ("x = (1 +\n", 1, "syntax error"),
    ("x = 1\ny = x +* 2\n", 2, "syntax error"),
    ("import os\n", 1, "import"),
    ("def f():\n    x = 1\n    return x\n", 2, "exactly one `return"),
    ("class C:\n    pass\n", 1, "class definition"),
    ("x = 1\nx = 2\n", 2, "defined twice (first at line 1)"),
    ("x = 1\ny = nope(x)\n", 2, "unknown function 'nope'"),
    ("x = 1\ny = x + z\n", 2, "unknown name 'z'"),
    ("a = b\nb = a\n", 1, "cycle"),
    ("x = __import__('os')\n", 1, "double underscores"),
    ("print('hi')\n", 1, "bare expression"),
    ("x, y = 1, 2\n", 1, "cell name"),
    ("x: int = 3\n", 1, "cell(key=value"),
    ("n = 1\nwith open('f') as fh:\n    x = 1\n", 2, "block"),
    (
        "n = 1\nwith block('h', count=n, input=n, output='o'):\n    o = prev + missing\n",
        3,  # the line of the cell inside the block, not of the `with`
        "missing",
    ),
    ("n = 1\nwith block('h', count=n, input=n):\n    o = prev\n", 2, "missing output"),
    (
        "n = 1\nwith block('h', count=n, input=n, output='o'):\n    o = prev\nq = h.out\nn2 = q\nwith block('g', count=n, input=q, output='o'):\n    o = prev + h.out\n",
        None,
        None,
    ),
]


@pytest.mark.parametrize(("text", "line", "fragment"), BAD_FILES)
def test_bad_files_give_line_and_column_and_are_not_modified(tmp_path, text, line, fragment):
    path = write(tmp_path, text)
    before = digest(path)
    if fragment is None:  # valid: a second block reading the first one's output
        wb = load_workbook(path)
        assert wb.run("g.out") == 2  # g0.o = q + h.out = 1 + 1
        return
    with pytest.raises(WorkbookFileError) as info:
        load_workbook(path)
    err = info.value
    assert fragment in str(err)
    assert err.line == line
    assert str(err).startswith(f"{path}:{line}:")
    assert digest(path) == before


def test_binary_garbage_and_bad_encoding(tmp_path):
    garbage = tmp_path / "garbage.py"
    garbage.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(WorkbookFileError, match="binary data"):
        load_workbook(garbage)
    latin = tmp_path / "latin.py"
    latin.write_bytes('x = 1\ny = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(WorkbookFileError) as info:
        load_workbook(latin)
    assert info.value.line == 2 and "UTF-8" in str(info.value)
    with pytest.raises(WorkbookFileError, match="cannot read"):
        load_workbook(tmp_path / "missing.py")


def test_truncated_file(tmp_path):
    text = SAMPLE[: SAMPLE.index("+ i") + 2]
    path = write(tmp_path, text)
    with pytest.raises(WorkbookFileError, match="syntax error"):
        load_workbook(path)


def test_loading_never_executes_anything(tmp_path):
    marker = tmp_path / "pwned"
    text = f"x = 1\n__import__('os').system('touch {marker}')\n"
    path = write(tmp_path, text)
    with pytest.raises(WorkbookFileError):
        load_workbook(path)
    assert not marker.exists()


def test_runtime_errors_in_a_file_stay_in_their_cell(tmp_path):
    path = write(tmp_path, "a = 1\nb = a / 0\nc = b + 1\nd = a + 1\n")
    wb = load_workbook(path)
    wb.run()
    assert wb.status("b") == Status.ERROR and wb.status("c") == Status.BLOCKED
    assert wb["d"] == 2


def test_inputs_given_at_open(tmp_path):
    path = write(tmp_path, SAMPLE)
    wb = load_workbook(path, inputs={"n": 3, "x0": 1.0})
    assert wb["final"] == ((2 * 2 + 1) * 2 + 2) + 1
    with pytest.raises(WorkbookFileError, match="no input cell named 'nope'"):
        load_workbook(path, inputs={"nope": 1})


def test_error_inside_a_block_points_at_the_cell_line(tmp_path):
    path = tmp_path / "bad_block.py"
    path.write_text(
        'n = 2\nx0 = 1\nwith block("a", count=n, input=x0, output="o"):\n'
        "    m = prev * 2\n    o = m + nothing_here\n"
    )
    with pytest.raises(WorkbookFileError) as info:
        load_workbook(path)
    assert (info.value.line, info.value.col) == (5, 5)
    assert "cell 'a.o': unknown name 'nothing_here'" in str(info.value)


BLOCK_READER = """x0 = 1
n = 4
with block("h", count=n, input=x0, output="out"):
    a = prev * 2
    out = a + 1
y = h3.a + 0
z = h.out
"""


def test_a_top_level_cell_reads_a_block_instance_cell(tmp_path):
    wb = load_workbook(write(tmp_path, BLOCK_READER))
    # h0: a=2 out=3; h1: a=6 out=7; h2: a=14 out=15; h3: a=30 out=31
    assert wb["y"] == 30 and wb["z"] == 31
    assert wb.precedents("y") == ("h3.a",)


@pytest.mark.parametrize("ref", ["h99.a", "h4.a", "h3.nothing"])
def test_reading_a_missing_instance_is_a_located_error(tmp_path, ref):
    path = write(tmp_path, BLOCK_READER.replace("h3.a", ref))
    with pytest.raises(WorkbookFileError) as info:
        load_workbook(path)
    assert (info.value.line, info.value.col) == (6, 1)
    assert f"unknown name {ref!r}" in str(info.value) and str(info.value).startswith(str(path))
