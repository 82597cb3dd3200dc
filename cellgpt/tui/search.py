"""What `/` finds: cells by fuzzy name (or step/hook alias), tokens of the prompt,
vocabulary entries by their exact text, and rows of the table on screen by what they show."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from textual.fuzzy import Matcher

from cellgpt.tui.row_index import RowIndex

MAX_RESULTS = 40
EXACT_NAME = 1e9  # the score of a cell whose name (or alias) is exactly the query


@dataclass(frozen=True)
class Hit:
    kind: str  # "cell", "token" (a row of the prompt), "vocab" (a vocabulary id) or "row"
    target: str | int  # cell name, token position, vocabulary id or row of the shown table
    label: str
    score: float


def find_cells(names: Iterable[str], aliases: dict[str, str], query: str) -> list[Hit]:
    """Fuzzy matches against cell names and their aliases (best first; exact names first)."""
    query = "".join(query.split())  # "h3 patt" finds h3.attn.pattern: words are not spaced
    if not query:
        return []
    matcher = Matcher(query)
    best: dict[str, Hit] = {}
    candidates = [(n, n) for n in names] + [(a, t) for a, t in aliases.items()]
    for text, target in candidates:
        score = EXACT_NAME if text == query else matcher.match(text)
        if score > 0 and (target not in best or score > best[target].score):
            label = target if text == target else f"{target}  ({text})"
            best[target] = Hit("cell", target, label, score)
    return sorted(best.values(), key=lambda h: -h.score)[:MAX_RESULTS]


def find_tokens(tokens: list[str], query: str) -> list[Hit]:
    """Positions whose token text contains the query (case-insensitive, spaces ignored)."""
    needle = query.strip().lower()
    if not needle:
        return []
    return [
        Hit("token", i, f"token #{i} {t!r}", 1.0)
        for i, t in enumerate(tokens)
        if needle in t.lower()
    ][:MAX_RESULTS]


def find_vocab(tokenizer: Any, query: str) -> list[Hit]:
    """Vocabulary ids whose text is exactly the query, or the query after a space."""
    encoder = getattr(tokenizer, "encoder", None)
    text = query.strip()
    if not isinstance(encoder, dict) or not text or not hasattr(tokenizer, "encode_ordinary"):
        return []
    hits = []
    for variant in dict.fromkeys((text, " " + text)):
        ids = tokenizer.encode_ordinary(variant)
        if len(ids) == 1:
            hits.append(Hit("vocab", int(ids[0]), f"vocabulary id {ids[0]} {variant!r}", 0.5))
    return hits


ROW_LABEL_CHARS = 70


def find_rows(index: RowIndex, columns: tuple[str, ...], row_texts: Any, query: str) -> list[Hit]:
    """Rows of the table on screen showing the query: exact cells (score 1) before cells
    that contain it (score 0.1). `row_texts(i)` gives a row's cells for its label."""
    hits = []
    for match in index.find(query, MAX_RESULTS):
        cells = row_texts(match.row)
        where = columns[match.column] if match.column < len(columns) else str(match.column)
        label = f"row {match.row} ({where}): " + " │ ".join(cells)
        if len(label) > ROW_LABEL_CHARS:
            label = label[: ROW_LABEL_CHARS - 1] + "…"
        hits.append(Hit("row", match.row, label, 1.0 if match.exact else 0.1))
    return hits
