"""`cellgpt run PROMPT`: the next-token candidates, generation and profiles; on a workbook
that is not a language model, its results."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

from cellgpt.cli import UserError
from cellgpt.cli.common import check_prompt_length, model_args, open_workbook
from cellgpt.cli.common import get_cell as _get
from cellgpt.cli.profile import Profile, Recorder, add, profile
from cellgpt.cli.render import json_text
from cellgpt.engine.value_limits import preview
from cellgpt.gpt2 import cells
from cellgpt.gpt2.cells import WorkbookCells
from cellgpt.tokenizer.named import describe_tokenizer, tokenizer_name


def register(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser(
        "run", help="run the model on a prompt: top next tokens, generation"
    )
    model_args(run)
    run.add_argument(
        "--top-k", type=int, default=10, help="how many next-token candidates to list (≥ 1)"
    )
    run.add_argument("--generate", type=int, default=0, metavar="N", help="generate N tokens")
    run.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    run.add_argument("--sample-top-k", type=int, default=0, help="sample among the k most likely")
    run.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling threshold")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--json", action="store_true", help="print one JSON object")
    run.add_argument(
        "--trace",
        action="store_true",
        help="run one cell at a time in topological order, printing each cell, its shape "
        "and time as it runs (on standard error with --json)",
    )
    run.add_argument(
        "--profile",
        action="store_true",
        help="after the run, print each step's time (summed over the blocks) and the other "
        "cells' (the prompt's pass; with --generate also the generated tokens' passes)",
    )
    run.set_defaults(func=cmd_run)


def _check_sampling(args: argparse.Namespace) -> None:
    # Caught here: numpy's own complaints ("Probabilities contain NaN") say nothing useful.
    if not math.isfinite(args.temperature) or args.temperature < 0:
        raise UserError(f"--temperature must be a finite number ≥ 0, not {args.temperature}")
    if not (math.isfinite(args.top_p) and 0 < args.top_p <= 1):
        raise UserError(f"--top-p must be in (0, 1], not {args.top_p}")
    if args.seed < 0 or args.sample_top_k < 0 or args.generate < 0:
        raise UserError("--seed, --sample-top-k and --generate must not be negative")
    if args.top_k < 1:
        raise UserError(
            f"--top-k must be at least 1 (how many next tokens to list), not {args.top_k}"
        )


def cmd_run(args: argparse.Namespace) -> int:
    from cellgpt.gpt2.generate import generate

    _check_sampling(args)

    inputs = {
        cells.SHOW_K: args.top_k,
        cells.TEMPERATURE: args.temperature,
        cells.SAMPLE_TOP_K: args.sample_top_k,
        cells.TOP_P: args.top_p,
        cells.SEED: args.seed,
    }
    start = time.perf_counter()  # opening computes the model cells (the blocks' count)
    wb = open_workbook(args, defaults=inputs)
    if args.trace:  # a bad prompt shows in its cells; check_prompt_length then says why
        trace(wb, sys.stderr if args.json else sys.stdout)
    if cells.TOP_K not in wb:  # not a language model: a workbook of its own
        if args.generate:
            raise UserError(
                f"--generate: the {args.workbook} workbook has no model to generate with"
            )
        return run_workbook(wb)
    check_prompt_length(wb)
    tokens, ids, top = _get(wb, cells.TOKENS), _get(wb, cells.TOKEN_IDS), _get(wb, cells.TOP_K)
    profiles: list[Profile] = []
    recorder = Recorder(wb) if args.profile else None
    if recorder is not None:
        what = f"the prompt's pass ({len(ids)} tokens)"
        wall = time.perf_counter() - start
        profiles.append(profile(wb, recorder.take(), wall=wall, what=what))
    generated: list[int] = []
    per_token: dict[str, float] = {}  # cell → seconds summed over the generated tokens' passes
    if args.generate > 0:
        start = time.perf_counter()
        try:
            generated = generate(
                wb,
                args.generate,
                greedy=args.temperature == 0,
                on_token=None if recorder is None else lambda _: add(per_token, recorder.take()),
            )
        except Exception as exc:
            from cellgpt.cli.errors import explain
            from cellgpt.engine import CellError

            if isinstance(exc, CellError):
                raise UserError(explain(wb, exc)) from None
            raise
    if len(generated) < args.generate:
        n_ctx = WorkbookCells(wb).n_ctx()  # computed already: generation read it
        print(
            f"cellgpt: note: stopped after {len(generated)} new token(s): "
            f"the model reads at most {n_ctx} tokens (n_ctx)",
            file=sys.stderr,
        )
    if recorder is not None and generated:
        # The first token was chosen from the prompt's pass; each later one took a pass.
        what = f"generating {len(generated)} tokens ({len(generated) - 1} row-append passes)"
        wall = time.perf_counter() - start
        profiles.append(profile(wb, per_token, wall=wall, what=what))
    tokenizer = _get(wb, cells.TOKENIZER)
    text = tokenizer.decode(generated) if generated else ""
    model = str(WorkbookCells(wb).value(cells.MODEL) or "")
    if args.json:
        out = {
            "tokenizer": tokenizer_name(tokenizer, model),
            "tokens": tokens,
            "token_ids": [int(i) for i in ids],
            "top_k": [{"id": i, "token": t, "prob": p, "logit": lg} for i, t, p, lg in top],
            "generated_ids": generated,
            "generated_text": text,
        }
        if args.profile:
            out["profile"] = [p.to_json() for p in profiles]
        print(json_text(out))
        return 0
    # First: the bundled model reads text with its own small vocabulary, not GPT-2's.
    print(f"model {Path(model).name or model}   tokenizer {describe_tokenizer(tokenizer, model)}")
    print(f"tokens ({len(tokens)}): " + " ".join(f"[{t}]" for t in _visible(tokens)))
    print(f"\nnext token (top {len(top)}):")
    width = max(len(repr(t)) for _, t, _, _ in top)
    for i, t, p, lg in top:
        bar = "█" * max(1, round(p * 40))
        print(f"  {t!r:<{width}}  id {i:>6}  p {p:7.2%}  logit {lg:8.3f}  {bar}")
    if generated:
        print(f"\ngenerated ({len(generated)} tokens):\n{args.prompt}{text}")
    for p in profiles:
        print("\n" + p.text())
    return 0


def run_workbook(wb: Any) -> int:
    """`run` on a workbook that is not a language model (embeddings, word_analogy): compute
    every cell and show its results, the cells nothing else reads, one line each."""
    import re

    from cellgpt.cli.errors import explain
    from cellgpt.engine import CellError

    results = [
        n
        for n in wb.cells()
        if not wb.dependents(n)
        and not wb.info(n).is_input
        and wb.info(n).hints.get("kind") not in ("model", "param")
    ]
    width = max((len(n) for n in results), default=0)
    failed = 0
    for name in results:
        try:
            value = wb[name]
        except CellError as exc:
            print(f"{name:<{width}}  error: {explain(wb, exc)}")
            failed += 1
            continue
        info = wb.info(name)
        shape = f"[{'×'.join(map(str, info.shape))}] " if info.shape and len(info.shape) > 1 else ""
        text = re.sub(r"\s+", " ", preview(value, 400))
        print(f"{name:<{width}}  {shape}{text[:100]}{'…' if len(text) > 100 else ''}")
    return 1 if failed else 0


def trace(wb: Any, out: Any) -> None:
    """Step through every stale cell (on-demand ones left alone), one line per cell as it
    runs: its number, name, shape and dtype, and time (or its error)."""
    from cellgpt.engine import stepping

    def on_demand(name: str) -> bool:
        return bool(wb.cell(name).hints.get("on_demand"))

    width = max((len(n) for n in stepping.plan(wb, skip=on_demand)), default=0)
    for number, step in enumerate(stepping.steps(wb, skip=on_demand), start=1):
        dims = "×".join(map(str, step.shape)) if step.shape is not None else ""
        kind = f"[{dims or 'scalar'}] {step.dtype}" if step.shape is not None else step.dtype
        kind = kind or "-"
        result = f"✗ {step.error}" if step.error else f"{step.seconds * 1000:8.2f} ms"
        print(f"{number:>4}  {step.name:<{width}}  {kind:<18} {result}", file=out, flush=True)


def _visible(tokens: list[str]) -> list[str]:
    return [t.replace("\n", "\\n").replace("\t", "\\t") for t in tokens]
