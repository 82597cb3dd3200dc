"""Byte-level BPE over a rank table, the way tiktoken defines GPT-4's (cl100k_base) and
GPT-4o's (o200k_base) tokenizers: token *bytes* → rank, no byte-to-unicode map, no merge
list. A piece of text is merged by repeatedly joining the adjacent pair whose concatenation
has the lowest rank (the leftmost on a tie) until no concatenation is a token.

`RankTokenizer` is a `Tokenizer`, so the workbooks' pass-by-pass trace and the vocabulary
and merge tables work unchanged: the printable-symbol views they read (`encoder`, `decoder`,
`bpe_ranks`) are built on first use, and the merge list is recovered from the ranks as minbpe
does (each token is what BPE with the lower ranks makes of its bytes: exactly two parts).
"""

from __future__ import annotations

import heapq
from functools import cached_property
from itertools import chain, compress, pairwise

import numpy as np

from cellgpt.tokenizer.alphabet import PATTERNS, TokenizerError
from cellgpt.tokenizer.bpe import CACHE_LIMIT, NO_RANK, MergePass, Tokenizer, merge_passes
from cellgpt.tokenizer.bulk_merge import BULK_MAX, PairTable, merge_many

# Pieces longer than this merge through a heap over a linked list (n log n) instead of a
# rescan of every pair per merge (n^2, but faster for the short pieces text is made of).
LONG_PIECE = 192
# A text with at least this many distinct pieces not yet cached merges them in bulk
# (bulk_merge.py); fewer are not worth building the pair table for (~0.15 s for cl100k,
# once per tokenizer).
BULK_MIN_PIECES = 2048
_BYTES = tuple(bytes([b]) for b in range(256))


def merge_parts(piece: bytes, ranks: dict[bytes, int], below: int = NO_RANK) -> list[bytes]:
    """The tokens BPE makes of `piece`, using only ranks under `below`."""
    if len(piece) > LONG_PIECE:
        return _merge_long(piece, ranks, below)
    return _merge_short(piece, ranks, below)


def _merge_short(piece: bytes, ranks: dict[bytes, int], below: int) -> list[bytes]:
    parts = list(map(_BYTES.__getitem__, piece))
    get = ranks.get
    pair_ranks = [get(a + b, NO_RANK) for a, b in pairwise(parts)]
    while pair_ranks:
        best = min(pair_ranks)
        if best >= below:
            break
        i = pair_ranks.index(best)  # the leftmost of the lowest rank
        merged = parts[i] + parts[i + 1]
        parts[i : i + 2] = [merged]
        del pair_ranks[i]
        if i:
            pair_ranks[i - 1] = get(parts[i - 1] + merged, NO_RANK)
        if i < len(pair_ranks):
            pair_ranks[i] = get(merged + parts[i + 1], NO_RANK)
    return parts


def _merge_long(piece: bytes, ranks: dict[bytes, int], below: int) -> list[bytes]:
    # A doubly linked list of parts, keyed by their start offset; heap entries are
    # (rank, left start, left version, right start, right version) and go stale when either
    # side has changed since they were pushed.
    n = len(piece)
    parts: list[bytes] = [piece[i : i + 1] for i in range(n)]
    nxt = list(range(1, n + 1))
    prv = list(range(-1, n - 1))
    version = [0] * n
    get = ranks.get
    heap = []
    for i in range(n - 1):
        r = get(parts[i] + parts[i + 1], NO_RANK)
        if r < below:
            heap.append((r, i, 0, i + 1, 0))
    heapq.heapify(heap)
    while heap:
        _, i, vi, j, vj = heapq.heappop(heap)
        if version[i] != vi or version[j] != vj:
            continue
        parts[i] += parts[j]
        version[i] += 1
        version[j] = -1  # gone
        k = nxt[j]
        nxt[i] = k
        if k < n:
            prv[k] = i
            r = get(parts[i] + parts[k], NO_RANK)
            if r < below:
                heapq.heappush(heap, (r, i, version[i], k, version[k]))
        p = prv[i]
        if p >= 0:
            r = get(parts[p] + parts[i], NO_RANK)
            if r < below:
                heapq.heappush(heap, (r, p, version[p], i, version[i]))
    out = []
    i = 0
    while i < n:
        out.append(parts[i])
        i = nxt[i]
    return out


