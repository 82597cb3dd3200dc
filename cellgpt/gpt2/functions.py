"""GPT-2's functions for formulas: loading a model, the tokenizer stages, attention helpers
and sampling. `register(library)` adds them to a copy of the engine's core library."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from cellgpt.engine import FunctionLibrary, causal, key_major
from cellgpt.engine.costs import PY_OP, by_size, fixed, python_loop, scaled, size_of, sorting
from cellgpt.engine.errors import CellEvalError
from cellgpt.engine.parallel import for_chunks
from cellgpt.engine.row_rules import Arg, Fixed, Out, Rows, moves_rows
from cellgpt.gpt2 import vjp as _vjp  # noqa: F401  (registers GPT-2's gradient rules)
from cellgpt.gpt2.explain_steps import GPT2 as GPT2_EXPANSIONS
from cellgpt.gpt2.fused_attention import ATTENTION
from cellgpt.gpt2.replay_block import BLOCK
from cellgpt.tokenizer.named import load_model_tokenizer
from cellgpt.weights.models import load_model_params

BPE_COLUMNS = ["word", "text", "pass", "merge", "rank", "tokens"]
TOP_K_COLUMNS = ["id", "token", "prob", "logit"]


def _tok(tokenizer: Any) -> Any:
    from cellgpt.tokenizer.bpe import Tokenizer

    if not isinstance(tokenizer, Tokenizer):
        raise CellEvalError("expected a tokenizer (the `tokenizer` cell)")
    return tokenizer


def load_weights(model: str) -> Any:
    """The model's parameter tables (CSV, cached as .npy). `model` is a name on the model
    search path, or a folder the user granted (a workbook may not name other paths)."""
    from cellgpt.locations import reachable_model  # here: keeps this change local

    try:
        return load_model_params(reachable_model(model))
    except (LookupError, ValueError, OSError, RecursionError) as exc:
        raise CellEvalError(str(exc)) from exc


def load_tokenizer(model: str) -> Any:
    """The model's tokenizer (encoder.json + vocab.bpe), reached as `load_weights` does."""
    from cellgpt.locations import reachable_model

    try:
        return load_model_tokenizer(reachable_model(model))
    except (LookupError, ValueError, OSError, RecursionError) as exc:
        raise CellEvalError(str(exc)) from exc


def model_config(weights: Any) -> dict[str, Any]:
    """The model's shape: n_layer, n_head, n_embd, n_ctx, vocab_size, layer_norm_epsilon."""
    return dict(weights.config.to_dict())


def param(weights: Any, name: str, layer: int | None = None) -> np.ndarray:
    """One parameter table, e.g. param(weights, "attn.c_attn.weight", 3)."""
    key = name if layer is None else f"h.{int(layer)}.{name}"
    try:
        return weights[key]
    except KeyError:
        raise CellEvalError(f"the model has no parameter {key!r}") from None


def split_words(tokenizer: Any, prompt: str, allow_special: bool = True) -> list[str]:
    """The GPT-2 regex pre-split of the prompt (special tokens such as <|endoftext|> stay whole)."""
    if not isinstance(prompt, str):
        raise CellEvalError("the prompt must be text")
    rows = _tok(tokenizer).trace(
        prompt, allowed_special="all" if allow_special else frozenset(), disallowed_special=()
    )
    return [row.word for row in rows]


def bpe_passes(tokenizer: Any, words: list[str]) -> list[tuple[Any, ...]]:
    """One row per merge pass of each word: (word#, word, pass#, merged pair, rank, tokens).
    Pass 0 is the word as bytes; the last pass of a word holds its final tokens."""
    tok = _tok(tokenizer)
    rows: list[tuple[Any, ...]] = []
    for w, word in enumerate(words):
        if word in tok.special_tokens:
            rows.append((w, word, 0, "special token", None, (word,)))
            continue
        symbols = tok.word_to_symbols(word)
        rows.append((w, word, 0, "", None, tuple(symbols)))
        for n, merge in enumerate(tok.bpe_trace(symbols), start=1):
            rows.append(
                (w, word, n, f"{merge.pair[0]} + {merge.pair[1]}", merge.rank, merge.tokens)
            )
    return rows


