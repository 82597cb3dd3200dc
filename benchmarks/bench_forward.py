"""Forward pass at GPT-2 small shapes, prompt ids → the last position's logits: the cell graph
(workbooks/gpt2.py, the `logits` cell) against PyTorch doing the same work, timed with the
shared fair protocol (_fair.py: one process, interleaved rounds in alternating order, an idle
pause before each side, the median of per-round ratios, the load reported).

    python benchmarks/bench_forward.py [--tokens 6,64,256,1024] [--repeats 7] [--strict] [--busy]

Sides:
- cell:   cellgpt, `wb.pin("prompt_ids", ids); wb.run("logits")` (the weights are loaded once),
          its products in MKL when the `mkl` extra is installed (cellgpt/engine/mkl_blas.py);
- cell-ob: the same with CELLGPT_BLAS=numpy (numpy's OpenBLAS, as without the extra); only
          when MKL is in use;
- torch:  HF GPT2LMHeadModel, SDPA attention, torch.inference_mode(), 2 threads,
          logits_to_keep=1, use_cache=False: the same work as the `logits` cell (headline);
- torch1: the same with torch.set_num_threads(1) (restored afterwards);
- numpy:  the plain numpy reference (cellgpt/gpt2/reference.py; it computes the logits of
          every position, so it does more work than the others).
Peak RSS (VmHWM) of one forward, for cellgpt and for torch, each in a fresh subprocess.
Random weights (built once, see _gpt2_small.py): they run at the speed of real ones.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _fair
from _gpt2_small import DEFAULT_DIR, ensure_model, peak_rss_mb

ROOT = Path(__file__).resolve().parent.parent
WORKBOOK = ROOT / "workbooks" / "gpt2.py"
VOCAB = 50257
MAX_DIFF = 1e-3  # |cell − torch| bound on the logits; float32 sums in another order


def open_workbook(csv_dir: Path) -> Any:
    import cellgpt

    wb = cellgpt.open(WORKBOOK, model=str(csv_dir), prompt="x")
    wb.run("logits")  # weights, tokenizer and parameter cells: loaded once, not timed
    return wb


def cell_forward(wb: Any, ids: list[int]) -> np.ndarray:
    wb.pin("prompt_ids", ids)  # everything from token_ids on goes stale
    return np.asarray(wb.run("logits"))


def load_torch(hf_dir: Path, threads: int) -> Any:
    import torch
    from transformers import GPT2LMHeadModel

    torch.set_num_threads(threads)
    return GPT2LMHeadModel.from_pretrained(hf_dir, attn_implementation="sdpa").eval()


def cell_forward_openblas(wb: Any, ids: list[int]) -> np.ndarray:
    """cell_forward with the products in numpy's OpenBLAS (what a user without MKL runs)."""
    from cellgpt.engine import mkl_blas

    before = os.environ.get(mkl_blas.ENV)
    os.environ[mkl_blas.ENV] = "numpy"
    try:
        return cell_forward(wb, ids)
    finally:
        if before is None:
            del os.environ[mkl_blas.ENV]
        else:
            os.environ[mkl_blas.ENV] = before


def torch_forward(model: Any, ids: list[int]) -> np.ndarray:
    """The last position's logits, nothing more: no cache, no other rows, no autograd."""
    import torch

    with torch.inference_mode():
        out = model(torch.tensor([ids]), logits_to_keep=1, use_cache=False)
    return out.logits[0, -1].numpy()


def prompt_ids(n: int, round_: int = 0) -> list[int]:
    return [int(i) for i in np.random.default_rng((n, round_)).integers(0, VOCAB, n)]


def rss_child(side: str, hf_dir: Path, csv_dir: Path, n: int, threads: int) -> None:
    """In a fresh subprocess: 'loaded peak' RSS in MiB, after loading and after one forward."""
    if side == "cell":  # torch is never imported here
        wb = open_workbook(csv_dir)
        before = peak_rss_mb()
        cell_forward(wb, prompt_ids(n))
    else:
        model = load_torch(hf_dir, threads)
        before = peak_rss_mb()
        torch_forward(model, prompt_ids(n))
    print(f"{before:.0f} {peak_rss_mb():.0f}")


def peak_rss(side: str, args: argparse.Namespace, n: int) -> tuple[int, int]:
    out = subprocess.run(
        [sys.executable, __file__, "--dir", str(args.dir), "--threads", str(args.threads),
         "--rss-child", str(n), "--rss-side", side],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return int(out[-2]), int(out[-1])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", default="6,64,256,1024")
    parser.add_argument("--repeats", type=int, default=7, help="kept rounds per length")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (headline side)")
    parser.add_argument("--no-numpy", action="store_true", help="skip the numpy reference")
    parser.add_argument("--no-rss", action="store_true", help="skip the peak RSS subprocesses")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="model scratch folder")
    parser.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rss-side", choices=["cell", "torch"], help=argparse.SUPPRESS)
    _fair.add_arguments(parser)
    args = parser.parse_args()
    hf_dir, csv_dir = ensure_model(args.dir)
    if args.rss_child:
        rss_child(args.rss_side, hf_dir, csv_dir, args.rss_child, args.threads)
        return 0
    with _fair.busy_loop(args.busy):
        machine = _fair.Machine(busy=args.busy)
        rows = measure(args, hf_dir, csv_dir, machine)
        status = machine.report(args.strict)
    print_table(rows, args)
    return status


