"""Layer norm of [rows, 768] float32, four ways, timed with the fair protocol (_fair.py):
why issue #14's forward gap outside the products is out of numpy's reach.

- cellgpt: kernels.layer_norm, what the `ln_1`/`ln_2` cells run (bit for bit the plain numpy
  formula; per-core chunks on blocks that stay in L2);
- torch:   torch.nn.functional.layer_norm, 2 threads (one fused pass per row, in C++);
- numexpr: numpy's reductions for mean and variance, then the affine `(x - m) / s * g + b` as
  one multi-threaded numexpr pass (the issue's suggestion), if numexpr is installed;
- numba:   a compiled kernel, one row per iteration over two threads, sums in 16 fixed lanes
  (so a row's result never depends on the other rows), if numba is installed.

numexpr and numba are not dependencies of cellgpt; a side whose package is missing is
reported as such. Each side runs CALLS layer norms a round; every side's result is
compared with a float64 reference (max |Δ| shown). A round runs ten forwards' worth back to
back (each side starts after the protocol's idle pause, whose wake-up would dominate a
single forward's 25 calls of well under a millisecond).

    python benchmarks/layer_norm_options.py [--rows 64,256,1024] [--repeats 5] [--strict]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _fair

from cellgpt.engine import kernels

PER_FORWARD = 25  # a forward's layer norms: two per block and ln_f
CALLS = 10 * PER_FORWARD
EPS = 1e-5
Norm = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", default="64,256,1024", help="rows per layer norm")
    parser.add_argument("--repeats", type=int, default=5, help="kept rounds per size")
    _fair.add_arguments(parser)
    args = parser.parse_args()
    sides, missing = available_sides()
    for name, why in missing.items():
        print(f"{name}: not measured ({why})")
    with _fair.busy_loop(args.busy):
        machine = _fair.Machine(busy=args.busy)
        table = []
        for rows in (int(r) for r in args.rows.split(",")):
            rounds, errors = measure(rows, sides, args, machine)
            table.append((rows, rounds, errors))
        status = machine.report(args.strict)
    names = list(sides)
    print(f"\nms per forward ({PER_FORWARD} layer norms), median of rounds; ratio: side / torch")
    print("| rows | " + " | ".join(f"{n} ms" for n in names) + " | "
          + " | ".join(f"{n} / torch" for n in names if n != "torch") + " | max abs Δ |")  # fmt: skip
    print("|---:|" + "---:|" * (2 * len(names)))
    for rows, rounds, errors in table:
        times = " | ".join(f"{rounds.median(n) * 1e3 * PER_FORWARD / CALLS:.2f}" for n in names)
        ratios = " | ".join(f"{rounds.ratio(n, 'torch'):.2f}" for n in names if n != "torch")
        worst = max(errors.values())
        print(f"| {rows} | {times} | {ratios} | {worst:.1e} |")
    return status


def measure(
    rows: int, sides: dict[str, Norm], args: argparse.Namespace, machine: _fair.Machine
) -> tuple[_fair.Rounds, dict[str, float]]:
    """The fair rounds at one row count, and each side's max |Δ| from the float64 reference."""
    x, gain, bias = inputs(rows)
    want = reference(x, gain, bias)
    errors: dict[str, float] = {}

    def check(outputs: dict[str, np.ndarray]) -> None:
        for name, got in outputs.items():
            errors[name] = float(np.max(np.abs(got.astype(np.float64) - want)))

    def make_round(_r: int) -> dict[str, _fair.Side]:
        return {name: _fair.Side(repeat(fn, x, gain, bias)) for name, fn in sides.items()}

    rounds = _fair.run_rounds(make_round, args.repeats, machine, check=check, pause=args.pause)
    return rounds, errors


def inputs(rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(rows)
    x = rng.standard_normal((rows, 768), dtype=np.float32) * np.float32(3) + np.float32(1)
    gain = rng.standard_normal(768, dtype=np.float32)
    bias = rng.standard_normal(768, dtype=np.float32)
    return x, gain, bias


def reference(x: np.ndarray, gain: np.ndarray, bias: np.ndarray) -> np.ndarray:
    x64 = x.astype(np.float64)
    centred = x64 - x64.mean(axis=-1, keepdims=True)
    scale = np.sqrt((centred * centred).mean(axis=-1, keepdims=True) + EPS)
    return centred / scale * gain + bias


def repeat(fn: Norm, x: np.ndarray, gain: np.ndarray, bias: np.ndarray) -> Callable[[], object]:
    def run() -> np.ndarray:
        for _ in range(CALLS - 1):
            fn(x, gain, bias)
        return fn(x, gain, bias)

    return run


def available_sides() -> tuple[dict[str, Norm], dict[str, str]]:
    import torch

    sides: dict[str, Norm] = {
        "cellgpt": lambda x, g, b: kernels.layer_norm(x, g, b, EPS),
        "torch": torch_side(torch),
    }
    missing: dict[str, str] = {}
    for name, build in (("numexpr", numexpr_side), ("numba", numba_side)):
        try:
            sides[name] = build()
        except ImportError as exc:
            missing[name] = f"{exc.name or name} is not installed"
    return sides, missing


def torch_side(torch) -> Norm:
    torch.set_num_threads(2)

    def run(x: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = torch.nn.functional.layer_norm(
                torch.from_numpy(x), (x.shape[-1],), torch.from_numpy(g), torch.from_numpy(b), EPS
            )
        return out.numpy()

    return run


def numexpr_side() -> Norm:
    import numexpr

    numexpr.set_num_threads(2)

    def run(x: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
        m = x.mean(axis=-1, keepdims=True)
        c = x - m
        s = np.sqrt((c * c).mean(axis=-1, keepdims=True) + np.float32(EPS))
        parts = {"x": x, "m": m, "s": s, "g": g, "b": b}
        return numexpr.evaluate("(x - m) / s * g + b", local_dict=parts)

    return run


def numba_side() -> Norm:
    import numba

    numba.set_num_threads(2)

    @numba.njit(parallel=True)
    def kernel(x, g, b, eps, out):
        rows, d = x.shape
        lanes = 16
        for i in numba.prange(rows):
            r = x[i]
            acc = np.zeros(lanes, np.float32)
            for j in range(0, d - d % lanes, lanes):
                for k in range(lanes):
                    acc[k] += r[j + k]
            mean = (acc.sum() + r[d - d % lanes :].sum()) / np.float32(d)
            acc[:] = 0
            for j in range(0, d - d % lanes, lanes):
                for k in range(lanes):
                    c = r[j + k] - mean
                    acc[k] += c * c
            tail = r[d - d % lanes :] - mean
            scale = np.sqrt((acc.sum() + (tail * tail).sum()) / np.float32(d) + eps)
            o = out[i]
            for j in range(d):
                o[j] = (r[j] - mean) / scale * g[j] + b[j]
        return out

    def run(x: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
        return kernel(x, g, b, np.float32(EPS), np.empty_like(x))

    return run


if __name__ == "__main__":
    raise SystemExit(main())
