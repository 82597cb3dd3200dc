"""BPE training speed: our incremental trainer against a naive recount-every-merge trainer.

    python benchmarks/bench_bpe_train.py [--naive-merges 200]

1. The same 1 MB of text, the same first N merges: a minbpe-style trainer (every chunk kept,
   all pair counts recomputed and every chunk rewritten at each merge) against `train_bpe`.
   Both include pre-splitting; the merges must come out identical. Then our rate over a full
   run to vocab 8192 on the same text.
2. Vocab 8192 on 5 MB: wall time of `train_bpe`.
Targets: ours ≥ 20x the naive merges/s; vocab 8192 on 5 MB in under 60 s.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any, TypeVar

from cellgpt.tokenizer.train import resolve_pattern, special_splitter, train_bpe

CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus" / "shakespeare_train.txt"
SPECIALS = ["<|endoftext|>"]
T = TypeVar("T")


def naive_train(text: str, n_merges: int) -> list[tuple[bytes, bytes]]:
    """minbpe-style: keep every chunk, recount all pairs and rewrite all chunks per merge.

    Uses the same tie-breaking as `train_bpe` (count, then smallest byte pair) so both
    produce the same merges.
    """
    split_re = resolve_pattern("gpt2")
    chunks = []
    for piece in special_splitter(SPECIALS).split(text):
        chunks += [list(c.encode("utf-8")) for c in split_re.findall(piece)]
    vocab = {b: bytes([b]) for b in range(256)}
    merges = []
    for k in range(n_merges):
        stats: Counter[tuple[int, int]] = Counter()
        for ids in chunks:
            stats.update(pairwise(ids))
        pair = min(stats, key=lambda p: (-stats[p], vocab[p[0]], vocab[p[1]]))
        new = 256 + k
        vocab[new] = vocab[pair[0]] + vocab[pair[1]]
        chunks = [_merge(ids, pair, new) for ids in chunks]
        merges.append((vocab[pair[0]], vocab[pair[1]]))
    return merges


def _merge(ids: list[int], pair: tuple[int, int], new: int) -> list[int]:
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def timed(fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, float]:
    """fn's result and its wall time in seconds."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def head_bytes(text: str, n_bytes: int) -> str:
    """The first n_bytes of text's UTF-8, cut back to a whole character."""
    return text.encode("utf-8")[:n_bytes].decode("utf-8", errors="ignore")


def bench_ratio(text: str, n_naive: int) -> float:
    """Print naive vs ours on the same merges; return our full-run merges/s over naive's."""
    naive, t_naive = timed(naive_train, text, n_naive)
    ours, t_ours = timed(train_bpe, [text], 256 + n_naive + 1, special_tokens=SPECIALS)
    assert ours.merges == naive, "the two trainers disagree"
    naive_rate, same_rate = n_naive / t_naive, n_naive / t_ours
    print(f"  naive:  {n_naive} merges in {t_naive:.1f} s = {naive_rate:.2f} merges/s")
    print(f"  ours:   same {n_naive} merges in {t_ours:.2f} s = {same_rate:.0f} merges/s")
    full, t_full = timed(train_bpe, [text], 8192, special_tokens=SPECIALS)
    full_rate = len(full.merges) / t_full
    n_full = len(full.merges)
    print(f"  ours:   {n_full} merges (vocab 8192) in {t_full:.2f} s = {full_rate:.0f} merges/s")
    print(f"  ratio:  {same_rate / naive_rate:.0f}x on the same merges, ", end="")
    print(f"{full_rate / naive_rate:.0f}x over the full run (target >= 20x)")
    return min(same_rate, full_rate) / naive_rate


def bench_5mb(text: str) -> float:
    """Print and return the wall time of vocab 8192 on this text."""
    trained, seconds = timed(train_bpe, [text], 8192)
    mb = len(text.encode("utf-8")) / 1e6
    print(f"  vocab 8192 on {mb:.2f} MB: {len(trained.merges)} merges in {seconds:.2f} s")
    print(f"  ({len(trained.merges) / seconds:.0f} merges/s; target < 60 s)")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--naive-merges", type=int, default=200)
    args = parser.parse_args()
    corpus = CORPUS.read_text(encoding="utf-8")
    print("1 MB, naive (recount per merge) vs incremental:")
    ratio = bench_ratio(head_bytes(corpus, 1_000_000), args.naive_merges)
    print("5 MB:")
    seconds = bench_5mb(head_bytes(corpus, 5_000_000))
    ok = ratio >= 20 and seconds < 60
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
