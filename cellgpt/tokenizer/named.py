"""Loading a tokenizer by name (`gpt2`, a model's name) or folder, once per process
(reloaded when a file in the folder changes)."""

from __future__ import annotations

import os
import threading
import weakref
from pathlib import Path

from cellgpt.locations import resolve_model, resolve_tokenizer
from cellgpt.tokenizer.bpe import Tokenizer

_lock = threading.Lock()
_tokenizers: dict[Path, tuple[float, Tokenizer]] = {}


def _stamp(folder: Path) -> float:
    return max((p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()), default=0)


def _load(folder: Path) -> Tokenizer:
    stamp = _stamp(folder)
    with _lock:
        cached = _tokenizers.get(folder)
        if cached is None or cached[0] != stamp:
            _tokenizers[folder] = (stamp, Tokenizer.from_dir(folder))
        return _tokenizers[folder][1]


def load_tokenizer(name: str | os.PathLike[str]) -> Tokenizer:
    """A tokenizer folder, a model name whose folder has one, or the built-in `gpt2`."""
    return _load(resolve_tokenizer(name))


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
    return f"{Path(os.fspath(source)).name or os.fspath(source)}'s own {size}"
