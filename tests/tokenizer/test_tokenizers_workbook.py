"""The comparison as a workbook (`workbooks/tokenizers.py`) and in the TUI: type a sentence,
re-run, and see GPT-2 split 8 spaces into 8 tokens where GPT-4 makes one. Also the named
tokenizer trace of the tokenizer workbench: GPT-4's merges for a word, pass by pass."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import cellgpt
from cellgpt.engine import Status
from cellgpt.tokenizer.compare import SAMPLE
from cellgpt.tokenizer.named import load_tokenizer

REPO = Path(__file__).resolve().parents[2]


def test_the_workbook_sample_is_the_built_in_one() -> None:
    # The workbook's input is a literal (inputs are), so it is checked against SAMPLE here.
    wb = cellgpt.open("tokenizers")
    assert wb["sentence"] == SAMPLE


def test_comparison_rows_match_the_tokenizers() -> None:
    wb = cellgpt.open("tokenizers")
    rows = {row[0]: row for row in wb["comparison"]}
    assert list(rows) == ["gpt2-mini", "gpt2", "cl100k_base", "o200k_base"]
    for name, row in rows.items():
        ids = load_tokenizer(name).encode(SAMPLE, allowed_special="all")
        assert row[1] == len(ids)
        assert row[2] == round(len(SAMPLE.encode()) / len(ids), 3)
    pieces = wb["gpt4_tokens"]
    assert "".join(pieces) == SAMPLE and len(pieces) == rows["cl100k_base"][1]
    assert rows["cl100k_base"][6] == "|".join(p.replace("\n", "↵") for p in pieces)
    assert wb.table("comparison").columns[0] == "tokenizer"


def test_typing_eight_spaces() -> None:
    wb = cellgpt.open("tokenizers")
    wb.set("sentence", " " * 8 + "x")
    counts = {row[0]: row[1] for row in wb["comparison"]}
    assert counts["gpt2"] == 8 and counts["cl100k_base"] == 2
    assert wb["gpt2_tokens"] == [" "] * 7 + [" x"]
    assert wb["gpt4_tokens"] == [" " * 7, " x"]


def test_a_workbook_names_tokenizers_only_by_name() -> None:
    wb = cellgpt.open("tokenizers")
    wb.set("tokenizers", ["gpt2", "/etc/passwd"])
    wb.run_all()
    assert wb.status("comparison") is Status.ERROR
    assert "only by name" in wb.state("comparison").error.message


def test_named_trace_in_the_tokenizer_workbench() -> None:
    wb = cellgpt.open("tokenizer")
    assert wb["tokenizer_name"] == "cl100k_base"
    rows = wb["named_bpe"]
    assert rows[0][5] == tuple("Ġstrawberry")  # pass 0: one symbol per byte
    assert rows[-1][5] == ("Ġstrawberry",) and wb["named_ids"] == [73700]
    ranks = [row[4] for row in rows[1:]]
    assert ranks == sorted(ranks)  # each pass makes a later token than the one before
    wb.set("tokenizer_name", "o200k_base")
    wb.set("word", "안녕하세요 1234567")
    tok = load_tokenizer("o200k_base")
    assert wb["named_ids"] == tok.encode("안녕하세요 1234567")
    assert wb["named_words"] == ["안녕하세요", " ", "123", "456", "7"]


def test_the_tui_shows_the_comparison_after_an_edit() -> None:
    sys.path.insert(0, str(REPO / "tests" / "tui"))
    from test_tui import SIZE, edit, settle

    from cellgpt.tui.app import CellGptApp

    wb = cellgpt.open("tokenizers")
    app = CellGptApp(wb)

    async def main() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            app.show_cell("sentence")
            await pilot.pause()
            await edit(pilot, repr(" " * 8 + "x"))
            await pilot.press("R")
            await settle(pilot)
            app.show_cell("comparison")
            await settle(pilot)
            assert wb.status("comparison") is Status.FRESH

    asyncio.run(main())
    assert wb["sentence"] == " " * 8 + "x"
    assert {row[0]: row[1] for row in wb["comparison"]}["gpt2"] == 8


def test_the_workbench_trains_without_a_pre_split() -> None:
    wb = cellgpt.open("tokenizer")
    assert all(not t.endswith(" ") for t in wb["tokens"])  # GPT-2's split: spaces lead words
    wb.set("pattern", "none")
    assert "est " in wb["tokens"]  # merged across the space, as minbpe's basic tokenizer does
    assert wb["decoded"] == wb["prompt"]
