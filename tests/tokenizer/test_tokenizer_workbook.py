"""The tokenizer workbench workbook: its pass-by-pass training table agrees with a plain
recount-every-pass trainer written here, and the trained vocabulary encodes and decodes."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise
from pathlib import Path

import regex

import cellgpt
from cellgpt.engine import Status
from cellgpt.tokenizer.bpe import GPT2_SPLIT_PATTERN

WORKBOOK = Path(__file__).resolve().parents[2] / "workbooks" / "tokenizer.py"
CORPUS = (
    "low low low low low lower lower newest newest newest newest newest newest widest widest widest"
)


def recount_trainer(text: str, n_merges: int) -> list[list[list[bytes]]]:
    """Every chunk's tokens after each pass, recounting all pairs every pass (ties: smallest
    (left, right) bytes), most frequent chunk first as in the workbook's columns."""
    counts = Counter(regex.findall(GPT2_SPLIT_PATTERN, text))
    order = [c for c, _ in sorted(counts.items(), key=lambda kv: -kv[1])]
    words = {c: [bytes([b]) for b in c.encode()] for c in order}
    history = [[list(words[c]) for c in order]]
    for _ in range(n_merges):
        pairs: Counter[tuple[bytes, bytes]] = Counter()
        for c, toks in words.items():
            for pair in pairwise(toks):
                pairs[pair] += counts[c]
        best = min(pairs, key=lambda p: (-pairs[p], p))
        for c, toks in words.items():
            out, i = [], 0
            while i < len(toks):
                if i + 1 < len(toks) and (toks[i], toks[i + 1]) == best:
                    out.append(toks[i] + toks[i + 1])
                    i += 2
                else:
                    out.append(toks[i])
                    i += 1
            words[c] = out
        history.append([list(words[c]) for c in order])
    return history


def _cells_as_bytes(row: tuple, n_chunks: int) -> list[list[bytes]]:
    return [[t.replace("␣", " ").encode() for t in cell.split("·")] for cell in row[-n_chunks:]]


def test_training_table_matches_a_recount_trainer():
    wb = cellgpt.open(WORKBOOK)
    rows = wb["training"]
    chunks = wb["chunks"]
    assert chunks[0] == (" newest", 6) and dict(chunks)[" low"] == 4
    want = recount_trainer(CORPUS, wb["n_merges"])
    assert len(rows) == wb["n_merges"] + 1
    for n, row in enumerate(rows):
        assert row[0] == n
        assert _cells_as_bytes(row, len(chunks)) == want[n], f"pass {n}"
    # The textbook's first merges: e+s then es+t, 9 times each (newest ×6 + widest ×3).
    assert rows[1][1:5] == ('"e" + "s"', '"es"', 256, 9)
    assert rows[2][1:5] == ('"es" + "t"', '"est"', 257, 9)
    # The real trainer learned the same merges, in the same order.
    assert [m[1] for m in wb["merges"]] == [r[2] for r in rows[1:]]
    assert wb.table("training").columns[5] == "␣newest ×6"


def test_encoding_with_the_trained_vocabulary():
    wb = cellgpt.open(WORKBOOK)
    tokenizer = wb["tokenizer"]
    assert tokenizer.vocab_size == 256 + 10 + 1
    assert wb["ids"] == tokenizer.encode(wb["prompt"])
    assert wb["tokens"][:2] == ["low", "est"]
    assert wb["decoded"] == wb["prompt"]
    wb.set("prompt", "widest<|endoftext|>ünï")
    assert wb["words"][1] == "<|endoftext|>"
    assert tokenizer.special_tokens["<|endoftext|>"] in wb["ids"]
    assert wb["decoded"] == "widest<|endoftext|>ünï"


def test_editing_the_merge_count_reruns_training_only_downstream():
    wb = cellgpt.open(WORKBOOK)
    wb.run()
    chunk_runs = wb.state("chunks").runs
    wb.set("n_merges", 3)
    assert "training" in wb.stale() and "ids" in wb.stale() and "chunks" not in wb.stale()
    assert len(wb["training"]) == 4
    assert wb["tokens"][:3] == ["lo", "w", "est"]
    assert wb.state("chunks").runs == chunk_runs


def test_asking_for_more_merges_than_the_corpus_has_is_a_cell_error():
    wb = cellgpt.open(WORKBOOK)
    wb.set("n_merges", 100)
    wb.run_all()
    assert wb.status("training") is Status.ERROR
    assert "supports only 15 merges; 100 were asked for" in wb.state("training").error.message
    assert wb.status("trained") is Status.ERROR
    assert wb.status("chunks") is Status.FRESH
