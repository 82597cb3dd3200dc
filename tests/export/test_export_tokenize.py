"""Tokenization in formulas: the prompt cell of a formulas export is tokenized by the sheet
(pre-split, BPE passes, ids). Prompts are typed into the file, LibreOffice recalculates
headless, and the ids must equal tiktoken's (built from the bundled GPT-2 tables with its own
regex and BPE); the model's output must equal the engine run on the new prompt. A non-ASCII
prompt shows why and falls back to typed ids. (Fails, never skips, without soffice.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from openpyxl import load_workbook

import cellgpt
from cellgpt.export.recalc import read_array, recalculate_all
from cellgpt.export.xlsx import FROM_PROMPT, ExportReport, export_workbook
from cellgpt.tokenizer.alphabet import GPT2_SPLIT_PATTERN
from tests.export.conftest import TINY_CAPACITY
from tests.export.test_export import GPT2, float64_reference
from tests.export.test_export_capacity import type_into
from tests.tokenizer.test_tokenizer import reference_encoding

CAPACITY = 16
PROMPTS = [
    "Hello world",
    "I'm sure they'll say we've won, don't you?",
    "It's 'quoted' and O'Neil's; 'S",
    "a   b  c x \n\nnew line  ",
    "pi = 3.14159, 2024!!! ...?",
    "x+=1;;//--",
    "  lead",
    "''s x 's a\n b 'S",  # an apostrophe after punctuation or a space is not a contraction
    "3's 're'll!'d",
    "x  \n  y \n",
]
# LibreOffice loads each file's 50,257-row vocab and merge sheets: the prompts go in two
# files, joined by line breaks, each group starting and ending with the prompts whose
# start (leading spaces, a leading apostrophe) or end (trailing spaces, a final line
# break) matters.
GROUP_ORDER = [(6, 0, 1, 4, 3), (7, 2, 5, 8, 9)]
GROUPS = ["\n".join(PROMPTS[i] for i in order) for order in GROUP_ORDER]
GROUP_CAPACITY = 56


def _ids(book: object) -> list[int]:
    rows = book["token_ids"].iter_rows(min_row=2, values_only=True)  # type: ignore[index]
    return [int(r[1]) for r in rows if isinstance(r[1], int | float)]


def _status(book: object) -> str:
    rows = book["tok_words"].iter_rows(min_row=2, max_row=2, values_only=True)  # type: ignore[index]
    return next(rows)[-1]


def test_ascii_prompts_tokenize_in_formulas_like_tiktoken(
    params_tiny_dir: Path, tmp_path: Path
) -> None:
    ref = reference_encoding(GPT2_SPLIT_PATTERN, "gpt2-reference")
    assert sorted(i for order in GROUP_ORDER for i in order) == list(range(len(PROMPTS)))
    for prompt in GROUPS:
        assert len(ref.encode(prompt)) <= GROUP_CAPACITY, prompt
    wb = cellgpt.open(GPT2, model=str(params_tiny_dir), prompt="Hi")
    # The tokenization sheets and the ids only: a short LibreOffice run.
    cells = ["token_ids", "n_tokens", "vocab"]
    report = export_workbook(
        wb, tmp_path / "tok.xlsx", mode="formulas", capacity=GROUP_CAPACITY, cells=cells
    )
    written = load_workbook(report.path, read_only=True)
    head = next(written["token_ids"].iter_rows(min_row=1, max_row=1, values_only=True))
    assert head[6] == FROM_PROMPT
    assert all(r[3] is None for r in written["token_ids"].iter_rows(min_row=2, values_only=True))
    edited = []
    for k, prompt in enumerate([*GROUPS, "café au lait"]):
        edited.append(tmp_path / f"p{k}.xlsx")
        type_into(report.path, edited[-1], "prompt", {"B2": prompt})
    outs = recalculate_all(edited, tmp_path / "lo")
    books = [load_workbook(p, data_only=True, read_only=True) for p in outs]
    for prompt, book in zip(GROUPS, books, strict=False):
        assert _status(book) == "ok", prompt
        assert _ids(book) == ref.encode(prompt), prompt
        assert book["n_tokens"]["B2"].value == len(ref.encode(prompt))
    assert "outside ASCII" in _status(books[-1])  # and no ids: they are to be typed
    assert _ids(books[-1]) == []


def test_edited_prompt_recomputes_the_model_and_typed_ids_override(
    params_tiny_dir: Path, tiny_formulas_export: tuple[Any, ExportReport], tmp_path: Path
) -> None:
    wb, report = tiny_formulas_export
    capacity = TINY_CAPACITY
    prompt = "Don't stop, 42 times"
    type_into(report.path, tmp_path / "edited.xlsx", "prompt", {"B2": prompt})
    type_into(tmp_path / "edited.xlsx", tmp_path / "typed.xlsx", "token_ids", {"D3": 1000})
    runs = recalculate_all([tmp_path / "edited.xlsx", tmp_path / "typed.xlsx"], tmp_path / "lo")
    ids = wb["tokenizer"].encode(prompt)
    for out, want_ids in zip(runs, [ids, [ids[0], 1000, *ids[2:]]], strict=True):
        book = load_workbook(out, data_only=True, read_only=True)
        assert _ids(book) == want_ids
        ref = float64_reference(params_tiny_dir, prompt)
        ref.pin("token_ids", want_ids)
        ref.run()
        for name in ("logits", "probs"):
            e = report.plan.entry(name)
            got = read_array(book, e.placement, np.shape(e.value))
            np.testing.assert_allclose(got, np.asarray(ref[name]), rtol=0, atol=1e-6)
        assert book["next_token"]["B2"].value == int(ref["next_token"])
        # Row labels follow the ids the model reads (the vocab sheet's text, · for a space).
        labels = [r[0] for r in book["ln_f"].iter_rows(min_row=2, values_only=True)]
        texts = [wb["vocab"][i][1] for i in want_ids]
        assert labels == texts + ["(padding)"] * (capacity - len(texts))
        heads = [r[0] for r in book["h0.attn.pattern"].iter_rows(min_row=2, values_only=True)]
        assert heads[capacity] == f"1:{texts[0]}"


@pytest.mark.parametrize("prompt", ["naïve", "a\tb", "x\r\ny", "<|endoftext|>ok"])
def test_prompts_the_sheet_cannot_tokenize_are_exported_with_typed_ids(
    params_tiny_dir: Path, tmp_path: Path, prompt: str
) -> None:
    wb = cellgpt.open(GPT2, model=str(params_tiny_dir), prompt=prompt)
    report = export_workbook(
        wb, tmp_path / "n.xlsx", mode="formulas", capacity=CAPACITY, cells=["token_ids", "vocab"]
    )
    written = load_workbook(report.path, read_only=True)
    typed = [r[3] for r in written["token_ids"].iter_rows(min_row=2, values_only=True)]
    ids = [int(i) for i in wb["token_ids"]]
    assert typed == ids + [None] * (CAPACITY - len(ids))


def test_without_the_vocab_sheet_the_ids_are_typed(tmp_path: Path) -> None:
    """No vocab sheet, no lookup columns on token_ids, so no ids-from-prompt column: the
    prompt's ids are written as typed ids (the model must still read them)."""
    wb = cellgpt.open(GPT2, model="gpt2-mini", prompt="Mike is quick.")
    report = export_workbook(wb, tmp_path / "e.xlsx", mode="formulas", cells=["embed"])
    assert report.plan.entry("vocab") is None
    written = load_workbook(report.path, read_only=True)
    assert "tok_words" not in written.sheetnames
    typed = [r[3] for r in written["token_ids"].iter_rows(min_row=2, values_only=True)]
    ids = [int(i) for i in wb["token_ids"]]
    assert typed == ids + [None] * (16 - len(ids))
