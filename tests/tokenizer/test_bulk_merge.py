"""Merging many pieces at once (numpy, tokenizer/bulk_merge.py) gives the tokens of the
piece-by-piece BPE and of tiktoken, and a first encode of a big text takes that path."""

from __future__ import annotations

import random

import numpy as np
import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from cellgpt.tokenizer import bulk_merge, ranked
from cellgpt.tokenizer.bulk_merge import BULK_MAX, NO_PAIR, PairTable, merge_many
from cellgpt.tokenizer.named import load_tokenizer

TOK = load_tokenizer("cl100k_base")
RANKS = TOK.ranks
REF = tiktoken.Encoding(
    "cl100k-ref", pat_str=TOK.pattern, mergeable_ranks=RANKS, special_tokens=TOK.special_tokens
)
TABLE = PairTable(RANKS)
BYTE_RANKS = np.array([RANKS[bytes([b])] for b in range(256)], np.int64)


def test_the_pair_table_knows_every_split_and_nothing_else() -> None:
    rng = random.Random(0)
    tokens = rng.sample(sorted(RANKS), 3000)
    left, right, want = [], [], []
    for token in tokens:
        for cut in range(1, len(token)):
            a, b = RANKS.get(token[:cut]), RANKS.get(token[cut:])
            if a is not None and b is not None:
                left.append(a)
                right.append(b)
                want.append(RANKS[token])
    # and pairs that make no token
    by_rank = {r: t for t, r in RANKS.items()}
    for _ in range(3000):
        a, b = rng.randrange(len(RANKS)), rng.randrange(len(RANKS))
        if by_rank[a] + by_rank[b] not in RANKS:
            left.append(a)
            right.append(b)
            want.append(int(NO_PAIR))
    got = TABLE.lookup(np.array(left, np.int64), np.array(right, np.int64))
    assert got.tolist() == want


pieces = st.lists(
    st.one_of(
        st.binary(min_size=2, max_size=BULK_MAX),
        st.text(min_size=1, max_size=12).map(lambda s: s.encode("utf-8", "surrogatepass")),
    ).filter(lambda b: 2 <= len(b) <= BULK_MAX),
    min_size=1,
    max_size=60,
)


@settings(max_examples=120, deadline=None)
@given(pieces)
def test_many_pieces_merge_as_one_at_a_time(batch: list[bytes]) -> None:
    got = merge_many(batch, TABLE, BYTE_RANKS)
    for piece, ids in zip(batch, got, strict=True):
        assert ids == [RANKS[p] for p in ranked.merge_parts(piece, RANKS)]
        assert ids == REF._encode_single_piece(piece)


def test_pieces_of_the_wrong_length_are_refused() -> None:
    with pytest.raises(ValueError, match="2 to"):
        merge_many([b"ab", b"x" * (BULK_MAX + 1)], TABLE, BYTE_RANKS)


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base", "r50k_base"])
def test_a_first_encode_of_a_big_text_merges_in_bulk(name, monkeypatch) -> None:
    tok = load_tokenizer(name)
    ref = tiktoken.Encoding(
        f"{name}-ref", pat_str=tok.pattern, mergeable_ranks=tok.ranks, special_tokens={}
    )
    rng = random.Random(1)
    words = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyzéßж中") for _ in range(rng.randrange(2, 14)))
        for _ in range(6000)
    ]
    text = " ".join(words) + " " + "x" * 300 + " " + "Ünïcödé-wörds " * 50
    calls = []
    real = bulk_merge.merge_many

    def counting(batch, *args):
        calls.append(len(batch))
        return real(batch, *args)

    monkeypatch.setattr(ranked, "merge_many", counting)
    tok.clear_cache()
    assert tok.encode_ordinary(text) == ref.encode_ordinary(text)
    assert calls and calls[0] > ranked.BULK_MIN_PIECES // 2  # the bulk path ran
    assert tok.encode_ordinary(text) == ref.encode_ordinary(text)  # and its cache is right
