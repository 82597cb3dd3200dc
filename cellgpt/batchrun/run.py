"""A batch run from start to end: tokenize every prompt, group them into shards of equal
token length, skip the shards an earlier run finished, compute the rest (schedule.py) and
write or collect their results."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from cellgpt.batchrun.evaluate import REDUCES, Evaluator, Setup, Shard, ShardResult, evaluator
from cellgpt.batchrun.output import Output
from cellgpt.batchrun.schedule import execute
from cellgpt.engine.errors import CellError

Progress = Callable[[int, int, str], None]


@dataclass
class Prompts:
    """The prompts of a run: text and per-row inputs (e.g. temperature), by prompt id."""

    ids: list[int]
    texts: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.rows:
            self.rows = [{} for _ in self.texts]


def make_setup(
    workbook: str | os.PathLike[str],
    cells: Sequence[str],
    inputs: dict[str, Any],
    reduce: str | None,
    truncate: int | None,
) -> Setup:
    from cellgpt.locations import resolve_workbook

    if reduce is not None and reduce not in REDUCES:
        raise ValueError(f"unknown --reduce {reduce!r} (choose from {', '.join(REDUCES)})")
    if not cells and reduce != "perplexity":
        raise ValueError("name at least one cell (--cells logits,...)")
    path = str(resolve_workbook(workbook))
    return Setup(path, tuple(sorted(inputs.items())), tuple(cells), reduce, truncate)


def plan_shards(
    ev: Evaluator, prompts: Prompts, shard_size: int, errors: dict[int, str]
) -> tuple[list[Shard], dict[int, int]]:
    """Shards of at most `shard_size` prompts with one token length and one set of per-row
    inputs (so a shard is one batch, with no padding). Returns the shards and each prompt's
    token count; prompts the model cannot read go to `errors`."""
    groups: dict[tuple[int, str], list[tuple[int, str, list[int], dict[str, Any]]]] = {}
    lengths: dict[int, int] = {}
    for pid, text, row in zip(prompts.ids, prompts.texts, prompts.rows, strict=True):
        try:
            ids = ev.tokenize(text, row)
        except (CellError, ValueError, TypeError) as exc:
            errors[pid] = str(exc)
            continue
        lengths[pid] = len(ids)
        key = (len(ids), json.dumps(ev.batch_inputs(row), sort_keys=True, default=str))
        groups.setdefault(key, []).append((pid, text, ids, row))
    shards: list[Shard] = []
    for key in sorted(groups):
        members = groups[key]
        for start in range(0, len(members), shard_size):
            part = members[start : start + shard_size]
            shards.append(
                Shard(
                    len(shards),
                    [m[0] for m in part],
                    [m[1] for m in part],
                    [m[2] for m in part],
                    [dict(m[3]) for m in part],
                )
            )
    return shards, lengths


def fingerprint(setup: Setup, prompts: Prompts, shard_size: int) -> str:
    data = json.dumps(
        [
            setup.cells,
            setup.inputs,
            setup.reduce,
            setup.truncate,
            shard_size,
            prompts.ids,
            prompts.texts,
            prompts.rows,
            os.path.basename(setup.workbook),
        ],
        default=str,
    )
    return hashlib.sha256(data.encode()).hexdigest()


def run_to_folder(
    setup: Setup,
    prompts: Prompts,
    out: str | os.PathLike[str],
    *,
    shard_size: int = 64,
    scheduler: str = "processes",
    workers: int | None = None,
    address: str | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Write the run's results under `out` (see output.py); returns the manifest."""
    errors: dict[int, str] = {}
    shards, lengths = plan_shards(evaluator(setup), prompts, shard_size, errors)
    meta = {
        "workbook": setup.workbook,
        "inputs": dict(setup.inputs),
        "cells": list(setup.cells),
        "reduce": setup.reduce,
        "truncate": setup.truncate,
        "shard_size": shard_size,
        "prompts": len(prompts.ids),
        "n_shards": len(shards),
    }
    output = Output(out, fingerprint(setup, prompts, shard_size), meta)
    todo = [s for s in shards if not output.done(s)]
    total = sum(len(s.prompt_ids) for s in todo)
    done, started = 0, time.monotonic()
    for result in execute(setup, todo, scheduler=scheduler, workers=workers, address=address):
        output.write(result, len(result.token_ids[0]), time.monotonic() - started)
        done += len(result.prompt_ids)
        if progress is not None:
            progress(done, total, f"shard {result.index}")
    where = _shard_of(shards)
    table = pd.DataFrame(
        {
            "prompt_id": prompts.ids,
            "prompt": prompts.texts,
            "n_tokens": [lengths.get(p) for p in prompts.ids],
            "shard": [where.get(p) for p in prompts.ids],
        }
    )
    output.manifest["skipped_shards"] = len(shards) - len(todo)
    return output.finish(table, errors)


def _shard_of(shards: list[Shard]) -> dict[int, int]:
    return {p: s.index for s in shards for p in s.prompt_ids}


def run_shards(
    setup: Setup,
    prompts: Prompts,
    *,
    shard_size: int = 64,
    scheduler: str = "processes",
    workers: int | None = None,
    address: str | None = None,
) -> Iterator[ShardResult]:
    """Each shard's result as it completes; prompts that cannot be read come first, as
    one-prompt results with only an error."""
    errors: dict[int, str] = {}
    shards, _ = plan_shards(evaluator(setup), prompts, shard_size, errors)
    for pid, message in errors.items():
        yield ShardResult(-1, [pid], [[]], [[]], {c: [None] for c in setup.cells}, {pid: message})
    yield from execute(setup, shards, scheduler=scheduler, workers=workers, address=address)
