"""A batch run's output folder: Parquet tables, sharded .npy arrays and manifest.json.

    DIR/manifest.json                 what ran: cells, model, versions, shards, errors
    DIR/tables/prompts.parquet        prompt_id, prompt, n_tokens, shard, error
    DIR/tables/tokens/shard-N.parquet prompt_id, pos, token_id, token (labels for arrays)
    DIR/tables/scalars/shard-N.parquet  one row per prompt, a column per scalar cell
    DIR/tables/CELL/shard-N.parquet   a table cell (top_k, ...): prompt_id, row, columns
    DIR/arrays/CELL/shard-N.npy       [prompts of the shard, ...] (ids in the manifest)
    DIR/reduce/...                    --reduce mean / perplexity results

Every file is written to a temporary name and renamed, and a shard is recorded complete in
the manifest (itself replaced atomically) only after all its files exist: a killed run
leaves complete shards, which a rerun skips, and nothing half-written.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cellgpt.batchrun.evaluate import Shard, ShardResult

SCALAR_TABLE = "scalars"


def _atomic(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


def _save_npy(path: Path, array: Any) -> None:
    with open(path, "wb") as f:  # a file object: np.save would add .npy to the temporary name
        np.save(f, array)


def write_json(path: Path, data: Any) -> None:
    _atomic(path, lambda tmp: tmp.write_text(json.dumps(data, indent=1, default=str)))


def _parquet(path: Path, frame: pd.DataFrame) -> None:
    _atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))


def versions() -> dict[str, str]:
    import pyarrow

    from cellgpt import __version__

    return {
        "cellgpt": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "pyarrow": pyarrow.__version__,
    }


def kind(value: Any) -> str:
    """How a value is stored: 'array', 'table' (rows of tuples), 'list' or 'scalar'."""
    if isinstance(value, np.ndarray) and value.ndim > 0:
        return "array"
    if isinstance(value, list | tuple):
        return "table" if value and all(isinstance(r, tuple) for r in value) else "list"
    return "scalar"


def _scalar(value: Any) -> Any:
    if isinstance(value, np.generic | np.ndarray):
        return value.item()
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    return value


class Output:
    """The output folder of one run; `fingerprint` identifies the run (inputs and options):
    a folder holding a different run is refused rather than mixed."""

    def __init__(self, folder: str | os.PathLike[str], fingerprint: str, meta: dict[str, Any]):
        self.folder = Path(folder)
        self.path = self.folder / "manifest.json"
        if self.path.exists():
            self.manifest = json.loads(self.path.read_text())
            if self.manifest.get("fingerprint") != fingerprint:
                raise ValueError(
                    f"{self.folder} holds a different batch run (other prompts, cells or "
                    "options); choose another --out folder"
                )
        else:
            self.manifest = {"fingerprint": fingerprint, **meta, "shards": {}, "errors": {}}
        self.manifest["versions"] = versions()
        self.manifest["started"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.manifest["complete"] = False
        self.save()

    def save(self) -> None:
        write_json(self.path, self.manifest)

    def done(self, shard: Shard) -> bool:
        entry = self.manifest["shards"].get(str(shard.index))
        return bool(entry and entry.get("complete")) and all(
            (self.folder / f).exists() for f in entry.get("files", [])
        )

    def file(self, *parts: str) -> Path:
        return self.folder.joinpath(*parts)

    def write(self, result: ShardResult, n_tokens: int, seconds: float) -> None:
        name = f"shard-{result.index:05d}"
        files: list[str] = []
        ok = [k for k, p in enumerate(result.prompt_ids) if p not in result.errors]

        def put(rel: str, frame: pd.DataFrame | None = None, array: Any = None) -> None:
            path = self.folder / rel
            if frame is not None:
                _parquet(path, frame)
            else:
                _atomic(path, lambda tmp: _save_npy(tmp, array))
            files.append(rel)

        put(f"tables/tokens/{name}.parquet", _tokens_frame(result))
        scalars: dict[str, list[Any]] = {}
        array_prompts: dict[str, list[int]] = {}
        for cell, values in result.values.items():
            good = [values[k] for k in ok if k < len(values)]
            if not good:
                continue
            how = kind(good[0])
            if how == "array":
                shapes = {np.shape(v) for v in good}
                if len(shapes) == 1:
                    put(f"arrays/{cell}/{name}.npy", array=np.stack(good))
                    array_prompts[cell] = [result.prompt_ids[k] for k in ok]
                else:  # different shapes in one shard (a tail cell): one file per prompt
                    for k, v in zip(ok, good, strict=True):
                        put(f"arrays/{cell}/{name}-p{result.prompt_ids[k]}.npy", array=v)
            elif how in ("table", "list"):
                frame = _rows_frame(result, ok, good, how, result.columns.get(cell))
                put(f"tables/{cell}/{name}.parquet", frame)
            else:
                scalars[cell] = [_scalar(v) for v in good]
        if scalars:
            frame = pd.DataFrame({"prompt_id": [result.prompt_ids[k] for k in ok], **scalars})
            put(f"tables/{SCALAR_TABLE}/{name}.parquet", frame)
        for cell, (total, _count) in result.sums.items():
            put(f"reduce/partial/{cell}/{name}.npy", array=total)
        if result.losses is not None:
            loss, per_token = _loss_frames(result)
            put(f"tables/perplexity/{name}.parquet", loss)
            put(f"tables/token_loss/{name}.parquet", per_token)
        self.manifest["shards"][str(result.index)] = {
            "prompts": result.prompt_ids,
            "n_tokens": n_tokens,
            "files": files,
            "array_prompts": array_prompts,
            "mean_counts": {c: n for c, (_t, n) in result.sums.items()},
            "errors": {str(k): v for k, v in result.errors.items()},
            "seconds": round(seconds, 3),
            "complete": True,
        }
        self.save()

    def finish(self, prompts: pd.DataFrame, errors: dict[int, str]) -> dict[str, Any]:
        """Write the prompts table and the reductions; mark the run complete."""
        shard_errors = {
            int(k): v for e in self.manifest["shards"].values() for k, v in e["errors"].items()
        }
        errors = {**errors, **shard_errors}
        prompts = prompts.assign(error=[errors.get(int(p)) for p in prompts["prompt_id"]])
        _parquet(self.folder / "tables" / "prompts.parquet", prompts)
        self.manifest["errors"] = {str(k): v for k, v in sorted(errors.items())}
        self._reduce_mean()
        self._reduce_perplexity()
        self.manifest["complete"] = True
        self.manifest["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.save()
        return self.manifest

    def _reduce_mean(self) -> None:
        counts: dict[str, int] = {}
        totals: dict[str, np.ndarray] = {}
        for index, entry in self.manifest["shards"].items():
            for cell, n in entry.get("mean_counts", {}).items():
                part = np.load(self.folder / f"reduce/partial/{cell}/shard-{int(index):05d}.npy")
                totals[cell] = part if cell not in totals else totals[cell] + part
                counts[cell] = counts.get(cell, 0) + n
        for cell, total in totals.items():
            _atomic(
                self.folder / f"reduce/mean/{cell}.npy",
                lambda tmp, v=total / counts[cell]: _save_npy(tmp, v),
            )
        if totals:
            self.manifest["mean"] = {
                c: {"file": f"reduce/mean/{c}.npy", "count": counts[c]} for c in totals
            }

    def _reduce_perplexity(self) -> None:
        folder = self.folder / "tables" / "perplexity"
        if not folder.exists():
            return
        frame = pd.read_parquet(folder)
        tokens = int(frame["n_scored"].sum())
        total = float(frame["total_loss"].sum())
        self.manifest["perplexity"] = {
            "scored_tokens": tokens,
            "mean_loss": total / tokens if tokens else None,
            "perplexity": float(np.exp(total / tokens)) if tokens else None,
        }


def _tokens_frame(result: ShardResult) -> pd.DataFrame:
    rows = [
        (p, pos, tid, text)
        for p, ids, texts in zip(result.prompt_ids, result.token_ids, result.tokens, strict=True)
        for pos, (tid, text) in enumerate(zip(ids, texts, strict=True))
    ]
    return pd.DataFrame(rows, columns=["prompt_id", "pos", "token_id", "token"])


def _rows_frame(
    result: ShardResult, ok: list[int], good: list[Any], how: str, names: list[str] | None
) -> pd.DataFrame:
    frames = []
    for k, value in zip(ok, good, strict=True):
        if how == "table":
            frame = pd.DataFrame([tuple(_scalar(x) for x in r) for r in value])
            width = frame.shape[1]
            use = names if names and len(names) == width else [f"c{i}" for i in range(width)]
            frame.columns = [c if c not in ("prompt_id", "row") else f"{c}_" for c in use]
        else:
            frame = pd.DataFrame({"value": [_scalar(x) for x in value]})
            if len(value) == len(result.tokens[k]):
                frame["token"] = result.tokens[k]
        frame.insert(0, "row", range(len(frame)))
        frame.insert(0, "prompt_id", result.prompt_ids[k])
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _loss_frames(result: ShardResult) -> tuple[pd.DataFrame, pd.DataFrame]:
    assert result.losses is not None
    per_prompt, per_token = [], []
    for p, ids, texts, loss in zip(
        result.prompt_ids, result.token_ids, result.tokens, result.losses, strict=True
    ):
        if p in result.errors:
            continue
        n = int(loss.size)
        total = float(loss.sum())
        mean = total / n if n else float("nan")
        per_prompt.append((p, len(ids), n, total, mean, float(np.exp(mean)) if n else np.nan))
        per_token += [
            (p, pos + 1, ids[pos + 1], texts[pos + 1], float(x)) for pos, x in enumerate(loss)
        ]
    return (
        pd.DataFrame(
            per_prompt,
            columns=["prompt_id", "n_tokens", "n_scored", "total_loss", "loss", "perplexity"],
        ),
        pd.DataFrame(per_token, columns=["prompt_id", "pos", "token_id", "token", "loss"]),
    )
