"""Encoding speed of our BPE against tiktoken (single thread), per named tokenizer.

    python benchmarks/bench_tokenize.py                  # all five, the default text
    python benchmarks/bench_tokenize.py cl100k_base --rounds 9 --file X.txt

Same text for both sides, ids checked equal every round. tiktoken is built from the very rank
tables we ship (its own downloads are not needed) with the same split pattern. Our encoder is
timed twice: cold (its piece cache emptied before the run) and warm (the cache as the previous
round left it, which is how a long session encodes); for the rank tables also "first": a new
tokenizer object built from the ranks in memory and its first encode (for ours this includes
the pair table that bulk merging builds once, ~0.15 s for cl100k), against a new
tiktoken.Encoding and its first encode. Sides are interleaved per the protocol of
benchmarks/_fair.py (alternating order, idle pause before each side); the figures are medians
over rounds, and the load average is printed: on a shared machine the numbers are noisy.

Each tokenizer is measured in a process of its own (`--in-process` measures them one after
another in this one): after the other tables have been built and freed in a process, our
encoder (Python objects: strings, tuples, lists) runs ~15–20% slower for the rest of that
process's life, and tiktoken (Rust) does not; a user's session loads the tokenizer it uses.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import tiktoken

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fair import Machine, Side, add_arguments, run_rounds

from cellgpt.tokenizer.named import load_tokenizer
from cellgpt.tokenizer.ranked import RankTokenizer

REPO = Path(__file__).resolve().parents[1]
NAMES = ("gpt2", "r50k_base", "p50k_base", "cl100k_base", "o200k_base")
HEADER = (
    f"{'tokenizer':<12} {'cold MB/s':>9} {'warm MB/s':>9} {'tiktoken':>9}  ours/tiktoken (speed)"
)


def default_text() -> str:
    """Shakespeare (0.5 MB), some of our Python, and the comparison sample: prose, code,
    numbers and several scripts."""
    from cellgpt.tokenizer.compare import SAMPLE

    prose = (REPO / "data/corpus/shakespeare_val.txt").read_text(encoding="utf-8")
    code = "".join(
        p.read_text(encoding="utf-8") for p in sorted(REPO.glob("cellgpt/tokenizer/*.py"))
    )
    return prose + code + SAMPLE * 20


def reference(name: str) -> tiktoken.Encoding:
    """tiktoken over the same ranks, pattern and specials as ours."""
    tok = load_tokenizer(name)
    if isinstance(tok, RankTokenizer):
        ranks = tok.ranks
    else:  # GPT-2's folder: ranks are the ids of the ordinary tokens
        ranks = {b: i for i, b in tok.id_bytes().items() if i not in tok.special_tokens.values()}
    return tiktoken.Encoding(
        f"{name}-bench",
        pat_str=tok.pattern,
        mergeable_ranks=ranks,
        special_tokens=tok.special_tokens,
    )


def bench(name: str, text: str, rounds: int, machine: Machine, pause: float) -> dict[str, float]:
    tok, ref = load_tokenizer(name), reference(name)
    mb = len(text.encode("utf-8")) / 1e6

    first = isinstance(tok, RankTokenizer)

    def ours_first() -> list[int]:
        fresh = RankTokenizer(tok.ranks, tok.pattern, tok.special_tokens, name=name)
        return fresh.encode_ordinary(text)

    def tiktoken_first() -> list[int]:
        fresh = tiktoken.Encoding(
            f"{name}-first",
            pat_str=ref._pat_str,
            mergeable_ranks=ref._mergeable_ranks,
            special_tokens=ref._special_tokens,
        )
        return fresh.encode_ordinary(text)

    def make_round(_: int) -> dict[str, Side]:
        sides = {
            "cold": Side(lambda: tok.encode_ordinary(text), setup=tok.clear_cache),
            "warm": Side(lambda: tok.encode_ordinary(text)),
            "tiktoken": Side(lambda: ref.encode_ordinary(text)),
        }
        if first:
            sides["first"] = Side(ours_first)
            sides["tiktoken_first"] = Side(tiktoken_first)
        return sides

    def check(outputs: dict) -> None:
        assert outputs["cold"] == outputs["warm"] == outputs["tiktoken"], f"{name}: ids differ"
        if first:
            assert outputs["first"] == outputs["tiktoken_first"] == outputs["cold"]

    result = run_rounds(make_round, rounds, machine, pause=pause, check=check)
    return {
        "cold": mb / result.median("cold"),
        "warm": mb / result.median("warm"),
        "tiktoken": mb / result.median("tiktoken"),
        "cold_ratio": result.ratio("tiktoken", "cold"),
        "warm_ratio": result.ratio("tiktoken", "warm"),
        "first_ratio": result.ratio("tiktoken_first", "first") if first else float("nan"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", default=list(NAMES), help=f"default: {' '.join(NAMES)}")
    parser.add_argument("--file", type=Path, help="UTF-8 text to encode instead of the default")
    parser.add_argument("--rounds", type=int, default=5, help="kept rounds per tokenizer (5)")
    parser.add_argument(
        "--in-process", action="store_true", help="measure every tokenizer in this process"
    )
    parser.add_argument("--no-header", action="store_true", help=argparse.SUPPRESS)
    add_arguments(parser)
    parser.set_defaults(pause=0.05)  # no BLAS threads to let park here
    args = parser.parse_args()
    if len(args.names) > 1 and not args.in_process:
        return _each_in_its_own_process(args.names)
    text = args.file.read_text(encoding="utf-8") if args.file else default_text()
    machine = Machine(busy=args.busy)
    if not args.no_header:
        print(f"text: {len(text.encode('utf-8')) / 1e6:.2f} MB; medians of {args.rounds} rounds")
        print(HEADER)
    for name in args.names:
        r = bench(name, text, args.rounds, machine, args.pause)
        print(
            f"{name:<12} {r['cold']:9.2f} {r['warm']:9.2f} {r['tiktoken']:9.2f}  "
            f"cold {r['cold_ratio']:.2f}x, warm {r['warm_ratio']:.2f}x, first {r['first_ratio']:.2f}x"
        )
    return machine.report(args.strict)


def _each_in_its_own_process(names: list[str]) -> int:
    """Run this script once per tokenizer (same options), one after another."""
    rest = [a for a in sys.argv[1:] if a not in names]
    status = 0
    for k, name in enumerate(names):
        extra = [] if k == 0 else ["--no-header"]
        done = subprocess.run([sys.executable, __file__, name, *rest, *extra], check=False)
        status = max(status, done.returncode)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
