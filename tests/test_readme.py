"""The README's examples are tests. Every fenced block is one of:

- `cellgpt` commands (a plain, `sh` or `bash` block): each line runs in a real process and must
  exit 0 with output of the right shape (JSON parses, CSV has rows of one width, a file given
  with `--out` or to `export` is written and readable, otherwise something is printed);
  `cellgpt tui` lines are interactive, so they are parsed and their workbook opened instead;
- `console`: `$ command` lines followed by exactly what it prints (compared line by line);
- `pycon`: a doctest; `python`: a script, executed;
- marked `<!-- not run: why -->` on the line before it (counted, the reason required);
- a listing (file names, layouts): no line in it is a command.

A block with any other command line fails, so nothing is skipped silently. Commands run in a
scratch folder that links the clone's top-level files (README examples run from the clone's
root), with the session's CELLGPT_HOME (tests/conftest.py), so the weights cache is built once.
"""

from __future__ import annotations

import csv
import doctest
import io
import json
import re
import shlex
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(.*?)\s*-->$")
COMMAND_WORDS = ("cellgpt", "python", "python3", "pip", "bash", "sh", "uv")
SHELL_LANGS = ("", "sh", "bash", "shell")
# The README has at least this many blocks the test runs, and this many commands in them.
MIN_RUN_BLOCKS = 6
MIN_COMMANDS = 20
TIMEOUT = 180  # seconds per command


@dataclass
class Block:
    lang: str
    lines: list[str]
    line: int  # 1-based line number of the opening fence
    not_run: str | None  # the reason given by a `<!-- not run: ... -->` marker

    @property
    def id(self) -> str:
        return f"README.md:{self.line}:{self.lang or 'plain'}"


def blocks(text: str) -> list[Block]:
    found: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        before = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = NOT_RUN.match(before)
        found.append(Block(fence.group(1), lines[i + 1 : end], i + 1, marker and marker.group(1)))
        i = end + 1
    return found


def commands(block: Block) -> list[str]:
    """The block's lines with `\\` continuations joined."""
    out: list[str] = []
    pending = ""
    for raw in block.lines:
        line = pending + raw
        if line.rstrip().endswith("\\"):
            pending = line.rstrip()[:-1] + " "
            continue
        pending = ""
        if line.strip():
            out.append(line.strip())
    return out


def is_command(line: str) -> bool:
    return line.split(maxsplit=1)[0] in COMMAND_WORDS


def kind(block: Block) -> str:
    if block.not_run is not None:
        return "not run"
    if block.lang in ("pycon", "python", "console"):
        return block.lang
    if block.lang in SHELL_LANGS and any(is_command(c) for c in commands(block)):
        return "commands"
    return "listing"


ALL = blocks(README.read_text(encoding="utf-8"))
RUN = [b for b in ALL if kind(b) not in ("not run", "listing")]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder that looks like the clone's root (links to its top-level entries) so relative
    paths in the README resolve, while files the examples write land here."""
    folder = tmp_path_factory.mktemp("readme")
    for entry in REPO.iterdir():
        if not entry.name.startswith("."):
            (folder / entry.name).symlink_to(entry)
    return folder


def _run(line: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    argv = shlex.split(line, comments=True)
    assert argv[0] == "cellgpt", f"only cellgpt commands run here: {line!r}"
    return subprocess.run(
        [sys.executable, "-m", "cellgpt", *argv[1:]],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def _option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv[:-1] else None


def check_shape(line: str, proc: subprocess.CompletedProcess[str], cwd: Path) -> None:
    """What the command's output must look like, from what it was asked for."""
    argv = shlex.split(line, comments=True)
    assert proc.returncode == 0, f"{line}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    out_file = _option(argv, "--out")
    if argv[1:2] == ["export"]:
        out_file = argv[2]
    if "--json" in argv:
        json.loads(proc.stdout)
    elif _option(argv, "--format") == "csv":
        rows = list(csv.reader(io.StringIO(proc.stdout)))
        assert len(rows) >= 2 and len({len(r) for r in rows}) == 1, proc.stdout[:500]
    if out_file is not None:
        written = cwd / out_file
        assert written.exists(), f"{line}: {written} was not written"
        if _option(argv, "--format") == "npy":
            assert np.load(written, allow_pickle=False).size > 0
        elif written.suffix == ".xlsx":
            assert zipfile.is_zipfile(written)
        elif written.is_dir():
            assert any(written.iterdir())
    else:
        assert proc.stdout.strip(), f"{line}: printed nothing"


