"""Loading and validating a tokenizer folder (encoder.json, vocab.bpe, tokenizer_config.json),
which may come from a stranger: read through `engine.safe_files` with a byte cap, every
error naming the file and, where it can, the line."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import regex

from cellgpt.engine.safe_files import UnsafeFileError, read_bytes
from cellgpt.locations import link_outside
from cellgpt.tokenizer.alphabet import (
    CONFIG_FILE,
    ENCODER_FILE,
    GPT2_SPLIT_PATTERN,
    MERGES_FILE,
    PATTERNS,
    TokenizerError,
    bytes_to_unicode,
)

# Tokens that look like special tokens (<|endoftext|>) are special unless the config says.
_SPECIAL_LOOKING = regex.compile(r"<\|[^\s]*\|>")


def load_folder(
    folder: Path,
) -> tuple[dict[str, int], list[tuple[str, str]], dict[str, int], str]:
    """(encoder, merges in rank order, special tokens, split pattern) of a tokenizer folder,
    every file checked and every error naming it."""
    for name in (ENCODER_FILE, MERGES_FILE, CONFIG_FILE):
        target = link_outside(folder, folder / name)
        if target is not None:
            raise TokenizerError(f"{folder / name}: a link to {target}, outside its folder")
    encoder = load_encoder(folder / ENCODER_FILE)
    merges = load_merges(folder / MERGES_FILE)
    check_bytes(encoder, folder / ENCODER_FILE)
    check_merges(merges, encoder, folder / MERGES_FILE)
    pattern, specials = load_config(folder, encoder)
    _check_specials(specials, encoder, folder)
    return encoder, [pair for pair, _ in merges], specials, pattern


def _json_line(raw: str, key: str) -> int | None:
    """The 1-based line of a JSON object key in `raw`, for error messages."""
    for quoted in (json.dumps(key), json.dumps(key, ensure_ascii=False)):
        pos = raw.find(quoted + ":")
        if pos < 0:
            pos = raw.find(quoted)
        if pos >= 0:
            return raw.count("\n", 0, pos) + 1
    return None


def _where(path: Path, line: int | None) -> str:
    return f"{path} line {line}" if line is not None else str(path)


# The files may come from a stranger: read without blocking (a FIFO or device is refused
# at once), regular files only, at most this much. GPT-2's encoder.json is 1 MB.
MAX_FILE_BYTES = 64 << 20


def read_text(path: Path, what: str = "tokenizer file") -> str:
    """A tokenizer file's text, read safely; every error names the file."""
    if not os.path.lexists(path):
        raise TokenizerError(f"{path}: file not found")
    try:
        data = read_bytes(path, MAX_FILE_BYTES, what=what)
    except UnsafeFileError as e:
        raise TokenizerError(str(e)) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TokenizerError(f"{path}: not valid UTF-8 ({e.reason} at byte {e.start})") from e


def _load_json(path: Path) -> tuple[Any, str]:
    raw = read_text(path)

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise TokenizerError(f"{_where(path, _json_line(raw, key))}: duplicate key {key!r}")
            out[key] = value
        return out

    return parse_json(path, raw, no_duplicates), raw


def parse_json(
    path: Path, raw: str, object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None
) -> Any:
    """JSON text of a tokenizer file; errors give the file, line and column."""
    try:
        return json.loads(raw, object_pairs_hook=object_pairs_hook)
    except json.JSONDecodeError as e:
        raise TokenizerError(
            f"{path} line {e.lineno} column {e.colno}: invalid JSON ({e.msg})"
        ) from e
    except RecursionError:
        raise TokenizerError(f"{path}: JSON nested too deeply") from None


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def load_encoder(path: Path) -> dict[str, int]:
    """Read `encoder.json`: token string → id, with unique non-negative integer ids."""
    data, raw = _load_json(path)
    if not isinstance(data, dict):
        raise TokenizerError(f"{path} line 1: expected a JSON object of token -> id")
    seen: dict[int, str] = {}
    for token, idx in data.items():
        problem = None
        if not token:
            problem = "empty token string"
        elif not _is_id(idx):
            problem = f"id of {token!r} must be a non-negative int, got {idx!r}"
        elif idx in seen:
            problem = f"id {idx} used by both {seen[idx]!r} and {token!r}"
        if problem:
            raise TokenizerError(f"{_where(path, _json_line(raw, token))}: {problem}")
        seen[idx] = token
    return data


