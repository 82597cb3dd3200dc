"""`--parts`: GPT-2 in formulas mode as several workbooks of consecutive blocks. Each part is
recalculated by LibreOffice headless; part k's recalculated output residual is fed into part
k+1, and the last part's next token and logits are compared with the engine run in float64
(fails, never skips, without soffice)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from openpyxl import load_workbook

import cellgpt
from cellgpt.cli import main
from cellgpt.export import excel_forms
from cellgpt.export.front_sheets import SAME_AS_CELLGPT
from cellgpt.export.parts import (
    OUTPUT_SAME,
    block_of,
    feed,
    parse_parts,
    plan_parts,
)
from cellgpt.export.plan import select
from cellgpt.export.recalc import read_array, recalculate
from cellgpt.export.split import export_parts
from tests.export.test_export import GPT2, float64_reference

PROMPT = "Hello world, it is"
CAPACITY = 8


def _summary(book: object) -> dict[str, object]:
    rows = book["Summary"].iter_rows(values_only=True)  # type: ignore[index]
    return {r[0]: r[1] for r in rows if r and r[0]}


def test_parts_recalculate_and_chain_to_the_engines_next_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # gpt2-mini (12 blocks, width 64, vocabulary 2,048) in two parts: LibreOffice twice.
    # Logits in column chunks of wte (as GPT-2 small's are), 7 here: verified too.
    monkeypatch.setattr(excel_forms, "MMULT_CHUNK", 20_000)
    wb = cellgpt.open(GPT2, model="gpt2-mini", prompt=PROMPT)
    n = len(wb["token_ids"])
    first, last = export_parts(wb, tmp_path / "m.xlsx", "0-5,6-11", capacity=CAPACITY)
    assert (first.path.name, last.path.name) == ("m.part1of2.xlsx", "m.part2of2.xlsx")
    index = list(load_workbook(last.path, read_only=True)["Index"].values)
    row = next(r for r in index if r[0] == "h6.resid_pre")
    assert row[6] == "values (input from part 1, computed by cellgpt)"
    ref = float64_reference("gpt2-mini", PROMPT)

    book = load_workbook(recalculate(first.path, tmp_path / "lo1"), read_only=True, data_only=True)
    summary = _summary(book)
    assert summary["this workbook"] == "part 1 of 2: blocks 0–5"
    assert summary[OUTPUT_SAME] == "yes"  # the part's own check of its output
    out = first.plan.entry("h5.resid_post")
    assert out is not None and out.placement is not None
    got = read_array(book, out.placement, np.shape(out.value))
    np.testing.assert_allclose(got[:n], ref["h5.resid_post"], rtol=0, atol=1e-6)
    book.close()

    # chain: part 1's recalculated output is part 2's input
    entry = last.plan.entry("h6.resid_pre")
    assert entry is not None and entry.placement is not None
    feed(got, entry.placement, last.path)
    book = load_workbook(recalculate(last.path, tmp_path / "lo2"), read_only=True, data_only=True)
    summary = _summary(book)
    assert summary["this workbook"] == "part 2 of 2: blocks 6–11"
    assert summary[SAME_AS_CELLGPT] == "yes"
    assert summary["next token id (this workbook's formula)"] == int(ref["next_token"])
    logits = last.plan.entry("logits")
    assert logits is not None and logits.pieces is not None and len(logits.pieces) == 7
    got = read_array(book, logits.placement, np.shape(logits.value))
    np.testing.assert_allclose(got, ref["logits"], rtol=0, atol=1e-6)
    book.close()


def test_parts_hold_their_blocks_and_label_their_inputs(tmp_path: Path) -> None:
    wb = cellgpt.open(GPT2, model="gpt2-mini", prompt=PROMPT)
    wb.run()
    # 12 equal blocks; the first and last parts also carry wte: the middle gets the most
    ranges = parse_parts("3", wb, CAPACITY)
    assert [b for r in ranges for b in r] == list(range(12))
    assert len(ranges[1]) > max(len(ranges[0]), len(ranges[2]))
    assert parse_parts("0-5, 6-11", wb) == [range(0, 6), range(6, 12)]
    for bad in ("0-3,5-11", "0-12", "13", "0", "a-b"):
        with pytest.raises(ValueError, match="--parts"):
            parse_parts(bad, wb)
    parts = plan_parts(wb, parse_parts("0-3,4-7,8-11", wb), select(wb, None, "formulas", False))
    for k, part in enumerate(parts):
        pulled = select(wb, part.cells, "formulas", False, stops=part.inputs)
        assert {block_of(n) for n in pulled} - {None} == set(range(4 * k, 4 * k + 4))
        assert ("wte" in pulled) == (k in (0, 2))  # the embedding and the logits read it
        assert ("logits" in pulled) == (k == 2)
        assert ("token_ids" in pulled) == (k == 0)
        note = f"input from part {k}, computed by cellgpt"
        want = {f"h{4 * k}.resid_pre": note, "n_tokens": note} if k else {}
        assert part.inputs == want
    assert main(["export", str(tmp_path / "x.xlsx"), "--mode", "formulas", "--parts", "3-11"]) != 0
    assert not list(tmp_path.iterdir())
