"""`cellgpt weights ...`: import, download, inspect and check parameter folders."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from cellgpt.cli import UserError
from cellgpt.cli.progress import Progress

T = TypeVar("T")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `weights` command group to the top-level parser."""
    group = subparsers.add_parser("weights", help="import, download and check CSV weights")
    sub = group.add_subparsers(dest="weights_command", required=True)

    p = sub.add_parser("import-hf", help="a Hugging Face GPT-2 folder (or hub name) → CSVs")
    p.add_argument("src", help="folder with config.json + model.safetensors, or e.g. 'gpt2'")
    _out_args(p)
    p.set_defaults(func=cmd_import_hf)

    p = sub.add_parser("import-bundle", help="a GPT-2 CSV bundle (zip or folder) → our layout")
    p.add_argument("src", type=Path, help="zip file or folder of CSV tables")
    _out_args(p)
    p.add_argument("--n-head", type=int, help="attention heads, if the bundle has no config")
    p.set_defaults(func=cmd_import_bundle)

    p = sub.add_parser("download", help="fetch a GPT-2 model from the Hugging Face hub")
    p.add_argument("name", help="hub name, e.g. gpt2")
    _out_args(p)
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("info", help="config, tensor count, parameters and cache state")
    p.add_argument("model", help="model name (e.g. gpt2-mini) or weights folder")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("check", help="fully validate every CSV (ignores the cache)")
    p.add_argument("model", help="model name (e.g. gpt2-mini) or weights folder")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("list", help="the models a name can reach (yours, then the bundled)")
    p.set_defaults(func=cmd_list)


def _out_args(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--out", type=Path, help="output weights folder")
    where.add_argument(
        "--name",
        dest="save_as",
        help="save as this model name in your model folder (default: from the source)",
    )


def output_folder(args: argparse.Namespace, source: str) -> Path:
    """--out, else <user models dir>/<--name or the source's last path part>."""
    from cellgpt.locations import user_models_dir

    if args.out is not None:
        return args.out
    name = args.save_as or Path(str(source).rstrip("/\\")).name.removesuffix(".zip")
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise UserError(f"cannot name a model {name!r}: give --name NAME or --out FOLDER")
    return user_models_dir() / name


def model_folder(model: str) -> Path:
    """A model name or folder, resolved as everywhere else (UserError if unknown)."""
    from cellgpt.locations import NotFoundError, resolve_model

    try:
        return resolve_model(model)
    except NotFoundError as exc:
        raise UserError(str(exc)) from None


def _with_bar(label: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run fn(..., progress=bar), turning parameter errors into UserError."""
    from cellgpt.weights.errors import ParamsError

    bar = Progress(label)
    try:
        return fn(*args, progress=bar, **kwargs)
    except ParamsError as exc:
        raise UserError(str(exc)) from None
    finally:
        bar.close()


def cmd_import_hf(args: argparse.Namespace) -> int:
    from cellgpt.weights.importers import import_hf

    out = _with_bar("import", import_hf, args.src, output_folder(args, args.src))
    _wrote(out)
    return 0


def cmd_import_bundle(args: argparse.Namespace) -> int:
    from cellgpt.weights.importers import import_bundle

    out = _with_bar(
        "import", import_bundle, args.src, output_folder(args, args.src), n_head=args.n_head
    )
    _wrote(out)
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from cellgpt.weights.importers import download

    out = _with_bar("download", download, args.name, output_folder(args, args.name))
    _wrote(out)
    return 0


def _wrote(out: Path) -> None:
    """Where the model went, and the command that runs it (by name when a name finds it)."""
    import shlex

    from cellgpt.locations import NotFoundError, resolve_model

    print(f"wrote {out}")
    try:
        by_name = resolve_model(out.name) == Path(out).resolve()
    except NotFoundError:
        by_name = False
    model = out.name if by_name else str(out)
    print(f'run it: cellgpt run "ROMEO:" --model {shlex.quote(model)}')


def cmd_info(args: argparse.Namespace) -> int:
    from cellgpt.weights.cache import CsvStamp, ParamCache
    from cellgpt.weights.params import ParamsError, expected_shapes, read_config

    folder = model_folder(args.model)
    try:
        config = read_config(folder)
    except ParamsError as exc:
        raise UserError(str(exc)) from None
    shapes = expected_shapes(config)
    present = [n for n in shapes if (folder / f"{n}.csv").is_file()]
    csv_bytes = sum((folder / f"{n}.csv").stat().st_size for n in present)
    n_params = sum(_count(shape) for shape in shapes.values())
    cache = ParamCache(folder, create=False)  # info never writes
    fresh = 0
    for name in present:  # a cheap validity check of each cache entry, no parsing
        if cache.lookup(name, shapes[name], CsvStamp.of(folder / f"{name}.csv")) is not None:
            fresh += 1
    where = f" in {cache.dir}" if cache.writable else f" (cannot write {cache.dir}: no cache)"
    tok = [f for f in ("encoder.json", "vocab.bpe") if (folder / f).is_file()]
    rows = [
        ("folder", str(folder)),
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
    from cellgpt.weights.params import load_params

    start = time.perf_counter()
    params = _with_bar("check", load_params, model_folder(args.model), use_cache=False)
    seconds = time.perf_counter() - start
    print(
        f"ok: {len(params.tensors)} tensors, {params.n_params:,} parameters, all finite "
        f"and shaped as config.json says ({seconds:.1f} s)"
    )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from cellgpt.locations import available_models, model_folders

    models = available_models()
    width = max((len(n) for n in models), default=0)
    for name, folder in models.items():
        print(f"{name:<{width}}  {folder}")
    print(f"(searched {', '.join(str(f) for f in model_folders())})", file=sys.stderr)
    return 0
