"""Greedy generation at GPT-2 small shapes: the cell graph with row-incremental recompute
(cellgpt/gpt2/generate.py) against HF GPT2LMHeadModel.generate with its KV cache (SDPA,
torch.inference_mode(), 2 threads), timed with the shared fair protocol (_fair.py: one
process, interleaved rounds in alternating order, an idle pause before each side, the median
of per-round ratios, the load reported). Both sides include the prompt's own forward pass (as
generate() does) and must produce the same ids (checked every round). `--full` adds the cell
graph recomputing every row of every cell for each new token (no row-append variants);
`--no-replay` runs every token through the generic row-append path instead of replaying the
recorded steps (engine/replay.py), for a before/after on the same machine.

    python benchmarks/bench_generate.py [--prompts 8,256] [--new 40] [--repeats 5] [--strict]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _fair
from _gpt2_small import DEFAULT_DIR, ensure_model

ROOT = Path(__file__).resolve().parent.parent
WORKBOOK = ROOT / "workbooks" / "gpt2.py"
VOCAB = 50257


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompts", default="8,256", help="prompt lengths in tokens")
    parser.add_argument("--new", type=int, default=40, help="new tokens per generation")
    parser.add_argument("--repeats", type=int, default=5, help="kept rounds per prompt length")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--full", action="store_true", help="also time full recompute")
    parser.add_argument(
        "--no-replay",
        action="store_true",
        help="run every token through the generic row-append path (engine/replay.py off)",
    )
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="model scratch folder")
    _fair.add_arguments(parser)
    args = parser.parse_args()
    hf_dir, csv_dir = ensure_model(args.dir)
    with _fair.busy_loop(args.busy):
        machine = _fair.Machine(busy=args.busy)
        rows = measure(args, hf_dir, csv_dir, machine)
        status = machine.report(args.strict)
    print()
    head = ["prompt", "cellgpt row-incremental tok/s", "HF generate, KV cache tok/s"]
    head += ["cellgpt full recompute tok/s"] * args.full + ["cellgpt / torch (speed)"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---:|" * len(head))
    for n, rounds in rows:
        rate = {k: args.new / rounds.median(k) for k in rounds.times}
        cells = [f"{n} tokens", f"{rate['cell']:.1f}", f"{rate['torch']:.1f}"]
        cells += [f"{rate['full']:.1f}"] if args.full else []
        cells += [f"{1 / rounds.ratio('cell', 'torch'):.2f}"]
        print("| " + " | ".join(cells) + " |")
    print(
        f"\n{args.new} new tokens, greedy, prompt pass included; speed ratio: median over "
        "rounds of (torch time / cellgpt time in the same round); below 1 = cellgpt slower"
    )
    return status


def measure(
    args: argparse.Namespace, hf_dir: Path, csv_dir: Path, machine: _fair.Machine
) -> list[tuple[int, _fair.Rounds]]:
    import torch
    from transformers import GPT2LMHeadModel

    import cellgpt
    from cellgpt.engine import replay
    from cellgpt.gpt2.generate import generate

    replay.enabled = not args.no_replay

    torch.set_num_threads(args.threads)
    model = GPT2LMHeadModel.from_pretrained(hf_dir, attn_implementation="sdpa").eval()
    wb = cellgpt.open(WORKBOOK, model=str(csv_dir), prompt="x")
    wb.run("next_token")  # load weights and parameter cells once, untimed
    print(
        f"GPT-2 small shapes, random weights; {args.new} new tokens, greedy; torch "
        f"{torch.__version__} ({torch.get_num_threads()} threads, SDPA, KV cache); "
        f"{args.repeats} rounds + 1 warm-up, pause {args.pause} s; load average now "
        f"{_fair.fmt_load(machine.before)}",
        flush=True,
    )

    def start_from(ids: list[int]) -> Callable[[], None]:
        """Untimed: the workbook back at the bare prompt, every cell after it stale."""

        def reset() -> None:
            wb.set("generated", [])
            # A different first token, computed once, so the next token_ids shares no leading
            # rows with the last run's: no cell may reuse rows of a previous run (same prompt).
            wb.pin("prompt_ids", [(ids[0] + 1) % VOCAB])
            wb.run("token_ids")
            wb.pin("prompt_ids", ids)

        return reset

    def ours() -> list[int]:
        return generate(wb, args.new, greedy=True)  # the prompt's pass is its first step

    def ours_full() -> list[int]:
        for name in wb.cells():  # no row-append variants: every row, every cell, every token
            wb.set_extender(name, None)
        out: list[int] = []
        for _ in range(args.new):
            out.append(int(wb["next_token"]))
            wb.set("generated", [*wb["generated"], out[-1]])
        return out

    def theirs(ids: list[int]) -> list[int]:
        with torch.inference_mode():
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

    def check(out: dict[str, Any]) -> None:
        for key, ids in out.items():
            if ids != out["torch"]:
                raise SystemExit(f"{key} generated {ids}, HF generate {out['torch']}")

    rows = []
    for n in [int(p) for p in args.prompts.split(",")]:

        def make_round(r: int, n: int = n) -> dict[str, _fair.Side]:
            ids = [int(i) for i in np.random.default_rng((n, r)).integers(0, VOCAB, n)]
            threads = lambda: torch.set_num_threads(args.threads)  # noqa: E731
            sides = {
                "cell": _fair.Side(ours, start_from(ids)),
                "torch": _fair.Side(lambda: theirs(ids), threads),
            }
            if args.full:
                sides["full"] = _fair.Side(ours_full, start_from(ids))
            return sides

        rounds = _fair.run_rounds(make_round, args.repeats, machine, pause=args.pause, check=check)
        rows.append((n, rounds))
        rate = {k: args.new / rounds.median(k) for k in rounds.times}
        print(
            f"  prompt {n:4d} tokens: cellgpt {rate['cell']:5.1f} tok/s  torch "
            f"{rate['torch']:5.1f} tok/s"
            + (f"  full recompute {rate['full']:5.1f} tok/s" if "full" in rate else "")
            + f"  cellgpt/torch speed {1 / rounds.ratio('cell', 'torch'):.2f}  ids identical",
            flush=True,
        )
    return rows


if __name__ == "__main__":
    sys.exit(main())
