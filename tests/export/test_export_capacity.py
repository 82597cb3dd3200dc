"""A fixed token capacity: every token-row sheet has N rows, token ids are an input column,
n_tokens counts them, and the model recomputes from edited ids. Edited in the file, then
recalculated by LibreOffice headless and compared with the engine run on the new ids
(fails, never skips, without soffice)."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
import pytest
from openpyxl import load_workbook

import cellgpt
from cellgpt.export.capacity import PAD_LABEL
from cellgpt.export.recalc import read_array, recalculate
from cellgpt.export.xlsx import ExportReport, export_workbook
from tests.export.conftest import TINY_CAPACITY, TINY_PROMPT
from tests.export.test_export import GPT2, engine_as_sheet, float64_reference

CAPACITY = 8


def type_into(path: Path, out: Path, sheet: str, typed: dict[str, int | str]) -> None:
    """Type values into input cells of `sheet` (every input cell, even an empty one, is in
    the file), editing the sheet's XML in place: openpyxl would load every parameter cell of
    a 50,257-row vocabulary."""
    book = load_workbook(path, read_only=True)
    index = book.sheetnames.index(sheet) + 1
    book.close()
    name = f"xl/worksheets/sheet{index}.xml"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == name:
                xml = data.decode()
                for ref, value in typed.items():
                    if isinstance(value, str):
                        text = escape(value)
                        cell = f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{text}</t></is></c>'
                    else:
                        cell = f'<c r="{ref}"><v>{value}</v></c>'
                    found = rf'<c r="{ref}"[^>]*/>|<c r="{ref}"[^>]*>.*?</c>'
                    xml, n = re.subn(found, lambda _, c=cell: c, xml)  # no backslash escapes
                    assert n == 1, f"{sheet}!{ref} not found"
                data = xml.encode()
            dst.writestr(item, data)


def test_edited_token_ids_recompute_the_model(
    params_tiny_dir: Path, tiny_formulas_export: tuple[Any, ExportReport], tmp_path: Path
) -> None:
    wb, report = tiny_formulas_export
    prompt = TINY_PROMPT
    assert TINY_CAPACITY == CAPACITY
    ids = [int(i) for i in wb["token_ids"]]
    n = len(ids)
    assert n < CAPACITY - 1
    assert list(wb["token_ids"]) == ids  # the workbook is as it was
    how = {e.name: e.how for e in report.plan.entries}
    assert how["token_ids"] == "input" and how["n_tokens"] == "formula"
    entry = report.plan.entry("h0.attn.pattern")
    assert entry is not None and entry.placement.stored == (4 * CAPACITY, CAPACITY)
    written = load_workbook(report.path, read_only=True)
    id_rows = [(*r, None)[:4] for r in written["token_ids"].iter_rows(min_row=2, values_only=True)]
    # An ASCII prompt's ids come from the tokenization formulas: the typed-id column is empty.
    assert [r[3] for r in id_rows] == [None] * CAPACITY
    assert [r[0] for r in id_rows][n:] == [PAD_LABEL] * (CAPACITY - n)

    # Change the second id, and type a token's text below the prompt (" the": a space, as
    # the row labels show it, where the vocab sheet shows ·the).
    the = wb["tokenizer"].encode(" the")[0]
    new_ids = [ids[0], 1000, *ids[2:], the]
    typed = {"D3": 1000, f"E{n + 2}": " the"}
    type_into(report.path, tmp_path / "edited.xlsx", "token_ids", typed)
    book = load_workbook(
        recalculate(tmp_path / "edited.xlsx", tmp_path / "lo"), data_only=True, read_only=True
    )
    ids_read = [r[1] for r in book["token_ids"].iter_rows(min_row=2, values_only=True)]
    assert ids_read == new_ids + [None] * (CAPACITY - n - 1)  # (LibreOffice saves "" as empty)

    ref = float64_reference(params_tiny_dir, prompt)
    ref.pin("token_ids", new_ids)
    ref.run()
    assert book["n_tokens"]["B2"].value == n + 1
    vocab = wb["vocab"]
    # (LibreOffice saves the formulas' "" as an empty cell)
    looked_up = [r[5] or "" for r in book["token_ids"].iter_rows(min_row=2, values_only=True)]
    assert looked_up == [vocab[i][1] for i in new_ids] + [""] * (CAPACITY - n - 1)
    for name in ("logits", "probs", "predicted"):
        e = report.plan.entry(name)
        got = read_array(book, e.placement, np.shape(e.value))
        np.testing.assert_allclose(got, np.asarray(ref[name]), rtol=0, atol=1e-6, err_msg=name)
    assert book["next_token"]["B2"].value == int(ref["next_token"])
    summary = {r[0]: r[1] for r in book["Summary"].iter_rows(values_only=True) if r and r[0]}
    assert summary["tokens read now"] == " | ".join(vocab[i][1] for i in new_ids)
    assert summary["next token id (this workbook's formula)"] == int(ref["next_token"])
    # The prompt's rows of every token-row cell are the engine's on the new ids.
    for name in ("wte_rows", "h0.ln_1", "h1.resid_post", "ln_f"):
        e = report.plan.entry(name)
        got = read_array(book, e.placement, np.shape(e.value))[: n + 1]
        want = engine_as_sheet(ref[name])
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6, err_msg=name)
    pattern = report.plan.entry("h0.attn.pattern")
    got = read_array(book, pattern.placement, (4, CAPACITY, CAPACITY))
    np.testing.assert_allclose(got[:, : n + 1, : n + 1], ref["h0.attn.pattern"], atol=1e-9)
    assert (got[:, : n + 1, n + 1 :] == 0).all()  # the prompt never sees padding


def test_a_prompt_longer_than_the_capacity_is_refused(tmp_path: Path) -> None:
    wb = cellgpt.open(GPT2, model="gpt2-mini", prompt="one two three four five")
    with pytest.raises(ValueError, match="raise --capacity"):
        export_workbook(wb, tmp_path / "x.xlsx", mode="formulas", capacity=2)
    assert not (tmp_path / "x.xlsx").exists()


def test_padding_rows_and_columns_are_greyed(tmp_path: Path) -> None:
    wb = cellgpt.open(GPT2, model="gpt2-mini", prompt="ROMEO:")
    report = export_workbook(wb, tmp_path / "g.xlsx", mode="formulas", capacity=CAPACITY)
    book = load_workbook(report.path)

    def rules(sheet: str) -> list[tuple[str, str, str]]:
        return [
            (str(cf.sqref), r.type, (r.formula or [""])[0])
            for cf in book[sheet].conditional_formatting
            for r in sorted(cf.rules, key=lambda r: r.priority)
        ]

    n_head = int(wb["n_head"])
    last = f"{chr(ord('A') + CAPACITY)}{1 + n_head * CAPACITY}"
    padding = f"OR(MOD(ROW()-2,{CAPACITY})>=n_tokens,COLUMN()-2>=n_tokens)"
    assert rules("h0.attn.pattern") == [
        (f"B2:{last}", "expression", padding),  # first, so it wins over the colours
        (f"B2:{last}", "colorScale", ""),
    ]
    assert rules("ln_f") == [(f"B2:BM{1 + CAPACITY}", "expression", "MOD(ROW()-2,8)>=n_tokens")]
    # vocab down the rows, positions across: the padding is columns (values: on demand)
    assert rules("logits_all")[0][2] == f"MOD(COLUMN()-2,{CAPACITY})>=n_tokens"
    assert rules("logits") == [("B2:B2049", "colorScale", "")]  # one row: the prediction
