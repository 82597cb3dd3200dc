"""Forward pass at GPT-2 small shapes: the cell graph (workbooks/gpt2.py, prompt ids → logits
of the last position) against the plain numpy reference forward (cellgpt/gpt2/reference.py) and
PyTorch's GPT2LMHeadModel, timed in turns in one process (so machine load hits all three
alike); medians, ratios, and the cell graph's peak RSS at each length (own subprocess).

    python benchmarks/bench_forward.py [--tokens 6,64,256,1024] [--repeats 7] [--threads 2]

PyTorch runs with `--threads` threads and computes logits for every position (HF's default);
the `torch·last` column is the same model asked for the last position only (logits_to_keep=1),
which is what the cell `logits` needs. Random weights (built once, see _gpt2_small.py).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from cellgpt.engine import Workbook

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _gpt2_small import DEFAULT_DIR, ensure_model, peak_rss_mb

ROOT = Path(__file__).resolve().parent.parent
WORKBOOK = ROOT / "workbooks" / "gpt2.py"


def open_workbook(csv_dir: Path) -> Workbook:
    import cellgpt

    wb = cellgpt.open(WORKBOOK, model=str(csv_dir), prompt="x")
    wb.run("logits")  # weights, tokenizer and parameter cells: loaded once, not timed
    return wb


def cell_forward(wb: Workbook, ids: list[int]) -> np.ndarray:
    wb.pin("prompt_ids", ids)  # everything from token_ids on goes stale
    return wb.run("logits")


def rss_child(csv_dir: Path, n: int) -> None:
    """Run in a subprocess: peak RSS of a cell-graph forward at n tokens (no torch loaded)."""
    wb = open_workbook(csv_dir)
    before = peak_rss_mb()
    cell_forward(wb, [int(i) for i in np.random.default_rng(n).integers(0, 50257, n)])
    print(f"{before:.0f} {peak_rss_mb():.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", default="6,64,256,1024")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="model scratch folder")
    parser.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    hf_dir, csv_dir = ensure_model(args.dir)
    if args.rss_child:
        rss_child(csv_dir, args.rss_child)
        return

    import torch
    from transformers import GPT2LMHeadModel

    from cellgpt.engine.parallel import WORKERS
    from cellgpt.gpt2.reference import reference_forward
    from cellgpt.weights.params import load_params

    torch.set_num_threads(args.threads)
    model = GPT2LMHeadModel.from_pretrained(hf_dir, attn_implementation="sdpa").eval()
    params = load_params(csv_dir)
    wb = open_workbook(csv_dir)
    lengths = [int(t) for t in args.tokens.split(",")]
    print(
        f"GPT-2 small shapes, random weights; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads, {model.config._attn_implementation} attention), "
        f"numpy {np.__version__}, cellgpt workers {WORKERS}; median of {args.repeats}"
    )

    def run_torch(ids: list[int], keep: int = 0) -> np.ndarray:
        with torch.no_grad():
            out = model(torch.tensor([ids]), logits_to_keep=keep)
        return out.logits[0, -1].numpy()

    rows = []
    for n in lengths:
        rng = np.random.default_rng(n)
        times: dict[str, list[float]] = {"cell": [], "numpy": [], "torch": [], "torch1": []}
        worst = 0.0
        for r in range(args.repeats + 1):  # the first round warms caches and is dropped
            ids = [int(i) for i in rng.integers(0, 50257, n)]
            runs = {
                "cell": lambda ids=ids: cell_forward(wb, ids),
                "numpy": lambda ids=ids: reference_forward(params, ids)[-1],
                "torch": lambda ids=ids: run_torch(ids),
                "torch1": lambda ids=ids: run_torch(ids, keep=1),
            }
            got = {}
            for key, fn in runs.items():
                start = time.perf_counter()
                got[key] = fn()
                if r:
                    times[key].append(time.perf_counter() - start)
            worst = max(worst, float(np.max(np.abs(got["cell"] - got["torch"]))))
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        rss = subprocess.run(
            [sys.executable, __file__, "--dir", str(args.dir), "--rss-child", str(n)],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        rows.append((n, med, worst, rss))
        print(
            f"  {n:5d} tokens: cell {med['cell']:7.0f} ms  numpy {med['numpy']:7.0f} ms  "
            f"torch {med['torch']:7.0f} ms  torch·last {med['torch1']:7.0f} ms  "
            f"cell/torch {med['cell'] / med['torch']:.2f}  max|Δ| {worst:.1e}  "
            f"peak RSS {rss[1]} MiB",
            flush=True,
        )
    print()
    print("| tokens | cellgpt ms | numpy ms | torch ms | torch·last ms | cellgpt/torch | "
          "cellgpt/torch·last | cellgpt/numpy | peak RSS (cellgpt, MiB) |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, med, _, rss in rows:
        print(
            f"| {n} | {med['cell']:.0f} | {med['numpy']:.0f} | {med['torch']:.0f} | "
            f"{med['torch1']:.0f} | {med['cell'] / med['torch']:.2f} | "
            f"{med['cell'] / med['torch1']:.2f} | {med['cell'] / med['numpy']:.2f} | "
            f"{rss[1]} |"
        )


if __name__ == "__main__":
    main()
