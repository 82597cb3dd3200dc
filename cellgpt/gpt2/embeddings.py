"""Functions of the embedding explorer (workbooks/embeddings.py): pick tokens by their text,
cosine similarity of a vector with every row of a table or among a few rows, and the most
similar rows as (id, token, cosine). `register(library)` adds them to a library.

Cosines are computed in float64 (the tables are float32) so rankings do not depend on
rounding, and ties are always broken by the smaller id: the same table gives the same list.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cellgpt.engine import FunctionLibrary
from cellgpt.engine.costs import PY_OP, fixed, python_loop, shape_of, size_of, sorting
from cellgpt.engine.errors import CellEvalError

SIMILAR_COLUMNS = ["id", "token", "cosine"]
# Rows converted to float64 at a time: bounded scratch memory (2 MiB, cache-sized) whatever
# the table.
_CHUNK_ELEMENTS = 2**18
_SHOWN_PIECES = 8  # pieces of a several-token text an error message lists


def _tok(tokenizer: Any) -> Any:
    from cellgpt.tokenizer.bpe import Tokenizer

    if not isinstance(tokenizer, Tokenizer):
        raise CellEvalError("expected a tokenizer (the `tokenizer` cell)")
    return tokenizer


def _label(tok: Any, token_id: int) -> str:
    # A table may have more rows than the tokenizer has tokens (a padded vocabulary).
    return tok.token_str(token_id) if token_id in tok.decoder else f"<id {token_id}>"


def token_id_of(tokenizer: Any, token: Any) -> int:
    """The id of one token, given as its text (" king", leading space included) or its id.
    Text that is not exactly one token is refused, naming the tokens it splits into."""
    tok = _tok(tokenizer)
    if isinstance(token, int | np.integer) and not isinstance(token, bool):
        if not 0 <= int(token) < tok.vocab_size:
            raise CellEvalError(f"token id {int(token)} is outside 0..{tok.vocab_size - 1}")
        return int(token)
    if not isinstance(token, str):
        raise CellEvalError(f"a token is its text (e.g. ' king') or its id, not {token!r}")
    if not token:
        raise CellEvalError("the token text is empty")
    ids = tok.encode(token, allowed_special="all")
    if len(ids) == 1:
        return ids[0]
    shown = ids[:_SHOWN_PIECES]  # a pasted paragraph must not make a paragraph-long error
    pieces = [repr(_label(tok, i)) for i in shown]
    numbers = [str(i) for i in shown]
    if len(ids) > len(shown):
        pieces.append("…")
        numbers.append("…")
    text = repr(token) if len(token) <= 60 else repr(token[:60]) + "…"
    message = (
        f"{text} is not one token of this vocabulary: it splits into {len(ids)} tokens, "
        f"{' + '.join(pieces)} (ids {', '.join(numbers)}); use one of those, or another word"
    )
    spaced = tok.encode(" " + token, allowed_special="all") if token[0] != " " else []
    if len(spaced) == 1:  # the usual slip: GPT-2's word tokens carry their leading space
        message += f" — with its leading space, {' ' + token!r} is one token (id {spaced[0]})"
    raise CellEvalError(message)


def token_ids_of(tokenizer: Any, tokens: Any) -> list[int]:
    """`token_id_of` for each item of a list."""
    if not isinstance(tokens, list | tuple):
        raise CellEvalError(f"expected a list of tokens, not {type(tokens).__name__}")
    return [token_id_of(tokenizer, t) for t in tokens]


def token_labels(tokenizer: Any, count: int) -> list[str]:
    """The text of tokens 0..count-1: labels for the rows of a token table."""
    tok = _tok(tokenizer)
    return [_label(tok, i) for i in range(int(count))]


def _matrix_and_vector(matrix: Any, vector: Any) -> tuple[np.ndarray, np.ndarray]:
    m, v = np.asarray(matrix), np.asarray(vector)
    if m.ndim != 2 or v.ndim != 1 or m.shape[1] != v.shape[0]:
        raise CellEvalError(
            f"need a table [rows, d] and a vector [d], got shapes {m.shape} and {v.shape}"
        )
    return m, v


def cosine_rows(matrix: Any, vector: Any) -> np.ndarray:
    """Cosine similarity of `vector` with each row of `matrix` (float64; NaN for a row of
    zeros, which has no direction)."""
    m, v = _matrix_and_vector(matrix, vector)
    v = v.astype(np.float64)
    out = np.empty(m.shape[0], dtype=np.float64)
    norms = np.empty(m.shape[0], dtype=np.float64)
    step = max(1, _CHUNK_ELEMENTS // max(1, m.shape[1]))
    for start in range(0, m.shape[0], step):  # a few dozen chunks, not a loop over tokens
        chunk = m[start : start + step].astype(np.float64)
        out[start : start + step] = chunk @ v
        norms[start : start + step] = np.sqrt(np.einsum("ij,ij->i", chunk, chunk))
    with np.errstate(divide="ignore", invalid="ignore"):
        out /= norms * np.sqrt(v @ v)
    return np.clip(out, -1.0, 1.0, out=out)  # rounding may step past ±1 (NaN stays NaN)


def cosine_matrix(rows: Any) -> np.ndarray:
    """Cosine similarity of every row with every row: an [n, n] matrix, 1 on the diagonal."""
    x = np.asarray(rows)
    if x.ndim != 2:
        raise CellEvalError(f"need a table [rows, d], got shape {x.shape}")
    x = x.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        unit = x / np.sqrt(np.einsum("ij,ij->i", x, x))[:, None]
    out = unit @ unit.T
    return np.clip(out, -1.0, 1.0, out=out)


def most_similar(
    tokenizer: Any, similarity: Any, n: int = 10, exclude: Any = ()
) -> list[tuple[int, str, float]]:
    """The n ids with the highest similarity as (id, token, cosine), highest first, ties by
    the smaller id; ids in `exclude` and NaN similarities are left out."""
    tok = _tok(tokenizer)
    sims = np.asarray(similarity, dtype=np.float64)
    if sims.ndim != 1:
        raise CellEvalError(f"need one similarity per token, got shape {sims.shape}")
    keep = ~np.isnan(sims)
    excluded = np.asarray(exclude, dtype=np.int64).ravel()
    keep[excluded[(excluded >= 0) & (excluded < sims.size)]] = False
    ids = np.flatnonzero(keep)  # ascending: the stable sort keeps ties in id order
    top = ids[np.argsort(-sims[ids], kind="stable")[: max(0, int(n))]]
    return [(int(i), _label(tok, int(i)), float(sims[i])) for i in top]


def first_positions(wpe: Any, count: int) -> np.ndarray:
    """The first `count` rows of the position table (all of them if it has fewer)."""
    if int(count) < 1:
        raise CellEvalError(f"show at least one position, not {count}")
    return np.asarray(wpe)[: int(count)]


# ---------------------------------------------------------------------------- costs


def _tokens_cost(tokenizer: Any, tokens: Any) -> tuple[int, int]:
    return python_loop(tokens)


def _count(n: Any) -> int:
    # A count as the function will read it (int() of it), never below 0; 0 if unreadable,
    # in which case the function's own int() fails before doing any work.
    try:
        return max(0, int(n))
    except (TypeError, ValueError, OverflowError):
        return 0


def _labels_cost(tokenizer: Any, count: Any) -> tuple[int, int]:
    # ~0.5 µs and a str object per label (measured): 8 loop steps, ~128 bytes each.
    n = _count(count)
    return 128 * n, 8 * PY_OP * n


def _cosine_rows_cost(matrix: Any, vector: Any) -> tuple[int, int]:
    n = size_of(matrix)
    rows = shape_of(matrix)[0] if shape_of(matrix) else 1
    return 8 * (min(n, _CHUNK_ELEMENTS) + 2 * rows), 3 * n


def _cosine_matrix_cost(rows: Any) -> tuple[int, int]:
    shape = shape_of(rows)
    n, d = (shape[0], shape[1]) if len(shape) == 2 else (size_of(rows), 1)
    return 8 * (2 * n * d + n * n), n * n * d + 3 * n * d


def _most_similar_cost(
    tokenizer: Any, similarity: Any, n: Any = 10, exclude: Any = ()
) -> tuple[int, int]:
    nbytes, work = sorting(similarity)
    shown = min(_count(n), size_of(similarity))  # labels made, one Python step each
    return nbytes + 16 * size_of(exclude), work + PY_OP * shown


def register(library: FunctionLibrary) -> FunctionLibrary:
    library.register("token_id_of", token_id_of, cost=python_loop)
    library.register("token_ids_of", token_ids_of, cost=_tokens_cost)
    library.register("token_labels", token_labels, cost=_labels_cost)
    library.register("cosine_rows", cosine_rows, cost=_cosine_rows_cost)
    library.register("cosine_matrix", cosine_matrix, cost=_cosine_matrix_cost)
    library.register("most_similar", most_similar, cost=_most_similar_cost)
    library.register("first_positions", first_positions, cost=fixed)
    library.constant("SIMILAR_COLUMNS", SIMILAR_COLUMNS)
    return library
