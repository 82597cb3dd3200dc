"""What Evaluate Formula and step mode cost, as ratios in one process (interleaved rounds,
see _fair.py):

- step mode (`stepping.steps()` until nothing is stale: one cell at a time, never fused) against a
  normal run (`wb.run("next_token")`) of the same prompt;
- `wb.explain(cell)` (every sub-expression evaluated once, its expansion's steps too, stats of
  each) against recomputing the cell itself (`wb.rerun(cell)`).

    python benchmarks/bench_explain_step.py [--tokens 120] [--rounds 5] [--model gpt2-mini]
"""

from __future__ import annotations

import argparse

import _fair

import cellgpt
from cellgpt.engine import stepping

CELLS = ("h0.ln_1", "h0.attn.z", "h0.mlp.gelu")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--model", default="gpt2-mini")
    _fair.add_arguments(parser)
    args = parser.parse_args()
    machine = _fair.Machine()
    prompts = [" ".join(["the cat sat"] * 200), " ".join(["a dog ran"] * 200)]
    books = {side: cellgpt.open("gpt2", model=args.model) for side in ("run", "step")}
    ids = {}
    for i, text in enumerate(prompts):  # cut to --tokens tokens: same length for both sides
        books["run"].set("prompt", text)
        ids[i] = list(books["run"]["prompt_ids"])[: args.tokens]

    def setter(side: str, r: int) -> _fair.Side:
        wb = books[side]

        def setup() -> None:
            wb.pin("prompt_ids", ids[r % 2])  # a new prompt: every block is stale

        def run() -> int:
            if side == "run":
                return int(wb.run("next_token"))
            for _ in stepping.steps(wb, "next_token"):  # what `run --trace` does
                pass
            return int(wb["next_token"])

        return _fair.Side(run, setup)

    def check(outputs: dict[str, int]) -> None:
        assert outputs["run"] == outputs["step"]

    steps = _fair.run_rounds(
        lambda r: {s: setter(s, r) for s in ("run", "step")},
        args.rounds,
        machine,
        pause=args.pause,
        check=check,
    )
    print(f"{args.model}, {args.tokens} tokens, {args.rounds} rounds (+1 warm-up)")
    print(
        f"step mode / normal run: {steps.ratio('step', 'run'):.2f}x  "
        f"(medians {steps.median('step') * 1e3:.1f} ms / {steps.median('run') * 1e3:.1f} ms)"
    )
    wb = books["run"]
    wb.run()
    for cell in CELLS:
        sides = {
            "explain": _fair.Side(lambda cell=cell: len(wb.explain(cell).nodes)),
            "rerun": _fair.Side(lambda cell=cell: wb.rerun(cell) is not None),
        }
        timed = _fair.run_rounds(
            lambda r, sides=sides: sides, args.rounds, machine, pause=args.pause
        )
        print(
            f"explain({cell}) / rerun({cell}): {timed.ratio('explain', 'rerun'):.2f}x  "
            f"(medians {timed.median('explain') * 1e3:.2f} ms / "
            f"{timed.median('rerun') * 1e3:.2f} ms)"
        )
    return machine.report(args.strict)


if __name__ == "__main__":
    raise SystemExit(main())
