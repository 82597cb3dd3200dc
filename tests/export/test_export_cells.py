"""The per-cell formula layout (`--layout cells`): every number of a model sheet is its own
ordinary formula. Recalculated by LibreOffice headless (fails, never skips, without soffice)
and compared with the float64 engine, on the exported prompt and on edited token ids.

The model is gpt2-mini cut to its first block (its vocabulary of 2,048 keeps the logits
sheet small): the smallest GPT-2 that still has every kind of cell."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from openpyxl import load_workbook
from openpyxl.worksheet.formula import ArrayFormula

import cellgpt
from cellgpt.engine import Workbook, core
from cellgpt.export import cell_layout
from cellgpt.export.front_sheets import SAME_AS_CELLGPT
from cellgpt.export.recalc import read_array, recalculate_all
from cellgpt.export.xlsx import ExportReport, export_workbook
from tests.export.test_export import GPT2, REPO, engine_as_sheet, float64_reference
from tests.export.test_export_capacity import type_into

CAPACITY = 6
PROMPT = "ROMEO:"  # 4 tokens: two padding rows


def one_block_mini(folder: Path) -> Path:
    """gpt2-mini with only block 0 (a copy: the loader refuses links out of the folder)."""
    src = REPO / "weights_csv" / "gpt2-mini"
    folder.mkdir()
    for f in src.iterdir():
        if not f.name.startswith("h.") or f.name.startswith("h.0."):
            shutil.copy(f, folder / f.name)
    config = json.loads((src / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "n_layer": 1}))
    return folder


@pytest.fixture(scope="module")
def mini1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return one_block_mini(tmp_path_factory.mktemp("mini1") / "gpt2-mini-1")


def _compare(book: Any, report: ExportReport, ref: Workbook, names: list[str]) -> float:
    """The sheet against the float64 engine: token-row cells on the prompt's rows."""
    worst = 0.0
    for name in names:
        e = report.plan.entry(name)
        assert e is not None and e.placement is not None
        got = read_array(book, e.placement, np.shape(e.value))
        want = engine_as_sheet(ref[name])
        got = got[tuple(slice(0, n) for n in want.shape)]  # padding rows (and columns) off
        assert np.isfinite(got).all(), f"{name}: LibreOffice gave errors"
        diff = float(np.max(np.abs(got - want)))
        assert diff <= 1e-6, f"{name}: max |Δ| {diff:.3g} against the float64 engine"
        worst = max(worst, diff)
    return worst


