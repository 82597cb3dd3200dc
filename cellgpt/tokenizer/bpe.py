"""GPT-2 byte-level BPE tokenizer, written to be traced.

Text is cut into words by a regex, each word's UTF-8 bytes are mapped to printable characters
(`bytes_to_unicode`), and the ranked merges of `vocab.bpe` are applied pass by pass until no
ranked pair is left. `encode` matches tiktoken (special tokens, lone surrogates); `trace`
returns every merge pass so the spreadsheet can show the tokenization table.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from itertools import chain, pairwise
from pathlib import Path
from types import MappingProxyType
from typing import Literal

import regex

from cellgpt.locations import gpt2_tokenizer_dir
from cellgpt.tokenizer.alphabet import (
    GPT2_SPLIT_PATTERN,
    GPT4_SPLIT_PATTERN,
    PATTERNS,
    TokenizerError,
    bytes_to_unicode,
    fix_surrogates,
    unicode_to_bytes,
)
from cellgpt.tokenizer.ascii_split import ascii_splitter, ascii_stretches
from cellgpt.tokenizer.files import load_encoder, load_folder, load_merges

# The tokenizer's public face: what it builds on is imported from here too.
__all__ = [
    "DATA_DIR",
    "GPT2_SPLIT_PATTERN",
    "GPT4_SPLIT_PATTERN",
    "PATTERNS",
    "MergePass",
    "Tokenizer",
    "TokenizerError",
    "WordTrace",
    "bytes_to_unicode",
    "fix_surrogates",
    "load_encoder",
    "load_merges",
    "unicode_to_bytes",
]

DATA_DIR = gpt2_tokenizer_dir()
SPLIT_TIMEOUT = 2.0  # seconds one pre-split call of a custom (not built-in) pattern may take

# Word caches are cleared wholesale when they reach this size: bounded memory, no LRU cost.
CACHE_LIMIT = 100_000
CACHED_WORD_LIMIT = 1_000  # characters; longer words are encoded every time
NO_RANK = 1 << 62  # the rank of a pair that never merges

SpecialSet = Literal["all"] | Collection[str]


class PieceCache(dict[str, tuple[int, ...]]):
    """Word → ids, computing a missing word on lookup; emptied wholesale when full."""

    def __init__(self, compute: Callable[[str], tuple[int, ...]]) -> None:
        super().__init__()
        self.compute = compute

    def __missing__(self, word: str) -> tuple[int, ...]:
        ids = self.compute(word)
        if len(word) > CACHED_WORD_LIMIT:
            return ids  # a whole text (no pre-split) is not worth keeping
        if len(self) >= CACHE_LIMIT:
            self.clear()
        self[word] = ids
        return ids


@dataclass(frozen=True)
class MergePass:
    """One BPE pass: the lowest-ranked adjacent pair, merged everywhere it occurs."""

    pair: tuple[str, str]
    rank: int
    tokens: tuple[str, ...]


@dataclass
class WordTrace:
    """How one pre-split word (or special token) became token ids."""

    word: str
    symbols: str
    passes: list[MergePass] = field(default_factory=list)
    tokens: tuple[str, ...] = ()
    ids: tuple[int, ...] = ()


@lru_cache(maxsize=64)
def _alternation(tokens: frozenset[str]) -> regex.Pattern[str]:
    # Longest first, so a special token that extends another one wins deterministically.
    ordered = sorted(tokens, key=lambda t: (-len(t), t))
    return regex.compile("|".join(regex.escape(t) for t in ordered))


class Tokenizer:
    """Byte-level BPE with GPT-2 files (`encoder.json` + `vocab.bpe`)."""

    def __init__(
        self,
        encoder: dict[str, int],
        merges: Iterable[tuple[str, str]],
        special_tokens: dict[str, int] | None = None,
        pattern: str = GPT2_SPLIT_PATTERN,
    ) -> None:
        """Build from already-validated tables; use `from_dir` to load and check files."""
        self.encoder: dict[str, int] = dict(encoder)
        self.bpe_ranks: dict[tuple[str, str], int] = {p: r for r, p in enumerate(merges)}
        self.special_tokens: dict[str, int] = dict(special_tokens or {})
        self.pattern: str = PATTERNS.get(pattern, pattern)
        self.decoder: dict[int, str] = {i: t for t, i in self.encoder.items()}
        self.decoder.update({i: t for t, i in self.special_tokens.items()})
        self.vocab_size: int = max(self.decoder, default=-1) + 1
        self._ordered_merges = _ordered(self.bpe_ranks)
        self._setup_split()
        self._token_bytes = self._build_token_bytes()

    def _setup_split(self) -> None:
        """The pre-split regex, the byte symbol map and the word caches (`self.pattern` set)."""
        self._split_re = regex.compile(self.pattern)
        self._ascii_split = ascii_splitter(self.pattern)  # the same split, faster, on ASCII
        # A custom pre-split regex may come from a stranger's tokenizer_config.json: run it
        # under a time limit (no catastrophic backtracking); the known patterns run free.
        self._split_timeout = None if self.pattern in PATTERNS.values() else SPLIT_TIMEOUT
        self._byte_to_char = bytes_to_unicode()
        self._translate = [self._byte_to_char[b] for b in range(256)]
        self._bpe_cache: dict[str, tuple[str, ...]] = {}
        self._ids_cache = PieceCache(self._piece_ids)

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def from_dir(cls, path: str | Path) -> Tokenizer:
        """Load and validate `encoder.json`, `vocab.bpe` and optional `tokenizer_config.json`."""
        encoder, merges, specials, pattern = load_folder(Path(path))
        return cls(encoder, merges, specials, pattern)

    @classmethod
    @cache
    def gpt2(cls) -> Tokenizer:
        """The bundled GPT-2 tokenizer (loaded once per process)."""
        return cls.from_dir(DATA_DIR)

    def _build_token_bytes(self) -> dict[int, bytes]:
        char_to_byte = {ch: b for b, ch in self._byte_to_char.items()}
        out: dict[int, bytes] = {}
        for idx, token in self.decoder.items():
            if token in self.special_tokens:
                out[idx] = token.encode("utf-8")  # specials are literal text, not mapped bytes
                continue
            try:
                out[idx] = bytes(char_to_byte[ch] for ch in token)
            except KeyError as e:
                raise TokenizerError(
                    f"token {token!r} (id {idx}) has character {e.args[0]!r} outside the byte map"
                ) from None
        return out

    # -- splitting and BPE ------------------------------------------------------------------

    def split(self, text: str) -> list[str]:
        """The regex pre-split words of `text` (special tokens are not recognised here)."""
        return self._words(fix_surrogates(text))

    def _words(self, text: str) -> list[str]:
        twin = self._ascii_split
        if twin is None:
            return self._regex_words(text)
        if text.isascii():
            return twin.findall(text)
        words: list[str] = []
        for start, end, plain in ascii_stretches(text):
            piece = text[start:end]
            words += twin.findall(piece) if plain else self._regex_words(piece)
        return words

    def _regex_words(self, text: str) -> list[str]:
        try:
            return self._split_re.findall(text, timeout=self._split_timeout)
        except TimeoutError:
            raise TokenizerError(
                f"the tokenizer's custom split pattern took over {SPLIT_TIMEOUT:g} s on "
                f"{len(text):,} characters of text (a pathological regex); refused"
            ) from None

    def word_to_symbols(self, word: str) -> str:
        """A word's UTF-8 bytes as printable symbols, one character per byte."""
        return fix_surrogates(word).encode("utf-8").decode("latin-1").translate(self._translate)

    def bpe_trace(self, symbols: str) -> list[MergePass]:
        """Every merge pass applied to `symbols` (printable byte symbols), in order."""
        ranks = self.bpe_ranks
        return merge_passes(symbols, lambda a, b: ranks.get((a, b), NO_RANK))

    def bpe(self, symbols: str) -> tuple[str, ...]:
        """The BPE tokens of one word given as printable byte symbols (cached): the last pass
        of `bpe_trace`, without keeping the passes."""
        tokens = self._bpe_cache.get(symbols)
        if tokens is None:
            if self._ordered_merges:
                tokens = tuple(_merge_pairs(list(symbols), self.bpe_ranks))
            else:
                passes = self.bpe_trace(symbols)
                tokens = passes[-1].tokens if passes else tuple(symbols)
            if len(self._bpe_cache) >= CACHE_LIMIT:
                self._bpe_cache.clear()
            self._bpe_cache[symbols] = tokens
        return tokens

    def clear_cache(self) -> None:
        """Forget cached words (for cold-cache measurements)."""
        self._bpe_cache.clear()
        self._ids_cache.clear()

    def _piece_ids(self, word: str) -> tuple[int, ...]:
        encoder = self.encoder
        return tuple([encoder[t] for t in self.bpe(self.word_to_symbols(word))])

    def _word_ids(self, word: str) -> tuple[int, ...]:
        return self._ids_cache[word]

    # -- encoding ---------------------------------------------------------------------------

    def _allowed(self, allowed_special: SpecialSet) -> frozenset[str]:
        if isinstance(allowed_special, str):
            if allowed_special != "all":
                raise TokenizerError(
                    f"allowed_special must be 'all' or a set, got {allowed_special!r}"
                )
            allowed = frozenset(self.special_tokens)
        else:
            allowed = frozenset(allowed_special)
        return allowed

    def _disallowed(
        self, allowed: frozenset[str], disallowed_special: SpecialSet
    ) -> frozenset[str]:
        if isinstance(disallowed_special, str):
            if disallowed_special != "all":
                raise TokenizerError(
                    f"disallowed_special must be 'all' or a set, got {disallowed_special!r}"
                )
            return frozenset(self.special_tokens) - allowed
        return frozenset(disallowed_special)

    def _segments(
        self, text: str, allowed_special: SpecialSet, disallowed_special: SpecialSet
    ) -> Iterator[tuple[str, bool]]:
        """(piece, is_special) in order: ordinary text chunks and allowed special tokens."""
        allowed = self._allowed(allowed_special)
        disallowed = self._disallowed(allowed, disallowed_special)
        if disallowed and (hit := _alternation(disallowed).search(text)):
            raise TokenizerError(
                f"text contains disallowed special token {hit.group()!r} at character offset "
                f"{hit.start()}; pass allowed_special={{{hit.group()!r}}} to encode it as a "
                "special token, or disallowed_special=() to encode it as ordinary text"
            )
        text = fix_surrogates(text)
        # Only tokens the vocabulary knows can become special ids (as in tiktoken).
        allowed = frozenset(allowed & self.special_tokens.keys())
        if not allowed:
            yield text, False
            return
        start = 0
        for hit in _alternation(allowed).finditer(text):
            if hit.start() > start:
                yield text[start : hit.start()], False
            yield hit.group(), True
            start = hit.end()
        if start < len(text):
            yield text[start:], False

    def _encode_chunk(self, text: str, out: list[int]) -> None:
        # The loop over words runs in C: the cache computes what it lacks (`__missing__`).
        out.extend(chain.from_iterable(map(self._ids_cache.__getitem__, self._words(text))))

    def encode(
        self,
        text: str,
        allowed_special: SpecialSet = frozenset(),
        disallowed_special: SpecialSet = "all",
    ) -> list[int]:
        """Token ids of `text`, with tiktoken's special-token rules.

        A disallowed special token in the text raises `TokenizerError`; allowed ones become
        their ids; other special-looking text is encoded as ordinary text. "all" is shorthand
        for every special token (for `disallowed_special`: every one not allowed).
        """
        out: list[int] = []
        for piece, special in self._segments(text, allowed_special, disallowed_special):
            if special:
                out.append(self.special_tokens[piece])
            else:
                self._encode_chunk(piece, out)
        return out

    def encode_ordinary(self, text: str) -> list[int]:
        """Token ids of `text`, treating special-token text as ordinary text."""
        out: list[int] = []
        self._encode_chunk(fix_surrogates(text), out)
        return out

    # -- decoding ---------------------------------------------------------------------------

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The raw bytes the ids stand for (may end inside a UTF-8 character)."""
        table = self._token_bytes
        ids = ids if isinstance(ids, list | tuple) else list(ids)
        try:
            return b"".join([table[i] for i in ids])
        except (KeyError, TypeError):
            bad = next(i for i in ids if not _hashable_in(i, table))
            raise TokenizerError(
                f"unknown token id {bad!r} (vocabulary has ids 0..{self.vocab_size - 1})"
            ) from None

    def decode(self, ids: Iterable[int], errors: str = "replace") -> str:
        """Text of the ids; invalid UTF-8 (e.g. half a character) becomes U+FFFD."""
        return self.decode_bytes(list(ids)).decode("utf-8", errors=errors)

    def id_bytes(self) -> Mapping[int, bytes]:
        """Every token id's bytes (a read-only view, for building tables in one pass)."""
        return MappingProxyType(self._token_bytes)

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes of one token."""
        return self.decode_bytes([token_id])

    def token_str(self, token_id: int) -> str:
        """One token as display text (partial UTF-8 shown as U+FFFD)."""
        return self.token_bytes(token_id).decode("utf-8", errors="replace")

    def tokenize(
        self,
        text: str,
        allowed_special: SpecialSet = frozenset(),
        disallowed_special: SpecialSet = "all",
    ) -> list[str]:
        """Display string of each token of `text` (same special-token rules as `encode`)."""
        return [self.token_str(i) for i in self.encode(text, allowed_special, disallowed_special)]

    # -- tracing ----------------------------------------------------------------------------

    def trace(
        self,
        text: str,
        allowed_special: SpecialSet = frozenset(),
        disallowed_special: SpecialSet = "all",
    ) -> list[WordTrace]:
        """Word by word account of `encode`: split, byte symbols, merge passes, tokens, ids."""
        rows: list[WordTrace] = []
        for piece, special in self._segments(text, allowed_special, disallowed_special):
            if special:
                idx = self.special_tokens[piece]
                rows.append(WordTrace(piece, piece, [], (piece,), (idx,)))
                continue
            for word in self._words(piece):
                symbols = self.word_to_symbols(word)
                passes = self.bpe_trace(symbols)
                tokens = passes[-1].tokens if passes else tuple(symbols)
                ids = tuple(self.encoder[t] for t in tokens)
                rows.append(WordTrace(word, symbols, passes, tokens, ids))
        return rows

    def __repr__(self) -> str:
        return (
            f"Tokenizer(vocab_size={self.vocab_size}, merges={len(self.bpe_ranks)}, "
            f"special_tokens={sorted(self.special_tokens)})"
        )


def _hashable_in(key: object, table: dict[int, bytes]) -> bool:
    try:
        return key in table
    except TypeError:
        return False


def _ordered(ranks: dict[tuple[str, str], int]) -> bool:
    """Whether every merge joins single symbols or tokens made by earlier merges, and no two
    merges make the same token (true of every trained vocabulary, GPT-2's included)."""
    made: dict[str, int] = {}
    for (left, right), rank in ranks.items():
        for part in (left, right):
            if len(part) > 1 and made.get(part, rank) >= rank:
                return False
        if left + right in made:
            return False
        made[left + right] = rank
    return True


def _merge_pairs(word: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """`bpe_trace`'s final tokens for an ordered merge list, without the passes: merging the
    leftmost lowest-ranked pair one at a time gives the same tokens as merging all of its
    occurrences per pass, because a pair with a newly made token always ranks later."""
    get = ranks.get
    pair_ranks = [get(pair, NO_RANK) for pair in pairwise(word)]
    while pair_ranks:
        best = min(pair_ranks)
        if best == NO_RANK:
            break
        i = pair_ranks.index(best)
        merged = word[i] + word[i + 1]
        word[i : i + 2] = [merged]
        del pair_ranks[i]
        if i:
            pair_ranks[i - 1] = get((word[i - 1], merged), NO_RANK)
        if i < len(pair_ranks):
            pair_ranks[i] = get((merged, word[i + 1]), NO_RANK)
    return word


def merge_passes(symbols: str, rank_of: Callable[[str, str], int]) -> list[MergePass]:
    """BPE pass by pass: each pass joins the adjacent pair with the lowest `rank_of(a, b)`
    (NO_RANK: never), everywhere it occurs, until no pair has a rank."""
    passes: list[MergePass] = []
    word = list(symbols)
    while len(word) > 1:
        pair_ranks = [rank_of(a, b) for a, b in pairwise(word)]
        rank = min(pair_ranks)
        if rank == NO_RANK:
            break
        start = pair_ranks.index(rank)
        pair = (word[start], word[start + 1])
        word = _merge(word, pair[0], pair[1], start)
        passes.append(MergePass(pair, rank, tuple(word)))
    return passes


def _merge(word: list[str], left: str, right: str, start: int) -> list[str]:
    """Merge every non-overlapping (left, right) in `word`, scanning left to right from `start`."""
    out = word[:start]
    i, n = start, len(word)
    while i < n:
        if i + 1 < n and word[i] == left and word[i + 1] == right:
            out.append(left + right)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out
