"""The tokenizer's tables in .xlsx: `vocab` and `merges` become sheets with their column
titles, every value read back equal, text (a token such as "=1+1") never a formula, the fast
raw-XML rows and openpyxl's own cells writing the same sheet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

import cellgpt
from cellgpt.engine import Workbook
from cellgpt.export.xlsx import export_workbook
from cellgpt.tokenizer.tables import MERGES_TABLE_COLUMNS, VOCAB_TABLE_COLUMNS

REPO = Path(__file__).resolve().parents[2]
FORMULA_LIKE = ["=1+1", '=HYPERLINK("http://x","y")', "@SUM(A1)", "+A1", "-2"]


@pytest.fixture(scope="module")
def wb() -> Workbook:
    book = cellgpt.open(REPO / "workbooks" / "gpt2.py", model="gpt2-mini")
    vocab = book["vocab"]
    # a vocabulary with tokens a spreadsheet would love to execute, appended after the real one
    extra = [
        (len(vocab) + k, t, repr(t.encode()), len(t), None) for k, t in enumerate(FORMULA_LIKE)
    ]
    book.pin("vocab", vocab + extra)
    return book


def sheet_rows(path: Path, sheet: str) -> tuple[list[Any], list[tuple[Any, ...]], Any]:
    """(titles, data rows without the index column, the worksheet) of a table sheet."""
    ws = load_workbook(path)[sheet]  # not read-only: each cell's data type is checked
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0][0] == sheet  # the cell's name, then its column titles
    return list(rows[1][1:]), rows[2:], ws


@pytest.mark.parametrize("fast", [True, False], ids=["raw-xml", "openpyxl-cells"])
def test_vocab_and_merges_sheets_read_back_equal(
    wb: Workbook, tmp_path: Path, fast: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not fast:  # e.g. openpyxl on lxml: no raw rows
        monkeypatch.setattr("cellgpt.export.sheetio._install_raw_rows", lambda ws: False)
    report = export_workbook(wb, tmp_path / "tables.xlsx", cells=["vocab", "merges"])
    assert {e.name: e.how for e in report.plan.entries} == {"vocab": "values", "merges": "values"}
    for name, titles in (("vocab", VOCAB_TABLE_COLUMNS), ("merges", MERGES_TABLE_COLUMNS)):
        head, rows, ws = sheet_rows(report.path, name)
        assert head == titles
        value = wb.value(name)
        assert [r[0] for r in rows] == list(range(len(value)))  # the row index, column A
        assert [tuple(r[1:]) for r in rows] == [tuple(v) for v in value]
        for line in ws.iter_rows(min_row=3):
            for cell in line:
                assert not (isinstance(cell.value, str) and cell.data_type != "s"), cell
    _, rows, _ = sheet_rows(report.path, "vocab")
    assert [r[2] for r in rows[-len(FORMULA_LIKE) :]] == FORMULA_LIKE


def test_formulas_mode_exports_the_tables_as_values(wb: Workbook, tmp_path: Path) -> None:
    report = export_workbook(wb, tmp_path / "formulas.xlsx", mode="formulas")
    how = {e.name: e.how for e in report.plan.entries}
    assert how["vocab"] == how["merges"] == "values"
    assert any(h == "formula" for h in how.values())  # the model itself is still live
    book = load_workbook(report.path, read_only=True)
    assert {"vocab", "merges"} <= set(book.sheetnames)
    titles = next(book["merges"].iter_rows(min_row=2, max_row=2, values_only=True))
    assert list(titles[1:]) == MERGES_TABLE_COLUMNS
