"""GPT-2 parameters as a folder of CSV tables: naming contract, loading, saving.

Folder layout (`weights_csv/NAME/`)::

    config.json                      n_layer, n_head, n_embd, n_ctx, vocab_size, layer_norm_epsilon
    encoder.json, vocab.bpe          the tokenizer (optional here, used by the tokenizer)
    wte.weight.csv                   [vocab_size, n_embd]
    wpe.weight.csv                   [n_ctx, n_embd]
    h.{i}.ln_1.weight.csv            [n_embd]            (i = 0 .. n_layer-1)
    h.{i}.ln_1.bias.csv              [n_embd]
    h.{i}.attn.c_attn.weight.csv     [n_embd, 3*n_embd]  q | k | v along the columns
    h.{i}.attn.c_attn.bias.csv       [3*n_embd]
    h.{i}.attn.c_proj.weight.csv     [n_embd, n_embd]
    h.{i}.attn.c_proj.bias.csv       [n_embd]
    h.{i}.ln_2.weight.csv            [n_embd]
    h.{i}.ln_2.bias.csv              [n_embd]
    h.{i}.mlp.c_fc.weight.csv        [n_embd, 4*n_embd]
    h.{i}.mlp.c_fc.bias.csv          [4*n_embd]
    h.{i}.mlp.c_proj.weight.csv      [4*n_embd, n_embd]
    h.{i}.mlp.c_proj.bias.csv        [n_embd]
    ln_f.weight.csv                  [n_embd]
    ln_f.bias.csv                    [n_embd]

The binary cache of parsed tables lives in the per-user cache dir (weights/cache.py).

Each file is one tensor named by its Hugging Face state-dict key without `transformer.`;
headerless, row-major, in Conv1D orientation ([in, out], so `x @ W + b`); a 1-D tensor is
ONE row. Numbers are the shortest text that reads back to the same float32. The output
head is tied to wte, so there is no lm_head file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cellgpt.engine.safe_files import read_bytes
from cellgpt.locations import link_outside
from cellgpt.weights.cache import CsvStamp, ParamCache
from cellgpt.weights.config import GPT2Config
from cellgpt.weights.csv_tables import read_csv, write_atomic, write_csv
from cellgpt.weights.errors import ParamsError
from cellgpt.weights.files import TOKENIZER_FILE_CAP
from cellgpt.weights.floatfmt import format_float32_shortest
from cellgpt.weights.parse_pool import POOL_MIN_BYTES, ParseJob, cpu_count, parse_all

__all__ = [
    "CONFIG_FILE",
    "TOKENIZER_FILES",
    "Params",
    "ParamsError",
    "Progress",
    "expected_shapes",
    "format_float32_shortest",
    "load_params",
    "read_csv",
    "save_params",
    "tensor_names",
    "write_csv",
]

CONFIG_FILE = "config.json"
TOKENIZER_FILES = ("encoder.json", "vocab.bpe", "tokenizer_config.json")
Progress = Callable[[int, int, str], None]  # (done_bytes, total_bytes, current name)

# Per block: (suffix, shape as a function of n_embd).
_BLOCK_TENSORS: tuple[tuple[str, Callable[[int], tuple[int, ...]]], ...] = (
    ("ln_1.weight", lambda d: (d,)),
    ("ln_1.bias", lambda d: (d,)),
    ("attn.c_attn.weight", lambda d: (d, 3 * d)),
    ("attn.c_attn.bias", lambda d: (3 * d,)),
    ("attn.c_proj.weight", lambda d: (d, d)),
    ("attn.c_proj.bias", lambda d: (d,)),
    ("ln_2.weight", lambda d: (d,)),
    ("ln_2.bias", lambda d: (d,)),
    ("mlp.c_fc.weight", lambda d: (d, 4 * d)),
    ("mlp.c_fc.bias", lambda d: (4 * d,)),
    ("mlp.c_proj.weight", lambda d: (4 * d, d)),
    ("mlp.c_proj.bias", lambda d: (d,)),
)
BLOCK_SUFFIXES = tuple(suffix for suffix, _ in _BLOCK_TENSORS)


def expected_shapes(config: GPT2Config) -> dict[str, tuple[int, ...]]:
    """Every tensor name (file name without .csv) and its shape, in canonical order."""
    d = config.n_embd
    shapes: dict[str, tuple[int, ...]] = {
        "wte.weight": (config.vocab_size, d),
        "wpe.weight": (config.n_ctx, d),
    }
    for i in range(config.n_layer):
        for suffix, shape in _BLOCK_TENSORS:
            shapes[f"h.{i}.{suffix}"] = shape(d)
    shapes["ln_f.weight"] = (d,)
    shapes["ln_f.bias"] = (d,)
    return shapes


def tensor_names(config: GPT2Config) -> list[str]:
    """Tensor names in canonical order."""
    return list(expected_shapes(config))


@dataclass
class Params:
    """A loaded parameter folder: float32, C-contiguous (possibly read-only) tensors."""

    config: GPT2Config
    tensors: dict[str, np.ndarray]
    path: Path | None = None
    cache_hits: int = field(default=0, compare=False)

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.tensors[name]
        except KeyError:
            raise KeyError(f"no tensor {name!r} (e.g. 'wte.weight', 'h.0.ln_1.bias')") from None

    def __contains__(self, name: object) -> bool:
        return name in self.tensors

    def layer(self, i: int, name: str) -> np.ndarray:
        """Block `i`'s tensor, e.g. `params.layer(3, "attn.c_attn.weight")`."""
        if not 0 <= i < self.config.n_layer:
            raise IndexError(f"block {i} out of range 0..{self.config.n_layer - 1}")
        return self[f"h.{i}.{name}"]

    @property
    def n_params(self) -> int:
        return sum(int(t.size) for t in self.tensors.values())


