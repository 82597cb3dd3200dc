"""Where the forward's time goes, step by step: cellgpt's per-cell durations (recorded by the
engine, summed over the 12 blocks as `cellgpt run --profile` does) beside torch.profiler on
the same forward of HF GPT2LMHeadModel (SDPA, inference_mode, 2 threads, logits_to_keep=1,
use_cache=False), same ids, GPT-2 small shapes, interleaved rounds with the idle pause of
_fair.py; per-round times, medians shown.

    python benchmarks/profile_steps.py [--tokens 64,1024] [--repeats 5] [--clock]

Torch side: every submodule that matches one of our steps is wrapped in a
torch.profiler.record_function range (forward hooks), and the profiler's inclusive time per
range is summed over the blocks. The mapping is best effort: torch's layer norm is one op
(our steps 1–3), q/k/v split + SDPA + head merge are "attention core" = the attn module
minus its two projections (our steps 5–8), and the two residual adds are the block minus
its submodules (our steps 10 and 16). The busiest aten ops are listed too.

`--clock`: the same ranges timed with time.perf_counter in the forward hooks instead of
torch.profiler, which slows torch's many small ops (its GELU most) and so flatters us: the
unprofiled split between the products and everything else (no aten op list). The hooks cost
torch a few µs per module (~0.3 ms a forward), as recording costs our cells theirs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _fair
from _gpt2_small import DEFAULT_DIR, ensure_model
from bench_forward import cell_forward, load_torch, open_workbook, prompt_ids, torch_forward

from cellgpt.cli.profile import STEP, Recorder, profile

# Our side's rows: (row label, our steps, our other lines by label, torch ranges' expression)
ROWS: list[tuple[str, tuple[int, ...], tuple[str, ...], str]] = [
    ("embed", (), ("wte_rows", "wpe_rows", "embed"), "wte + wpe"),
    ("1-3 layer norm 1", (1, 2, 3), (), "ln_1"),
    ("4 qkv", (4,), (), "c_attn"),
    ("5-8 q k v, scores, pattern, z", (5, 6, 7, 8), (), "attn - c_attn - attn.c_proj"),
    ("9 attn.out", (9,), (), "attn.c_proj"),
    ("10, 16 residual adds", (10, 16), (), "block - ln_1 - attn - ln_2 - mlp"),
    ("11-12 layer norm 2", (11, 12), (), "ln_2"),
    ("13 mlp.fc", (13,), (), "mlp.c_fc"),
    ("14 mlp.gelu", (14,), (), "mlp.act"),
    ("15 mlp.out", (15,), (), "mlp.c_proj"),
    ("ln_f", (), ("ln_f.normalized", "ln_f", "predicted"), "ln_f"),
    ("logits", (), ("logits",), "lm_head"),
]
# Module path suffix → range name; each block's modules share one name (summed over blocks).
RANGES = {
    "transformer.wte": "wte",
    "transformer.wpe": "wpe",
    "ln_1": "ln_1",
    "attn": "attn",
    "attn.c_attn": "c_attn",
    "attn.c_proj": "attn.c_proj",
    "ln_2": "ln_2",
    "mlp": "mlp",
    "mlp.c_fc": "mlp.c_fc",
    "mlp.act": "mlp.act",
    "mlp.c_proj": "mlp.c_proj",
    "transformer.ln_f": "ln_f",
    "lm_head": "lm_head",
}


def range_name(path: str) -> str | None:
    """The range a module's time goes to ("forward" for the whole model), or None."""
    if path == "":
        return "forward"
    if path in RANGES:
        return RANGES[path]
    parts = path.split(".")
    if parts[:2] == ["transformer", "h"] and len(parts) >= 3:
        return "block" if len(parts) == 3 else RANGES.get(".".join(parts[3:]))
    return None


def add_ranges(model: Any) -> None:
    """Forward hooks that open/close a record_function range around the mapped modules."""
    from torch.autograd.profiler import record_function

    def pre(name: str) -> Any:
        def hook(module: Any, _inputs: Any) -> None:
            module._profile_ranges = [
                *getattr(module, "_profile_ranges", []),
                record_function(name),
            ]
            module._profile_ranges[-1].__enter__()

        return hook

    def post(module: Any, _inputs: Any, _output: Any) -> None:
        module._profile_ranges.pop().__exit__(None, None, None)

    for path, module in model.named_modules():
        name = range_name(path)
        if name is not None:
            module.register_forward_pre_hook(pre(name))
            module.register_forward_hook(post)


def add_clocks(
    model: Any, clock: dict[str, float], name_of: Callable[[str], str | None] = range_name
) -> None:
    """Forward hooks that add the wall time (perf_counter) of each module that name_of maps
    (by its path; None: not timed) to clock[name]."""
    starts: list[float] = []  # hooks nest like the modules' calls: a stack serves all

    def pre(_module: Any, _inputs: Any) -> None:
        starts.append(time.perf_counter())

    def post(name: str) -> Any:
        def hook(_module: Any, _inputs: Any, _output: Any) -> None:
            clock[name] = clock.get(name, 0.0) + time.perf_counter() - starts.pop()

        return hook

    for path, module in model.named_modules():
        name = name_of(path)
        if name is not None:
            module.register_forward_pre_hook(pre)
            module.register_forward_hook(post(name))


