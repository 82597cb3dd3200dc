"""minbpe's own files, so a tokenizer trained with the lecture's code plugs into cellgpt and
one trained by cellgpt opens in minbpe.

`NAME.model` (what minbpe's `load` reads):
    line 1   `minbpe v1`
    line 2   the split pattern (empty for the basic tokenizer: no pre-split)
    line 3   the number of special tokens, then one `TOKEN ID` line each
    then     one merge per line, `LEFT_ID RIGHT_ID`; the k-th merge makes id 256 + k
Ids 0..255 are the raw byte values (GPT-2's encoder.json orders bytes differently, so ids
0..255 differ between the two file kinds; merged tokens keep their ids). `NAME.vocab` is
for people only (minbpe never reads it): every token with the two tokens it merges.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import regex

from cellgpt.tokenizer.alphabet import PATTERNS, TokenizerError
from cellgpt.tokenizer.files import read_text
from cellgpt.tokenizer.rankfile import RankTable

VERSION_LINE = "minbpe v1"


def read_model(path: str | os.PathLike[str]) -> RankTable:
    """A minbpe `.model` file as a rank table (rank = minbpe's id); errors name the line."""
    path = Path(path)
    lines = read_text(path, what="minbpe model").split("\n")
    if lines[0].rstrip("\r") != VERSION_LINE:
        raise TokenizerError(f"{path} line 1: expected {VERSION_LINE!r}, got {lines[0][:40]!r}")
    if len(lines) < 3:
        raise TokenizerError(f"{path}: cut short before the special-token count (line 3)")
    pattern = lines[1].rstrip("\r") or "none"
    try:
        regex.compile(PATTERNS.get(pattern, pattern))
    except (regex.error, RecursionError) as e:
        raise TokenizerError(
            f"{path} line 2: the split pattern is not a valid regex ({e})"
        ) from None
    specials, first_merge = _read_specials(path, lines)
    ranks: dict[bytes, int] = {bytes([b]): b for b in range(256)}
    vocab = [bytes([b]) for b in range(256)]
    first_line: dict[bytes, int] = {}
    for lineno, line in enumerate(lines[first_merge:], start=first_merge + 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise TokenizerError(f"{path} line {lineno}: expected two token ids, got {line!r}")
        left, right = int(parts[0]), int(parts[1])
        if max(left, right) >= len(vocab):
            raise TokenizerError(
                f"{path} line {lineno}: merge {left} {right} uses an id not made yet "
                f"(ids so far: 0..{len(vocab) - 1})"
            )
        token = vocab[left] + vocab[right]
        if token in ranks:
            # Rank tables key tokens by their bytes: two merges making the same bytes cannot
            # both have a rank.
            where = first_line.get(token)
            made = f"line {where}" if where else "a single byte"
            raise TokenizerError(
                f"{path} line {lineno}: merge {left} {right} makes {token!r} again ({made}); "
                "cellgpt needs every token's bytes to be unique"
            )
        first_line[token] = lineno
        ranks[token] = len(vocab)
        vocab.append(token)
    for token, idx in specials.items():
        if idx < len(vocab):
            raise TokenizerError(f"{path}: special token {token!r} reuses id {idx}")
    name = path.name.removesuffix(".model")
    return RankTable(name, ranks, pattern, specials, source=str(path))


def _read_specials(path: Path, lines: list[str]) -> tuple[dict[str, int], int]:
    count = lines[2].strip()
    if not count.isdigit():
        raise TokenizerError(f"{path} line 3: expected the number of special tokens, got {count!r}")
    specials: dict[str, int] = {}
    for lineno in range(4, 4 + int(count)):
        line = lines[lineno - 1].rstrip("\r") if lineno - 1 < len(lines) else ""
        token, _, idx = line.rpartition(" ")
        if not token or not idx.isdigit():
            raise TokenizerError(f"{path} line {lineno}: expected 'TOKEN ID', got {line!r}")
        specials[token] = int(idx)
    return specials, 3 + int(count)


def model_lines(
    merges: Sequence[tuple[bytes, bytes]], pattern: str, specials: dict[str, int]
) -> list[str]:
    """The `.model` lines for merges given as byte pairs (in rank order)."""
    ids = {bytes([b]): b for b in range(256)}
    out = [
        VERSION_LINE,
        "" if pattern in ("none", PATTERNS["none"]) else PATTERNS.get(pattern, pattern),
    ]
    out.append(str(len(specials)))
    out.extend(f"{token} {idx}" for token, idx in specials.items())
    for k, (left, right) in enumerate(merges):
        out.append(f"{ids[left]} {ids[right]}")
        ids[left + right] = 256 + k
    return out


def _shown(token: bytes) -> str:
    # Control characters would break the one-token-per-line layout: shown as \\uXXXX.
    text = token.decode("utf-8", errors="replace")
    return "".join(f"\\u{ord(ch):04x}" if unicodedata.category(ch)[0] == "C" else ch for ch in text)


def vocab_lines(merges: Sequence[tuple[bytes, bytes]], specials: dict[str, int]) -> list[str]:
    """The human-readable `.vocab`: `[left][right] -> [token] id` for merged tokens, `[byte]
    id` for the 256 bytes, then the special tokens."""
    out = [f"[{_shown(bytes([b]))}] {b}" for b in range(256)]
    for k, (left, right) in enumerate(merges):
        out.append(f"[{_shown(left)}][{_shown(right)}] -> [{_shown(left + right)}] {256 + k}")
    out.extend(f"[{token}] {idx}" for token, idx in specials.items())
    return out


def write_model(
    prefix: str | os.PathLike[str],
    merges: Sequence[tuple[bytes, bytes]],
    pattern: str,
    specials: dict[str, int],
) -> list[Path]:
    """Write PREFIX.model and PREFIX.vocab, as minbpe's `save(prefix)` does."""
    base = os.fspath(prefix)
    written = []
    for suffix, lines in (
        (".model", model_lines(merges, pattern, specials)),
        (".vocab", vocab_lines(merges, specials)),
    ):
        path = Path(base + suffix)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        written.append(path)
    return written