def _list(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _check_files(folder: Path, shapes: Mapping[str, tuple[int, ...]]) -> None:
    # Any entry but a folder counts as present: reading it then says clearly what is wrong
    # (a pipe, a device) instead of calling it missing.
    present = {p.name[:-4] for p in folder.glob("*.csv") if not p.is_dir()}
    missing = [name + ".csv" for name in shapes if name not in present]
    extra = sorted(name + ".csv" for name in present if name not in shapes)
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} file(s): {_list(missing)}")
    if extra:
        problems.append(f"unexpected file(s) for this config.json: {_list(extra)}")
    if problems:
        raise ParamsError(f"{folder}: " + "; ".join(problems))


def _check_inside(folder: Path, names: list[str]) -> None:
    """Refuse a file that is a link out of the folder (see locations.link_outside)."""
    for name in names:
        target = link_outside(folder, folder / name)
        if target is not None:
            raise ParamsError(f"{folder / name}: a link to {target}, outside the model folder")


def read_config(folder: str | os.PathLike[str]) -> GPT2Config:
    """The folder's config.json, as a ParamsError naming the file when it is bad."""
    path = Path(folder) / CONFIG_FILE
    if not os.path.lexists(path):
        raise ParamsError(f"{folder}: no {CONFIG_FILE} (is this a weights folder?)")
    return GPT2Config.from_json_file(path)


# --- parallel writing --------------------------------------------------------------------


def _write_all(
    jobs: list[tuple[str, Path, np.ndarray]], progress: Progress | None, total: int
) -> None:
    """Write CSVs on all cores: the formatter is numpy and releases the GIL, so threads
    suffice. Progress is reported from this thread, in completion order."""
    jobs = sorted(jobs, key=lambda job: -job[2].nbytes)  # largest first balances the load
    done = 0
    with ThreadPoolExecutor(max_workers=max(1, min(cpu_count(), 8))) as pool:
        futures = {
            pool.submit(write_csv, path, array): (name, array.nbytes) for name, path, array in jobs
        }
        try:
            for future in as_completed(futures):
                future.result()
                name, size = futures[future]
                done += size
                if progress:
                    progress(done, total, name)
        except BaseException:
            for future in futures:
                future.cancel()
            raise


# --- loading -----------------------------------------------------------------------------


