"""Greedy generation at GPT-2 small shapes: the cell graph with row-incremental recompute
(cellgpt/gpt2/generate.py) against PyTorch's GPT2LMHeadModel.generate with its KV cache,
timed in turns in one process; tokens/s medians, the ratio, and a check that both produce
the same ids. Both timings include the prompt's own forward pass (as HF generate() does).
`--full` also times the cell graph recomputing every row of every cell for each token.

    python benchmarks/bench_generate.py [--prompt-tokens 8] [--new 40] [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _gpt2_small import DEFAULT_DIR, ensure_model

ROOT = Path(__file__).resolve().parent.parent
WORKBOOK = ROOT / "workbooks" / "gpt2.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompt-tokens", type=int, default=8)
    parser.add_argument("--new", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--full", action="store_true", help="also time full recompute")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="model scratch folder")
    args = parser.parse_args()
    hf_dir, csv_dir = ensure_model(args.dir)

    import torch
    from transformers import GPT2LMHeadModel

    import cellgpt
    from cellgpt.gpt2.generate import generate

    torch.set_num_threads(args.threads)
    model = GPT2LMHeadModel.from_pretrained(hf_dir, attn_implementation="sdpa").eval()
    wb = cellgpt.open(WORKBOOK, model=str(csv_dir), prompt="x")
    wb.run("next_token")  # load weights and parameter cells once, untimed

    def ours(ids: list[int], incremental: bool = True) -> list[int]:
        wb.set("generated", [])
        wb.pin("prompt_ids", ids)
        wb.run("next_token")  # the prompt's pass (HF's generate() includes it too)
        if incremental:
            return generate(wb, args.new)
        for name in wb.cells():  # no row-append variants: every row, every cell, every token
            wb.set_extender(name, None)
        out = []
        for _ in range(args.new):
            out.append(int(wb["next_token"]))
            wb.set("generated", [*wb["generated"], out[-1]])
        return out

    def theirs(ids: list[int]) -> list[int]:
        with torch.no_grad():
            out = model.generate(
                torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=args.new,
                min_new_tokens=args.new,
                do_sample=False,
                use_cache=True,
                pad_token_id=50256,
            )
        return out[0, len(ids) :].tolist()

    rng = np.random.default_rng(0)
    rates: dict[str, list[float]] = {"cell": [], "torch": [], "full": []}
    same = True
    for r in range(args.repeats + 1):  # round 0 warms up and is dropped
        ids = [int(i) for i in rng.integers(0, 50257, args.prompt_tokens)]
        runs = {"cell": lambda ids=ids: ours(ids), "torch": lambda ids=ids: theirs(ids)}
        if args.full:
            runs["full"] = lambda ids=ids: ours(ids, incremental=False)
        got = {}
        for key, fn in runs.items():
            start = time.perf_counter()
            got[key] = fn()
            seconds = time.perf_counter() - start
            if r:
                rates[key].append(args.new / seconds)
        same = same and got["cell"] == got["torch"] and got.get("full", got["cell"]) == got["cell"]
    med = {k: statistics.median(v) for k, v in rates.items() if v}
    print(
        f"GPT-2 small shapes, random weights; prompt {args.prompt_tokens} tokens, "
        f"{args.new} new, median of {args.repeats}; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads, KV cache)"
    )
    print(f"  cellgpt incremental : {med['cell']:6.1f} tok/s")
    if "full" in med:
        print(f"  cellgpt full rerun  : {med['full']:6.1f} tok/s")
    print(f"  torch KV cache      : {med['torch']:6.1f} tok/s")
    print(f"  cellgpt / torch     : {med['cell'] / med['torch']:.2f}   ids identical: {same}")


if __name__ == "__main__":
    main()
