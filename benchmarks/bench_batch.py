"""Batch runs at GPT-2 small shapes: prompts/s over lines of the bundled corpus, truncated
to 64 tokens, computing the `logits` cell (the last position's next-token scores):

- batched: cellgpt's batch evaluator (cellgpt/batchrun), shards of equal-length prompts
           computed together through the workbook, in this process;
- single:  one prompt at a time through the same workbook (pin prompt_ids, run logits);
- torch:   HF GPT2LMHeadModel, one batched forward per group of equal-length prompts (the
           same groups: no padding), SDPA, inference_mode, logits_to_keep=1, 2 threads
           (torch1: 1 thread, which suffers less when another process takes a core;
           batched1: cellgpt's kernels on 1 thread, its match).

Timed with the shared fair protocol (_fair.py: interleaved rounds, idle pauses, median of
per-round ratios, load average). Then, once each, untimed by the protocol: the whole
`cellgpt.batch` call (tokenizing included) inline, in local processes, and on a Dask
LocalCluster (2 workers, 1 thread each; every worker loads the model before timing) — the
Dask overhead is its time over the inline run's.

    python benchmarks/bench_batch.py [--n 200] [--repeats 3] [--shard-size 64] [--passages]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _fair
from _gpt2_small import DEFAULT_DIR, ensure_model

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "data" / "corpus" / "shakespeare_train.txt"
WORKBOOK = ROOT / "workbooks" / "gpt2.py"
TOKENS = 64
MAX_DIFF = 1e-3  # |cellgpt − torch| on the logits (float32 sums in another order)


def corpus_lines(n: int, passages: bool = False) -> list[str]:
    """The corpus's first n non-blank lines; with `passages`, n prompts of consecutive lines
    joined (each about 400 characters: more than 64 tokens, so all truncate to exactly 64)."""
    lines = [s for s in CORPUS.read_text(encoding="utf-8").splitlines() if s.strip()]
    if not passages:
        return lines[:n]
    out, current = [], ""
    for line in lines:
        current = f"{current}\n{line}" if current else line
        if len(current) >= 400:
            out.append(current)
            current = ""
            if len(out) == n:
                break
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=200, help="corpus lines (default 200)")
    parser.add_argument("--repeats", type=int, default=3, help="kept rounds")
    parser.add_argument("--shard-size", type=int, default=64)
    parser.add_argument(
        "--passages",
        action="store_true",
        help="prompts of consecutive lines, all 64 tokens (default: single lines, shorter)",
    )
    parser.add_argument("--no-dask", action="store_true", help="skip the Dask LocalCluster run")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="model scratch folder")
    _fair.add_arguments(parser)
    args = parser.parse_args()
    hf_dir, csv_dir = ensure_model(args.dir)
    with _fair.busy_loop(args.busy):
        machine = _fair.Machine(busy=args.busy)
        measure(args, hf_dir, csv_dir, machine)
        status = machine.report(args.strict)
    return status


def measure(args: argparse.Namespace, hf_dir: Path, csv_dir: Path, machine: _fair.Machine) -> None:
    import torch
    from transformers import GPT2LMHeadModel

    import cellgpt
    from cellgpt.batchrun import as_prompts
    from cellgpt.batchrun.evaluate import evaluator
    from cellgpt.batchrun.run import make_setup, plan_shards

    texts = corpus_lines(args.n, args.passages)
    setup = make_setup(WORKBOOK, ["logits"], {"model": str(csv_dir)}, None, TOKENS)
    ev = evaluator(setup)
    errors: dict[int, str] = {}
    shards, lengths = plan_shards(ev, as_prompts(texts), args.shard_size, errors)
    ids_of = {p: ids for s in shards for p, ids in zip(s.prompt_ids, s.token_ids, strict=True)}
    n_ok = len(ids_of)
    groups: dict[int, list[int]] = defaultdict(list)
    for p, ids in ids_of.items():
        groups[len(ids)].append(p)
    print(
        f"{n_ok} corpus {'passages' if args.passages else 'lines'} (of {len(texts)}; "
        f"{len(errors)} unreadable), "
        f"{sum(lengths.values())} tokens, ≤ {TOKENS} each, {len(groups)} lengths, "
        f"{len(shards)} shards of ≤ {args.shard_size}; GPT-2 small shapes, random weights; "
        f"load average {_fair.fmt_load(machine.before)}",
        flush=True,
    )
    model = GPT2LMHeadModel.from_pretrained(hf_dir, attn_implementation="sdpa").eval()
    wb = cellgpt.open(WORKBOOK, model=str(csv_dir), prompt="x")
    wb.run("logits")

    def batched() -> dict[int, np.ndarray]:
        out = {}
        for shard in shards:
            result = ev.run(shard)
            out.update(zip(result.prompt_ids, result.values["logits"], strict=True))
        return out

    def single() -> dict[int, np.ndarray]:
        out = {}
        for p, ids in ids_of.items():
            wb.pin("prompt_ids", ids)
            out[p] = np.asarray(wb.run("logits"))
        return out

    def torch_batched() -> dict[int, np.ndarray]:
        out = {}
        with torch.inference_mode():
            for _n, members in sorted(groups.items()):
                for start in range(0, len(members), args.shard_size):
                    part = members[start : start + args.shard_size]
                    x = torch.tensor([ids_of[p] for p in part])
                    logits = model(x, logits_to_keep=1, use_cache=False).logits[:, -1].numpy()
                    out.update(zip(part, logits, strict=True))
        return out

    worst = [0.0]

    def check(out: dict[str, Any]) -> None:
        for p in ids_of:
            diff = max(
                float(np.max(np.abs(out[k][p] - out["torch"][p])))
                for k in ("batched", "batched1", "single")
            )
            worst[0] = max(worst[0], diff)

    from cellgpt.engine import parallel

    threads = parallel.WORKERS

    def workers(n: int) -> Any:
        return lambda: setattr(parallel, "WORKERS", n)

    def make_round(r: int) -> dict[str, _fair.Side]:
        return {
            "batched": _fair.Side(batched, workers(threads)),
            "batched1": _fair.Side(batched, workers(1)),
            "single": _fair.Side(single, workers(threads)),
            "torch": _fair.Side(torch_batched, lambda: torch.set_num_threads(2)),
            "torch1": _fair.Side(torch_batched, lambda: torch.set_num_threads(1)),
        }

    rounds = _fair.run_rounds(make_round, args.repeats, machine, pause=args.pause, check=check)
    parallel.WORKERS = threads
    if worst[0] > MAX_DIFF:
        raise SystemExit(f"logits differ from torch's by {worst[0]:.1e}")
    rate = {k: n_ok / rounds.median(k) for k in rounds.times}
    print(
        "  prompts/s: "
        + "  ".join(f"{k} {v:7.1f}" for k, v in rate.items())
        + f"\n  batched/torch {1 / rounds.ratio('batched', 'torch'):.2f}x"
        + f"  batched/torch1 {1 / rounds.ratio('batched', 'torch1'):.2f}x"
        + f"  batched1/torch1 {1 / rounds.ratio('batched1', 'torch1'):.2f}x"
        + f"  batched/single {1 / rounds.ratio('batched', 'single'):.2f}x"
        + f"  (median of per-round ratios of prompts/s)  max|Δ| vs torch {worst[0]:.1e}",
        flush=True,
    )
    whole_calls(args, texts, csv_dir, machine)


def whole_calls(
    args: argparse.Namespace, texts: list[str], csv_dir: Path, machine: _fair.Machine
) -> None:
    """The whole cellgpt.batch call, once per scheduler (tokenizing, worker start-up and the
    model load in each worker included)."""
    import cellgpt

    common = {
        "cells": ["logits"],
        "model": str(csv_dir),
        "truncate": TOKENS,
        "shard_size": args.shard_size,
    }
    times = {}
    for name, extra in (("inline", {}), ("processes", {"workers": 2})):
        machine.pause(args.pause)
        start = time.perf_counter()
        cellgpt.batch(WORKBOOK, texts, scheduler=name, **common, **extra)
        times[name] = time.perf_counter() - start
        print(f"  whole call, {name}: {len(texts) / times[name]:.1f} prompts/s", flush=True)
    if not args.no_dask:
        from distributed import Client, LocalCluster

        from cellgpt.batchrun.run import make_setup

        setup = make_setup(WORKBOOK, ["logits"], {"model": str(csv_dir)}, None, TOKENS)
        with LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster:
            with Client(cluster) as client:  # warm up: every worker loads the model once
                client.run(_warm, setup)
            machine.pause(args.pause)
            start = time.perf_counter()
            cellgpt.batch(
                WORKBOOK, texts, scheduler="dask", address=cluster.scheduler_address, **common
            )
            times["dask"] = time.perf_counter() - start
    print(
        "  whole cellgpt.batch call: "
        + "  ".join(f"{k} {len(texts) / v:6.1f} prompts/s ({v:.1f} s)" for k, v in times.items())
        + (
            f"\n  Dask LocalCluster (2 workers, model loaded) vs inline: "
            f"{times['dask'] / times['inline']:.2f}x the time"
            if "dask" in times
            else ""
        ),
        flush=True,
    )


def _warm(setup: Any) -> None:
    """Run on each Dask worker: build its evaluator (the model load) before timing."""
    from cellgpt.batchrun.evaluate import evaluator

    evaluator(setup)


if __name__ == "__main__":
    raise SystemExit(main())
