"""Export under bad input: token text that looks like a formula (or a DDE payload) stays text,
and a path that cannot be written, or a writer that dies half-way, leaves no partial file.
Complements tests/export/test_export.py."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
from openpyxl import load_workbook

from cellgpt.cli import main
from cellgpt.engine import Workbook
from cellgpt.engine.functions import core
from cellgpt.export import xlsx
from cellgpt.export.xlsx import export_workbook

NASTY = [
    "=1+1",
    "=cmd|' /C calc'!A0",  # DDE
    '=HYPERLINK("http://evil","click")',
    "@SUM(A1:A2)",
    "+A1",
    "-1+2",
    "\t=1",
    "\r=1",
    "=\x00",
    "<script>",
    "&amp;",
    "\ud800",
    "\x1b[2J",
]


def _workbook() -> Workbook:
    wb = Workbook(core.copy())
    wb.define("labels", repr(NASTY))
    wb.define("m", f"ones(({len(NASTY)}, 2))", hints={"rows": "labels"})
    return wb


@pytest.mark.parametrize("mode", ["values", "formulas"])
def test_formula_like_text_stays_text(tmp_path: Path, mode: str) -> None:
    report = export_workbook(_workbook(), tmp_path / "out.xlsx", mode=mode)
    book = load_workbook(report.path)
    for row in book["m"].iter_rows(min_row=2):
        label = row[0]
        assert label.data_type == "s", (label.coordinate, label.value)
    for row in book["labels"].iter_rows():
        for cell in row:
            if isinstance(cell.value, str):
                assert cell.data_type == "s", (cell.coordinate, cell.value)


@pytest.mark.parametrize("where", ["under a file", "a folder", "missing root"])
def test_unwritable_paths_are_clear_errors_and_leave_nothing(
    tmp_path: Path, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "afile").write_text("x")
    target = {
        "under a file": tmp_path / "afile" / "out.xlsx",
        "a folder": tmp_path / "dir.xlsx",
        "missing root": Path("/proc/no/such/out.xlsx"),
    }[where]
    if where == "a folder":
        target.mkdir()
    with pytest.raises(OSError):
        export_workbook(_workbook(), target)
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["export", str(target), "ROMEO:", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("cellgpt: error:") and "Traceback" not in err
    assert (
        sorted(p.name for p in tmp_path.iterdir())
        == ["afile", "dir.xlsx"][: 1 + (where == "a folder")]
    )


def test_a_writer_dying_half_way_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out.xlsx"
    target.write_bytes(b"previous export")

    def dies(self: object, path: str) -> None:
        Path(path).write_bytes(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(xlsx._Writer, "write", dies)
    with pytest.raises(KeyboardInterrupt):
        export_workbook(_workbook(), target)
    assert target.read_bytes() == b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.xlsx"]


def test_a_missing_folder_is_named_and_never_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "typo" / "sub" / "out.xlsx"
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["export", str(target), "ROMEO:", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"the folder does not exist ({target.parent})" in err
    assert ".tmp" not in err  # the hidden temp file is never what the user is told about
    assert list(tmp_path.iterdir()) == []
