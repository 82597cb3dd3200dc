"""Before/after: the same measurements on two source checkouts of cellgpt, in alternating
child processes of one run (A, B, B, A, ...), so machine load hits both alike. For refactors
that must not cost speed.

    python benchmarks/bench_checkouts.py OLD_ROOT NEW_ROOT [--rounds 5] [--tokens 6,64,256]

Each child imports cellgpt from its root (PYTHONPATH) and measures: the cell-graph forward of
a GPT-2-small-shaped model (prompt ids → logits, median of --repeats), greedy generation of
20 tokens after an 8-token prompt (row-incremental, tokens/s), and the engine's
overhead per cell on a 200-cell chain plus a one-cell re-run. The report gives each side's
median over rounds and the median of the per-round ratios NEW/OLD (for times, below 1 = NEW
is faster; for tokens/s, above 1),
with the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child(csv_dir: str, tokens: list[int], repeats: int) -> None:
    """Runs inside the checkout under test: prints one JSON line of medians (ms or µs)."""
    import numpy as np

    import cellgpt
    from cellgpt.engine import CellSpec, Workbook

    out: dict[str, float] = {}
    root = Path(cellgpt.__file__).resolve().parent.parent
    wb = cellgpt.open(root / "workbooks" / "gpt2.py", model=csv_dir, prompt="x")
    wb.run("logits")
    rng = np.random.default_rng(0)
    for n in tokens:
        ids = [int(i) for i in rng.integers(0, 50257, n)]
        samples = []
        for _ in range(repeats):
            wb.pin("prompt_ids", ids)
            start = time.perf_counter()
            wb.run("logits")
            samples.append(time.perf_counter() - start)
        out[f"forward {n} tok (ms)"] = statistics.median(samples) * 1e3

    from cellgpt.gpt2.generate import generate

    prompt = [int(i) for i in rng.integers(0, 50257, 8)]
    samples = []
    for _ in range(3):
        wb.set("generated", [])
        wb.pin("prompt_ids", prompt)
        wb.run("next_token")
        start = time.perf_counter()
        generate(wb, 20)
        samples.append(20 / (time.perf_counter() - start))
    out["generate 20 tok (tok/s)"] = statistics.median(samples)

    cells = 200
    chain, rerun = [], []
    for r in range(30):
        book = Workbook()
        book.define_many(
            [CellSpec("c0", "0")] + [CellSpec(f"c{i}", f"c{i - 1} + 1") for i in range(1, cells)]
        )
        book.set("c0", r)
        start = time.perf_counter()
        book.run()
        chain.append((time.perf_counter() - start) / cells)
        start = time.perf_counter()
        book.rerun(f"c{cells // 2}")
        rerun.append(time.perf_counter() - start)
    out["engine per cell (us)"] = statistics.median(chain) * 1e6
    out["one-cell rerun (us)"] = statistics.median(rerun) * 1e6
    print(json.dumps(out))


def run_child(root: Path, args: argparse.Namespace, csv_dir: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    cmd = [sys.executable, __file__, "--child", str(csv_dir), "--tokens", args.tokens]
    cmd += ["--repeats", str(args.repeats), str(root), str(root)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, cwd=root)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tokens", default="6,64,256")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    tokens = [int(t) for t in args.tokens.split(",")]
    if args.child:
        child(args.child, tokens, args.repeats)
        return

    sys.path.insert(0, str(HERE))
    from _gpt2_small import ensure_model

    _, csv_dir = ensure_model()
    load_before = os.getloadavg()
    results: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
    for r in range(args.rounds):
        order = ["old", "new"] if r % 2 == 0 else ["new", "old"]
        for side in order:
            results[side].append(run_child(getattr(args, side), args, csv_dir))
            time.sleep(1.0)  # let BLAS threads of the finished child go idle
    load_after = os.getloadavg()

    print(f"old = {args.old}\nnew = {args.new}\nrounds = {args.rounds}")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    print(f"{'measure':<24} {'old':>10} {'new':>10} {'new/old':>8}")
    for key in results["old"][0]:
        old = [x[key] for x in results["old"]]
        new = [x[key] for x in results["new"]]
        ratio = statistics.median(n / o for n, o in zip(new, old, strict=True))
        print(
            f"{key:<24} {statistics.median(old):>10.2f} {statistics.median(new):>10.2f} "
            f"{ratio:>8.3f}"
        )


if __name__ == "__main__":
    main()
