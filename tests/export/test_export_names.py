"""Defined names: every parameter table and cell range has one (`model_wte`,
`h0_attn_c_attn_w`, `h0_ln_1`), formulas use them, and no name reads as a cell reference."""

from __future__ import annotations

from pathlib import Path

import pytest
from openpyxl import load_workbook

import cellgpt
from cellgpt.export.names import DefinedNames, wanted_name
from cellgpt.export.xlsx import export_workbook

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("cell", "param", "name"),
    [
        ("wte", True, "model_wte"),
        ("ln_f.weight", True, "model_ln_f_w"),
        ("h0.attn.c_attn.weight", True, "h0_attn_c_attn_w"),
        ("h11.mlp.c_proj.bias", True, "h11_mlp_c_proj_b"),
        ("h0.attn.pattern", False, "h0_attn_pattern"),
        ("ab12", False, "cell_ab12"),  # would be cell AB12
        ("r", False, "cell_r"),  # R1C1 notation
        ("r2c3", False, "cell_r2c3"),
        ("1x", False, "_1x"),
        ("odd name!", False, "odd_name_"),
    ],
)
def test_wanted_names(cell: str, param: bool, name: str) -> None:
    assert wanted_name(cell, param) == name


def test_names_are_unique_without_case() -> None:
    names = DefinedNames()
    assert [names.make(c, False) for c in ("a.b", "a_b", "A_B")] == ["a_b", "a_b_2", "A_B_3"]


def test_formulas_read_with_defined_names(tmp_path: Path) -> None:
    wb = cellgpt.open(REPO / "workbooks" / "gpt2.py", model="gpt2-mini", prompt="ROMEO:")
    report = export_workbook(wb, tmp_path / "n.xlsx", mode="formulas")
    book = load_workbook(report.path)
    defined = book.defined_names
    assert defined["model_wte"].attr_text == "'wte'!$B$2:$BM$2049"
    assert defined["h0_attn_c_attn_w"].attr_text.startswith("'h0.attn.c_attn.weight'!$B$2:")
    assert defined["h0_ln_1"].attr_text.startswith("'h0.ln_1'!$B$2:")
    entries = [e for e in report.plan.entries if e.placement is not None]
    assert all(e.placement.name in defined for e in entries)
    formula = book["h0.qkv"]["B2"].value.text
    assert formula == "=(MMULT(h0_ln_1,h0_attn_c_attn_w)+h0_attn_c_attn_b)"
    assert "model_wte" in book["wte_rows"]["B2"].value.text
