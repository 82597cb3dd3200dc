"""Batch runs: any cells of a workbook over many prompts (`cellgpt.batch`, `cellgpt batch`).

Prompts of equal token length are computed together, as a leading batch axis through the
workbook's own formulas (plan.py, evaluate.py), in local processes or on a Dask cluster
(schedule.py); results go to a DataFrame, an iterator of shards, or a folder of Parquet
and .npy files with a manifest that makes an interrupted run resumable (output.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from cellgpt.batchrun.evaluate import ShardResult
from cellgpt.batchrun.run import Prompts, make_setup, run_shards, run_to_folder


def as_prompts(prompts: Any, column: str = "prompt") -> Prompts:
    """Prompts from a list of texts, a list of dicts ({"prompt": ..., "temperature": ...})
    or a DataFrame with a `column` of texts (other columns: per-row inputs)."""
    if isinstance(prompts, Prompts):
        return prompts
    if isinstance(prompts, pd.DataFrame):
        prompts = prompts.to_dict("records")
    texts: list[str] = []
    rows: list[dict[str, Any]] = []
    for item in prompts:
        if isinstance(item, str):
            texts.append(item)
            rows.append({})
        elif isinstance(item, dict) and column in item:
            texts.append(str(item[column]))
            rows.append({k: _plain(v) for k, v in item.items() if k != column})
        else:
            raise ValueError(f"each prompt must be text or a mapping with a {column!r} key")
    return Prompts(list(range(len(texts))), texts, rows)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def batch(
    workbook: str | os.PathLike[str] = "gpt2",
    prompts: Iterable[Any] = (),
    cells: Iterable[str] = ("logits",),
    *,
    out: str | os.PathLike[str] | None = None,
    shards: bool = False,
    reduce: str | None = None,
    truncate: int | None = None,
    shard_size: int = 64,
    scheduler: str = "processes",
    workers: int | None = None,
    address: str | None = None,
    progress: Any = None,
    **inputs: Any,
) -> Any:
    """The workbook's `cells` for every prompt, prompts of equal length computed together.

        df = cellgpt.batch("gpt2", ["ROMEO:", "JULIET:"], cells=["next_text", "logits"],
                           model="gpt2-mini")

    Returns a DataFrame (prompt_id, prompt, tokens, error, a column per cell; with
    reduce="perplexity" also loss and perplexity); with `shards=True` an iterator of
    ShardResult (each cell's values for a shard of prompts); with `out=DIR` writes DIR
    (Parquet, .npy, manifest.json; rerunning skips finished shards) and returns the
    manifest. `inputs` are fixed input cells (model=..., show_k=...); per-row inputs come
    with the prompts. scheduler: "processes" (local, every core), "inline" or "dask"
    (with `address`)."""
    setup = make_setup(workbook, list(cells), inputs, reduce, truncate)
    given = as_prompts(prompts)
    options = {
        "shard_size": shard_size,
        "scheduler": scheduler,
        "workers": workers,
        "address": address,
    }
    if out is not None:
        return run_to_folder(setup, given, out, progress=progress, **options)
    results = run_shards(setup, given, **options)
    if shards:
        return results
    return _frame(given, setup.cells, results, reduce)


def _frame(
    prompts: Prompts, cells: tuple[str, ...], results: Iterator[ShardResult], reduce: str | None
) -> pd.DataFrame:
    by_prompt: dict[int, dict[str, Any]] = {}
    sums: dict[str, tuple[Any, int]] = {}
    for result in results:
        for k, pid in enumerate(result.prompt_ids):
            row: dict[str, Any] = {"tokens": result.tokens[k], "error": result.errors.get(pid)}
            for c in cells:
                if c in result.values and k < len(result.values[c]):
                    row[c] = result.values[c][k]
            if result.losses is not None and pid not in result.errors:
                loss = result.losses[k]
                row["loss"] = float(loss.mean()) if loss.size else float("nan")
                row["perplexity"] = float(np.exp(row["loss"]))
            by_prompt[pid] = row
        for c, (total, n) in result.sums.items():
            old = sums.get(c)
            sums[c] = (total, n) if old is None else (old[0] + total, old[1] + n)
    frame = pd.DataFrame(
        [
            {"prompt_id": p, "prompt": t, **by_prompt.get(p, {})}
            for p, t in zip(prompts.ids, prompts.texts, strict=True)
        ]
    )
    if "error" in frame:  # None, not NaN, where a prompt did not fail
        frame["error"] = frame["error"].astype(object).where(frame["error"].notna(), None)
    if reduce == "mean":
        frame.attrs["mean"] = {c: total / n for c, (total, n) in sums.items()}
    return frame


__all__ = ["Prompts", "ShardResult", "as_prompts", "batch"]
