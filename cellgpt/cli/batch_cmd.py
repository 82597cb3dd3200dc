"""`cellgpt batch INPUT --cells logits,h5.resid_post,top_k --out DIR`: cells of a workbook
over many prompts (see cellgpt/batchrun), with progress (prompts/s, ETA) on stderr."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cellgpt.cli import UserError
from cellgpt.cli.common import chosen_model, workbook_args, workbook_path
from cellgpt.gpt2 import cells as cells_py


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "batch",
        help="compute cells over many prompts (text, JSONL, CSV or Parquet) into a folder",
    )
    p.add_argument("input", help="prompts: .txt (one per line), .jsonl, .csv or .parquet")
    p.add_argument("--cells", default="", help="comma-separated cells, e.g. logits,top_k")
    p.add_argument("--out", required=True, help="output folder (rerun to resume)")
    p.add_argument(
        "--reduce",
        choices=["mean", "perplexity"],
        default=None,
        help="mean: each array cell's mean over prompts (over tokens too for "
        "one-row-per-token cells); perplexity: each text's loss under the model",
    )
    p.add_argument("--column", default="prompt", help="the prompts' column or key (default prompt)")
    p.add_argument(
        "--truncate",
        type=int,
        default=None,
        metavar="N",
        help="keep the first N tokens of each prompt",
    )
    p.add_argument("--shard-size", type=int, default=64, help="prompts per shard (default 64)")
    p.add_argument(
        "--scheduler",
        choices=["processes", "inline", "dask"],
        default="processes",
        help="local processes on every core (default), this process, or a Dask cluster",
    )
    p.add_argument("--address", default=None, help="the Dask scheduler, tcp://HOST:PORT")
    p.add_argument("--workers", type=int, default=None, help="local processes (default: cores)")
    workbook_args(p)
    p.set_defaults(func=cmd_batch)


def cmd_batch(args: argparse.Namespace) -> int:
    from cellgpt.batchrun.evaluate import evaluator
    from cellgpt.batchrun.inputs import InputError, read_prompts
    from cellgpt.batchrun.run import make_setup, run_to_folder
    from cellgpt.cli.progress import Progress
    from cellgpt.engine import EngineError

    if args.shard_size < 1 or (args.truncate is not None and args.truncate < 1):
        raise UserError("--shard-size and --truncate must be at least 1")
    if args.scheduler == "dask" and not args.address:
        raise UserError("--scheduler dask needs --address tcp://HOST:PORT")
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    inputs: dict[str, Any] = dict(args.sets)
    model = chosen_model(args)
    if model is not None:
        inputs[cells_py.MODEL] = model
    try:
        setup = make_setup(str(workbook_path(args)), cells, inputs, args.reduce, args.truncate)
        ev = evaluator(setup)
        names = {c for c in ev.single.cells() if ev.single.cell(c).is_input}
        prompts = read_prompts(args.input, args.column, names)
        bar = Progress("batch", unit="prompts", rate=True)
        try:
            manifest = run_to_folder(
                setup,
                prompts,
                args.out,
                shard_size=args.shard_size,
                scheduler=args.scheduler,
                workers=args.workers,
                address=args.address,
                progress=bar,
            )
        finally:
            bar.close()
    except (InputError, EngineError, KeyError, ValueError, OSError) as exc:
        raise UserError(str(exc).strip("'\"")) from None
    errors = manifest["errors"]
    line = (
        f"{manifest['prompts']} prompts in {manifest['n_shards']} shards "
        f"({manifest.get('skipped_shards', 0)} already done) → {args.out}"
    )
    if errors:
        line += f"; {len(errors)} failed (see manifest.json)"
    if "perplexity" in manifest and manifest["perplexity"]["perplexity"] is not None:
        line += f"; perplexity {manifest['perplexity']['perplexity']:.4g}"
    print(line)
    if errors:
        first = next(iter(errors.items()))
        print(f"first error: prompt {first[0]}: {first[1]}", file=sys.stderr)
    return 0
