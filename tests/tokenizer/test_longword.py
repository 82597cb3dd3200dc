"""Training merges long words (a whole text under `--pattern none`) by position; the
merges, their counts and every word's final ids are those of rewriting each word per merge."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cellgpt.tokenizer import train
from cellgpt.tokenizer.longword import LongWord
from cellgpt.tokenizer.train import train_bpe

REPO = Path(__file__).resolve().parents[2]


def both_ways(
    monkeypatch: pytest.MonkeyPatch, texts: list[str], vocab: int, pattern: str
) -> tuple[train.TrainedBPE, train.TrainedBPE]:
    with monkeypatch.context() as m:
        m.setattr(train, "LONG_WORD", 1 << 40)  # every word rewritten per merge
        plain = train_bpe(texts, vocab, pattern=pattern, special_tokens=[])
    with monkeypatch.context() as m:
        m.setattr(train, "LONG_WORD", 1)  # every word of 2+ bytes by position
        indexed = train_bpe(texts, vocab, pattern=pattern, special_tokens=[])
    return plain, indexed


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.text(alphabet="aab c\n", min_size=1, max_size=60), min_size=1, max_size=4),
    st.sampled_from(["none", "gpt2"]),
)
def test_same_training_either_way(texts: list[str], pattern: str) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        try:
            plain, indexed = both_ways(monkeypatch, texts, 256 + 6, pattern)
        except ValueError:  # too few pairs for 6 merges: both ways must say so
            with pytest.raises(ValueError):
                train_bpe(texts, 256 + 6, pattern=pattern, special_tokens=[])
            return
    assert indexed.merges == plain.merges
    assert indexed.merge_counts == plain.merge_counts
    assert indexed.segmentation == plain.segmentation


def test_a_whole_text_as_one_word(monkeypatch: pytest.MonkeyPatch) -> None:
    text = (REPO / "data/corpus/shakespeare_val.txt").read_text(encoding="utf-8")[:20_000]
    plain, indexed = both_ways(monkeypatch, [text], 256 + 60, "none")
    assert indexed.merges == plain.merges and indexed.merge_counts == plain.merge_counts
    assert indexed.segmentation == plain.segmentation
    assert any(b" " in m[0] + m[1] and (m[0] + m[1]).strip() for m in indexed.merges)


def test_overlapping_runs_merge_left_to_right() -> None:
    word = LongWord([1, 1, 1, 1, 1, 2])
    delta: defaultdict[tuple[int, int], int] = defaultdict(int)
    made = word.merge(1, 1, 9, 3, delta)
    assert word.ids() == [9, 9, 1, 2]  # "aaaaa" -> aa aa a
    assert made == {(9, 9), (9, 1)}
    assert {p: d for p, d in delta.items() if d} == {(1, 1): -12, (9, 9): 3, (9, 1): 3}