class RankTokenizer(Tokenizer):
    """A byte-level BPE tokenizer defined by ranks of byte strings (tiktoken's form)."""

    _ordered_merges = False  # `bpe` follows this class's own trace (ranks of the results)

    def __init__(
        self,
        ranks: dict[bytes, int],
        pattern: str,
        special_tokens: dict[str, int] | None = None,
        name: str = "",
    ) -> None:
        """Build from a checked rank table (see `rankfile.read_ranks`); `pattern` is a
        pattern name ("gpt4", "o200k", ...) or a regex."""
        missing = [b for b in range(256) if bytes([b]) not in ranks]
        if missing:
            raise TokenizerError(f"byte 0x{missing[0]:02x} has no rank: not a byte-level table")
        self.name = name
        self.ranks: dict[bytes, int] = ranks
        self.special_tokens = dict(special_tokens or {})
        self.pattern = PATTERNS.get(pattern, pattern)
        self._setup_split()
        self._token_bytes = {r: b for b, r in ranks.items()}
        # Specials are literal text: their bytes are their UTF-8.
        self._token_bytes.update({i: t.encode("utf-8") for t, i in self.special_tokens.items()})
        self.vocab_size = max(self._token_bytes) + 1

    # -- the printable views the trace and tables read (built on first use) ----------------

    @cached_property
    def encoder(self) -> dict[str, int]:  # type: ignore[override]
        """Printable symbol string → id, special tokens included (as GPT-2's encoder.json)."""
        table = self._translate
        out = {tok.decode("latin-1").translate(table): r for tok, r in self.ranks.items()}
        out.update(self.special_tokens)
        return out

    @cached_property
    def decoder(self) -> dict[int, str]:  # type: ignore[override]
        """Id → printable symbol string (special tokens as their text)."""
        return {i: t for t, i in self.encoder.items()}

    @cached_property
    def bpe_ranks(self) -> dict[tuple[str, str], int]:  # type: ignore[override]
        """The merges recovered from the ranks, in rank order: (left, right) printable
        symbols → the rank of the token they make. Takes about a second for o200k."""
        table = self._translate
        merges: dict[tuple[str, str], int] = {}
        for token, rank in sorted(self.ranks.items(), key=lambda kv: kv[1]):
            if len(token) < 2:
                continue
            parts = merge_parts(token, self.ranks, below=rank)
            if len(parts) == 2:  # else BPE never makes this token (none in the real tables)
                left, right = (p.decode("latin-1").translate(table) for p in parts)
                merges[(left, right)] = rank
        return merges

    # -- encoding ---------------------------------------------------------------------------

    def _encode_chunk(self, text: str, out: list[int]) -> None:
        words = self._words(text)
        cache = self._ids_cache
        if len(words) >= BULK_MIN_PIECES:
            # Warm path first: every piece cached (`get` gives None for the first that is
            # not, and chaining None fails), which spares finding the new pieces of a text
            # that has none.
            start = len(out)
            try:
                out.extend(chain.from_iterable(map(cache.get, words)))
                return
            except TypeError:
                del out[start:]
            self._learn(words)
        out.extend(chain.from_iterable(map(cache.__getitem__, words)))

    def _learn(self, words: list[str]) -> None:
        """Put the ids of the text's new pieces in the cache, merging them in bulk."""
        cache = self._ids_cache
        # C-level passes only (set difference, map): a first encode meets ~14,000 new pieces
        # and a Python loop over them cost as much as merging them.
        new = list(set(words).difference(cache))
        if len(new) < BULK_MIN_PIECES:
            return
        if len(cache) + len(new) > CACHE_LIMIT:
            cache.clear()
            new = new[:CACHE_LIMIT]  # the rest go piece by piece as they come
        data = [w.encode("utf-8") for w in new]
        ranks = list(map(self.ranks.get, data))
        # Pieces that are one token whole (most of them); zip() of one iterable makes the
        # 1-tuples the cache holds.
        whole = [r is not None for r in ranks]
        cache.update(zip(compress(new, whole), zip(compress(ranks, whole)), strict=True))
        merging = [
            i
            for i, (r, d) in enumerate(zip(ranks, data, strict=True))
            if r is None and len(d) <= BULK_MAX
        ]
        merged = merge_many([data[i] for i in merging], self._pairs, self._byte_ranks)
        cache.update(zip([new[i] for i in merging], map(tuple, merged), strict=True))

    @cached_property
    def _pairs(self) -> PairTable:
        return PairTable(self.ranks)

    @cached_property
    def _byte_ranks(self) -> np.ndarray:
        return np.array([self.ranks[bytes([b])] for b in range(256)], np.int64)

    def _piece_ids(self, word: str) -> tuple[int, ...]:
        ranks = self.ranks
        data = word.encode("utf-8")
        rank = ranks.get(data)
        # Most pieces of real text are one token already: a lookup, no merging.
        if rank is not None:
            return (rank,)
        return tuple([ranks[p] for p in merge_parts(data, ranks)])

    # -- tracing ----------------------------------------------------------------------------

    def bpe_trace(self, symbols: str) -> list[MergePass]:
        """Every merge pass applied to `symbols`: each pass joins the pair whose result has
        the lowest rank (everywhere it occurs); the rank shown is the new token's."""
        enc, specials = self.encoder, self.special_tokens
        return merge_passes(
            symbols, lambda a, b: NO_RANK if a + b in specials else enc.get(a + b, NO_RANK)
        )

    def __repr__(self) -> str:
        return (
            f"RankTokenizer({self.name or 'unnamed'}, vocab_size={self.vocab_size}, "
            f"special_tokens={sorted(self.special_tokens)})"
        )