def check_tui(line: str) -> None:
    """`cellgpt tui ...`: the arguments parse and the workbook opens (the app is not started:
    tests/tui runs it headless)."""
    from cellgpt.cli import build_parser
    from cellgpt.cli.common import open_workbook

    args = build_parser().parse_args(shlex.split(line, comments=True)[1:])
    assert args.command == "tui"
    assert open_workbook(args, progress=False) is not None


@pytest.mark.parametrize("block", RUN, ids=[b.id for b in RUN])
def test_readme_block(block: Block, scratch: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(scratch)
    # What a default install prints: products in numpy's OpenBLAS (the `mkl` extra, which the
    # test-suite installs, can change a printed last digit).
    monkeypatch.setenv("CELLGPT_BLAS", "numpy")
    what = kind(block)
    if what == "commands":
        for line in commands(block):
            assert line.startswith("cellgpt "), (
                f"{block.id}: {line!r} is not a cellgpt command; mark the block "
                "<!-- not run: why --> or move the line out"
            )
            if line.split()[1] == "tui":
                check_tui(line)
            else:
                check_shape(line, _run(line, scratch), scratch)
    elif what == "console":
        run_console(block, scratch)
    elif what == "pycon":
        run_doctest(block)
    else:
        code = compile("\n".join(block.lines), block.id, "exec")
        exec(code, {"__name__": "__readme__"})


def run_console(block: Block, cwd: Path) -> None:
    """Each `$ command` and the lines after it: the command's output, exactly."""
    steps: list[tuple[str, list[str]]] = []
    for line in block.lines:
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            assert steps, f"{block.id}: output before any `$ command`"
            steps[-1][1].append(line.rstrip())
    for command, expected in steps:
        proc = _run(command, cwd)
        assert proc.returncode == 0, f"{command}\n{proc.stderr}"
        got = [line.rstrip() for line in proc.stdout.rstrip().splitlines()]
        while expected and not expected[-1]:
            expected.pop()
        assert got == expected, f"{block.id}: `{command}` printed something else"


def run_doctest(block: Block) -> None:
    text = "\n".join(block.lines) + "\n"
    test = doctest.DocTestParser().get_doctest(text, {}, block.id, str(README), block.line)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    output = io.StringIO()
    result = runner.run(test, out=output.write)
    assert result.failed == 0, output.getvalue()


def test_every_block_is_run_or_says_why_not() -> None:
    for block in ALL:
        if block.not_run is not None:
            assert block.not_run, f"{block.id}: say why it is not run"
    assert len(RUN) >= MIN_RUN_BLOCKS, [b.id for b in RUN]
    # The ones a newcomer copies first are among those run.
    run_lines = {c for b in RUN if b.lang != "console" for c in commands(b)}
    run_lines |= {
        line[2:] for b in RUN if b.lang == "console" for line in b.lines if line[:2] == "$ "
    }
    assert len(run_lines) >= MIN_COMMANDS, sorted(run_lines)
    assert any(c.startswith("cellgpt run ") for c in run_lines)
    assert any(c.startswith("cellgpt cell ") for c in run_lines)


def test_the_parser_sees_markers_listings_and_continuations() -> None:
    text = (
        "<!-- not run: needs internet -->\n```\ncellgpt weights download gpt2\n```\n\n"
        "```\nconfig.json  vocab.bpe\n```\n"
        "```\ncellgpt tokenizer train a.txt \\\n    --vocab-size 300 --out t  # hi\n```\n"
    )
    found = blocks(text)
    assert [kind(b) for b in found] == ["not run", "listing", "commands"]
    assert found[0].not_run == "needs internet"
    assert commands(found[2]) == [
        "cellgpt tokenizer train a.txt      --vocab-size 300 --out t  # hi"
    ]
