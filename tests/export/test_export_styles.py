"""What a spreadsheet user sees before reading a number: frozen headers, fitted widths,
number formats per kind, colour scales on attention, probabilities and logits, an Index that
reads like a table of contents and a Summary. Read back with openpyxl."""

from __future__ import annotations

from pathlib import Path

import pytest
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet

import cellgpt
from cellgpt.engine import Workbook
from cellgpt.export.front_sheets import SAME_AS_CELLGPT
from cellgpt.export.styles import ACTIVATION, LOGIT, MAX_WIDTH, PERCENT
from cellgpt.export.xlexpr import MASKED_VALUE
from cellgpt.export.xlsx import export_workbook

REPO = Path(__file__).resolve().parents[2]
LONG_TOKEN_PROMPT = "ROMEO: Extraordinarily"


@pytest.fixture(scope="module")
def wb() -> Workbook:
    return cellgpt.open(REPO / "workbooks" / "gpt2.py", model="gpt2-mini", prompt=LONG_TOKEN_PROMPT)


@pytest.fixture(scope="module", params=["formulas", "values"])
def book(wb: Workbook, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("styles") / f"{request.param}.xlsx"
    # the prompt's rows only (padding rows and their grey rule: test_export_capacity.py)
    report = export_workbook(wb, path, mode=request.param, capacity=None)
    return request.param, load_workbook(report.path)


def _width(ws: Worksheet, letter: str) -> float:
    for dim in ws.column_dimensions.values():
        first, last = dim.min or 0, dim.max or 0
        from openpyxl.utils import column_index_from_string

        if first <= column_index_from_string(letter) <= last:
            return float(dim.width)
    raise AssertionError(f"{ws.title}: no width for column {letter}")


def _colour_scaled(ws: Worksheet) -> list[str]:
    return [str(cf.sqref) for cf in ws.conditional_formatting if cf.rules[0].type == "colorScale"]


def test_headers_frozen_and_labels_fit(book, wb: Workbook) -> None:
    _, xl = book
    for sheet in ("h0.attn.pattern", "h0.mlp.fc", "ln_f", "logits", "Index"):
        assert xl[sheet].freeze_panes == "B2", sheet
    ln = xl["ln_f"]
    longest = max(len(t) for t in [*wb["tokens"], "ln_f"])
    assert _width(ln, "A") >= longest  # no clipped token labels
    assert _width(ln, "B") >= 9
    assert xl["vocab"].freeze_panes == "B3"  # title row and column titles stay in view
    index = xl["Index"]
    assert index["A1"].font.b and _width(index, "A") >= len("h0.attn.c_proj.weight")


def test_number_formats_per_kind(book) -> None:
    mode, xl = book
    assert xl["h0.attn.pattern"]["B2"].number_format == PERCENT
    assert xl["probs"]["B2"].number_format == PERCENT
    assert xl["logits"]["B2"].number_format == LOGIT
    assert xl["h0.mlp.fc"]["B2"].number_format == ACTIVATION
    scores = xl["h0.attn.scores"]
    assert scores["B2"].number_format == LOGIT
    if mode == "values":  # the masked corner is a number, formatted like the rest
        assert scores["C2"].value == MASKED_VALUE and scores["C2"].data_type == "n"
        assert scores["C2"].number_format == LOGIT


def test_colour_scales_on_attention_probabilities_and_logits(book, wb: Workbook) -> None:
    _, xl = book
    n = len(wb["tokens"])
    n_head = int(wb["n_head"])
    last = chr(ord("A") + n)
    assert _colour_scaled(xl["h0.attn.pattern"]) == [f"B2:{last}{1 + n * n_head}"]
    assert _colour_scaled(xl["probs"]) == [f"B2:B{1 + len(wb['probs'])}"]
    assert _colour_scaled(xl["logits"]) == [f"B2:B{1 + len(wb['logits'])}"]
    assert _colour_scaled(xl["h0.mlp.fc"]) == []


def test_summary_reads_like_a_report(book, wb: Workbook) -> None:
    _, xl = book
    ws = xl["Summary"]
    rows = {r[0]: r[1] for r in ws.iter_rows(values_only=True) if r and r[0]}
    assert rows["prompt"] == LONG_TOKEN_PROMPT
    assert rows["tokens"] == " | ".join(wb["tokens"])
    assert rows["next token id (cellgpt engine)"] == int(wb["next_token"])
    assert rows[SAME_AS_CELLGPT].startswith("=IF(")
    assert "its probability (this workbook)" in rows
    assert _width(ws, "A") >= max(len(label) for label in rows)
    assert _width(ws, "B") >= min(MAX_WIDTH, len(rows["tokens"]))
    prob_row = next(r for r in ws.iter_rows() if r[0].value == "its probability (this workbook)")
    assert prob_row[1].number_format == PERCENT
