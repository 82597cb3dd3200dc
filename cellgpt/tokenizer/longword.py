"""One long training word as a linked list that knows where each of its pairs occurs, so a
merge costs the pair's occurrences instead of the word's length.

Without a pre-split (`--pattern none`, minbpe's basic tokenizer) a whole text is one word of
hundreds of thousands of bytes; rewriting it for every merge made training take minutes.
Positions are the byte offsets where tokens start; a token only ever grows to the right (it
absorbs its right neighbour) or dies (absorbed by its left one), so a recorded position whose
token or right neighbour has changed is recognised as stale and skipped.
"""

from __future__ import annotations

from collections import defaultdict

Pair = tuple[int, int]
_DEAD = -1


class LongWord:
    """A word of token ids with, for every adjacent pair, the positions where it starts."""

    def __init__(self, ids: list[int]) -> None:
        n = len(ids)
        self.syms = list(ids)
        self.nxt = [*range(1, n), _DEAD]
        self.prv = list(range(-1, n - 1))
        self.where: dict[Pair, set[int]] = defaultdict(set)
        for i in range(n - 1):
            self.where[(ids[i], ids[i + 1])].add(i)

    def merge(
        self, left: int, right: int, new: int, freq: int, delta: dict[Pair, int]
    ) -> set[Pair]:
        """Replace each (left, right) by `new`, left to right without overlap (as a rescan of
        the word would), adding each changed pair's count change (× freq) to `delta`; the
        pairs with `new` that now occur are returned."""
        syms, nxt, prv, where = self.syms, self.nxt, self.prv, self.where
        made: set[Pair] = set()
        for i in sorted(where.pop((left, right), ())):
            j = nxt[i]
            if syms[i] != left or j == _DEAD or syms[j] != right:
                continue  # changed since recorded (e.g. the middle of "aaa")
            p, k = prv[i], nxt[j]
            delta[(left, right)] -= freq
            if p != _DEAD:
                delta[(syms[p], left)] -= freq
                delta[(syms[p], new)] += freq
                where[(syms[p], new)].add(p)
                made.add((syms[p], new))
            if k != _DEAD:
                delta[(right, syms[k])] -= freq
                delta[(new, syms[k])] += freq
                where[(new, syms[k])].add(i)
                made.add((new, syms[k]))
                prv[k] = i
            syms[i], syms[j], nxt[i] = new, _DEAD, k
        return made

    def ids(self) -> list[int]:
        """The word's current token ids."""
        out, i = [], 0
        while i != _DEAD:
            out.append(self.syms[i])
            i = self.nxt[i]
        return out
