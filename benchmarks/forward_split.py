"""A forward's wall time split in two, on both sides: the 49 weight products (four per block
and the output head) and everything else — without a profiler, so torch's many small ops are
not slowed (profile_steps.py has the step-by-step view). Same forwards as bench_forward.py
(logits of the last position, GPT-2 small shapes), the fair protocol of _fair.py.

- cellgpt: the wall time of running `logits` after pinning the ids; products = the recorded
  durations of the product cells (`qkv`, `attn.out`, `mlp.fc`, `mlp.out` of every block and
  `logits`: each a product plus its bias), and of those the time inside MKL's gemm calls
  (when MKL is installed: its `product` method timed on the loaded instance);
- torch:   the wall time of HF GPT2LMHeadModel's forward (SDPA, inference_mode, 2 threads,
  logits_to_keep=1, use_cache=False); products = the time inside its Conv1D projections and
  lm_head (addmm with the bias), from perf_counter forward hooks on those 49 modules only.

"rest" is the wall time minus the products: layer norms, attention, GELU, residual adds,
embedding, and the framework itself (the engine's bookkeeping for ~230 cells; torch's module
calls).

    python benchmarks/forward_split.py [--tokens 6,64,256,1024] [--repeats 5] [--strict]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _fair
from _gpt2_small import DEFAULT_DIR, ensure_model
from bench_forward import cell_forward, load_torch, open_workbook, prompt_ids, torch_forward
from profile_steps import add_clocks

from cellgpt.cli.profile import Recorder

PRODUCT_CELLS = ("qkv", "attn.out", "mlp.fc", "mlp.out")
PRODUCT_MODULES = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", default="6,64,256,1024")
    parser.add_argument("--repeats", type=int, default=5, help="kept rounds per length")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="model scratch folder")
    _fair.add_arguments(parser)
    args = parser.parse_args()
    hf_dir, csv_dir = ensure_model(args.dir)
    model = load_torch(hf_dir, args.threads)
    clock = {"products": 0.0, "mkl": 0.0}
    add_clocks(model, clock, product_module)
    wb = open_workbook(csv_dir)
    recorder = Recorder(wb)
    time_mkl_calls(clock)
    products = [f"h{i}.{c}" for i in range(int(wb["n_layer"])) for c in PRODUCT_CELLS]
    products.append("logits")
    table = []
    with _fair.busy_loop(args.busy):
        machine = _fair.Machine(busy=args.busy)
        for n in (int(t) for t in args.tokens.split(",")):
            rounds, split = measure(n, args, machine, wb, recorder, products, model, clock)
            table.append((n, rounds, split))
        status = machine.report(args.strict)
    print_table(table)
    return status


def measure(
    n: int,
    args: argparse.Namespace,
    machine: _fair.Machine,
    wb: Any,
    recorder: Recorder,
    products: list[str],
    model: Any,
    clock: dict[str, float],
) -> tuple[_fair.Rounds, dict[str, list[float]]]:
    """The fair rounds at one prompt length, and each side's product seconds per kept round."""
    split: dict[str, list[float]] = {"cell": [], "torch": [], "mkl": []}

    def cell(ids: list[int]) -> _fair.Measured:
        recorder.take()
        clock["mkl"] = 0.0
        start = time.perf_counter()
        logits = cell_forward(wb, ids)
        wall = time.perf_counter() - start
        ran = recorder.take()
        split["cell"].append(sum(ran.get(name, 0.0) for name in products))
        split["mkl"].append(clock["mkl"])
        return _fair.Measured(wall, logits)

    def torch_side(ids: list[int]) -> np.ndarray:
        clock["products"] = 0.0
        logits = torch_forward(model, ids)
        split["torch"].append(clock["products"])
        return logits

    def make_round(r: int) -> dict[str, _fair.Side]:
        ids = prompt_ids(n, r)
        return {
            "cell": _fair.Side(lambda: cell(ids)),
            "torch": _fair.Side(lambda: torch_side(ids)),
        }

    def check(out: dict[str, Any]) -> None:
        worst = float(np.max(np.abs(out["cell"] - out["torch"])))
        if worst > 1e-3:
            raise SystemExit(f"logits differ by {worst:.2e} at {n} tokens")

    rounds = _fair.run_rounds(make_round, args.repeats, machine, pause=args.pause, check=check)
    warmups = len(split["cell"]) - args.repeats  # run_rounds' warm-up rounds come first
    return rounds, {side: times[warmups:] for side, times in split.items()}


def time_mkl_calls(clock: dict[str, float]) -> None:
    """Add the time of every MKL gemm call on the main thread (the loaded instance's
    `product`) to clock["mkl"]: above 128 rows a product is two single-threaded calls side by
    side, one on each core, and the main thread's stands for both."""
    import threading

    from cellgpt.engine import mkl_blas

    main = threading.main_thread()
    mkl = mkl_blas.get()
    if mkl is None:
        return
    product = mkl.product

    def timed(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread() is not main:
            return product(*args, **kwargs)
        start = time.perf_counter()
        try:
            return product(*args, **kwargs)
        finally:
            clock["mkl"] += time.perf_counter() - start

    mkl.product = timed  # type: ignore[method-assign]


def product_module(path: str) -> str | None:
    """add_clocks' name for the 49 product modules ("products"); None for the rest."""
    return "products" if path == "lm_head" or path.endswith(PRODUCT_MODULES) else None


def print_table(table: list[tuple[int, _fair.Rounds, dict[str, list[float]]]]) -> None:
    print(
        "\nms per forward, medians of the rounds (rest = wall − products; ratio: cellgpt / torch)"
        "\n\n| tokens | cellgpt wall | products | of which MKL calls | rest | torch wall | products "
        "| rest | wall ratio | products ratio | rest ratio |"
        "\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    for n, rounds, split in table:
        walls = {side: rounds.times[side] for side in ("cell", "torch")}
        rests = {
            side: [w - p for w, p in zip(walls[side], split[side], strict=True)] for side in walls
        }

        def med(values: list[float]) -> float:
            return statistics.median(values) * 1e3

        def ratio(a: list[float], b: list[float]) -> float:
            return statistics.median(x / y for x, y in zip(a, b, strict=True))

        print(
            f"| {n} | {med(walls['cell']):.1f} | {med(split['cell']):.1f} | {med(split['mkl']):.1f} "
            f"| {med(rests['cell']):.1f} "
            f"| {med(walls['torch']):.1f} | {med(split['torch']):.1f} | {med(rests['torch']):.1f} "
            f"| {rounds.ratio('cell', 'torch'):.2f} | {ratio(split['cell'], split['torch']):.2f} "
            f"| {ratio(rests['cell'], rests['torch']):.2f} |"
        )


if __name__ == "__main__":
    sys.exit(main())
