"""`cellgpt weights ...`: import, download, inspect and check parameter folders."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO, TypeVar

from cellgpt.cli import UserError

T = TypeVar("T")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `weights` command group to the top-level parser."""
    group = subparsers.add_parser("weights", help="import, download and check CSV weights")
    sub = group.add_subparsers(dest="weights_command", required=True)

    p = sub.add_parser("import-hf", help="a Hugging Face GPT-2 folder (or hub name) → CSVs")
    p.add_argument("src", help="folder with config.json + model.safetensors, or e.g. 'gpt2'")
    p.add_argument("--out", type=Path, required=True, help="output weights folder")
    p.set_defaults(func=cmd_import_hf)

    p = sub.add_parser("import-bundle", help="a GPT-2 CSV bundle (zip or folder) → our layout")
    p.add_argument("src", type=Path, help="zip file or folder of CSV tables")
    p.add_argument("--out", type=Path, required=True, help="output weights folder")
    p.add_argument("--n-head", type=int, help="attention heads, if the bundle has no config")
    p.set_defaults(func=cmd_import_bundle)

    p = sub.add_parser("download", help="fetch a GPT-2 model from the Hugging Face hub")
    p.add_argument("name", help="hub name, e.g. gpt2")
    p.add_argument("--out", type=Path, required=True, help="output weights folder")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("info", help="config, tensor count, parameters and cache state")
    p.add_argument("dir", type=Path, help="weights folder")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("check", help="fully validate every CSV (ignores the cache)")
    p.add_argument("dir", type=Path, help="weights folder")
    p.set_defaults(func=cmd_check)


class ProgressBar:
    """A one-line text progress bar on stderr, redrawn at most ~10 times a second."""

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.start = time.perf_counter()
        self.last = 0.0
        self.drawn = False

    def __call__(self, done: int, total: int, name: str) -> None:
        now = time.perf_counter()
        if done < total and now - self.last < 0.1:
            return
        self.last = now
        frac = done / total if total else 1.0
        filled = int(frac * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        rate = done / max(now - self.start, 1e-9) / 1e6
        line = f"\r{self.label} [{bar}] {frac:4.0%} {rate:6.1f} MB/s {name[:28]:<28}"
        self.stream.write(line)
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def _with_bar(label: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run fn(..., progress=bar), turning parameter errors into UserError."""
    from cellgpt.gpt2.params_error import ParamsError

    bar = ProgressBar(label)
    try:
        return fn(*args, progress=bar, **kwargs)
    except ParamsError as exc:
        raise UserError(str(exc)) from None
    finally:
        bar.close()


def cmd_import_hf(args: argparse.Namespace) -> int:
    from cellgpt.gpt2.importers import import_hf

    out = _with_bar("import", import_hf, args.src, args.out)
    print(f"wrote {out}")
    return 0


def cmd_import_bundle(args: argparse.Namespace) -> int:
    from cellgpt.gpt2.importers import import_bundle

    out = _with_bar("import", import_bundle, args.src, args.out, n_head=args.n_head)
    print(f"wrote {out}")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from cellgpt.gpt2.importers import download

    out = _with_bar("download", download, args.name, args.out)
    print(f"wrote {out}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from cellgpt.gpt2.param_cache import CsvStamp, ParamCache
    from cellgpt.gpt2.params import ParamsError, expected_shapes, read_config

    try:
        config = read_config(args.dir)
    except ParamsError as exc:
        raise UserError(str(exc)) from None
    shapes = expected_shapes(config)
    present = [n for n in shapes if (args.dir / f"{n}.csv").is_file()]
    csv_bytes = sum((args.dir / f"{n}.csv").stat().st_size for n in present)
    n_params = sum(_count(shape) for shape in shapes.values())
    cache = ParamCache(args.dir, create=False)  # info never writes
    fresh = 0
    for name in present:  # a cheap validity check of each cache entry, no parsing
        if cache.lookup(name, shapes[name], CsvStamp.of(args.dir / f"{name}.csv")) is not None:
            fresh += 1
    where = "" if cache.writable else " (folder read-only: no cache)"
    tok = [f for f in ("encoder.json", "vocab.bpe") if (args.dir / f).is_file()]
    rows = [
        ("folder", str(args.dir)),
        *((key, str(value)) for key, value in config.to_dict().items()),
        ("tensors", f"{len(present)} of {len(shapes)} CSV files present"),
        ("parameters", f"{n_params:,}"),
        ("csv size", f"{csv_bytes / 1e6:.1f} MB"),
        ("cache", f"{fresh} of {len(shapes)} tensors cached and up to date{where}"),
        ("tokenizer", " + ".join(tok) if tok else "missing"),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    return 0


def _count(shape: tuple[int, ...]) -> int:
    total = 1
    for d in shape:
        total *= d
    return total


def cmd_check(args: argparse.Namespace) -> int:
    from cellgpt.gpt2.params import load_params

    start = time.perf_counter()
    params = _with_bar("check", load_params, args.dir, use_cache=False)
    seconds = time.perf_counter() - start
    print(
        f"ok: {len(params.tensors)} tensors, {params.n_params:,} parameters, all finite "
        f"and shaped as config.json says ({seconds:.1f} s)"
    )
    return 0
