"""Export to .xlsx: time, file size and peak memory for the configurations of the issues'
closing notes, each in its own process (so peak RSS is its own):

  mini-formulas   bundled gpt2-mini, --mode formulas (optionally + LibreOffice recalc time)
  small-values    GPT-2-small shapes (random weights), values mode without parameters
  small-params    GPT-2-small shapes, values mode --with-params (124M numbers); with
                  --params-part F only the first fraction F of the parameter numbers is
                  exported and the full size/time extrapolated from it
  small-formulas  GPT-2-small shapes, formulas mode at capacity 16 (issue 17); with --recalc
                  LibreOffice recalculates it headless under /usr/bin/time -v (wall time,
                  peak RSS) and its next token and logits are compared with the engine run
                  in float64 on the parameters exactly as the sheet holds them

  small-parts     GPT-2-small shapes, formulas mode at capacity 16 split into workbooks of
                  consecutive blocks (--parts K or block ranges, default 3; export --parts);
                  with --recalc LibreOffice opens and recalculates each part on its own
                  (Summary as CSV) under /usr/bin/time -v: wall time, peak RSS, the part's
                  check of its output residual and, for the last, the next token

  With --small-cells PATTERN ... only those cells (and what they read) are exported, to
  see which part of the workbook costs LibreOffice the time and memory (e.g. `embed`:
  the embedding tables; `h0.resid_post`: those plus block 0).

    python benchmarks/bench_export.py [--only NAME ...] [--recalc] [--params-part 0.1]
    python benchmarks/bench_export.py --only small-formulas --recalc [--small-cells embed]
    python benchmarks/bench_export.py --only small-parts --recalc [--parts 3]
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
CONFIGS = ("mini-formulas", "small-values", "small-params", "small-formulas", "small-parts")
SHORT_PROMPT = "To be, or not to be, that is the question:"  # 12 tokens: fits capacity 16
CAPACITY = 16


def run_one(
    name: str,
    out_dir: Path,
    recalc: bool,
    part: float,
    small_cells: list[str] | None = None,
    parts: str = "3",
) -> dict[str, object]:
    from _gpt2_small import ensure_model, peak_rss_mb

    import cellgpt
    from cellgpt.export.xlsx import export_workbook

    root = Path(__file__).resolve().parent.parent
    workbook = root / "workbooks" / "gpt2.py"
    model = "gpt2-mini" if name == "mini-formulas" else str(ensure_model()[1])
    prompt = SHORT_PROMPT if name in ("small-formulas", "small-parts") else PROMPT
    wb = cellgpt.open(workbook, model=model, prompt=prompt)
    wb.run()
    if name == "small-parts":
        return _export_parts(wb, out_dir, parts)
    cells = small_cells if name == "small-formulas" else None
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
        mode="formulas" if name.endswith("-formulas") else "values",
        with_params=name == "small-params",
        cells=cells,
        capacity=CAPACITY if name == "small-formulas" else None,
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
    if name == "small-formulas":
        result["cells"] = cells or "all"
        if recalc and cells:  # the parent measures LibreOffice; no logits to compare
            result["workbook"] = str(path)
        elif recalc:  # the parent recalculates it (its own peak RSS) and compares
            settings = {"model": model, "prompt": prompt}
            _save_reference(wb, report.plan, out_dir, workbook, settings)
            result["workbook"] = str(path)
        return result
    if recalc and name == "mini-formulas":
        from cellgpt.export.recalc import recalculate

        start = time.perf_counter()
        recalculate(path, out_dir / "recalculated")
        result["libreoffice_recalc_seconds"] = round(time.perf_counter() - start, 1)
    path.unlink()
    return result


def _export_parts(wb: object, out_dir: Path, parts: str) -> dict[str, object]:
    from _gpt2_small import peak_rss_mb

    from cellgpt.export.split import export_parts

    start = time.perf_counter()
    reports = export_parts(wb, out_dir / "small.xlsx", parts, capacity=CAPACITY)  # type: ignore[arg-type]
    return {
        "config": "small-parts",
        "tokens": len(wb.value("tokens")),  # type: ignore[attr-defined]
        "seconds": round(time.perf_counter() - start, 1),
        "peak_rss_mb": round(peak_rss_mb()),
        "parts": [
            {
                "part": r.plan.part.title(),
                "numbers": r.numbers,
                "sheets": r.sheets,
                "formula_cells": r.formulas,
                "seconds": round(r.seconds, 1),
                "mb": round(r.bytes / 1e6, 1),
                "workbook": str(r.path),
            }
            for r in reports
        ],
    }


def recalc_parts(result: dict[str, object], out_dir: Path) -> None:
    """Each part opened and recalculated by LibreOffice on its own (Summary as CSV), under
    /usr/bin/time -v; one at a time, deleted after, so their peaks are their own."""
    for k, part in enumerate(result["parts"]):  # type: ignore[union-attr]
        timing = out_dir / f"time{k}.txt"
        path = Path(part.pop("workbook"))
        print(f"LibreOffice: {part['part']} (load average {os.getloadavg()}) ...", flush=True)
        start = time.perf_counter()
        csv_dir = out_dir / f"csv{k}"
        csv_dir.mkdir()
        summary = _summary_csv(path, csv_dir, ["/usr/bin/time", "-v", "-o", str(timing)])
        part["libreoffice_recalc_seconds"] = round(time.perf_counter() - start, 1)
        for line in timing.read_text().splitlines():
            if "Maximum resident set size" in line:
                part["libreoffice_peak_rss_mb"] = round(int(line.split()[-1]) / 1024)
        part["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        part["summary"] = summary
        path.unlink()


def _save_reference(
    wb: object, plan: object, out_dir: Path, workbook: Path, settings: dict[str, str]
) -> None:
    """The engine's logits (float32 run, and float64 on the sheet's parameter text) and the
    logits sheet's placement, for the parent's comparison after LibreOffice."""
    import pickle

    import numpy as np

    entry = plan.entry("logits")  # type: ignore[attr-defined]
    np.savez(
        out_dir / "reference.npz",
        logits32=np.asarray(wb["logits"], dtype=np.float64),  # type: ignore[index]
        logits64=_float64_logits(workbook, settings),
        next_token=int(wb["next_token"]),  # type: ignore[index]
    )
    (out_dir / "logits.placement").write_bytes(pickle.dumps(entry.placement))


def _float64_logits(workbook: Path, settings: dict[str, str]) -> object:
    """Logits in float64 from each parameter's shortest float32 text read as float64 (what
    LibreOffice reads from the file), with float64 GELU constants like the sheet's."""
    import math

    import numpy as np

    from cellgpt.api import full_library
    from cellgpt.engine import core
    from cellgpt.engine import load_workbook as load_workbook_file
    from cellgpt.weights.floatfmt import format_bytes

    def gelu64(x: object) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))

    library = full_library()
    library.register("gelu", gelu64, rows=core["gelu"].rows)
    ref = load_workbook_file(workbook, library, settings)
    for name in ref.cells():
        if ref.cell(name).hints.get("kind") == "param":
            flat = np.asarray(ref[name], dtype=np.float32).reshape(-1)
            out = np.empty(flat.size, dtype=np.float64)
            for a in range(0, flat.size, 1 << 22):  # bounded memory for the text
                text = format_bytes(flat[a : a + (1 << 22)], 1).split(b"\n")[:-1]
                out[a : a + len(text)] = np.array(text).astype(np.float64)
            ref.pin(name, out.reshape(np.shape(ref[name])))
    ref.run("logits")
    return np.asarray(ref.value("logits"), dtype=np.float64)


