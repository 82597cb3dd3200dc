"""Export to .xlsx: time, file size and peak memory for the three configurations of the
issue's closing note, each in its own process (so peak RSS is its own):

  mini-formulas   bundled gpt2-mini, --mode formulas (optionally + LibreOffice recalc time)
  small-values    GPT-2-small shapes (random weights), values mode without parameters
  small-params    GPT-2-small shapes, values mode --with-params (124M numbers); with
                  --params-part F only the first fraction F of the parameter numbers is
                  exported and the full size/time extrapolated from it

    python benchmarks/bench_export.py [--only NAME ...] [--recalc] [--params-part 0.1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

PROMPT = "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer"
CONFIGS = ("mini-formulas", "small-values", "small-params")


def run_one(name: str, out_dir: Path, recalc: bool, part: float) -> dict[str, object]:
    from _gpt2_small import ensure_model, peak_rss_mb

    import cellgpt
    from cellgpt.export.xlsx import export_workbook

    root = Path(__file__).resolve().parent.parent
    workbook = root / "workbooks" / "gpt2.py"
    model = "gpt2-mini" if name == "mini-formulas" else str(ensure_model()[1])
    wb = cellgpt.open(workbook, model=model, prompt=PROMPT)
    wb.run()
    cells = None
    if name == "small-params" and part < 1:
        params = [n for n in wb.cells() if wb.cell(n).hints.get("kind") == "param"]
        total = sum(wb.value(n).size for n in params)
        chosen, count = [], 0
        for n in params:  # whole tables, in order, until the fraction is reached
            if count >= part * total:
                break
            chosen.append(n)
            count += wb.value(n).size
        cells = chosen
    path = out_dir / f"{name}.xlsx"
    start = time.perf_counter()
    report = export_workbook(
        wb,
        path,
        mode="formulas" if name == "mini-formulas" else "values",
        with_params=name == "small-params",
        cells=cells,
    )
    seconds = time.perf_counter() - start
    result: dict[str, object] = {
        "config": name,
        "tokens": len(wb.value("tokens")),
        "numbers": report.numbers,
        "sheets": report.sheets,
        "formula_cells": report.formulas,
        "seconds": round(seconds, 1),
        "mb": round(report.bytes / 1e6, 1),
        "peak_rss_mb": round(peak_rss_mb()),
    }
    if cells is not None:
        full = sum(wb.value(n).size for n in wb.cells() if wb.cell(n).hints.get("kind") == "param")
        scale = full / report.numbers
        result["extrapolated_full"] = {
            "numbers": full,
            "seconds": round(seconds * scale, 1),
            "mb": round(report.bytes * scale / 1e6, 1),
        }
    if recalc and name == "mini-formulas":
        from cellgpt.export.recalc import recalculate

        start = time.perf_counter()
        recalculate(path, out_dir / "recalculated")
        result["libreoffice_recalc_seconds"] = round(time.perf_counter() - start, 1)
    path.unlink()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    parser.add_argument("--recalc", action="store_true", help="also time LibreOffice recalc")
    parser.add_argument("--params-part", type=float, default=1.0, metavar="F")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child, args.out, args.recalc, args.params_part)))
        return
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        for name in args.only:
            cmd = [sys.executable, __file__, "--child", name, "--out", tmp]
            cmd += ["--params-part", str(args.params_part)] + (["--recalc"] if args.recalc else [])
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(f"{name}: failed\n{done.stderr}")
                continue
            print(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