def load_params(
    path: str | os.PathLike[str], *, progress: Progress | None = None, use_cache: bool = True
) -> Params:
    """Load and validate a parameter folder.

    Checks config.json, that exactly the expected CSV files exist, and every table's
    shape and finiteness. With `use_cache`, tensors come memory-mapped from the binary cache
    when their CSV is unchanged, and are parsed and cached otherwise.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ParamsError(f"{folder}: not a folder")
    _check_inside(folder, [CONFIG_FILE])
    config = read_config(folder)  # ConfigError is a ParamsError
    shapes = expected_shapes(config)
    _check_files(folder, shapes)
    _check_inside(folder, [f"{name}.csv" for name in shapes])

    cache = ParamCache(folder) if use_cache else None
    stamps = {name: CsvStamp.of(folder / f"{name}.csv") for name in shapes}
    total = sum(stamp.size for stamp in stamps.values())
    tensors: dict[str, np.ndarray] = {}
    done = hits = 0
    if cache is not None:
        for name, shape in shapes.items():
            cached = cache.lookup(name, shape, stamps[name])
            if cached is not None:
                tensors[name] = cached
                done += stamps[name].size
                hits += 1
        if progress and hits:
            progress(done, total, "cache")

    misses = {name: shape for name, shape in shapes.items() if name not in tensors}
    if cache is not None and cache.writable:
        jobs = [
            _job(folder, name, shape, cache.npy_path(name), stamps)
            for name, shape in misses.items()
        ]
        for job, npy in _progressing(parse_all(jobs), progress, done, total):
            cache.record(job.name, job.shape, stamps[job.name], npy)
            tensors[job.name] = np.load(job.npy, mmap_mode="r").view(np.ndarray)
        if jobs:
            cache.save_manifest()
    else:
        tensors.update(_parse_uncached(folder, misses, stamps, progress, done, total))
    ordered = {name: tensors[name] for name in shapes}
    return Params(config=config, tensors=ordered, path=folder, cache_hits=hits)


def _job(
    folder: Path, name: str, shape: tuple[int, ...], npy: Path, stamps: dict[str, CsvStamp]
) -> ParseJob:
    return ParseJob(name, str(folder / f"{name}.csv"), shape, str(npy), stamps[name].size)


def _progressing(
    results: Iterator[tuple[ParseJob, Any]], progress: Progress | None, done: int, total: int
) -> Iterator[tuple[ParseJob, Any]]:
    for job, result in results:
        done += job.size
        if progress:
            progress(done, total, job.name)
        yield job, result


def _parse_uncached(
    folder: Path,
    shapes: dict[str, tuple[int, ...]],
    stamps: dict[str, CsvStamp],
    progress: Progress | None,
    done: int,
    total: int,
) -> dict[str, np.ndarray]:
    """Parse without a cache: in-process when small; else workers hand results over as
    .npy files in a scratch folder that is deleted afterwards."""
    out: dict[str, np.ndarray] = {}
    if sum(stamps[name].size for name in shapes) < POOL_MIN_BYTES or cpu_count() < 2:
        for name, shape in shapes.items():
            out[name] = _readonly(read_csv(folder / f"{name}.csv", shape))
            done += stamps[name].size
            if progress:
                progress(done, total, name)
        return out
    with tempfile.TemporaryDirectory(prefix="cellgpt-parse-") as scratch:
        jobs = [_job(folder, n, s, Path(scratch) / f"{n}.npy", stamps) for n, s in shapes.items()]
        for job, _ in _progressing(parse_all(jobs), progress, done, total):
            out[job.name] = _readonly(np.load(job.npy))
    return out


def _readonly(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False  # same contract as the memory-mapped cache
    return array


# --- saving ------------------------------------------------------------------------------


def validate_tensors(config: GPT2Config, tensors: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Check names, shapes and finiteness; return float32 C-contiguous arrays."""
    shapes = expected_shapes(config)
    missing = [name for name in shapes if name not in tensors]
    extra = sorted(name for name in tensors if name not in shapes)
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing tensor(s): {_list(missing)}")
        if extra:
            parts.append(f"unexpected tensor(s): {_list(extra)}")
        raise ParamsError("; ".join(parts))
    out: dict[str, np.ndarray] = {}
    for name, shape in shapes.items():
        array = np.asarray(tensors[name])
        if array.shape != shape:
            raise ParamsError(f"{name}: shape {array.shape}, expected {shape} from the config")
        if not np.issubdtype(array.dtype, np.floating):
            raise ParamsError(f"{name}: dtype {array.dtype} is not floating point")
        array = np.ascontiguousarray(array, dtype=np.float32)
        if not np.isfinite(array).all():
            raise ParamsError(f"{name}: contains NaN or infinity (or overflows float32)")
        out[name] = array
    return out


def save_params(
    path: str | os.PathLike[str],
    config: GPT2Config,
    tensors: Mapping[str, Any],
    *,
    tokenizer_dir: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> Path:
    """Validate and write a parameter folder: config.json, one CSV per tensor, and the
    tokenizer files found in `tokenizer_dir`. Every file is written atomically.

    Refuses a folder holding CSV files that are not part of this model (they would make
    the folder ambiguous). `progress` counts tensor bytes (4 per number).
    """
    arrays = validate_tensors(config, tensors)
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    stray = sorted(p.name for p in folder.glob("*.csv") if p.name[:-4] not in arrays)
    if stray:
        raise ParamsError(
            f"{folder}: holds CSV files that are not part of this model ({_list(stray)}); "
            "choose an empty folder"
        )
    total = sum(a.nbytes for a in arrays.values())
    _write_all([(n, folder / f"{n}.csv", a) for n, a in arrays.items()], progress, total)
    if tokenizer_dir is not None:
        copy_tokenizer(tokenizer_dir, folder)
    config.to_json_file(folder / CONFIG_FILE)  # last: a folder with a config is complete
    return folder


def copy_tokenizer(src: str | os.PathLike[str], dest: str | os.PathLike[str]) -> list[str]:
    """Copy encoder.json / vocab.bpe / tokenizer_config.json that exist in `src`."""
    source = Path(src)
    copied = []
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            data = read_bytes(source / name, TOKENIZER_FILE_CAP, what="tokenizer file")
            write_atomic(Path(dest) / name, data)
            copied.append(name)
    if not {"encoder.json", "vocab.bpe"} <= set(copied):
        raise ParamsError(f"{source}: needs encoder.json and vocab.bpe for the tokenizer")
    return copied
