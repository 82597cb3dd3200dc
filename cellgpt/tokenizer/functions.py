"""Formula functions of the tokenizer workbench: train a BPE vocabulary pass by pass, then
encode and decode with it. `register(library)` adds them to a library."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import wraps
from typing import Any

from cellgpt.engine import FunctionLibrary
from cellgpt.engine.costs import PY_OP, fixed, python_loop, size_of
from cellgpt.engine.errors import CellEvalError
from cellgpt.tokenizer import compare, tables
from cellgpt.tokenizer import trace as bpe_trace
from cellgpt.tokenizer.alphabet import TokenizerError
from cellgpt.tokenizer.bpe import Tokenizer
from cellgpt.tokenizer.train import TrainedBPE, readable

MERGE_COLUMNS = ["id", "token", "left", "right", "count"]
COMPARE_COLUMNS = [
    "tokenizer",
    "tokens",
    "bytes/token",
    "chars/token",
    "unknown",
    "byte tokens",
    "boundaries",
]


def _cell_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    # The trainer reports bad input as ValueError; in a cell that is the cell's own error.
    @wraps(fn)
    def wrapper(*args: Any) -> Any:
        try:
            return fn(*args)
        except ValueError as exc:
            raise CellEvalError(str(exc)) from None

    return wrapper


# Only the known split patterns: a regex from a workbook file could backtrack for hours.
KNOWN_PATTERNS = ("gpt2", "gpt4", "o200k", "none")


def _pattern(pattern: Any) -> str:
    if pattern not in KNOWN_PATTERNS:
        raise CellEvalError(f"pattern must be one of {', '.join(KNOWN_PATTERNS)}, not {pattern!r}")
    return pattern


def _trained(trained: Any) -> TrainedBPE:
    if not isinstance(trained, TrainedBPE):
        raise CellEvalError("expected a trained vocabulary (a `train_tokenizer(...)` cell)")
    return trained


@_cell_errors
def chunk_counts(corpus: str, pattern: str = "gpt2", specials: Sequence[str] = ()) -> list:
    """Distinct pre-split chunks of the corpus with their counts, most frequent first."""
    return bpe_trace.chunk_counts(corpus, _pattern(pattern), specials)


@_cell_errors
def training_passes(
    corpus: str, n_merges: int, pattern: str = "gpt2", specials: Sequence[str] = ()
) -> list:
    """BPE training pass by pass: the pair merged, its count, and every chunk's tokens after."""
    return bpe_trace.training_passes(corpus, n_merges, _pattern(pattern), specials)


def training_columns(chunks: list) -> list[str]:
    """Column labels for `training_passes`: pass facts, then one column per chunk."""
    return bpe_trace.training_columns(chunks)


@_cell_errors
def train_tokenizer(
    corpus: str, vocab_size: int, pattern: str = "gpt2", specials: Sequence[str] = ()
) -> TrainedBPE:
    """A vocabulary trained on the corpus by the real trainer (`cellgpt tokenizer train`)."""
    return bpe_trace.train_tokenizer(corpus, vocab_size, _pattern(pattern), specials)


def learned_merges(trained: Any) -> list[tuple[Any, ...]]:
    """The learned merges as (id, token, left, right, count), in rank order."""
    t = _trained(trained)
    return [
        (256 + rank, readable(left + right), readable(left), readable(right), count)
        for rank, ((left, right), count) in enumerate(zip(t.merges, t.merge_counts, strict=True))
    ]


def as_tokenizer(trained: Any) -> Any:
    """The trained vocabulary as a tokenizer (the same class that loads GPT-2's files)."""
    return _trained(trained).to_tokenizer()


def _tokenizer(tokenizer: Any) -> Tokenizer:
    if not isinstance(tokenizer, Tokenizer):
        raise CellEvalError("expected a tokenizer (a `tokenizer` cell)")
    return tokenizer


def decode_ids(tokenizer: Any, ids: Sequence[int]) -> str:
    """Token ids back to text (invalid UTF-8 becomes the replacement character)."""
    try:
        return _tokenizer(tokenizer).decode([int(i) for i in ids])
    except (KeyError, ValueError) as exc:
        raise CellEvalError(f"cannot decode: {exc}") from None


def vocab_table(tokenizer: Any) -> list[tuple[Any, ...]]:
    """The vocabulary, one row per token id: (id, token, bytes, n_bytes, rank). `token` is
    readable text (a leading space shown as ·), `bytes` the exact bytes (b' the'), `rank` the
    merge that made the token (blank for the 256 single bytes and special tokens)."""
    return tables.vocab_table(_tokenizer(tokenizer))


