"""Workbook files others share: broken, hostile or half-written files give one clear error
with `path:line:col`, are never modified by a failed load, and a writer killed mid-save leaves
the previous file intact. Complements tests/engine/test_workbook_files.py.

`python -m pytest tests/engine/test_bad_workbooks.py -s` prints the counts per category.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import random
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from cellgpt.engine import Status, WorkbookFileError, load_workbook

REPO = Path(__file__).resolve().parents[2]

GOOD = '''"""A small workbook."""
n = 2
x0 = 1.5
"""The starting value."""

with block("h", count=n, input=x0, output="out"):
    double: cell(alias="h{i}.twice") = prev * 2
    out = (
        double  # keep this comment
        + i
    )

final: cell(rows="labels") = h.out + 1
labels = ["only"]
'''


@dataclass(frozen=True)
class BadFile:
    category: str
    data: bytes
    fragment: str  # must appear in the error message
    line: int | None  # the line the error must point at (None: the whole file)

    @property
    def id(self) -> str:
        return f"{self.category}:{self.data[:40]!r}"


def _bad(category: str, text: str, fragment: str, line: int | None) -> BadFile:
    return BadFile(category, textwrap.dedent(text).encode("utf-8"), fragment, line)


BLOCK = 'n = 2\nx0 = 1\nwith block("a", count=n, input=x0, output="o"):\n'

BAD_FILES: list[BadFile] = [
    # --- binary garbage and wrong encodings
    BadFile("encoding", bytes(random.Random(0).randrange(256) for _ in range(4096)), "", None),
    BadFile("encoding", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary data", 3),
    BadFile("encoding", gzip.compress(GOOD.encode()), "", None),
    BadFile("encoding", GOOD.encode("utf-16"), "binary data", 1),
    BadFile("encoding", GOOD.encode("utf-32"), "binary data", 1),
    BadFile("encoding", 'x = 1\ny = "caf\xe9"\n'.encode("latin-1"), "UTF-8", 2),
    BadFile("encoding", 'x = 1\n\ny = "\u201cquoted\u201d"\n'.encode("cp1252"), "UTF-8", 3),
    BadFile("encoding", b"x = 1\ny = '\xed\xa0\x80'\n", "UTF-8", 2),  # an encoded surrogate
    BadFile("encoding", b"x = 1\ny = '\xc0\xaf'\n", "UTF-8", 2),  # an overlong slash
    BadFile("encoding", b"x = 1\ny = 2\x00\n", "binary data", 2),
    BadFile("encoding", b"\xef\xbb\xbf\xef\xbb\xbfx = 1\n", "", 1),  # a doubled BOM
    BadFile("encoding", b"x = 1\ry = x +\r", "syntax error", 2),  # old Mac line ends
    # --- truncated files (more cut points in test_every_truncation_...)
    _bad("truncated", GOOD[: GOOD.index("+ i")], "syntax error", None),
    _bad("truncated", GOOD[: GOOD.index('"only"')], "syntax error", None),
    _bad("truncated", GOOD[: GOOD.index("output=")], "syntax error", None),
    # --- duplicate names
    _bad("duplicate", "x = 1\ny = 2\nx = 3\n", "defined twice (first at line 1)", 3),
    _bad("duplicate", BLOCK + "    o = prev\n    o = prev + 1\n", "defined twice in block", 5),
    _bad(
        "duplicate",
        BLOCK
        + "    o = prev\n"
        + 'with block("a", count=n, input=x0, output="o"):\n    o = prev\n',
        "block 'a' is defined twice",
        5,
    ),
    _bad("duplicate", BLOCK + '    o: cell(alias="n") = prev\n', "alias 'n' is already a name", 3),
    _bad("duplicate", 'x: cell(alias="y") = 1\ny = 2\n', "alias 'y' is already a name", 2),
    _bad("hints", 'x = 1\ny: cell(title="' + "T" * 81 + '") = x\n', "at most 80", 2),
    _bad("hints", 'y: cell(title="a\\nb") = 1\n', "section title is one line", 1),
    _bad("hints", "y: cell(title=3) = 1\n", "section title", 1),
    _bad("duplicate", BLOCK + '    o: cell(alias="same") = prev\n', "alias 'same'", 3),
    # --- unknown names and functions
    _bad("unknown", "x = 1\ny = nope(x)\n", "unknown function 'nope'", 2),
    _bad("unknown", "x = 1\ny = x + zz\n", "unknown name 'zz'", 2),
    _bad("unknown", "x = 1\ny = x.T\n", "attribute access is not allowed", 2),
    _bad("unknown", BLOCK + "    o = nope(prev)\n", "unknown function 'nope'", 4),
    _bad("unknown", BLOCK + "    o = prev + zz\n", "zz", 4),
    _bad(
        "unknown", 'x0 = 1\nwith block("a", count=m, input=x0, output="o"):\n    o = prev\n', "m", 2
    ),
    _bad(
        "unknown", 'n = 1\nwith block("a", count=n, input=q, output="o"):\n    o = prev\n', "q", 2
    ),
    _bad("unknown", BLOCK + "    p = prev\n", "output 'o' is not one of its cells", 3),
    # --- cycles, also across templates
    _bad("cycle", "a = a + 1\n", "cycle", 1),
    _bad("cycle", "a = b\nb = c\nc = a\n", "cycle", 1),
    _bad(
        "cycle",
        BLOCK + "    o = prev + b.out\n" + 'with block("b", count=n, input=x0, output="o"):\n'
        "    o = prev + a.out\n",
        "b.out",
        4,
    ),
    _bad("cycle", BLOCK + "    o = prev + a1.o\n", "a1.o", 4),
    _bad(
        "cycle",
        'n = a.out\nx0 = 1\nwith block("a", count=n, input=x0, output="o"):\n    o = prev\n',
        "a.out",
        1,
    ),
    _bad(
        "cycle",
        'n = 2\nx0 = a.out\nwith block("a", count=n, input=x0, output="o"):\n    o = prev\n',
        "a.out",
        2,
    ),
    _bad("cycle", BLOCK + "    o = prev + 1\na1.o = a1.o + 1\n", "cycle", 5),
    _bad("cycle", BLOCK + "    o = prev + 1\na0.o = a1.o\n", "a1.o", 5),
    # --- hostile content: never executed
    _bad("hostile", "import os\nx = 1\n", "import", 1),
    _bad("hostile", "x = __import__('os').system('touch pwned')\n", "double underscores", 1),
    _bad("hostile", BLOCK + "    o = __import__('os')\n", "double underscores", 3),
    _bad("hostile", "@decorator\ndef f():\n    return 1\n", "decorators are not allowed", 1),
    # --- function cells: one `return <formula>`, parameters only, no recursion
    _bad("function", "def f(x):\n    y = x\n    return y\n", "exactly one `return", 2),
    _bad("function", "def f(x):\n    for i in x: pass\n    return x\n", "not a loop", 2),
    _bad("function", "def f(x):\n    import os\n    return x\n", "not an import", 2),
    _bad("function", "def f(x):\n    pass\n", "exactly one `return", 2),
    _bad("function", "def f(x):\n    return\n", "bare return", 2),
    _bad("function", "x = 1\ndef f(y): return y + x\n", "reads the cell 'x'", 2),
    _bad("function", "def f(y): return y + x\nx = 1\n", "reads the cell 'x'", 1),
    _bad("function", "def f(y): return f(y)\n", "recursion is not allowed", 1),
    _bad("function", "def f(y): return g(y)\ndef g(y): return f(y) + 1\n", "f -> g", 1),
    _bad("function", "def relu(y): return y\n", "library function", 1),
    _bad("function", "def f(y): return y\nf = 2\n", "defined twice", 2),
    _bad("function", "def f(y): return y\ndef f(z): return z\n", "defined twice", 2),
    _bad("function", "def f(y=zeros(9)): return y\n", "must be a constant", 1),
    _bad("function", "def f(*y): return y\n", "only plain parameters", 1),
    _bad("function", "def f(y, *, z): return y\n", "only plain parameters", 1),
    _bad("function", "def f(y): return lambda: y\n", "lambda is not allowed", 1),
    _bad("function", "def f(y): return y.__class__\n", "double underscores", 1),
    _bad("function", "def f(y): return y.T\n", "attribute access", 1),
    _bad("function", "def f(y, y): return y\n", "named twice", 1),
    _bad("function", "def f(zeros): return zeros\n", "would hide", 1),
    _bad("function", "def f(y) -> int: return y\n", "annotations", 1),
    _bad("function", "def f(y): return nope(y)\n", "unknown function 'nope'", 1),
    _bad("function", BLOCK + "    def f(y): return y\n", "function definition", 4),
    _bad("hostile", "class A:\n    x = 1\n", "class definition", 1),
    _bad("hostile", "async def f():\n    pass\n", "function definition", 1),
    _bad("hostile", "with open('pwned', 'w') as f:\n    x = 1\n", "block", 1),
    _bad(
        "hostile",
        'n = 1\nwith block("a", count=n, input=n, output="o") as b:\n    o = 1\n',
        "block",
        2,
    ),
    _bad(
        "hostile",
        'n = 1\nwith block(__import__("os"), count=n, input=n, output="o"):\n    o = 1\n',
        "",
        2,
    ),
    _bad("hostile", BLOCK + '    o: cell(alias="{i:>999999999}") = prev\n', "alias", 4),
    _bad("hostile", BLOCK + '    o: cell(alias="{i.__class__}") = prev\n', "alias", 4),
    _bad("hostile", "x: cell(rows=open('pwned')) = 1\n", "hint values", 1),
    _bad("hostile", "x: cell(**{'a': 1}) = 1\n", "plain keyword", 1),
    _bad("hostile", "x = f'{1}'\n", "f-string", 1),
    _bad("hostile", "x = (lambda: 1)\n", "lambda", 1),
    _bad("hostile", "x = 1\nexec('import os')\n", "bare expression", 2),
    _bad("hostile", "x = 1\ndel x\n", "Delete", 2),
    _bad("hostile", "x = 1\nglobal x\n", "Global", 2),
    _bad("hostile", "x = 1\nx += 1\n", "augmented assignment", 2),
    _bad("hostile", "x = y = 1\n", "one cell per line", 1),
    _bad("hostile", "x.__class__ = 1\n", "cell name", 1),
    _bad("hostile", "x = " + "(" * 300 + "1" + ")" * 300 + "\n", "", 1),
    _bad("hostile", "x = " + "-" * 100_000 + "1\n", "", None),
    _bad("hostile", '"""doc"""\n"""a second docstring"""\n', "docstring must follow", 2),
]


def digest(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def _load(path: Path) -> WorkbookFileError | None:
    try:
        load_workbook(path)
    except WorkbookFileError as exc:
        return exc
    return None


@pytest.mark.parametrize("bad", BAD_FILES, ids=[b.id for b in BAD_FILES])
def test_bad_file_gives_a_located_error_and_is_untouched(bad: BadFile, tmp_path: Path) -> None:
    path = tmp_path / "wb.py"
    path.write_bytes(bad.data)
    before = digest(path)
    err = _load(path)
    assert err is not None, "a broken file loaded"
    message = str(err)
    assert message.startswith(str(path)), message
    assert bad.fragment in message, message
    if bad.line is not None:
        assert err.line == bad.line, message
        assert message.startswith(f"{path}:{bad.line}:"), message
    assert "Traceback" not in message and len(message) < 500, message
    assert digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wb.py"]


def test_counts_per_category(capsys: pytest.CaptureFixture[str]) -> None:
    counts = Counter(b.category for b in BAD_FILES)
    counts["truncated"] += len(_cut_points())
    counts["file system"] += 6
    with capsys.disabled():
        print("\nbad workbook files per category:", dict(sorted(counts.items())))
    assert sum(counts.values()) >= 60


def _cut_points() -> list[int]:
    # Every line end and a point inside every line.
    points = set()
    for i, ch in enumerate(GOOD):
        if ch == "\n":
            points |= {i, i + 1, max(i - 3, 0)}
    return sorted(p for p in points if 0 < p < len(GOOD))


def test_every_truncation_loads_or_fails_cleanly(tmp_path: Path) -> None:
    outcomes = Counter()
    for cut in _cut_points():
        path = tmp_path / f"cut{cut}.py"
        path.write_bytes(GOOD[:cut].encode())
        before = digest(path)
        try:
            wb = load_workbook(path)
        except WorkbookFileError as exc:
            assert str(exc).startswith(str(path)), exc
            outcomes["error"] += 1
        else:
            wb.run()  # a file cut after a whole statement is a smaller valid workbook
            assert all(wb.status(n) != Status.RUNNING for n in wb.cells())
            outcomes["loaded"] += 1
        assert digest(path) == before
    assert outcomes["error"] > 10 and outcomes["loaded"] > 3


def test_file_system_problems(tmp_path: Path) -> None:
    with pytest.raises(WorkbookFileError, match="cannot read"):
        load_workbook(tmp_path / "missing.py")
    with pytest.raises(WorkbookFileError, match="is a folder, not a regular file"):
        load_workbook(tmp_path)
    fifo = tmp_path / "fifo.py"
    os.mkfifo(fifo)  # open() would wait forever for a writer
    with pytest.raises(WorkbookFileError, match="is a pipe"):
        load_workbook(fifo)
    with pytest.raises(WorkbookFileError, match="is a device"):
        load_workbook("/dev/zero")  # never ends
    huge = tmp_path / "huge.py"
    with open(huge, "wb") as fh:
        fh.truncate(17 * 1024 * 1024)  # sparse: costs no disk
    with pytest.raises(WorkbookFileError, match="the limit is"):
        load_workbook(huge)
    loop = tmp_path / "loop.py"
    loop.symlink_to(loop)
    with pytest.raises(WorkbookFileError, match="cannot read"):
        load_workbook(loop)


def test_a_count_out_of_range_stays_in_its_cell(tmp_path: Path) -> None:
    path = tmp_path / "wb.py"
    path.write_text(BLOCK.replace("n = 2", "n = 10**9") + "    o = prev + 1\ny = x0 + 1\n")
    wb = load_workbook(path)
    wb.run()
    assert wb.status("n") == Status.ERROR and "whole number of blocks" in str(wb.state("n").error)
    assert wb.status("a.out") == Status.BLOCKED
    assert wb["y"] == 2


def test_saving_where_it_cannot_write_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "wb.py"
    path.write_text(GOOD)
    wb = load_workbook(path)
    for target in (tmp_path / "no" / "such" / "dir.py", tmp_path):
        with pytest.raises(WorkbookFileError, match="cannot write") as info:
            wb.save(str(target))
        assert ".tmp" not in str(info.value)
    assert path.read_text() == GOOD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wb.py"]


# ---------------------------------------------------------------------------------------
# A writer killed mid-save (SIGKILL: no cleanup runs) leaves the previous file intact.

KILLED_WRITER = """
import os, sys, time
from cellgpt.engine import load_workbook, workbook_save as wio

