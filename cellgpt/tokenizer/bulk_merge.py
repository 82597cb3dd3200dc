"""BPE over a rank table for many pieces at once, in numpy.

Merging piece by piece in Python costs about 5 µs a piece, and a text's first encode has
thousands of pieces that are not a token whole (6,000 in 0.6 MB of English and code for
cl100k). Here the pieces of similar length sit in one matrix of token ranks and every step
merges, in every piece at once, the adjacent pair whose concatenation has the lowest rank
(the leftmost on a tie): the same rule as `ranked.merge_parts`, so the same tokens.

Merged-away positions stay in place and are skipped through next/previous links, so a step
touches only the merged pair's neighbours. The rank of a pair of tokens comes from a table of
every (left, right) whose bytes join into a token — all the ways each token splits into two
tokens — kept as an open-addressing hash in numpy arrays (built once per tokenizer).
"""

from __future__ import annotations

import numpy as np

NO_PAIR = np.int64(1 << 62)  # the rank of a pair that never merges
_KEY_SHIFT = 20  # a pair key is left << 20 | right: every rank is below 2**20 (o200k: 200k)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing multiplier
# Pieces up to this many bytes merge in bulk, in buckets of similar length (each step
# costs its bucket's width); the rare longer ones are left to the per-piece code.
BUCKETS = ((2, 8), (9, 16), (17, 32))
BULK_MAX = BUCKETS[-1][1]


class PairTable:
    """(left rank, right rank) → rank of the token their bytes make, for whole arrays.

    A hash table in three arrays: the pair keys sorted by their hash bucket, and each
    bucket's start; a lookup compares a query with its bucket's keys one column at a time
    (buckets hold about one key, rarely more than five)."""

    def __init__(self, ranks: dict[bytes, int]) -> None:
        if max(ranks.values(), default=0) >= 1 << _KEY_SHIFT:
            raise ValueError("ranks above 2**20 do not fit the pair keys")
        keys, values = _splits(ranks)
        self._bits = max(4, len(keys).bit_length())  # about one key per bucket
        buckets = self._buckets(keys)
        order = np.argsort(buckets, kind="stable")
        self._keys, self._values = keys[order], values[order]
        sizes = np.bincount(buckets, minlength=1 << self._bits)
        self._start = np.concatenate(([0], np.cumsum(sizes)))
        self._depth = int(sizes.max(initial=0))

    def _buckets(self, keys: np.ndarray) -> np.ndarray:
        return ((keys.astype(np.uint64) * _GOLDEN) >> np.uint64(64 - self._bits)).astype(np.int64)

    def lookup(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """The rank of each pair's token, NO_PAIR where the bytes make no token."""
        keys = (left << _KEY_SHIFT) | right
        out = np.full(keys.size, NO_PAIR, np.int64)
        buckets = self._buckets(keys)
        at, end = self._start[buckets], self._start[buckets + 1]
        todo = np.flatnonzero(at < end)
        for _ in range(self._depth):
            if not todo.size:
                break
            where = at[todo]
            hit = self._keys[where] == keys[todo]
            out[todo[hit]] = self._values[where[hit]]
            at[todo] += 1
            todo = todo[~hit & (at[todo] < end[todo])]
        return out


def _splits(ranks: dict[bytes, int]) -> tuple[np.ndarray, np.ndarray]:
    # Every split of every token into two tokens: BPE may meet a token's bytes as any such
    # pair, not only as the pair that first made it.
    get = ranks.get
    keys: list[int] = []
    values: list[int] = []
    for token, rank in ranks.items():
        for cut in range(1, len(token)):
            left = get(token[:cut])
            if left is not None:
                right = get(token[cut:])
                if right is not None:
                    keys.append(left << _KEY_SHIFT | right)
                    values.append(rank)
    return np.array(keys, np.int64), np.array(values, np.int64)


def merge_many(pieces: list[bytes], table: PairTable, byte_rank: np.ndarray) -> list[list[int]]:
    """The token ranks BPE makes of each piece (2 to BULK_MAX bytes each)."""
    lengths = np.fromiter(map(len, pieces), np.int64, len(pieces))
    if lengths.size and (lengths.min() < 2 or lengths.max() > BULK_MAX):
        raise ValueError(f"merge_many takes pieces of 2 to {BULK_MAX} bytes")
    out: list[list[int]] = [[]] * len(pieces)
    for low, high in BUCKETS:
        chosen = np.flatnonzero((lengths >= low) & (lengths <= high)).tolist()
        if not chosen:
            continue
        flat, counts = _merge_bucket([pieces[i] for i in chosen], table, byte_rank, high)
        at = 0
        for i, count in zip(chosen, counts, strict=True):
            out[i] = flat[at : at + count]
            at += count
    return out


def _merge_bucket(
    pieces: list[bytes], table: PairTable, byte_rank: np.ndarray, width: int
) -> tuple[list[int], list[int]]:
    n = len(pieces)
    lengths = np.fromiter(map(len, pieces), np.int64, n)
    position = np.arange(width)
    present = position < lengths[:, None]
    tokens = np.full((n, width), -1, np.int64)
    tokens[present] = byte_rank[np.frombuffer(b"".join(pieces), np.uint8)]
    # pair[r, j]: the rank of (token at j, next live token after j); NO_PAIR when none.
    pair = np.full((n, width), NO_PAIR, np.int64)
    both = present[:, 1:]
    pair[:, :-1][both] = table.lookup(tokens[:, :-1][both], tokens[:, 1:][both])
    nxt = np.broadcast_to(position + 1, (n, width)).copy()
    prv = np.broadcast_to(position - 1, (n, width)).copy()
    rows = np.arange(n)
    while rows.size:
        at = pair[rows].argmin(axis=1)  # the first of the lowest: the leftmost
        best = pair[rows, at]
        going = best != NO_PAIR
        if not going.all():
            rows, at, best = rows[going], at[going], best[going]
            if not rows.size:
                break
        gone = nxt[rows, at]
        tokens[rows, at] = best
        tokens[rows, gone] = -1
        pair[rows, gone] = NO_PAIR
        after = nxt[rows, gone]
        nxt[rows, at] = after
        has_after = after < lengths[rows]
        r_after, after = rows[has_after], after[has_after]
        prv[r_after, after] = at[has_after]
        new_pair = np.full(rows.size, NO_PAIR, np.int64)
        new_pair[has_after] = table.lookup(best[has_after], tokens[r_after, after])
        pair[rows, at] = new_pair
        before = prv[rows, at]
        has_before = before >= 0
        r_before, before = rows[has_before], before[has_before]
        pair[r_before, before] = table.lookup(tokens[r_before, before], best[has_before])
    live = tokens >= 0
    return tokens[live].tolist(), live.sum(axis=1).tolist()
