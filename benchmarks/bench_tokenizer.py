"""Tokenizer throughput: cellgpt (cold and warm word cache) against tiktoken, same process.

    python benchmarks/bench_tokenizer.py            # ~2 MB of generated English
    python benchmarks/bench_tokenizer.py --file X   # any local UTF-8 text instead

tiktoken is built from the same bundled encoder.json, so both produce the same ids (checked).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable
from pathlib import Path

import tiktoken

from cellgpt.tokenizer.bpe import DATA_DIR, GPT2_SPLIT_PATTERN, Tokenizer, unicode_to_bytes

SENTENCES = [
    "The {adj} {noun} {verb} over the {adj} {noun} before anyone noticed.",
    "In {year}, {name} wrote that the {noun} was {adj}, and nobody disagreed.",
    "Why would a {noun} {verb} when the {noun} is already {adj}?",
    "She said, \"I'll {verb} the {noun} tomorrow; it's too {adj} today.\"",
    "They've measured {num} {noun}s across {num} sites since {year}.",
    "{name}'s {noun} didn't {verb} at all - it was {adj} from the start.",
    "According to the report, {num}% of {noun}s {verb} during the {adj} season.",
    "We're not sure whether the {noun} will {verb}, but we'd like to find out.",
    "After {num} hours of {adj} debate, the committee voted to {verb} the {noun}.",
    "Most {noun}s are {adj}; a few, like the one {name} found in {year}, are not.",
]
_WORD_LISTS = {
    "adj": "quick quiet ancient brittle golden crowded distant humid elegant fragile "
    "reluctant curious enormous tiny careful noisy patient rapid gentle bitter "
    "luminous tangled ordinary peculiar sturdy hollow restless vivid obscure",
    "noun": "river engine garden theory lantern harbor violin glacier market pattern "
    "algorithm village shadow compass library orchard tunnel festival canyon signal "
    "manuscript telescope monastery volcano parliament cathedral laboratory",
    "verb": "jump wander collapse negotiate flourish tremble evaporate assemble "
    "whisper calculate migrate dissolve illuminate hesitate celebrate",
    "name": "Ada Turing Hopper Lovelace Ramanujan Noether Curie Darwin Euler Gauss "
    "Hypatia Faraday Maxwell Shannon Dijkstra Knuth",
}
WORDS = {kind: words.split() for kind, words in _WORD_LISTS.items()}


def english_text(target_bytes: int = 2_000_000, seed: int = 0) -> str:
    """Seeded prose from varied sentence templates, words, years and numbers."""
    rng = random.Random(seed)
    parts: list[str] = []
    size = 0
    while size < target_bytes:
        template = rng.choice(SENTENCES)
        sentence = template.format_map(_Filler(rng))
        if rng.random() < 0.15:
            sentence += "\n\n"
        parts.append(sentence)
        size += len(sentence) + 1
    return " ".join(parts)


class _Filler(dict):
    """format_map source that draws a fresh random word for every placeholder."""

    def __init__(self, rng: random.Random) -> None:
        super().__init__()
        self.rng = rng

    def __missing__(self, key: str) -> str:
        if key == "year":
            return str(self.rng.randint(1500, 2030))
        if key == "num":
            return str(self.rng.randint(0, 99999))
        return self.rng.choice(WORDS[key])


def local_tiktoken() -> tiktoken.Encoding:
    """tiktoken over the bundled GPT-2 files (no download)."""
    char_to_byte = unicode_to_bytes()
    encoder = json.loads((DATA_DIR / "encoder.json").read_text(encoding="utf-8"))
    ranks = {
        bytes(char_to_byte[c] for c in token): idx
        for token, idx in encoder.items()
        if token != "<|endoftext|>"
    }
    return tiktoken.Encoding(
        name="gpt2-local",
        pat_str=GPT2_SPLIT_PATTERN,
        mergeable_ranks=ranks,
        special_tokens={"<|endoftext|>": 50256},
    )


def timed(fn: Callable[[str], list[int]], text: str) -> tuple[float, list[int]]:
    start = time.perf_counter()
    ids = fn(text)
    return time.perf_counter() - start, ids


def best_of(fn: Callable[[str], list[int]], text: str, repeats: int) -> float:
    return min(timed(fn, text)[0] for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, help="UTF-8 text to encode instead")
    parser.add_argument("--mb", type=float, default=2.0, help="size of generated text in MB")
    parser.add_argument("--repeats", type=int, default=3, help="warm runs (best is reported)")
    args = parser.parse_args()

    text = args.file.read_text(encoding="utf-8") if args.file else english_text(int(args.mb * 1e6))
    mb = len(text.encode("utf-8")) / 1e6
    tok = Tokenizer.gpt2()
    ref = local_tiktoken()

    tok.clear_cache()
    cold, ids = timed(tok.encode_ordinary, text)
    warm = best_of(tok.encode_ordinary, text, args.repeats)
    tik, ref_ids = timed(ref.encode_ordinary, text)
    tik = min(tik, best_of(ref.encode_ordinary, text, args.repeats))
    assert ids == ref_ids, "cellgpt and tiktoken disagree"

    print(f"text: {mb:.2f} MB, {len(ids):,} tokens, {len(set(tok.split(text))):,} distinct words")
    print(f"cellgpt cold cache : {mb / cold:7.2f} MB/s")
    print(f"cellgpt warm cache : {mb / warm:7.2f} MB/s")
    print(f"tiktoken           : {mb / tik:7.2f} MB/s")
    print(f"ratio tiktoken/cellgpt: cold {cold / tik:.1f}x, warm {warm / tik:.1f}x")


if __name__ == "__main__":
    main()