def measure(
    args: argparse.Namespace, hf_dir: Path, csv_dir: Path, machine: _fair.Machine
) -> list[dict[str, Any]]:
    import torch

    from cellgpt.engine import mkl_blas
    from cellgpt.engine.parallel import WORKERS
    from cellgpt.gpt2.reference import reference_forward
    from cellgpt.weights.params import load_params

    model = load_torch(hf_dir, args.threads)
    params = load_params(csv_dir)
    wb = open_workbook(csv_dir)
    lengths = [int(t) for t in args.tokens.split(",")]
    mkl = mkl_blas.backend() == "mkl"
    args.openblas_side = mkl
    print(
        f"GPT-2 small shapes, random weights; torch {torch.__version__} (SDPA, inference_mode, "
        f"logits_to_keep=1, use_cache=False), numpy {np.__version__}, cellgpt workers "
        f"{WORKERS}, cellgpt products in {'MKL (cell-ob: OpenBLAS)' if mkl else 'OpenBLAS'}; "
        f"{args.repeats} rounds + 1 warm-up, pause {args.pause} s; load average now "
        f"{_fair.fmt_load(machine.before)}",
        flush=True,
    )

    def threads(n: int) -> Callable[[], None]:
        return lambda: torch.set_num_threads(n)

    rows = []
    for n in lengths:
        worst = [0.0]

        def make_round(r: int, n: int = n) -> dict[str, _fair.Side]:
            ids = prompt_ids(n, r)
            sides = {
                "cell": _fair.Side(lambda: cell_forward(wb, ids)),
                "torch": _fair.Side(lambda: torch_forward(model, ids), threads(args.threads)),
                "torch1": _fair.Side(lambda: torch_forward(model, ids), threads(1)),
            }
            if mkl:
                sides["cell-ob"] = _fair.Side(lambda: cell_forward_openblas(wb, ids))
            if not args.no_numpy:
                sides["numpy"] = _fair.Side(lambda: reference_forward(params, ids)[-1])
            return sides

        def check(out: dict[str, Any], worst: list[float] = worst) -> None:
            diffs = [float(np.max(np.abs(out["cell"] - out[k]))) for k in out if k != "cell"]
            worst[0] = max(worst[0], *diffs)

        rounds = _fair.run_rounds(make_round, args.repeats, machine, pause=args.pause, check=check)
        torch.set_num_threads(args.threads)
        row: dict[str, Any] = {"n": n, "diff": worst[0], "rounds": rounds}
        if not args.no_rss:
            row["rss_cell"] = peak_rss("cell", args, n)
            row["rss_torch"] = peak_rss("torch", args, n)
        rows.append(row)
        med = {k: rounds.median(k) * 1e3 for k in ("cell", "cell-ob", "torch", "torch1", "numpy")
               if k in rounds.times}  # fmt: skip
        print(
            f"  {n:5d} tokens: "
            + "  ".join(f"{k} {v:7.1f} ms" for k, v in med.items())
            + f"  cell/torch {rounds.ratio('cell', 'torch'):.2f}"
            + (f"  cell-ob/torch {rounds.ratio('cell-ob', 'torch'):.2f}" if mkl else "")
            + f"  max|Δ| {worst[0]:.1e}"
            + (
                f"  peak RSS (loaded→peak) cell {row['rss_cell'][0]}→{row['rss_cell'][1]} MiB, "
                f"torch {row['rss_torch'][0]}→{row['rss_torch'][1]} MiB"
                if "rss_cell" in row
                else ""
            ),
            flush=True,
        )
        if worst[0] > MAX_DIFF:
            raise SystemExit(f"logits differ from torch's by {worst[0]:.1e} at {n} tokens")
    return rows


def print_table(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    numpy = not args.no_numpy
    rss = not args.no_rss
    ob = getattr(args, "openblas_side", False)
    head = ["tokens", "cellgpt ms"] + ["cellgpt (OpenBLAS) ms"] * ob
    head += [f"torch {args.threads}T ms", "torch 1T ms"]
    head += ["numpy ref ms"] * numpy
    head += [f"cellgpt / torch {args.threads}T", "cellgpt / torch 1T"]
    head += [f"cellgpt (OpenBLAS) / torch {args.threads}T"] * ob
    head += ["cellgpt / numpy"] * numpy + ["max abs Δ"]
    head += ["peak RSS cellgpt MiB", "peak RSS torch MiB"] * rss
    print()
    print("| " + " | ".join(head) + " |")
    print("|" + "---:|" * len(head))
    for row in rows:
        r: _fair.Rounds = row["rounds"]
        sides = ("cell", "cell-ob", "torch", "torch1") if ob else ("cell", "torch", "torch1")
        cells = [str(row["n"])] + [f"{r.median(k) * 1e3:.0f}" for k in sides]
        cells += [f"{r.median('numpy') * 1e3:.0f}"] if numpy else []
        cells += [f"{r.ratio('cell', 'torch'):.2f}", f"{r.ratio('cell', 'torch1'):.2f}"]
        cells += [f"{r.ratio('cell-ob', 'torch'):.2f}"] if ob else []
        cells += [f"{r.ratio('cell', 'numpy'):.2f}"] if numpy else []
        cells += [f"{row['diff']:.0e}"]
        cells += [str(row["rss_cell"][1]), str(row["rss_torch"][1])] if rss else []
        print("| " + " | ".join(cells) + " |")
    print(
        "\nratios: median over rounds of (cellgpt time / other time in the same round); "
        "above 1 = cellgpt slower"
    )


if __name__ == "__main__":
    sys.exit(main())