def bpe_ids(tokenizer: Any, bpe: list[tuple[Any, ...]]) -> list[int]:
    """Token ids from the final pass of every word."""
    tok = _tok(tokenizer)
    finals: dict[int, tuple[str, ...]] = {}
    for row in bpe:
        finals[row[0]] = row[5]
    ids: list[int] = []
    for w in sorted(finals):
        for token in finals[w]:
            ids.append(
                tok.special_tokens[token] if token in tok.special_tokens else tok.encoder[token]
            )
    return ids


def token_texts(tokenizer: Any, token_ids: list[int]) -> list[str]:
    """Each token as readable text."""
    tok = _tok(tokenizer)
    try:
        return [tok.token_str(int(i)) for i in token_ids]
    except ValueError as exc:
        raise CellEvalError(str(exc)) from exc


def positions(wpe: np.ndarray, n_tokens: int) -> np.ndarray:
    """The first n rows of the position table; refuses prompts longer than the context."""
    if n_tokens == 0:
        raise CellEvalError("the prompt is empty: type at least one character")
    if n_tokens > wpe.shape[0]:
        raise CellEvalError(
            f"the prompt has {n_tokens} tokens; this model reads at most {wpe.shape[0]} (n_ctx)"
        )
    return wpe[:n_tokens]


def embed_tokens(wte: np.ndarray, token_ids: list[int]) -> np.ndarray:
    """Rows of the token embedding table, one per token id."""
    ids = np.asarray(token_ids, dtype=np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= wte.shape[0]):
        raise CellEvalError(f"token id out of range for a vocabulary of {wte.shape[0]}")
    return wte[ids]


def _embed_rows(args: Sequence[Arg]) -> Arg | None:
    # wte[ids]: one table row per id, so the ids' rows are the output's rows
    wte, ids = args[0], args[1]
    if not isinstance(wte, Fixed) or wte.ndim is None or not isinstance(ids, Rows):
        return None
    return Rows(ids.axis, ids.ndim + wte.ndim - 1) if ids.pad is None else None


