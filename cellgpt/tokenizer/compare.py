"""One text through several tokenizers: token counts, bytes per token, where the boundaries
fall, and how many tokens are unknown or bytes of a character. The built-in sample is crafted
to show the differences the tokenizer lecture and newsletter talk about: capitals, a
strawberry, code indented by 4 and 8 spaces, long numbers, emoji, Korean, Chinese and a
special token."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from itertools import accumulate
from typing import Any

from cellgpt.tokenizer.bpe import Tokenizer
from cellgpt.tokenizer.hf import HFTokenizer

SAMPLE = (
    "Hello World! HELLO world. How many r's are in STRAWBERRY? The strawberry has 3.\n"
    "\n"
    "def count(word, letter):\n"
    "    total = 0\n"
    "    for ch in word:\n"
    "        if ch == letter:\n"
    "            total += 1\n"
    "    return total\n"
    "\n"
    "In 2024, 127 + 677 = 804 and 1234567 / 1000 = 1234.567.\n"
    "Emoji: 🍓😀👍🏽 🏳️‍🌈\n"
    "Korean: 안녕하세요, 세계!\n"
    "Chinese: 你好，世界！\n"
    "<|endoftext|>"
)

AnyTokenizer = Tokenizer | HFTokenizer


@dataclass
class Comparison:
    """One tokenizer's reading of the text."""

    tokenizer: str
    tokens: int
    bytes_per_token: float
    chars_per_token: float
    unknown: int  # tokens standing for text the vocabulary cannot spell ([UNK], <unk>)
    byte_tokens: int  # tokens holding part of a character (byte-level or <0xNN> fallback)
    ids: list[int] = field(repr=False)
    pieces: list[str] = field(repr=False)  # the text each token covers

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def byte_pieces(tok: Tokenizer, ids: list[int]) -> list[str]:
    """The text of each token, whole characters only: a character split across tokens is
    shown with the token holding its first byte, so a token holding only the tail of a
    character shows as an empty piece."""
    data = tok.decode_bytes(ids)
    ends = list(accumulate(len(tok.token_bytes(i)) for i in ids))
    pieces: list[list[str]] = [[] for _ in ids]
    pos = k = 0
    for ch in data.decode("utf-8"):  # whole encodings of text are always valid UTF-8
        while pos >= ends[k]:
            k += 1
        pieces[k].append(ch)
        pos += len(ch.encode("utf-8"))
    return ["".join(p) for p in pieces]


def compare_one(name: str, tok: AnyTokenizer, text: str) -> Comparison:
    """How `tok` reads `text` (special-token text counts as the special token)."""
    if isinstance(tok, HFTokenizer):
        ids, pieces, unknown, fallback = tok.read(text)
    else:
        ids = tok.encode(text, allowed_special="all")
        pieces = byte_pieces(tok, ids)
        unknown = 0  # byte-level: every text has a spelling
        fallback = sum(1 for i in ids if not _whole_utf8(tok.token_bytes(i)))
    n = max(len(ids), 1)
    return Comparison(
        tokenizer=name,
        tokens=len(ids),
        bytes_per_token=round(len(text.encode("utf-8")) / n, 3),
        chars_per_token=round(len(text) / n, 3),
        unknown=unknown,
        byte_tokens=fallback,
        ids=ids,
        pieces=pieces,
    )


def _whole_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def compare_all(text: str, tokenizers: dict[str, AnyTokenizer]) -> list[Comparison]:
    """Every tokenizer's reading of `text`, in the order given."""
    return [compare_one(name, tok, text) for name, tok in tokenizers.items()]