def load_merges(path: Path) -> list[tuple[tuple[str, str], int]]:
    """Read `vocab.bpe`: ranked merges, each with its 1-based line number for later errors."""
    lines = read_text(path).split("\n")
    while lines and not lines[-1].strip():
        lines.pop()  # trailing blank lines are harmless
    merges: list[tuple[tuple[str, str], int]] = []
    seen: dict[tuple[str, str], int] = {}
    for lineno, line in enumerate(lines, start=1):
        line = line.removesuffix("\r")
        if lineno == 1 and line.startswith("#version"):
            continue
        parts = line.split(" ")
        if len(parts) != 2 or not all(parts):
            raise TokenizerError(
                f"{path} line {lineno}: expected two tokens separated by one space, got {line!r}"
            )
        pair = (parts[0], parts[1])
        if pair in seen:
            raise TokenizerError(
                f"{path} line {lineno}: merge {line!r} repeats the merge on line {seen[pair]}"
            )
        seen[pair] = lineno
        merges.append((pair, lineno))
    return merges


def check_merges(
    merges: list[tuple[tuple[str, str], int]], encoder: dict[str, int], path: Path
) -> None:
    for (left, right), lineno in merges:
        for part in (left, right, left + right):
            if part not in encoder:
                what = "result" if part == left + right else "part"
                raise TokenizerError(
                    f"{path} line {lineno}: merge {left!r} {right!r}: {what} {part!r} "
                    "is not in the encoder"
                )


def check_bytes(encoder: dict[str, int], path: Path) -> None:
    for b, ch in bytes_to_unicode().items():
        if ch not in encoder:
            raise TokenizerError(f"{path}: byte 0x{b:02x} (symbol {ch!r}) is not in the encoder")


def load_config(folder: Path, encoder: dict[str, int]) -> tuple[str, dict[str, int]]:
    """Pattern and special tokens from an optional tokenizer_config.json."""
    path = folder / CONFIG_FILE
    default_specials = {t: i for t, i in encoder.items() if _SPECIAL_LOOKING.fullmatch(t)}
    if not os.path.lexists(path):
        return GPT2_SPLIT_PATTERN, default_specials
    config, raw = _load_json(path)
    if not isinstance(config, dict):
        raise TokenizerError(f"{path} line 1: expected a JSON object")
    pattern = config.get("pattern", "gpt2")
    if not isinstance(pattern, str) or not pattern:
        raise TokenizerError(
            f"{_where(path, _json_line(raw, 'pattern'))}: pattern must be a string"
        )
    pattern = PATTERNS.get(pattern, pattern)
    try:
        regex.compile(pattern)
    except regex.error as e:
        raise TokenizerError(f"{_where(path, _json_line(raw, 'pattern'))}: bad regex ({e})") from e
    specials = config.get("special_tokens", default_specials)
    if not isinstance(specials, dict) or not all(_is_id(i) for i in specials.values()):
        raise TokenizerError(
            f"{_where(path, _json_line(raw, 'special_tokens'))}: special_tokens must map "
            "token strings to non-negative int ids"
        )
    return pattern, specials


def _check_specials(specials: dict[str, int], encoder: dict[str, int], folder: Path) -> None:
    by_id = {i: t for t, i in encoder.items()}
    for token, idx in specials.items():
        if not token:
            raise TokenizerError(f"{folder / CONFIG_FILE}: empty special token")
        if token in encoder and encoder[token] != idx:
            raise TokenizerError(
                f"{folder / CONFIG_FILE}: special token {token!r} has id {idx}, "
                f"but {ENCODER_FILE} gives it {encoder[token]}"
            )
        if by_id.get(idx, token) != token:
            raise TokenizerError(
                f"{folder / CONFIG_FILE}: special token {token!r} reuses id {idx} of {by_id[idx]!r}"
            )
    if len(set(specials.values())) != len(specials):
        raise TokenizerError(f"{folder / CONFIG_FILE}: special token ids are not unique")


# ---------------------------------------------------------------------------------------------
# The tokenizer
# ---------------------------------------------------------------------------------------------
