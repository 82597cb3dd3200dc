"""BPE training, pass by pass, for the tokenizer workbook: the very training loop of
`train_bpe`, watched after each merge for a snapshot of every chunk's segmentation.
Snapshots cost a copy of all chunks per merge, so this is for teaching-sized corpora."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cellgpt.tokenizer.train import _learn_merges, count_chunks, readable, resolve_pattern

# The traced trainer refuses bigger corpora: its snapshots grow with merges × chunks.
MAX_TRACE_CHUNKS = 2_000
MAX_TRACE_MERGES = 500

PASS_COLUMNS = ("pass", "pair", "new token", "id", "count")


def chunk_counts(
    corpus: str, pattern: str = "gpt2", specials: Sequence[str] = ()
) -> list[tuple[str, int]]:
    """The corpus cut by the split pattern into chunks, each distinct chunk with its count,
    most frequent first (ties in first-seen order)."""
    counts = count_chunks([corpus], resolve_pattern(pattern), list(specials))
    return sorted(counts.items(), key=lambda kv: -kv[1])


def training_passes(
    corpus: str, n_merges: int, pattern: str = "gpt2", specials: Sequence[str] = ()
) -> list[tuple[Any, ...]]:
    """One row per merge: (pass, pair, new token, id, count, then each chunk's tokens after
    the pass, in `chunk_counts` order). Pass 0 shows the chunks as single bytes."""
    counts = count_chunks([corpus], resolve_pattern(pattern), list(specials))
    n_merges = int(n_merges)
    if len(counts) > MAX_TRACE_CHUNKS or n_merges > MAX_TRACE_MERGES:
        raise ValueError(
            f"the pass-by-pass trace is for small corpora (at most {MAX_TRACE_CHUNKS} distinct "
            f"chunks and {MAX_TRACE_MERGES} merges; got {len(counts)} and {n_merges}); "
            "train big vocabularies with `cellgpt tokenizer train`"
        )
    order = [chunk for chunk, _ in sorted(counts.items(), key=lambda kv: -kv[1])]
    position = {chunk: i for i, chunk in enumerate(counts)}  # the trainer's word order
    rows: list[tuple[Any, ...]] = [
        (0, "", "", None, None, *("·".join(_bare(bytes([b])) for b in c.encode()) for c in order))
    ]

    def record(done: int, pair: tuple[int, int], count: int, stats: Any) -> None:
        token, new_id = stats.token_bytes, 256 + done - 1  # pass `done` (from 1) made this id
        after = ("·".join(_bare(token[t]) for t in stats.word(position[c])) for c in order)
        merged = f"{readable(token[pair[0]])} + {readable(token[pair[1]])}"
        rows.append((done, merged, readable(token[new_id]), new_id, count, *after))

    merges, _, _ = _learn_merges(counts, n_merges, None, on_merge=record)
    if len(merges) < n_merges:
        raise ValueError(
            f"the corpus supports only {len(merges)} merges; {n_merges} were asked for"
        )
    return rows


def _bare(token: bytes) -> str:
    """A token without quotes, a space shown as "␣" so that token boundaries stay visible."""
    return readable(token)[1:-1].replace(" ", "␣")


def training_columns(chunks: list[tuple[str, int]]) -> list[str]:
    """Column labels for `training_passes`: the pass facts, then one column per chunk."""
    return [*PASS_COLUMNS, *(f"{_bare(c.encode('utf-8'))} ×{n}" for c, n in chunks)]


def train_tokenizer(
    corpus: str, vocab_size: int, pattern: str = "gpt2", specials: Sequence[str] = ()
) -> Any:
    """A tokenizer trained on the corpus with the real trainer (`cellgpt tokenizer train`)."""
    from cellgpt.tokenizer.train import train_bpe

    return train_bpe([corpus], int(vocab_size), pattern=pattern, special_tokens=list(specials))