def test_cells_layout_recalculated_by_libreoffice(mini1: Path, tmp_path: Path) -> None:
    wb = cellgpt.open(GPT2, model=str(mini1), prompt=PROMPT)
    ids = [int(i) for i in wb["token_ids"]]
    n = len(ids)
    report = export_workbook(
        wb, tmp_path / "cells.xlsx", mode="formulas", layout="cells", capacity=CAPACITY
    )
    formulas = [e.name for e in report.plan.entries if e.how == "formula"]
    assert {"wte_rows", "h0.qkv", "h0.attn.pattern", "logits", "probs", "next_token"} <= set(
        formulas
    )
    assert not [e.name for e in report.plan.entries if "kept as array" in e.note]

    # Every number of every model sheet is an ordinary formula (no array formula anywhere).
    book = load_workbook(report.path, read_only=True)  # (read-only sees array formulas too)
    for name in formulas:
        e = report.plan.entry(name)
        ws = book[e.placement.sheet]
        rows, cols = e.placement.stored
        for row in ws.iter_rows(min_row=2, max_row=1 + rows, min_col=2, max_col=1 + cols):
            for c in row:
                assert isinstance(c.value, str) and c.value.startswith("="), (name, c.coordinate)
        assert not any(isinstance(c.value, ArrayFormula) for r in ws.iter_rows() for c in r)
    # A product reads as one row of the named input times one column of the weights,
    # element-wise cells refer to the same position of their operands.
    qkv = book["h0.qkv"]["R4"].value  # token 3 (row 4), column 17 (R): the README's example
    assert qkv == (
        "=(MMULT(INDEX(h0_ln_1,3,0),INDEX(h0_attn_c_attn_w,0,17))+'h0.attn.c_attn.bias'!R2)"
    )
    assert book["embed"]["C3"].value == "=('wte_rows'!C3+'wpe_rows'!C3)"
    pattern = book["h0.attn.pattern"]
    assert pattern["I1"].value == "row max"  # helper columns after one blank column
    assert pattern["I3"].value == "=MAX('h0.attn.scores'!$B$3:$G$3)"
    assert pattern["J3"].value == (
        "=SUMPRODUCT(EXP(('h0.attn.scores'!$B$3:$G$3-'h0.attn.pattern'!I3)))"
    )
    # softmax reads its row's max and sum of exps
    assert pattern["C3"].value == (
        "=(EXP(('h0.attn.scores'!C3-'h0.attn.pattern'!I3))/'h0.attn.pattern'!J3)"
    )
    index = {r[0]: r for r in book["Index"].iter_rows(values_only=True) if r and r[0]}
    assert any(str(k).startswith("Layout cells") for k in index)
    assert "h0_attn_c_attn_w" in book.defined_names and "h0_ln_1" in book.defined_names

    # Edit two ids (one over the prompt's, one in the first padding row) in a copy;
    # LibreOffice recalculates both files in one run.
    new_ids = [ids[0], 1000, *ids[2:], 500]
    type_into(report.path, tmp_path / "edited.xlsx", "token_ids", {"D3": 1000, f"D{n + 2}": 500})
    outs = recalculate_all([report.path, tmp_path / "edited.xlsx"], tmp_path / "lo")

    ref = float64_reference(mini1, PROMPT)
    got = load_workbook(outs[0], data_only=True, read_only=True)
    worst = _compare(got, report, ref, formulas)
    summary = {r[0]: r[1] for r in got["Summary"].iter_rows(values_only=True) if r and r[0]}
    assert summary["next token id (this workbook's formula)"] == int(ref["next_token"])
    assert summary[SAME_AS_CELLGPT] == "yes"

    ref.pin("token_ids", new_ids)
    ref.run()
    edited = load_workbook(outs[1], data_only=True, read_only=True)
    assert edited["n_tokens"]["B2"].value == n + 1
    worst = max(worst, _compare(edited, report, ref, ["predicted", "logits", "probs", "ln_f"]))
    assert edited["next_token"]["B2"].value == int(ref["next_token"])
    print(f"\ncells layout: max |Δ| vs float64 engine {worst:.2e}")


def test_cells_layout_refused_when_too_big(
    mini1: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cellgpt.cli import main

    monkeypatch.setattr(cell_layout, "MAX_CELL_FORMULAS", 10_000)
    out = tmp_path / "big.xlsx"
    args = ["export", str(out), "ROMEO:", "--model", str(mini1), "--quiet"]
    assert main([*args, "--mode", "formulas", "--layout", "cells"]) == 2
    err = capsys.readouterr().err
    assert "formulas (one per number); the limit is 10,000" in err, err
    assert "--layout arrays" in err and not out.exists()
    assert main([*args, "--layout", "cells"]) == 2  # values mode
    assert "--layout cells needs --mode formulas" in capsys.readouterr().err


def test_a_piece_with_no_per_cell_form_stays_an_array_formula(tmp_path: Path) -> None:
    """MAX of a computed matrix has no ordinary one-cell formula (Excel 2010 would need
    Ctrl+Shift+Enter): it stays an array formula, and the Index says so."""
    wb = Workbook(core.copy())
    wb.define("x", "array([[1.5, -2.0, 3.25], [0.5, 4.0, -1.0]])")
    wb.define("y", "exp(x) / 2 + x")
    wb.define("m", "max(exp(x))")
    report = export_workbook(wb, tmp_path / "g.xlsx", mode="formulas", layout="cells")
    assert "kept as array formulas: MAX of a computed array" in report.plan.entry("m").note
    book = load_workbook(report.path)
    assert book["y"]["C3"].value == "=((EXP('x'!C3)/2)+'x'!C3)"
    assert isinstance(book["m"]["B2"].value, ArrayFormula)
    listed = {r[0]: r[6] for r in book["Index"].iter_rows(values_only=True) if r and r[0]}
    assert "kept as array formulas" in listed["m"]
    assert any(
        str(k).startswith("Layout cells") and "Kept as array formulas: m" in k for k in listed
    )
