"""Hostile values through every display path: `cellgpt cell` as JSON, CSV and table,
`Workbook.table`, the TUI's view of a value, and the export in values mode. Each answer is a
clear one-line error naming the cell, or a bounded preview — never a traceback, never an
unbounded copy (sizes are asserted, not times: a run hung on one fails the whole job).
`python -m pytest tests/cli/test_display_limits.py -s` prints the counts per class."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cellgpt.cli import main
from cellgpt.engine.value_limits import ValueTooLarge, measure, preview
from cellgpt.tui.views import classify

CORPUS = Path(__file__).resolve().parents[1] / "adversarial" / "display_values.tsv"
COUNTS: Counter[str] = Counter()


def _cases() -> list[tuple[str, str, str]]:
    rows = []
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            kind, expected, formula = line.split("\t")
            rows.append((kind, expected, formula))
    return rows


CASES = _cases()


def _workbook(tmp_path: Path, formula: str) -> Path:
    path = tmp_path / "hostile.py"
    path.write_text(f"prompt = 'hi'\nv = {formula}\n", encoding="utf-8")
    return path


def _cell(capsys: Any, wb: Path, fmt: str) -> tuple[int, str, str]:
    code = main(["cell", "v", "hi", "--workbook", str(wb), "--format", fmt])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("kind", "expected", "formula"), CASES, ids=[c[2][:40] for c in CASES])
def test_every_display_path_answers_clearly(
    kind: str, expected: str, formula: str, tmp_path: Path, capsys: Any
) -> None:
    import cellgpt
    from cellgpt.export.xlsx import export_workbook

    wb_file = _workbook(tmp_path, formula)
    for fmt in ("json", "csv"):
        code, out, err = _cell(capsys, wb_file, fmt)
        if expected == "ok":
            assert code == 0 and out and not err, (fmt, err)
        else:
            assert code == 2 and not out, (fmt, out[:200])
            assert err.count("\n") == 1 and err.startswith("cellgpt: error: v: "), err
            assert re.search(expected, err), err
    code, out, err = _cell(capsys, wb_file, "table")
    assert code == 0 and out.startswith("v  shape=") and len(out) < 200_000, err
    wb = cellgpt.open(str(wb_file))
    try:
        table = wb.table("v")
        assert table.size <= 10**7
    except ValueTooLarge as exc:
        assert exc.reason
    view = classify(wb.value("v"))
    assert len(view.text) <= 200_000
    assert view.kind != "table" or view.records is wb.value("v")  # a table is never copied
    report = export_workbook(wb, tmp_path / "out.xlsx", cells=["v"])
    entry = report.plan.entry("v")
    assert entry is not None and (entry.how == "values" or entry.note)  # a reason, if skipped
    COUNTS[kind] += 1


def _deep(n: int) -> list[Any]:
    top: list[Any] = []
    inner = top
    for _ in range(n):
        inner.append([])
        inner = inner[0]
    return top


PINNED = {
    "deep 100,000": _deep(100_000),
    "cycle": (cyc := [1], cyc.append(cyc), cyc)[2],
    "100 MB string": "x" * 10**8,
    "100 MB bytes": b"x" * 10**8,
    "huge dict key": {"k" * 10**8: 1},
    "object array": np.array([_deep(5000), None], dtype=object),
}


@pytest.mark.parametrize("label", list(PINNED))
def test_values_only_python_can_build_are_bounded_too(label: str, tmp_path: Path) -> None:
    """Pinned values (from Python) no formula may build: the guard and previews stay fast."""
    import cellgpt

    value = PINNED[label]
    with pytest.raises(ValueTooLarge):
        measure(value)
    assert len(preview(value, 300)) <= 302
    wb = cellgpt.open(str(_workbook(tmp_path, "1")))
    wb.pin("v", value)
    with pytest.raises(ValueTooLarge):
        wb.table("v")
    assert len(classify(value).text) <= 200_000
    COUNTS["pinned"] += 1


def test_normal_values_print_as_before(tmp_path: Path, capsys: Any) -> None:
    wb_file = _workbook(tmp_path, "[1, 2.5, 'a']")
    assert _cell(capsys, wb_file, "json") == (0, '[1, 2.5, "a"]\n', "")


def test_counts_per_class() -> None:
    print("\nhostile display values per class:", dict(sorted(COUNTS.items())))
    assert sum(COUNTS.values()) >= len(CASES)