path, stage = sys.argv[1], sys.argv[2]
wb = load_workbook(path)
wb.set("x0", 9.0)
wb.set_formula("final", "h.out * 1000")
real_fdopen, real_replace = os.fdopen, os.replace

class HalfWriter:
    def __init__(self, fh):
        self.fh = fh
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return self.fh.__exit__(*exc)
    def write(self, data):
        self.fh.write(data[: len(data) // 2])
        self.fh.flush()
        print("paused", flush=True)
        time.sleep(60)
    def __getattr__(self, name):
        return getattr(self.fh, name)

def paused_replace(src, dst):
    print("paused", flush=True)
    time.sleep(60)

if stage == "write":
    wio.os.fdopen = lambda fd, mode: HalfWriter(real_fdopen(fd, mode))
else:
    wio.os.replace = paused_replace
wb.save()
print("saved", flush=True)
"""


@pytest.mark.parametrize("stage", ["write", "replace"])
def test_writer_killed_mid_save_leaves_the_previous_file(tmp_path: Path, stage: str) -> None:
    path = tmp_path / "wb.py"
    path.write_text(GOOD)
    before = digest(path)
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(path), stage],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "paused"
        temps = [p for p in tmp_path.iterdir() if p.name != "wb.py"]
        assert len(temps) == 1 and temps[0].stat().st_size > 0  # the new text, half written
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert digest(path) == before
    wb = load_workbook(path)  # still the previous, complete workbook
    assert wb["final"] == 8.0
    # The orphaned temp file is hidden and never mistaken for the workbook; a later save works.
    wb.set("x0", 2.0)
    wb.save()
    assert load_workbook(path)["final"] == 2 * (2 * 2.0) + 1 + 1
