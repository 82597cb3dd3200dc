"""Rank tables (token bytes → rank, as tiktoken keeps them) in a compact file of ours.

`NAME.ranks.xz` is xz-compressed: a magic line, a JSON header line (name, split pattern,
special tokens, the runs of consecutive ranks, where the table came from), then every token in
rank order as one length byte followed by its bytes. Raw bytes compress better than
tiktoken's base64 lines (cl100k: 390 kB against 560 kB). The bundled tables are written by
`scripts/convert_tiktoken_ranks.py` from the npm package js-tiktoken.
"""

from __future__ import annotations

import json
import lzma
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cellgpt.engine.safe_files import UnsafeFileError, read_bytes
from cellgpt.tokenizer.alphabet import TokenizerError

MAGIC = b"cellgpt-ranks 1\n"
SUFFIX = ".ranks.xz"
# Compressed and decompressed caps: o200k is 0.8 MB compressed, 1.6 MB unpacked.
MAX_FILE_BYTES = 32 << 20
MAX_UNPACKED_BYTES = 64 << 20


@dataclass
class RankTable:
    """A byte-level BPE vocabulary as tiktoken defines one: ranks of byte strings (the rank
    is the token id and the merge priority), a split pattern and special tokens."""

    name: str
    ranks: dict[bytes, int]
    pattern: str
    special_tokens: dict[str, int]
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _runs(ranks: dict[bytes, int]) -> list[list[int]]:
    """[[start, count], ...] covering the sorted ranks."""
    runs: list[list[int]] = []
    for r in sorted(ranks.values()):
        if runs and runs[-1][0] + runs[-1][1] == r:
            runs[-1][1] += 1
        else:
            runs.append([r, 1])
    return runs


def dump_ranks(table: RankTable) -> bytes:
    """The compressed file content for `table` (deterministic for the same table)."""
    header = {
        "name": table.name,
        "pattern": table.pattern,
        "special_tokens": table.special_tokens,
        "runs": _runs(table.ranks),
        "source": table.source,
        **table.extra,
    }
    body = bytearray()
    for token in sorted(table.ranks, key=table.ranks.__getitem__):
        if not 0 < len(token) < 256:
            raise TokenizerError(f"token {token!r}: length {len(token)} is outside 1..255")
        body.append(len(token))
        body += token
    raw = MAGIC + json.dumps(header, ensure_ascii=False).encode() + b"\n" + bytes(body)
    return lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME)


def write_ranks(path: str | os.PathLike[str], table: RankTable) -> Path:
    """Write `table` to `path` (normally NAME.ranks.xz)."""
    out = Path(path)
    out.write_bytes(dump_ranks(table))
    return out


def _unpack(path: Path) -> bytes:
    try:
        data = read_bytes(path, MAX_FILE_BYTES, what="rank table")
    except UnsafeFileError as e:
        raise TokenizerError(str(e)) from None
    # A decompression bomb stops at the cap instead of filling memory.
    unpacker = lzma.LZMADecompressor()
    try:
        raw = unpacker.decompress(data, max_length=MAX_UNPACKED_BYTES + 1)
    except lzma.LZMAError as e:
        raise TokenizerError(f"{path}: not an xz-compressed rank table ({e})") from None
    if len(raw) > MAX_UNPACKED_BYTES:
        raise TokenizerError(f"{path}: unpacks to over {MAX_UNPACKED_BYTES >> 20} MB; refused")
    return raw


def read_ranks(path: str | os.PathLike[str]) -> RankTable:
    """Read and check a rank table; every error names the file."""
    path = Path(path)
    raw = _unpack(path)
    if not raw.startswith(MAGIC):
        raise TokenizerError(f"{path}: not a cellgpt rank table (first line {raw[:20]!r})")
    end = raw.find(b"\n", len(MAGIC))
    try:
        header = json.loads(raw[len(MAGIC) : end])
    except (ValueError, RecursionError) as e:
        raise TokenizerError(f"{path}: header line 2 is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise TokenizerError(f"{path}: header line 2 must be a JSON object")
    ranks = _read_tokens(path, raw, end + 1, header.get("runs"))
    specials = header.get("special_tokens", {})
    if not isinstance(specials, dict) or not all(
        isinstance(t, str) and t and isinstance(i, int) and i >= 0 for t, i in specials.items()
    ):
        raise TokenizerError(f"{path}: special_tokens must map token strings to ids")
    taken = set(ranks.values())
    for token, idx in specials.items():
        if idx in taken:
            raise TokenizerError(f"{path}: special token {token!r} reuses rank {idx}")
    pattern = header.get("pattern")
    if not isinstance(pattern, str) or not pattern:
        raise TokenizerError(f"{path}: the header has no split pattern")
    known = {"name", "pattern", "special_tokens", "runs", "source"}
    return RankTable(
        name=str(header.get("name", path.name.removesuffix(SUFFIX))),
        ranks=ranks,
        pattern=pattern,
        special_tokens=dict(specials),
        source=str(header.get("source", "")),
        extra={k: v for k, v in header.items() if k not in known},
    )


def _read_tokens(path: Path, raw: bytes, pos: int, runs: Any) -> dict[bytes, int]:
    if not isinstance(runs, list) or not all(
        isinstance(r, list) and len(r) == 2 and all(isinstance(x, int) and x >= 0 for x in r)
        for r in runs
    ):
        raise TokenizerError(f"{path}: header 'runs' must be a list of [start, count]")
    ranks: dict[bytes, int] = {}
    n = len(raw)
    for (start, count), (after, _) in zip(runs, [*runs[1:], [1 << 62, 0]], strict=True):
        if start + count > after:
            raise TokenizerError(f"{path}: header 'runs' overlap or are out of order")
        for rank in range(start, start + count):
            size = raw[pos] if pos < n else 0
            token = raw[pos + 1 : pos + 1 + size]
            if size == 0 or len(token) != size:
                raise TokenizerError(f"{path}: token of rank {rank} is cut short or empty")
            if token in ranks:
                raise TokenizerError(
                    f"{path}: rank {rank} repeats the bytes of rank {ranks[token]} ({token!r})"
                )
            ranks[token] = rank
            pos += 1 + size
    if pos != n:
        raise TokenizerError(f"{path}: {n - pos} bytes after the last token")
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        raise TokenizerError(f"{path}: byte 0x{missing[0]:02x} has no token (not byte-level)")
    return ranks
