"""`cellgpt cell --out` and `cellgpt export`: exactly the path given, atomically, never onto a
file the command reads, a folder, a FIFO or a device; every OS error is one clear line."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cellgpt.cli import main


@pytest.fixture
def wb_file(tmp_path: Path) -> Path:
    path = tmp_path / "small.py"
    path.write_text("prompt = 'hi'\nv = ones((2, 3))\nHistory = [1, 2]\n", encoding="utf-8")
    return path


def _cell(wb: Path, *extra: str) -> int:
    return main(["cell", "v", "hi", "--workbook", str(wb), *extra])


def _error(capsys: Any) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cellgpt: error: "), err
    return err


def test_npy_goes_to_exactly_the_path_given(wb_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "values.bin"
    assert _cell(wb_file, "--format", "npy", "--out", str(out)) == 0
    assert np.load(out).shape == (2, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.py", "values.bin"]


def test_the_workbook_is_never_replaced(wb_file: Path, tmp_path: Path, capsys: Any) -> None:
    before = wb_file.read_bytes()
    link = tmp_path / "link.json"
    link.symlink_to(wb_file)
    for target in (wb_file, link):
        assert _cell(wb_file, "--format", "json", "--out", str(target)) == 2
        assert "which this command reads" in _error(capsys)
    assert wb_file.read_bytes() == before


@pytest.mark.parametrize("kind", ["folder", "fifo", "device", "missing folder"])
def test_unwritable_targets_are_refused(
    kind: str, wb_file: Path, tmp_path: Path, capsys: Any
) -> None:
    target = {
        "folder": tmp_path,
        "fifo": tmp_path / "pipe",
        "device": Path("/dev/null"),
        "missing folder": tmp_path / "nowhere" / "out.json",
    }[kind]
    if kind == "fifo":
        os.mkfifo(target)
    assert _cell(wb_file, "--format", "json", "--out", str(target)) == 2
    assert str(target) in _error(capsys)


def test_disk_full_leaves_no_partial_or_temporary_file(
    wb_file: Path, tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out.npy"

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "save", full)
    assert _cell(wb_file, "--format", "npy", "--out", str(out)) == 2
    err = _error(capsys)
    assert "No space left" in err and str(out) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.py"]


def test_permission_denied_is_one_line(
    wb_file: Path, tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Root may write anywhere, so the refusal is simulated where the temp file is made.
    import tempfile

    def denied(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    out = tmp_path / "x.json"
    assert _cell(wb_file, "--format", "json", "--out", str(out)) == 2
    err = _error(capsys)
    assert "Permission denied" in err and str(out) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.py"]


def test_a_cell_named_history_gets_another_sheet(wb_file: Path, tmp_path: Path) -> None:
    import openpyxl

    out = tmp_path / "book.xlsx"
    assert main(["export", str(out), "--workbook", str(wb_file), "--quiet"]) == 0
    book = openpyxl.load_workbook(out)
    assert "History" not in book.sheetnames and "History~2" in book.sheetnames
    index = [(row[0], row[3]) for row in book["Index"].iter_rows(values_only=True)]
    assert any(cell == "History" and "History~2" in str(link) for cell, link in index)
