"""Loading a tokenizer by name (`gpt2`, a model's name) or folder, once per process
(reloaded when a file in the folder changes)."""

from __future__ import annotations

import os
import threading
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
