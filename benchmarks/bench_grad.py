"""Backward pass at GPT-2 small shapes: the gradient of the next-token cross-entropy over the
prompt with respect to every parameter (workbooks/gpt2.py's `loss` and `backward` cells)
against PyTorch autograd on the same weights, timed with the shared fair protocol (_fair.py:
one process, interleaved rounds in alternating order, an idle pause before each side, the
median of per-round ratios, the load reported).

    python benchmarks/bench_grad.py [--tokens 64] [--repeats 3] [--strict] [--busy]

Sides:
- cell_fwd:  `wb.pin("prompt_ids", ids); wb.run("loss")` (the forward, logits at every position);
- cell_bwd:  `wb.run("backward")` with `loss` fresh (untimed setup): every parameter's gradient.
             Evictable intermediates were dropped after the forward, so this includes
             recomputing them (a checkpointed backward);
- cell_step: `wb.pin("prompt_ids", ids); wb.run("backward")`: forward and backward in one run
             (the activations are kept for the backward, see Runner); its backward part is
             cell_step − cell_fwd;
- torch_fwd: HF GPT2LMHeadModel(ids, labels=ids).loss with autograd on, 2 threads, eager;
- torch_bwd: loss.backward() on that forward's graph (untimed setup: the forward).
Headlines: cell_bwd / cell_fwd (target ≤ 3), (cell_step − cell_fwd) / cell_fwd, torch_bwd /
torch_fwd, and cell_bwd / torch_bwd.
Random weights (built once, see _gpt2_small.py): they run at the speed of real ones.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _fair
from _gpt2_small import DEFAULT_DIR, ensure_model

ROOT = Path(__file__).resolve().parent.parent
WORKBOOK = ROOT / "workbooks" / "gpt2.py"
VOCAB = 50257
CHECKED = ("wte", "h0.attn.c_attn.weight", "h11.mlp.c_proj.weight", "ln_f.weight")


def open_workbook(csv_dir: Path) -> Any:
    import cellgpt

    wb = cellgpt.open(WORKBOOK, model=str(csv_dir), prompt="x")
    wb.limits = dataclasses.replace(wb.limits, cell_seconds=120.0)  # a slow machine may pass 5 s
    wb.run("logits")  # weights, tokenizer and parameter cells: loaded once, not timed
    return wb


def prompt_ids(n: int, round_: int = 0) -> list[int]:
    return [int(i) for i in np.random.default_rng((n, round_)).integers(0, VOCAB, n)]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="kept rounds")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="model scratch folder")
    _fair.add_arguments(parser)
    args = parser.parse_args()
    hf_dir, csv_dir = ensure_model(args.dir)
    with _fair.busy_loop(args.busy):
        machine = _fair.Machine(busy=args.busy)
        rounds, worst = measure(args, hf_dir, csv_dir, machine)
        status = machine.report(args.strict)
    med = {k: rounds.median(k) * 1e3 for k in rounds.times}
    print(
        f"{args.tokens} tokens: "
        + "  ".join(f"{k} {v:.0f} ms" for k, v in med.items())
        + f"\n  cell backward / forward {rounds.ratio('cell_bwd', 'cell_fwd'):.2f}"
        + f"  in one run (step − forward) / forward {rounds.ratio('cell_step', 'cell_fwd') - 1:.2f}"
        + f"  torch backward / forward {rounds.ratio('torch_bwd', 'torch_fwd'):.2f}"
        + f"  cell / torch backward {rounds.ratio('cell_bwd', 'torch_bwd'):.2f}"
        + f"  cell / torch forward {rounds.ratio('cell_fwd', 'torch_fwd'):.2f}"
        + f"\n  max |Δ| / max |torch grad| over {', '.join(CHECKED)}: {worst[0]:.1e}"
    )
    return status


def measure(
    args: argparse.Namespace, hf_dir: Path, csv_dir: Path, machine: _fair.Machine
) -> tuple[_fair.Rounds, list[float]]:
    import torch
    from transformers import GPT2LMHeadModel

    torch.set_num_threads(args.threads)
    model = GPT2LMHeadModel.from_pretrained(hf_dir, attn_implementation="eager").train(False)
    wb = open_workbook(csv_dir)
    print(
        f"GPT-2 small shapes, random weights, {args.tokens} tokens; torch {torch.__version__} "
        f"({args.threads} threads, eager attention), numpy {np.__version__}; {args.repeats} "
        f"rounds + 1 warm-up, pause {args.pause} s; load average now "
        f"{_fair.fmt_load(machine.before)}",
        flush=True,
    )
    state: dict[str, Any] = {}
    worst = [0.0]

    def torch_forward(ids: list[int]) -> Any:
        model.zero_grad(set_to_none=True)
        return model(torch.tensor([ids]), labels=torch.tensor([ids])).loss

    def cell_forward(ids: list[int]) -> float:
        wb.pin("prompt_ids", ids)
        return float(wb.run("loss"))

    def cell_step(ids: list[int]) -> Any:
        wb.pin("prompt_ids", ids)
        return wb.run("backward")

    def make_round(r: int) -> dict[str, _fair.Side]:
        ids = prompt_ids(args.tokens, r)

        def torch_setup() -> None:
            state["loss"] = torch_forward(ids)

        def torch_backward() -> None:
            state["loss"].backward()

        return {
            "cell_fwd": _fair.Side(lambda: cell_forward(ids)),
            "cell_bwd": _fair.Side(lambda: wb.run("backward"), lambda: cell_forward(ids)),
            "cell_step": _fair.Side(lambda: cell_step(ids)),
            "torch_fwd": _fair.Side(lambda: torch_forward(ids).item()),
            "torch_bwd": _fair.Side(torch_backward, torch_setup),
        }

    def check(out: dict[str, Any]) -> None:
        # the last side to run decides which graph torch's .grad holds: redo both here
        ids = [int(i) for i in wb["token_ids"]]
        torch_forward(ids).backward()
        named = dict(model.named_parameters())
        for cell in CHECKED:
            key = "transformer." + {"wte": "wte.weight"}.get(cell, cell)
            if cell.startswith("h"):
                layer, rest = cell[1:].split(".", 1)
                key = f"transformer.h.{layer}.{rest}"
            want = named[key].grad.numpy()
            got = wb.run(f"grad.{cell}")
            worst[0] = max(worst[0], float(np.abs(got - want).max() / np.abs(want).max()))

    rounds = _fair.run_rounds(make_round, args.repeats, machine, pause=args.pause, check=check)
    return rounds, worst


if __name__ == "__main__":
    raise SystemExit(main())
