"""A batch run's prompts from a file: text (one prompt per line; blank lines skipped, a
prompt's id is its line number from 0), JSONL (a JSON string, or an object with the prompt
under `column` and per-row inputs beside it), CSV or Parquet (a `column` of prompts; other
columns that name an input cell of the workbook, e.g. temperature, are per-row inputs)."""

from __future__ import annotations

import json
import os
from collections.abc import Container
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cellgpt.batchrun.run import Prompts


class InputError(ValueError):
    """A prompts file that cannot be read; the message names the file (and line)."""


def read_prompts(
    path: str | os.PathLike[str], column: str = "prompt", inputs: Container[str] = ()
) -> Prompts:
    """The prompts of `path` (format by extension: .txt, .jsonl, .csv, .parquet); only
    columns/keys in `inputs` become per-row inputs."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in (".jsonl", ".ndjson"):
            return _jsonl(path, column, inputs)
        if suffix in (".csv", ".parquet"):
            frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
            return _frame(frame, path, column, inputs)
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path}: {exc}") from exc
    ids, texts = [], []
    for n, line in enumerate(text.splitlines()):
        if line.strip():
            ids.append(n)
            texts.append(line)
    return Prompts(ids, texts)


def _jsonl(path: Path, column: str, inputs: Container[str]) -> Prompts:
    ids, texts, rows = [], [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{n + 1}: not JSON ({exc.msg})") from None
        if isinstance(item, str):
            item = {column: item}
        if not isinstance(item, dict) or not isinstance(item.get(column), str):
            raise InputError(f"{path}:{n + 1}: expected a string or an object with {column!r}")
        ids.append(n)
        texts.append(item[column])
        rows.append({k: v for k, v in item.items() if k != column and k in inputs})
    return Prompts(ids, texts, rows)


def _frame(frame: pd.DataFrame, path: Path, column: str, inputs: Container[str]) -> Prompts:
    if column not in frame.columns:
        raise InputError(
            f"{path}: no column {column!r} (columns: {', '.join(map(str, frame.columns))})"
        )
    extra = [c for c in frame.columns if c != column and c in inputs]
    rows = [{c: _plain(r[c]) for c in extra} for r in frame.to_dict("records")]
    texts = ["" if pd.isna(t) else str(t) for t in frame[column]]
    return Prompts(list(range(len(texts))), texts, rows)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
