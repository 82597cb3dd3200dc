"""The tokenizer's own tables, for browsing: the vocabulary (one row per token id) and the
ranked merge list of `vocab.bpe` (one row per merge).

Both are plain lists of tuples, so every display path (CLI, DataFrame, TUI, export) takes
them as it takes any table. They are built in one pass over the tokenizer's dictionaries
(tens of ms for GPT-2's 50,257 tokens); the display text of every token is made once per
tokenizer and shared by both tables, so the merges' three text columns cost no new strings.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from cellgpt.tokenizer.bpe import Tokenizer
from cellgpt.tokenizer.display import token_text

VOCAB_TABLE_COLUMNS = ["id", "token", "bytes", "n_bytes", "rank"]
MERGES_TABLE_COLUMNS = ["rank", "left", "right", "result", "id"]


class _Shared:
    """What both tables of one tokenizer read: each id's display text and the id each merge
    makes, in rank order."""

    def __init__(self, tok: Tokenizer) -> None:
        self.texts: dict[int, str] = {i: token_text(b) for i, b in tok.id_bytes().items()}
        enc = tok.encoder
        # bpe_ranks lists the merges in rank order (it is built from vocab.bpe's lines)
        self.results: list[int] = [enc[left + right] for left, right in tok.bpe_ranks]
        # The rank of the merge that makes each token (the first, should two make the same).
        self.rank_of: dict[int, int] = {}
        for rank, result in zip(tok.bpe_ranks.values(), self.results, strict=True):
            self.rank_of.setdefault(result, rank)


_lock = threading.Lock()
_shared: weakref.WeakKeyDictionary[Tokenizer, _Shared] = weakref.WeakKeyDictionary()


def _of(tok: Tokenizer) -> _Shared:
    # Cached for the tokenizer's lifetime (tokenizers are immutable once built).
    with _lock:
        found = _shared.get(tok)
    if found is None:
        found = _Shared(tok)
        with _lock:
            found = _shared.setdefault(tok, found)
    return found


def vocab_table(tok: Tokenizer) -> list[tuple[Any, ...]]:
    """One row per token id: (id, token, bytes, n_bytes, rank). `token` is the readable text,
    `bytes` the exact bytes as a Python literal (b' the'), `rank` the merge that made the
    token (None for the 256 single bytes and for special tokens such as <|endoftext|>)."""
    shared = _of(tok)
    texts, rank_of = shared.texts, shared.rank_of
    id_bytes = tok.id_bytes()
    specials = set(tok.special_tokens.values())
    rows: list[tuple[Any, ...]] = []
    for i in sorted(id_bytes):
        b = id_bytes[i]
        # repr: C speed, exact, and the quotes show the edges (b' the', b'\xe2\x80')
        rows.append((i, texts[i], repr(b), len(b), None if i in specials else rank_of.get(i)))
    return rows


def merges_table(tok: Tokenizer) -> list[tuple[Any, ...]]:
    """One row per merge of `vocab.bpe`, in rank order: (rank, left, right, result, id), rank 0
    being the first line after the `#version` header; `id` is the result's token id."""
    shared = _of(tok)
    texts, enc = shared.texts, tok.encoder
    return [
        (rank, texts[enc[left]], texts[enc[right]], texts[result], result)
        for ((left, right), rank), result in zip(tok.bpe_ranks.items(), shared.results, strict=True)
    ]
