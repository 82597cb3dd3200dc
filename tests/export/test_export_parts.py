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
from cellgpt.export.parts import OUTPUT_SAME, block_of, export_parts, feed, parse_parts
from cellgpt.export.recalc import read_array, recalculate
from cellgpt.export.xlsx import SAME_AS_CELLGPT
from tests.export.test_export import GPT2, float64_reference

PROMPT = "Hello world, it is"
CAPACITY = 8


def _summary(book: object) -> dict[str, object]:
    rows = book["Summary"].iter_rows(values_only=True)  # type: ignore[index]
    return {r[0]: r[1] for r in rows if r and r[0]}


def test_parts_recalculate_and_chain_to_the_engines_next_token(tmp_path: Path) -> None:
    # gpt2-mini (12 blocks, width 64, vocabulary 2,048): three parts, ~25 s with LibreOffice
    wb = cellgpt.open(GPT2, model="gpt2-mini", prompt=PROMPT)
    n = len(wb["token_ids"])
    reports = export_parts(wb, tmp_path / "m.xlsx", "0-3,4-7,8-11", capacity=CAPACITY)
    assert [r.path.name for r in reports] == [f"m.part{k}of3.xlsx" for k in (1, 2, 3)]
    ref = float64_reference("gpt2-mini", PROMPT)

    for k, report in enumerate(reports):
        entries = {e.name: e for e in report.plan.entries}
        blocks = {block_of(name) for name in entries} - {None}
        assert blocks == set(range(4 * k, 4 * k + 4))
        assert ("wte" in entries) == (k in (0, 2))  # the embedding and the logits read it
        assert ("logits" in entries) == (k == 2)
        if k > 0:
            for name in (f"h{4 * k}.resid_pre", "n_tokens"):
                assert entries[name].how == "values"
                assert entries[name].note == f"input from part {k}, computed by cellgpt"
            index = [r for r in load_workbook(report.path, read_only=True)["Index"].values]
            row = next(r for r in index if r[0] == f"h{4 * k}.resid_pre")
            assert row[6] == f"values (input from part {k}, computed by cellgpt)"

        book = load_workbook(recalculate(report.path, tmp_path / f"lo{k}"), data_only=True)
        summary = _summary(book)
        assert summary["this workbook"] == f"part {k + 1} of 3: blocks {4 * k}–{4 * k + 3}"
        if k < 2:  # each part's own check: its output against the engine's
            out = entries[f"h{4 * k + 3}.resid_post"]
            assert summary[OUTPUT_SAME] == "yes"
            got = read_array(book, out.placement, np.shape(out.value))
            np.testing.assert_allclose(got[:n], ref[out.name], rtol=0, atol=1e-6)
            # chain: this part's recalculated output is the next part's input
            nxt = reports[k + 1].plan.entry(f"h{4 * k + 4}.resid_pre")
            assert nxt is not None and nxt.placement is not None
            feed(got, nxt.placement, reports[k + 1].path)
        else:
            assert summary[SAME_AS_CELLGPT] == "yes"
            assert summary["next token id (this workbook's formula)"] == int(ref["next_token"])
            logits = entries["logits"]
            got = read_array(book, logits.placement, np.shape(logits.value))
            np.testing.assert_allclose(got, ref["logits"], rtol=0, atol=1e-6)


def test_parts_are_balanced_and_checked(tmp_path: Path) -> None:
    wb = cellgpt.open(GPT2, model="gpt2-mini", prompt=PROMPT)
    wb.run()
    # 12 equal blocks; the first and last parts also carry wte: they get fewer blocks
    ranges = parse_parts("3", wb)
    assert [r[0] for r in ranges] == [0, 3, 9] and ranges[-1][-1] == 11
    assert parse_parts("0-5, 6-11", wb) == [range(0, 6), range(6, 12)]
    for bad in ("0-3,5-11", "0-12", "13", "0", "a-b"):
        with pytest.raises(ValueError, match="--parts"):
            parse_parts(bad, wb)
    assert (
        main(
            ["export", str(tmp_path / "x.xlsx"), "--mode", "formulas", "--parts", "3-11", "--quiet"]
        )
        != 0
    )
    assert not list(tmp_path.iterdir())
