"""Loading a tokenizer by name (`gpt2`, a model's name) or folder, once per process
(reloaded when a file in the folder changes)."""

from __future__ import annotations

import os
import threading
import weakref
from pathlib import Path

from cellgpt.locations import RANKS_SUFFIX, reachable_tokenizer, resolve_model, resolve_tokenizer
from cellgpt.tokenizer.alphabet import TokenizerError
from cellgpt.tokenizer.bpe import Tokenizer
from cellgpt.tokenizer.hf import HFTokenizer
from cellgpt.tokenizer.ranked import RankTokenizer
from cellgpt.tokenizer.rankfile import read_ranks

_lock = threading.Lock()
_tokenizers: dict[Path, tuple[float, Tokenizer]] = {}
_hf: dict[Path, tuple[float, HFTokenizer]] = {}


def _stamp(path: Path) -> float:
    if not path.is_dir():
        return path.stat().st_mtime_ns
    return max((p.stat().st_mtime_ns for p in path.iterdir() if p.is_file()), default=0)


def _read(path: Path) -> Tokenizer:
    """A GPT-2-format folder, a rank table of ours or minbpe's .model file."""
    if path.is_dir():
        return Tokenizer.from_dir(path)
    if path.name.endswith(RANKS_SUFFIX):
        table = read_ranks(path)
        return RankTokenizer(table.ranks, table.pattern, table.special_tokens, table.name)
    if path.suffix == ".model":
        from cellgpt.tokenizer.minbpe_files import read_model

        table = read_model(path)
        return RankTokenizer(table.ranks, table.pattern, table.special_tokens, table.name)
    raise TokenizerError(
        f"{path}: not a tokenizer cellgpt encodes with (a folder with encoder.json, a "
        f"{RANKS_SUFFIX} rank table or a minbpe .model); a Hugging Face tokenizer.json is for "
        "`cellgpt tokenizer encode/decode/compare`"
    )


def _load(path: Path) -> Tokenizer:
    stamp = _stamp(path)
    with _lock:
        cached = _tokenizers.get(path)
        if cached is None or cached[0] != stamp:
            _tokenizers[path] = (stamp, _read(path))
        return _tokenizers[path][1]


def load_tokenizer(name: str | os.PathLike[str]) -> Tokenizer:
    """A tokenizer folder or file, a model name whose folder has one, the built-in `gpt2`, or
    a bundled rank table (`r50k_base`, `p50k_base`, `p50k_edit`, `cl100k_base`, `o200k_base`)."""
    return _load(resolve_tokenizer(name))


def load_any_tokenizer(name: str | os.PathLike[str]) -> Tokenizer | HFTokenizer:
    """`load_tokenizer`, or a Hugging Face tokenizer.json (a file, or a folder holding one)
    for the commands that only encode, decode and compare."""
    path = resolve_tokenizer(name)
    if path.is_file() and path.suffix == ".json":
        stamp = _stamp(path)
        with _lock:
            cached = _hf.get(path)
            if cached is None or cached[0] != stamp:
                _hf[path] = (stamp, HFTokenizer.from_file(path))
            return _hf[path][1]
    return _load(path)


def load_reachable_tokenizer(name: object) -> Tokenizer:
    """What a workbook may load: a tokenizer by name (never a path it was not granted)."""
    return _load(reachable_tokenizer(name))


def load_model_tokenizer(model: str | os.PathLike[str]) -> Tokenizer:
    """The tokenizer that ships with a model (its folder's encoder.json and vocab.bpe)."""
    return _load(resolve_model(model))


# Tokenizer → whether it is GPT-2's: comparing the tables takes ~10 ms, and the TUI asks on
# every refresh of its header.
_is_gpt2: weakref.WeakKeyDictionary[Tokenizer, bool] = weakref.WeakKeyDictionary()


def is_gpt2(tok: Tokenizer) -> bool:
    """Whether `tok` is GPT-2's tokenizer: the same vocabulary, merges, specials and split."""
    if tok not in _is_gpt2:
        ref = Tokenizer.gpt2()
        _is_gpt2[tok] = tok is ref or (
            tok.vocab_size == ref.vocab_size
            and tok.pattern == ref.pattern
            and tok.special_tokens == ref.special_tokens
            and tok.encoder == ref.encoder
            and tok.bpe_ranks == ref.bpe_ranks
        )
    return _is_gpt2[tok]


# Who uses each bundled table, for people.
KNOWN_TABLES = {
    "r50k_base": "r50k_base (GPT-3)",
    "p50k_base": "p50k_base (Codex, text-davinci-002/003)",
    "p50k_edit": "p50k_edit (the edit models)",
    "cl100k_base": "cl100k_base (GPT-4, GPT-3.5)",
    "o200k_base": "o200k_base (GPT-4o)",
}


def tokenizer_name(tok: Tokenizer, source: str | os.PathLike[str]) -> str:
    """A name that loads the same tokenizer again (`--tokenizer NAME`): `gpt2` for GPT-2's,
    else `source` (the model or folder it came from)."""
    return "gpt2" if is_gpt2(tok) else os.fspath(source)


def describe_tokenizer(tok: Tokenizer, source: str | os.PathLike[str]) -> str:
    """Which tokenizer, for people: "GPT-2 (50,257 tokens)" or "gpt2-mini's own (2,048
    tokens)" — the bundled model does not read text with GPT-2's vocabulary."""
    size = f"({tok.vocab_size:,} tokens)"
    if is_gpt2(tok):
        return f"GPT-2 {size}"
    if isinstance(tok, RankTokenizer) and tok.name in KNOWN_TABLES:
        return f"{KNOWN_TABLES[tok.name]} {size}"
    return f"{Path(os.fspath(source)).name or os.fspath(source)}'s own {size}"