def _summary_csv(src: Path, out_dir: Path, prefix: list[str]) -> dict[str, str]:
    """LibreOffice opens `src` (recalculating every formula) and writes only its Summary
    sheet (the 2nd) as CSV: what opening the file costs, without the xlsx export filter,
    which holds a record per saved cell."""
    import csv
    import subprocess
    from tempfile import TemporaryDirectory

    from cellgpt.export.recalc import _PROFILE, soffice_path

    with TemporaryDirectory(prefix="cellgpt-lo-") as profile:
        (Path(profile) / "user").mkdir()
        (Path(profile) / "user" / "registrymodifications.xcu").write_text(_PROFILE)
        filt = "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,false,false,false,2"
        cmd = [*prefix, soffice_path(), f"-env:UserInstallation={Path(profile).as_uri()}"]
        cmd += ["--headless", "--norestore", "--convert-to", filt, "--outdir", str(out_dir)]
        subprocess.run([*cmd, str(src)], check=True, capture_output=True, timeout=4 * 3600)
    found = next(out_dir.glob("*.csv"))
    with found.open(encoding="utf-8") as handle:
        return {row[0]: row[1] for row in csv.reader(handle) if len(row) >= 2}


def recalc_small(result: dict[str, object], out_dir: Path, summary_only: bool = False) -> None:
    """LibreOffice recalculates the small-formulas workbook under /usr/bin/time -v; its next
    token and logits are read back and compared with the engine's (with `summary_only`, only
    the Summary sheet is written, as CSV: its next token and "same as cellgpt?")."""
    import pickle

    import numpy as np
    from openpyxl import load_workbook

    from cellgpt.export.recalc import read_array, recalculate

    timing = out_dir / "time.txt"
    print(f"LibreOffice recalculating (load average {os.getloadavg()}) ...", flush=True)
    start = time.perf_counter()
    timed = ["/usr/bin/time", "-v", "-o", str(timing)]
    if summary_only:
        result["libreoffice_output"] = "Summary sheet as CSV (open + recalculate, no xlsx save)"
        summary = _summary_csv(Path(str(result.pop("workbook"))), out_dir / "csv", timed)
    else:
        result["libreoffice_output"] = "xlsx (open + recalculate + save)"
        out = recalculate(
            str(result.pop("workbook")), out_dir / "recalculated", timeout=4 * 3600, prefix=timed
        )
    result["libreoffice_recalc_seconds"] = round(time.perf_counter() - start, 1)
    for line in timing.read_text().splitlines():
        if "Maximum resident set size" in line:
            result["libreoffice_peak_rss_mb"] = round(int(line.split()[-1]) / 1024)
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    if summary_only:
        result["summary"] = summary
        return
    result["recalculated_mb"] = round(out.stat().st_size / 1e6, 1)
    if not (out_dir / "reference.npz").exists():  # a part of the workbook: nothing to compare
        return
    ref = np.load(out_dir / "reference.npz")
    placement = pickle.loads((out_dir / "logits.placement").read_bytes())  # our own file
    book = load_workbook(out, read_only=True, data_only=True)
    got = read_array(book, placement, ref["logits64"].shape)
    summary = {r[0]: r[1] for r in book["Summary"].iter_rows(values_only=True) if r and r[0]}
    result["next_token_sheet"] = summary.get("next token id (this workbook's formula)")
    result["next_token_engine"] = int(ref["next_token"])
    result["max_abs_logit_diff_vs_float64_engine"] = float(np.max(np.abs(got - ref["logits64"])))
    result["max_abs_logit_diff_vs_float32_engine"] = float(np.max(np.abs(got - ref["logits32"])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    parser.add_argument("--recalc", action="store_true", help="also time LibreOffice recalc")
    parser.add_argument("--params-part", type=float, default=1.0, metavar="F")
    parser.add_argument("--small-cells", nargs="+", metavar="PATTERN")
    parser.add_argument("--parts", default="3", help="small-parts: K or block ranges 0-5,6-11")
    parser.add_argument(
        "--summary-csv",
        action="store_true",
        help="small-formulas: LibreOffice writes only the Summary sheet (CSV), not an xlsx",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        found = run_one(
            args.child, args.out, args.recalc, args.params_part, args.small_cells, args.parts
        )
        print(json.dumps(found))
        return
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        for name in args.only:
            print(f"{name}: load average {os.getloadavg()}", flush=True)
            cmd = [sys.executable, __file__, "--child", name, "--out", tmp]
            cmd += ["--params-part", str(args.params_part)] + (["--recalc"] if args.recalc else [])
            cmd += ["--small-cells", *args.small_cells] if args.small_cells else []
            cmd += ["--parts", args.parts]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(f"{name}: failed\n{done.stderr}")
                continue
            line = done.stdout.strip().splitlines()[-1]
            if name == "small-parts" and args.recalc:
                result = json.loads(line)
                recalc_parts(result, Path(tmp))
                line = json.dumps(result)
            if name == "small-formulas" and args.recalc:
                result = json.loads(line)
                recalc_small(result, Path(tmp), args.summary_csv)
                line = json.dumps(result)
            print(line, flush=True)


if __name__ == "__main__":
    main()
