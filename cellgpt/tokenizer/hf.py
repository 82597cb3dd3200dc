"""Any Hugging Face `tokenizer.json` (BERT's WordPiece, T5's and Llama's SentencePiece-style
Unigram/BPE, StarCoder's byte-level BPE), through the `tokenizers` library, for encoding,
decoding and comparison only: these do not run through our BPE, trace or workbooks.

`tokenizers` is an optional extra (`pip install cellgpt[hf-tokenizers]`). A tokenizer.json
is data: the library builds its pipeline from the JSON and runs no code from the file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from cellgpt.tokenizer.alphabet import TokenizerError
from cellgpt.tokenizer.files import parse_json, read_text

_BYTE_FALLBACK = re.compile(r"<0x[0-9A-Fa-f]{2}>")


class HFTokenizer:
    """A `tokenizers.Tokenizer` with the few methods cellgpt's commands use."""

    def __init__(self, backend: Any, name: str, unknown: str | None) -> None:
        self.backend = backend
        self.name = name
        self.unknown_id: int | None = backend.token_to_id(unknown) if unknown else None
        self.special_tokens: dict[str, int] = {
            t.content: i for i, t in backend.get_added_tokens_decoder().items() if t.special
        }
        self.vocab_size: int = backend.get_vocab_size(with_added_tokens=True)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> HFTokenizer:
        """Load a tokenizer.json; every error names the file (and the line for bad JSON)."""
        path = Path(path)
        raw = read_text(path, what="tokenizer.json")
        data = parse_json(path, raw)
        if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
            raise TokenizerError(f"{path}: not a Hugging Face tokenizer.json (no 'model' object)")
        try:
            from tokenizers import Tokenizer as Backend
        except ImportError:
            raise TokenizerError(
                f"{path}: reading a Hugging Face tokenizer.json needs the `tokenizers` library "
                "(pip install 'cellgpt[hf-tokenizers]')"
            ) from None
        try:
            backend = Backend.from_str(raw)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:  # schema errors, and Rust panics (a BaseException)
            raise TokenizerError(f"{path}: not a valid tokenizer.json ({e})") from None
        model = data["model"]
        unknown = model.get("unk_token")
        if unknown is None and isinstance(model.get("unk_id"), int):  # Unigram
            vocab = model.get("vocab") or []
            if 0 <= model["unk_id"] < len(vocab):
                unknown = vocab[model["unk_id"]][0]
        name = path.parent.name if path.name == "tokenizer.json" else path.stem
        return cls(backend, name, unknown if isinstance(unknown, str) else None)

    def _encoding(self, text: str) -> Any:
        try:
            return self.backend.encode(text, add_special_tokens=False)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:  # e.g. a Unigram model without an unknown token
            raise TokenizerError(f"{self.name}: cannot encode this text ({e})") from None

    def encode(self, text: str, allowed_special: object = "all", **_: object) -> list[int]:
        """Token ids of `text`, without the template's added [CLS]/[SEP]/<s> tokens. Special
        tokens are the file's added tokens, always recognised (`allowed_special` is accepted
        for a common signature and ignored)."""
        return list(self._encoding(text).ids)

    def decode(self, ids: list[int], errors: str = "replace") -> str:
        for i in ids:
            if self.backend.id_to_token(i) is None:
                raise TokenizerError(f"unknown token id {i} (vocabulary has {self.vocab_size})")
        return self.backend.decode(list(ids), skip_special_tokens=False)

    def token_str(self, token_id: int) -> str:
        """The vocabulary's spelling of one token (e.g. "##ing", "▁the", "Ġthe")."""
        token = self.backend.id_to_token(token_id)
        if token is None:
            raise TokenizerError(f"unknown token id {token_id} (vocabulary has {self.vocab_size})")
        return token

    def read(self, text: str) -> tuple[list[int], list[str], int, int]:
        """(ids, pieces, unknown tokens, byte tokens) of `text`. A piece is the stretch of
        text a token covers (by the library's offsets); text the tokenizer skips (BERT drops
        spaces) goes with the next token, and a token sharing its character with the one
        before shows as an empty piece. Byte tokens hold part of a character: byte-fallback
        tokens (<0xE2>) and byte-level ones that share a character's span."""
        enc = self._encoding(text)
        ids, offsets = list(enc.ids), list(enc.offsets)
        pieces, pos = [], 0
        for _, end in offsets:
            pieces.append(text[pos:end] if end > pos else "")
            pos = max(pos, end)
        if pieces and pos < len(text):
            pieces[-1] += text[pos:]
        shared = [
            (k and offsets[k - 1] == span) or (k + 1 < len(offsets) and offsets[k + 1] == span)
            for k, span in enumerate(offsets)
        ]
        unknown = sum(1 for i in ids if i == self.unknown_id)
        fallback = sum(
            1
            for i, split in zip(ids, shared, strict=True)
            if split or _BYTE_FALLBACK.fullmatch(self.backend.id_to_token(i) or "")
        )
        return ids, pieces, unknown, fallback

    def __repr__(self) -> str:
        return f"HFTokenizer({self.name}, vocab_size={self.vocab_size})"
