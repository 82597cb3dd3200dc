"""What a function cell costs over writing its body into the cell: RMSNorm as a function cell
call, `rms_norm(x, w)`, against the same expression written in the cell's formula, with numpy
by hand as the fair reference (interleaved rounds, idle pause before each side, medians: see
benchmarks/_fair.py).

    python benchmarks/bench_function_cells.py            # 8 × 64 (call overhead) and 1024 × 768
    python benchmarks/bench_function_cells.py --rounds 21

Each side recomputes one cell (`wb.rerun`), so the engine's per-cell work is in both cellgpt
sides; the function side adds binding the arguments and the call itself.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fair import Machine, Side, add_arguments, busy_loop, run_rounds

from cellgpt.engine import Workbook

BODY = "x / sqrt(mean(x * x, axis=-1, keepdims=True) + 1e-5) * w"
SHAPES = ((8, 64), (1024, 768))


def workbook(rows: int, cols: int) -> Workbook:
    wb = Workbook()
    wb.define_function(f"def rms_norm(x, w): return {BODY}")
    wb.define("x", f"random_normal(({rows}, {cols}), seed=1)")
    wb.define("w", f"random_normal(({cols},), seed=2)")
    wb.define("inline", BODY)
    wb.define("called", "rms_norm(x, w)")
    wb.run()
    return wb


def by_hand(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + 1e-5) * w


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--repeat", type=int, default=50, help="reruns per side per round")
    add_arguments(parser)
    args = parser.parse_args()
    machine = Machine(args.busy)
    with busy_loop(args.busy):
        for rows, cols in SHAPES:
            wb = workbook(rows, cols)
            x, w = wb["x"], wb["w"]

            def side(run: Any) -> Side:
                return Side(lambda: [run() for _ in range(args.repeat)][-1])

            sides = {
                "numpy": side(lambda: by_hand(x, w)),  # noqa: B023
                "inline": side(lambda: wb.rerun("inline")),  # noqa: B023
                "function": side(lambda: wb.rerun("called")),  # noqa: B023
            }

            def check(out: dict[str, Any]) -> None:
                np.testing.assert_allclose(out["function"], out["numpy"], rtol=1e-5)
                np.testing.assert_array_equal(out["function"], out["inline"])

            result = run_rounds(
                lambda r: sides,  # noqa: B023
                args.rounds,
                machine,
                pause=args.pause,
                check=check,
            )
            per_call = {s: result.median(s) / args.repeat * 1e6 for s in sides}
            print(
                f"{rows} × {cols}: function/inline {result.ratio('function', 'inline'):.3f}x, "
                f"function/numpy {result.ratio('function', 'numpy'):.3f}x "
                f"(per cell: numpy {per_call['numpy']:.0f} us, inline {per_call['inline']:.0f} "
                f"us, function {per_call['function']:.0f} us)"
            )
    return machine.report(args.strict)


if __name__ == "__main__":
    sys.exit(main())
