"""Parameter I/O at GPT-2 small shapes (124M numbers): CSV write, first load from CSV,
load from the binary cache, bare memory-map open; plus single-core formatter/parser rates.

    python benchmarks/bench_params.py [--dir SCRATCH] [--keep]

Targets: from CSV at >= 100 MB/s, from the cache in < 1 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cellgpt.weights.cache import cache_dir_for
from cellgpt.weights.config import GPT2Config
from cellgpt.weights.csv_tables import read_csv
from cellgpt.weights.floatfmt import format_bytes
from cellgpt.weights.params import expected_shapes, load_params, save_params
from cellgpt.weights.parse_pool import cpu_count

SMALL = GPT2Config(n_layer=12, n_head=12, n_embd=768, n_ctx=1024, vocab_size=50257)


def gpt2_like_tensors(seed: int = 0) -> dict[str, np.ndarray]:
    """Random tensors with GPT-2-like magnitudes (weights ~N(0, 0.02), norms ~1)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in expected_shapes(SMALL).items():
        if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
            out[name] = (1 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
        else:
            out[name] = (0.02 * rng.standard_normal(shape)).astype(np.float32)
    return out


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def drop_page_cache(path: Path) -> bool:
    """Evict one file's pages from the page cache (written back first); False if unsupported."""
    if not hasattr(os, "posix_fadvise"):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, help="scratch folder (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the written folder")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-params-", dir=args.dir))
    folder = scratch / "gpt2-shaped"
    rows: list[tuple[str, str, str]] = []
    before = os.getloadavg()
    try:
        tensors = gpt2_like_tensors()
        numbers = sum(a.size for a in tensors.values())
        print(f"{numbers:,} numbers, {cpu_count()} cores")

        wpe = tensors["wpe.weight"]
        seconds, text = timed(lambda: format_bytes(wpe, wpe.shape[1]))
        rows.append(
            (
                "format, 1 core (wpe)",
                f"{seconds:.2f} s",
                f"{wpe.size / seconds / 1e6:.1f} M numbers/s",
            )
        )
        (scratch / "wpe.csv").write_bytes(text)
        mb = len(text) / 1e6
        seconds, _ = timed(lambda: read_csv(scratch / "wpe.csv", wpe.shape))
        rows.append(("read_csv, 1 core (wpe)", f"{seconds:.2f} s", f"{mb / seconds:.0f} MB/s"))

        seconds, _ = timed(lambda: save_params(folder, SMALL, tensors))
        csv_bytes = sum(p.stat().st_size for p in folder.glob("*.csv"))
        rows.append(("save_params (CSV write)", f"{seconds:.2f} s",
                     f"{numbers / seconds / 1e6:.1f} M numbers/s, {csv_bytes / seconds / 1e6:.0f} MB/s"))  # fmt: skip
        rows.append(
            ("CSV size", f"{csv_bytes / 1e6:.0f} MB", f"{csv_bytes / numbers:.1f} bytes/number")
        )

        seconds, _ = timed(lambda: load_params(folder, use_cache=False))
        rows.append(
            ("load, CSV, no cache", f"{seconds:.2f} s", f"{csv_bytes / seconds / 1e6:.0f} MB/s")
        )
        shutil.rmtree(cache_dir_for(folder), ignore_errors=True)
        seconds, first = timed(lambda: load_params(folder))
        assert first.cache_hits == 0
        rows.append(
            (
                "first load (CSV + build cache)",
                f"{seconds:.2f} s",
                f"{csv_bytes / seconds / 1e6:.0f} MB/s",
            )
        )
        for name, array in tensors.items():
            assert np.array_equal(first[name], array), name
        # The row above reads CSVs still in the page cache (just written); a user's first load
        # reads them from disk. Dropping just these files' pages needs no privileges.
        shutil.rmtree(cache_dir_for(folder), ignore_errors=True)
        dropped = all(drop_page_cache(path) for path in folder.glob("*.csv"))
        seconds, _ = timed(lambda: load_params(folder))
        rows.append(
            (
                "first load, CSV not in page cache" + ("" if dropped else " (could not drop)"),
                f"{seconds:.2f} s",
                f"{csv_bytes / seconds / 1e6:.0f} MB/s",
            )
        )
        seconds, cached = timed(lambda: load_params(folder))
        assert cached.cache_hits == len(tensors)
        rows.append(("load from cache (validated)", f"{seconds:.3f} s", "memory-mapped"))
        npys = sorted(cache_dir_for(folder).glob("*.npy"))
        seconds, _ = timed(lambda: [np.load(p, mmap_mode="r") for p in npys])
        rows.append(("bare mmap open of every .npy", f"{seconds:.3f} s", f"{len(npys)} files"))
        seconds, _ = timed(lambda: sum(float(cached[n].sum()) for n in tensors))
        rows.append(("touch every cached number", f"{seconds:.2f} s", "page-cache warm"))
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            print(f"kept {folder}")

    width = max(len(r[0]) for r in rows)
    print(f"{'step':<{width}}  {'time':>9}  rate")
    for step, time_text, rate in rows:
        print(f"{step:<{width}}  {time_text:>9}  {rate}")
    after = os.getloadavg()  # includes this run's own parse workers (every core)
    print(f"load average (1 min) before {before[0]:.2f}, after {after[0]:.2f} (ours included)")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    main()
