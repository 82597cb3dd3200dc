"""Finding rows of a table by what they show: `/` in the vocabulary types " the" (or "the", or
262) and lands on token 262, the original spreadsheet's token → id lookup.

Each column's displayed texts are joined into one string with a line break between rows, so
an exact or substring match is one C-speed `str.find` over the column instead of a Python loop
over 50,257 rows; a match's offset gives its row by bisection."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cellgpt.tui.labels import visible

MAX_INDEXED_CELLS = 2_000_000  # a bigger table is browsed, not searched (the index costs ~1 s)


@dataclass(frozen=True)
class RowMatch:
    row: int
    column: int
    exact: bool


class _Column:
    """One column's texts joined by "\n", once as shown and once lower-cased, with each row's
    start offset in each."""

    def __init__(self, texts: list[str]) -> None:
        self.text, self.starts = _joined(texts)
        self.lower = self.text.lower()
        self.lower_starts = self.starts
        if len(self.lower) != len(self.text):  # a letter whose lower case is longer (İ → i̇)
            self.lower, self.lower_starts = _joined([t.lower() for t in texts])

    def exact(self, needle: str) -> Iterator[int]:
        yield from _rows(self.text, self.starts, f"\n{needle}\n", 1)

    def containing(self, needle: str) -> Iterator[int]:
        yield from _rows(self.lower, self.lower_starts, needle.lower(), 0)


def _joined(texts: list[str]) -> tuple[str, np.ndarray]:
    joined = "\n" + "\n".join(texts) + "\n"
    if joined.count("\n") != len(texts) + 1:  # a text with a line break would split its row
        texts = [t.replace("\n", " ") for t in texts]
        joined = "\n" + "\n".join(texts) + "\n"
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)) + 1
    starts = np.concatenate([[1], 1 + np.cumsum(lengths)[:-1]]) if texts else lengths
    return joined, starts


def _rows(text: str, starts: np.ndarray, needle: str, shift: int) -> Iterator[int]:
    """Rows whose text holds `needle` (each row once), in row order."""
    pos, last = text.find(needle), -1
    while pos >= 0:
        row = int(np.searchsorted(starts, pos + shift, side="right")) - 1
        if row != last and row >= 0:
            yield row
            last = row
        pos = text.find(needle, pos + 1)


def _columns(records: Sequence[Any], n: int) -> list[Sequence[Any]]:
    """The table's columns (a missing cell is None, shown blank), transposed at C speed when
    every record is a tuple or list."""
    if set(map(type, records)) <= {tuple, list}:
        return list(itertools.islice(itertools.zip_longest(*records), n))
    rows = [r if isinstance(r, tuple | list) else (r,) for r in records]
    return list(itertools.islice(itertools.zip_longest(*rows), n))


class RowIndex:
    """The displayed text of every cell of a table, searchable."""

    def __init__(self, records: Sequence[Any], n_columns: int, text: Callable[[Any], str]):
        self.columns = [_Column(list(map(text, col))) for col in _columns(records, n_columns)]

    @staticmethod
    def affordable(records: Sequence[Any], n_columns: int) -> bool:
        return len(records) * max(1, n_columns) <= MAX_INDEXED_CELLS

    def find(self, query: str, limit: int) -> list[RowMatch]:
        """Exact matches first: the query as shown (" the" is shown ·the), then the query
        after a space (typing "the" also finds " the"); then cells containing the query as
        shown (case-insensitive: " the" finds " They", not "there"). Each row once, at most
        `limit`."""
        if not query.strip():
            return []
        shown = visible(query)
        exact = [shown] if query.startswith(" ") else [shown, "·" + shown]
        found: dict[int, RowMatch] = {}

        def take(matches: Iterator[int], column: int, is_exact: bool) -> bool:
            for row in matches:
                found.setdefault(row, RowMatch(row, column, is_exact))
                if len(found) >= limit:
                    return True
            return False

        for needle in exact:
            for c, column in enumerate(self.columns):
                if take(column.exact(needle), c, True):
                    return list(found.values())
        for c, column in enumerate(self.columns):
            if take(column.containing(shown), c, False):
                break
        return list(found.values())
