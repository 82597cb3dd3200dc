"""What every byte-level BPE piece shares: the pre-split patterns, the byte ↔ printable
character map, the vocabulary file names and the error type."""

from __future__ import annotations

from functools import cache

GPT2_SPLIT_PATTERN = (
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)
GPT4_SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
# tiktoken's r50k/p50k pattern: GPT-2's, written with possessive quantifiers (same splits).
R50K_SPLIT_PATTERN = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
)
# GPT-4o (o200k_base): case-aware words that keep their contraction, digits in threes.
O200K_SPLIT_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"""
        r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"""
        r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
# No pre-split (minbpe's basic tokenizer): the whole text is one piece.
NO_SPLIT_PATTERN = r"""(?s:.+)"""
PATTERNS: dict[str, str] = {
    "gpt2": GPT2_SPLIT_PATTERN,
    "gpt4": GPT4_SPLIT_PATTERN,
    "r50k": R50K_SPLIT_PATTERN,
    "o200k": O200K_SPLIT_PATTERN,
    "none": NO_SPLIT_PATTERN,
}

ENCODER_FILE = "encoder.json"
MERGES_FILE = "vocab.bpe"
CONFIG_FILE = "tokenizer_config.json"


class TokenizerError(ValueError):
    """Bad vocabulary files, unknown token ids, or disallowed special tokens in text."""


@cache
def bytes_to_unicode() -> dict[int, str]:
    """Map every byte to a printable character, so BPE tokens are readable strings.

    Bytes that are already printable (and not space) stand for themselves; the rest are moved
    to code points 256, 257, ... in byte order. The mapping is a bijection.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return dict(sorted(mapping.items()))


def unicode_to_bytes() -> dict[str, int]:
    """The inverse of `bytes_to_unicode`."""
    return {ch: b for b, ch in bytes_to_unicode().items()}


def fix_surrogates(text: str) -> str:
    """Make text encodable as UTF-8 the way tiktoken does.

    Surrogate pairs stored as two code units are joined into one character; lone surrogates
    become U+FFFD.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text