def merges_table(tokenizer: Any) -> list[tuple[Any, ...]]:
    """The ranked merge list (vocab.bpe), one row per merge: (rank, left, right, result, id),
    `id` being the result's token id."""
    return tables.merges_table(_tokenizer(tokenizer))


def load_named_tokenizer(name: str) -> Any:
    """A tokenizer by name: `gpt2`, `cl100k_base` (GPT-4), `o200k_base` (GPT-4o),
    `r50k_base`, `p50k_base`, or a model's name (a workbook may not name paths)."""
    from cellgpt.tokenizer.named import load_reachable_tokenizer

    try:
        return load_reachable_tokenizer(name)
    except (LookupError, ValueError, OSError) as exc:
        raise CellEvalError(str(exc)) from None


def compare_tokenizers(text: str, names: Sequence[str]) -> list[tuple[Any, ...]]:
    """One row per tokenizer: (tokenizer, tokens, bytes/token, chars/token, unknown, byte
    tokens, the text with boundaries as "|"), special-token text read as the special token."""
    if not isinstance(text, str) or not text:
        raise CellEvalError("the text to compare is empty")
    if isinstance(names, str):
        names = [names]
    rows = []
    for name in names:
        try:
            row = compare.compare_one(str(name), load_named_tokenizer(name), text)
        except TokenizerError as exc:
            raise CellEvalError(str(exc)) from None
        boundaries = "|".join(p.replace("\n", "↵") for p in row.pieces)
        rows.append(
            (
                row.tokenizer,
                row.tokens,
                row.bytes_per_token,
                row.chars_per_token,
                row.unknown,
                row.byte_tokens,
                boundaries,
            )
        )
    return rows


def token_pieces(tokenizer: Any, text: str) -> list[str]:
    """The stretch of `text` each token covers (the boundaries the comparison shows)."""
    tok = _tokenizer(tokenizer)
    try:
        return compare.byte_pieces(tok, tok.encode(text, allowed_special="all"))
    except TokenizerError as exc:
        raise CellEvalError(str(exc)) from None


def _training_cost(corpus: Any, merges: Any, *args: Any) -> tuple[int, int]:
    # Every pass re-counts pairs over the corpus' chunks and keeps a row per pass.
    n, passes = size_of(corpus), max(1, int(merges) if isinstance(merges, int) else 1)
    return 64 * n * passes, PY_OP * n * passes


def _table_cost(tokenizer: Any) -> tuple[int, int]:
    # A few Python steps per token id and per merge; a row holds a tuple and a few strings
    # (each token's text is made once and shared by both tables).
    tok = tokenizer if isinstance(tokenizer, Tokenizer) else None
    n = len(tok.decoder) + len(tok.bpe_ranks) if tok is not None else 1
    return 256 * n, 4 * PY_OP * n


_COSTS = {
    "chunk_counts": python_loop,
    "training_passes": _training_cost,
    "training_columns": python_loop,
    "train_tokenizer": _training_cost,
    "learned_merges": fixed,
    "as_tokenizer": fixed,
    "decode_ids": lambda tokenizer, ids: python_loop(ids),
    "vocab_table": _table_cost,
    "merges_table": _table_cost,
    # Loaded once per process and shared (as the GPT-2 workbook's tokenizer is).
    "load_named_tokenizer": fixed,
    "compare_tokenizers": lambda text, names: (
        256 * size_of(text) * max(1, size_of(names)),
        8 * PY_OP * size_of(text) * max(1, size_of(names)),
    ),
    "token_pieces": lambda tokenizer, text: python_loop(text),
}


def register(library: FunctionLibrary) -> FunctionLibrary:
    for fn in (
        chunk_counts,
        training_passes,
        training_columns,
        train_tokenizer,
        learned_merges,
        as_tokenizer,
        decode_ids,
        vocab_table,
        merges_table,
        load_named_tokenizer,
        compare_tokenizers,
        token_pieces,
    ):
        library.register(fn.__name__, fn, cost=_COSTS[fn.__name__])
    library.constant("MERGE_COLUMNS", MERGE_COLUMNS)
    library.constant("VOCAB_TABLE_COLUMNS", tables.VOCAB_TABLE_COLUMNS)
    library.constant("MERGES_TABLE_COLUMNS", tables.MERGES_TABLE_COLUMNS)
    library.constant("COMPARE_COLUMNS", COMPARE_COLUMNS)
    library.constant("COMPARE_SAMPLE", compare.SAMPLE)
    return library