def torch_rows(
    model: Any, ids: list[int], clock: dict[str, float] | None = None
) -> tuple[dict[str, float], dict[str, float]]:
    """One forward: (seconds per ROWS label plus "total", seconds per aten op), from
    torch.profiler, or from the hooks' clock (add_clocks) when one is given (no ops)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    ranges: dict[str, float] = {}
    ops: dict[str, float] = {}
    if clock is not None:
        clock.clear()
        torch_forward(model, ids)
        ranges.update(clock)
    else:
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            torch_forward(model, ids)
        for event in prof.key_averages():
            if event.key in RANGES.values() or event.key in ("block", "forward"):
                ranges[event.key] = event.cpu_time_total / 1e6
            elif event.key.startswith("aten::"):
                ops[event.key] = event.self_cpu_time_total / 1e6
    out = {label: evaluate(expr, ranges) for label, _, _, expr in ROWS}
    out["total"] = ranges["forward"]
    out["rest"] = out["total"] - sum(out[label] for label, *_ in ROWS)
    return out, ops


def evaluate(expr: str, ranges: dict[str, float]) -> float:
    """'a - b + c' over the ranges' seconds."""
    total, sign = 0.0, 1.0
    for token in expr.split():
        if token in "+-":
            sign = 1.0 if token == "+" else -1.0
        else:
            total += sign * ranges.get(token, 0.0)
    return total


def our_rows(wb: Any, recorder: Recorder, ids: list[int]) -> dict[str, float]:
    recorder.take()
    cell_forward(wb, ids)
    prof = profile(wb, recorder.take())
    out = {"total": prof.total}
    for label, steps, names, _ in ROWS:
        out[label] = sum(
            line.seconds
            for line in prof.lines
            if (line.group == STEP and line.step in steps)
            or (line.group != STEP and line.label in names)
        )
    out["rest"] = out["total"] - sum(out[label] for label, *_ in ROWS)
    for line in prof.lines:  # each step on its own too, for the detail line
        if line.group == STEP:
            out[f"step {line.step} {line.label}"] = line.seconds
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", default="64,1024")
    parser.add_argument("--repeats", type=int, default=5, help="kept rounds per length")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--ops", type=int, default=10, help="how many aten ops to list")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="model scratch folder")
    parser.add_argument(
        "--clock", action="store_true", help="time torch's modules with perf_counter, no profiler"
    )
    _fair.add_arguments(parser)
    args = parser.parse_args()
    hf_dir, csv_dir = ensure_model(args.dir)
    import torch

    model = load_torch(hf_dir, args.threads)
    clock: dict[str, float] | None = {} if args.clock else None
    if clock is not None:
        add_clocks(model, clock)
    else:
        add_ranges(model)
    wb = open_workbook(csv_dir)
    recorder = Recorder(wb)
    with _fair.busy_loop(args.busy):
        machine = _fair.Machine(busy=args.busy)
        print(
            f"GPT-2 small shapes, random weights; torch {torch.__version__} "
            f"({args.threads} threads, SDPA, inference_mode, logits_to_keep=1, "
            f"use_cache=False) {'timed by forward hooks' if args.clock else 'under torch.profiler'}; "
            f"{args.repeats} rounds + 1 warm-up; "
            f"load average now {_fair.fmt_load(machine.before)}",
            flush=True,
        )
        for n in [int(t) for t in args.tokens.split(",")]:
            ours: list[dict[str, float]] = []
            theirs: list[dict[str, float]] = []
            ops: list[dict[str, float]] = []

            def make_round(r: int, n: int = n) -> dict[str, _fair.Side]:
                ids = prompt_ids(n, r)
                return {
                    "cell": _fair.Side(lambda: our_rows(wb, recorder, ids)),
                    "torch": _fair.Side(lambda: torch_rows(model, ids, clock)),
                }

            def keep(out: dict[str, Any], ours=ours, theirs=theirs, ops=ops) -> None:
                ours.append(out["cell"])
                theirs.append(out["torch"][0])
                ops.append(out["torch"][1])

            _fair.run_rounds(make_round, args.repeats, machine, pause=args.pause, check=keep)
            print_tables(n, ours[1:], theirs[1:], ops[1:], args.ops)  # round 0: warm-up
        status = machine.report(args.strict)
    return status


def print_tables(
    n: int,
    ours: list[dict[str, float]],
    theirs: list[dict[str, float]],
    ops: list[dict[str, float]],
    n_ops: int,
) -> None:
    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(row.get(key, 0.0) for row in rows) * 1e3

    print(f"\n{n} tokens (ms per forward, median of {len(ours)} rounds; blocks summed)\n")
    print("| our steps | torch ranges | cellgpt ms | torch ms | cellgpt − torch ms | ratio |")
    print("|---|---|---:|---:|---:|---:|")
    rows = [*ROWS, ("rest", (), (), "forward - the rows above"), ("total", (), (), "forward")]
    for label, _, _, expr in rows:
        a, b = med(ours, label), med(theirs, label)
        ratio = f"{a / b:.1f}" if b > 0.05 else "–"
        print(f"| {label} | {expr} | {a:.1f} | {b:.1f} | {a - b:+.1f} | {ratio} |")
    steps = [k for k in ours[0] if k.startswith("step ")]
    print(f"\ncellgpt per step at {n} tokens (ms per forward, 12 blocks summed): ", end="")
    print(", ".join(f"{k.removeprefix('step ')} {med(ours, k):.1f}" for k in steps))
    names = sorted({k for row in ops for k in row}, key=lambda k: -med(ops, k))[:n_ops]
    if not names:  # --clock: no profiler, no ops
        return
    print(f"\ntorch's busiest aten ops at {n} tokens (self time, ms per forward): ", end="")
    print(", ".join(f"{k.removeprefix('aten::')} {med(ops, k):.1f}" for k in names), flush=True)


if __name__ == "__main__":
    sys.exit(main())