def split_heads(qkv: np.ndarray, part: int, n_head: int) -> np.ndarray:
    """From the [T, 3·n_embd] qkv matrix take q (0), k (1) or v (2) as [n_head, T, d_head].
    A batch of prompts, [batch, T, 3·n_embd], gives [batch, n_head, T, d_head]."""
    *lead, t, width = qkv.shape
    n_embd = width // 3
    block = qkv[..., part * n_embd : (part + 1) * n_embd]
    # A view, not a copy: each head's [T, d_head] slice has a plain row stride, which BLAS
    # reads directly, and three copies of qkv per block would cost ~110 MB at 1024 tokens.
    heads = block.reshape(*lead, t, int(n_head), n_embd // int(n_head))
    return np.swapaxes(heads, -3, -2)


_split_heads_rows = moves_rows((0, 2), (1, 3))  # [T, 3·n_embd] → [head, T, d_head]


def merge_heads(z: np.ndarray) -> np.ndarray:
    """[n_head, T, d_head] → [T, n_head·d_head]: the heads side by side (with a leading
    batch axis, [batch, n_head, T, d_head] → [batch, T, n_head·d_head])."""
    *lead, h, t, d = z.shape
    return np.ascontiguousarray(np.swapaxes(z, -3, -2).reshape(*lead, t, h * d))


_merge_heads_rows = moves_rows((1, 3), (0, 2))


def attention_scores(q: np.ndarray, k: np.ndarray) -> np.ndarray:
    """q·kᵀ / sqrt(d_head) per head, with the future masked to -inf (causal). A batch of
    prompts ([batch, head, T, d_head]) is computed as batch·head heads of one prompt."""
    if isinstance(q, np.ndarray) and isinstance(k, np.ndarray) and q.ndim == k.ndim == 4:
        return causal.flat_heads(attention_scores, q, k)
    if q.dtype != k.dtype or q.dtype.type not in (np.float32, np.float64) or q.ndim != 3:
        return _attention_scores_plain(q, k)
    heads, t, d_head = q.shape
    n_keys = k.shape[1]
    offset = n_keys - t  # queries are the last t positions (t < n_keys when extending)
    scale = q.dtype.type(np.float32(1.0 / math.sqrt(d_head)))  # as the plain formula
    out = np.empty((heads, t, n_keys), dtype=q.dtype)
    if key_major.key_major(t):  # a prompt: as fused attention computes it
        _key_major_scores(q, k, scale, offset, out)
        return causal.mark(out, offset, -np.inf)
    future = causal.future_mask(t, n_keys)
    k_t = k.transpose(0, 2, 1)

    def per_heads(start: int, stop: int) -> None:
        # Causal: a block of query rows needs keys only up to its last row, so the products
        # above the diagonal (almost half of them at 1024 tokens) are never computed.
        for r0, r1, seen in causal.blocks(t, offset):
            block = out[start:stop, r0:r1, :seen]
            np.matmul(q[start:stop, r0:r1], k_t[start:stop, :, :seen], out=block)
            block *= scale
            # The future: whole columns after the block's last key are a plain fill; only
            # the block's own diagonal square needs the mask (not a pass over [H, T, T]).
            out[start:stop, r0:r1, seen:] = -np.inf
            diagonal = slice(offset + r0, offset + r1)
            np.copyto(out[start:stop, r0:r1, diagonal], -np.inf, where=future[r0:r1, diagonal])

    for_chunks(heads, per_heads, work=float(heads) * t * n_keys * d_head)
    return causal.mark(out, offset, -np.inf)  # softmax and pattern x values skip the future


def _key_major_scores(
    q: np.ndarray, k: np.ndarray, scale: np.generic, offset: int, out: np.ndarray
) -> None:
    """Each group of heads' blocks computed key-major (engine/key_major.py), stored
    query-major."""
    heads, t, _ = q.shape
    n_keys = k.shape[1]
    blocks = causal.blocks(t, offset)
    q_t, post_scale = key_major.scaled_queries(q, scale)

    def per_heads(start: int, stop: int) -> None:
        buffer = key_major.scratch(n_keys, t, q.dtype)
        for block, group in key_major.block_groups(start, stop, blocks, q.itemsize):
            s = key_major.scores(k, q_t, group, block, offset, post_scale, buffer)
            key_major.store(s, group, block, out, -np.inf)

    for_chunks(heads, per_heads, work=float(heads) * t * n_keys * q.shape[2])


def _attention_scores_rows(args: Sequence[Arg]) -> Out | None:
    # New queries against all keys (read whole); old rows are -inf in the new keys' columns.
    q, k = args[0], args[1]
    if q == k == Rows(1, 3):
        return Out(Rows(1, 3, pad=-math.inf), whole=(1,))
    return None


def _attention_scores_plain(q: np.ndarray, k: np.ndarray) -> np.ndarray:
    d_head = q.shape[-1]
    scores = np.matmul(q, k.transpose(0, 2, 1)) * np.float32(1.0 / math.sqrt(d_head))
    t = q.shape[1]
    scores[:, np.triu(np.ones((t, t), dtype=bool), k=1)] = -np.inf
    return scores


def zero_head(x: np.ndarray, head: int) -> np.ndarray:
    """A copy of a per-head array with one head set to zero (an ablation)."""
    out = np.array(x, copy=True)
    out[int(head)] = 0
    return out


def last_row(x: np.ndarray) -> np.ndarray:
    """The last row (the newest token)."""
    return x[-1]


def top_tokens(tokenizer: Any, logits: np.ndarray, k: int = 10) -> list[tuple[Any, ...]]:
    """The k most likely next tokens: (id, text, probability, logit)."""
    tok = _tok(tokenizer)
    probs = _softmax(logits)
    order = np.argsort(-logits, kind="stable")[: int(k)]
    return [(int(i), tok.token_str(int(i)), float(probs[i]), float(logits[i])) for i in order]


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - np.max(logits)
    e = np.exp(z)
    return e / e.sum()


def sample_token(
    logits: np.ndarray,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int = 0,
    step: int = 0,
) -> int:
    """Draw the next token: greedy at temperature 0; otherwise softmax(logits / T) restricted
    to the top_k most likely (0 = all) and the smallest set with probability ≥ top_p."""
    # `not (x >= 0)` also refuses NaN, which compares false with everything.
    if not (temperature >= 0 and math.isfinite(temperature)) or not 0 < top_p <= 1 or top_k < 0:
        raise CellEvalError(
            f"need a finite temperature ≥ 0, 0 < top_p ≤ 1 and top_k ≥ 0 "
            f"(got temperature={temperature!r}, top_p={top_p!r}, top_k={top_k!r})"
        )
    if seed < 0:
        raise CellEvalError(f"the seed must be ≥ 0 (got {seed!r})")
    if temperature == 0:
        return int(np.argmax(logits))
    scaled = logits.astype(np.float64) / temperature
    order = np.argsort(-scaled, kind="stable")
    if top_k:
        order = order[: int(top_k)]
    probs = _softmax(scaled[order])
    if top_p < 1:
        keep = int(np.searchsorted(np.cumsum(probs), top_p) + 1)
        order, probs = order[:keep], probs[:keep] / probs[:keep].sum()
    rng = np.random.default_rng([int(seed), int(step)])
    return int(order[rng.choice(len(order), p=probs)])


def token_text(tokenizer: Any, token_id: int) -> str:
    """One token id as text."""
    return _tok(tokenizer).token_str(int(token_id))


def _words_cost(tokenizer: Any, words: Any) -> tuple[int, int]:
    # BPE keeps every merge pass of a word; each pass merges every copy of one pair, so with
    # a real vocabulary a word sees at most a few hundred passes (not one per character).
    if not isinstance(words, list | tuple):
        return python_loop(words)
    size_of(words)
    squares = sum(len(w) * min(len(w), 256) if isinstance(w, str) else 1 for w in words)
    return 64 * squares, PY_OP * squares


def _text_cost(tokenizer: Any, text: Any, *args: Any, **kwargs: Any) -> tuple[int, int]:
    return python_loop(text)


def _tokens_cost(tokenizer: Any, items: Any, *args: Any, **kwargs: Any) -> tuple[int, int]:
    return python_loop(items)


def _top_tokens_cost(tokenizer: Any, logits: Any, k: int = 10) -> tuple[int, int]:
    return sorting(logits)


def _embed_cost(wte: Any, token_ids: Any) -> tuple[int, int]:
    width = wte.shape[-1] if isinstance(wte, np.ndarray) and wte.ndim else 1
    n = size_of(token_ids) * width
    return 8 * n, n


def _attention_cost(q: Any, k: Any) -> tuple[int, int]:
    if not (isinstance(q, np.ndarray) and isinstance(k, np.ndarray) and q.ndim == k.ndim == 3):
        return by_size(q, k)
    heads, t, d_head = q.shape
    n = heads * t * k.shape[1]
    return 8 * n + t * k.shape[1], n * d_head


# Each function's budget (see FunctionLibrary.register): loading and looking up are fixed.
_COSTS = {
    "load_weights": fixed,
    "load_tokenizer": fixed,
    "model_config": fixed,
    "param": fixed,
    "split_words": _text_cost,
    "bpe_passes": _words_cost,
    "bpe_ids": _tokens_cost,
    "token_texts": _tokens_cost,
    "top_tokens": _top_tokens_cost,
    "sample_token": sorting,
    "token_text": fixed,
    "zero_head": scaled(1),
    "positions": fixed,
    "last_row": fixed,
    "embed_tokens": _embed_cost,
    "split_heads": fixed,
    "merge_heads": scaled(1),
    "attention_scores": _attention_cost,
}


def register(library: FunctionLibrary) -> FunctionLibrary:
    for fn in (
        load_weights,
        load_tokenizer,
        model_config,
        param,
        split_words,
        bpe_passes,
        bpe_ids,
        token_texts,
        top_tokens,
        sample_token,
        token_text,
        zero_head,
    ):
        library.register(fn.__name__, fn, cost=_COSTS[fn.__name__])
    for fn in (positions, last_row):
        library.register(fn.__name__, fn, cost=_COSTS[fn.__name__])
    library.register("embed_tokens", embed_tokens, rows=_embed_rows, cost=_embed_cost)
    library.register("split_heads", split_heads, rows=_split_heads_rows, cost=fixed)
    library.register("merge_heads", merge_heads, rows=_merge_heads_rows, cost=scaled(1))
    library.register(
        "attention_scores", attention_scores, rows=_attention_scores_rows, cost=_attention_cost
    )
    library.fusions.append(ATTENTION)
    library.replay_groups.append(BLOCK)
    library.expansions.update(GPT2_EXPANSIONS)
    library.constant("BPE_COLUMNS", BPE_COLUMNS)
    library.constant("TOP_K_COLUMNS", TOP_K_COLUMNS)
    return library
