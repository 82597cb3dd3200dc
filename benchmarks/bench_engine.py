"""Engine overhead: evaluate a chain of N trivial formula cells (each `prev + 1`) and report
microseconds per cell, against a plain Python loop doing the same additions in the same
process. Also measures the cost of re-running one cell in the middle of the chain.

    python benchmarks/bench_engine.py [--cells 200] [--repeats 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from cellgpt.engine import CellSpec, Workbook


def build_chain(n: int) -> Workbook:
    specs = [CellSpec("c0", "0")]
    specs += [CellSpec(f"c{i}", f"c{i - 1} + 1") for i in range(1, n)]
    wb = Workbook()
    wb.define_many(specs)
    return wb


def time_full_run(n: int, repeats: int) -> list[float]:
    samples = []
    for r in range(repeats):
        wb = build_chain(n)
        wb.set("c0", r)
        start = time.perf_counter()
        wb.run()
        samples.append(time.perf_counter() - start)
        assert wb.value(f"c{n - 1}") == r + n - 1
    return samples


def time_plain_loop(n: int, repeats: int) -> list[float]:
    samples = []
    for r in range(repeats):
        start = time.perf_counter()
        value = r
        for _ in range(1, n):
            value = value + 1
        samples.append(time.perf_counter() - start)
    return samples


def time_one_cell_rerun(n: int, repeats: int) -> list[float]:
    wb = build_chain(n)
    wb.run()
    middle = f"c{n // 2}"
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        wb.rerun(middle)
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cells", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    n = args.cells
    before = os.getloadavg()
    full = statistics.median(time_full_run(n, args.repeats))
    plain = statistics.median(time_plain_loop(n, args.repeats))
    one = statistics.median(time_one_cell_rerun(n, args.repeats))
    print(f"chain of {n} cells, median of {args.repeats} runs")
    print(f"  engine run_all      : {full * 1e3:8.3f} ms = {full / n * 1e6:6.2f} us per cell")
    print(
        f"  plain python loop   : {plain * 1e3:8.3f} ms ({full / plain:.0f}x less work than the engine)"
    )
    print(
        f"  re-run one mid cell : {one * 1e6:8.2f} us  (= {one / (full / n):.1f} x one cell of a full run)"
    )
    after = os.getloadavg()
    print(f"load average before {before[0]:.2f}, after {after[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
