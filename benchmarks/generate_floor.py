"""What a generated token costs beyond its numbers: cellgpt's replayed token beside the same
token written without cells, at GPT-2 small shapes, interleaved with the fair protocol
(_fair.py), per-token medians of the replayed tokens (the 3rd on; the prompt's pass and the
recorded 2nd token are left out on every side).

Sides, each greedy from the same prompt with a KV cache (the cells' `k`, `v`):
- cell:    `generate(wb, n)` on workbooks/gpt2.py (replay groups on);
- library: the library functions the block's formulas name, called one after the other
           (normalize, matmul, split_heads, attention_scores, softmax, merge_heads, gelu),
           no cells: what the formulas' arithmetic costs as this library computes it;
- numpy:   the same token as plain numpy calls, its products through the same BLAS (MKL when
           installed): the floor for Python on this machine.

    python benchmarks/generate_floor.py [--prompt 8] [--new 40] [--repeats 5] [--strict]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _fair
from _gpt2_small import DEFAULT_DIR, ensure_model

ROOT = Path(__file__).resolve().parent.parent
VOCAB, N_HEAD, D_HEAD = 50257, 12, 64


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompt", type=int, default=8, help="prompt length in tokens")
    parser.add_argument("--new", type=int, default=40, help="new tokens per generation")
    parser.add_argument("--repeats", type=int, default=5, help="kept rounds")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="model scratch folder")
    _fair.add_arguments(parser)
    args = parser.parse_args()
    _, csv_dir = ensure_model(args.dir)
    with _fair.busy_loop(args.busy):
        machine = _fair.Machine(busy=args.busy)
        rounds = measure(args, csv_dir, machine)
        status = machine.report(args.strict)
    print("\n| side | ms a token | / numpy |\n|---|---:|---:|")
    for side in ("cell", "library", "numpy"):
        ms = rounds.median(side) * 1e3
        print(f"| {side} | {ms:.1f} | {rounds.ratio(side, 'numpy'):.2f} |")
    return status


def measure(args: argparse.Namespace, csv_dir: Path, machine: _fair.Machine) -> _fair.Rounds:
    import cellgpt
    from cellgpt.gpt2.generate import generate
    from cellgpt.weights.params import load_params

    weights = load_params(csv_dir).tensors
    wb = cellgpt.open(ROOT / "workbooks" / "gpt2.py", model=str(csv_dir), prompt="x")
    wb.run("next_token")
    print(f"GPT-2 small shapes; prompt {args.prompt} tokens, {args.new} new; load average now "
          f"{_fair.fmt_load(machine.before)}", flush=True)  # fmt: skip

    def cell(ids: list[int]) -> _fair.Measured:
        wb.set("generated", [])
        wb.pin("prompt_ids", [(ids[0] + 1) % VOCAB])  # no rows shared with the last run
        wb.run("token_ids")
        wb.pin("prompt_ids", ids)
        stamps: list[float] = []
        out = generate(wb, args.new, on_token=lambda _t: stamps.append(time.perf_counter()))
        return _fair.Measured(statistics.median(np.diff(stamps[2:])), out)

    def make_round(r: int) -> dict[str, _fair.Side]:
        ids = [int(i) for i in np.random.default_rng(r).integers(0, VOCAB, args.prompt)]
        return {
            "cell": _fair.Side(lambda: cell(ids)),
            "library": _fair.Side(lambda: by_hand(weights, ids, args.new, library_block)),
            "numpy": _fair.Side(lambda: by_hand(weights, ids, args.new, numpy_block)),
        }

    def check(ids: dict[str, list[int]]) -> None:
        if len({tuple(v) for v in ids.values()}) != 1:  # other float orders: a near tie
            print(f"  note: ids differ between sides: {ids}", flush=True)

    return _fair.run_rounds(make_round, args.repeats, machine, pause=args.pause, check=check)


Block = Callable[[dict[str, np.ndarray], str, np.ndarray, list[Any]], np.ndarray]


def by_hand(
    weights: dict[str, np.ndarray], ids: list[int], n_new: int, block: Block
) -> _fair.Measured:
    """Greedy generation written out (prompt one token at a time, a list of keys and
    values per block); the median seconds of the tokens after the 2nd new one, the ids."""
    from cellgpt.engine import functions as fn
    from cellgpt.engine.parallel import one_row_steps

    caches: list[list[Any]] = [[None, None] for _ in range(12)]
    out: list[int] = []
    stamps: list[float] = []
    with one_row_steps():
        token = ids[0]
        for pos in range(len(ids) + n_new - 1):
            x = weights["wte.weight"][token : token + 1] + weights["wpe.weight"][pos : pos + 1]
            for i in range(12):
                x = block(weights, f"h.{i}.", x, caches[i])
            h = fn.normalize(x, 1e-5) * weights["ln_f.weight"] + weights["ln_f.bias"]
            logits = fn.matmul(h[-1], weights["wte.weight"].T)
            if pos + 1 < len(ids):
                token = ids[pos + 1]
                continue
            token = int(np.argmax(logits))
            out.append(token)
            stamps.append(time.perf_counter())
    return _fair.Measured(statistics.median(np.diff(stamps[2:])), out)


def _extend(cache: list[Any], slot: int, rows: np.ndarray) -> np.ndarray:
    from cellgpt.engine.append import join_rows

    cache[slot] = rows if cache[slot] is None else join_rows(cache[slot], rows, 1, None)
    return cache[slot]


def library_block(w: dict[str, np.ndarray], p: str, x: np.ndarray, cache: list[Any]) -> Any:
    from cellgpt.engine import functions as fn
    from cellgpt.gpt2 import functions as g

    h = fn.normalize(x, 1e-5) * w[p + "ln_1.weight"] + w[p + "ln_1.bias"]
    qkv = fn.matmul(h, w[p + "attn.c_attn.weight"]) + w[p + "attn.c_attn.bias"]
    q = g.split_heads(qkv, 0, N_HEAD)
    k = _extend(cache, 0, g.split_heads(qkv, 1, N_HEAD))
    v = _extend(cache, 1, g.split_heads(qkv, 2, N_HEAD))
    z = g.merge_heads(fn.matmul(fn.softmax(g.attention_scores(q, k)), v))
    mid = x + (fn.matmul(z, w[p + "attn.c_proj.weight"]) + w[p + "attn.c_proj.bias"])
    h = fn.normalize(mid, 1e-5) * w[p + "ln_2.weight"] + w[p + "ln_2.bias"]
    fc = fn.gelu(fn.matmul(h, w[p + "mlp.c_fc.weight"]) + w[p + "mlp.c_fc.bias"])
    return mid + (fn.matmul(fc, w[p + "mlp.c_proj.weight"]) + w[p + "mlp.c_proj.bias"])


def _ln(x: np.ndarray, gain: np.ndarray, bias: np.ndarray) -> np.ndarray:
    centred = x - np.add.reduce(x, axis=-1, keepdims=True) / x.shape[-1]
    var = np.add.reduce(centred * centred, axis=-1, keepdims=True) / x.shape[-1]
    return centred / np.sqrt(var + np.float32(1e-5)) * gain + bias


def numpy_block(w: dict[str, np.ndarray], p: str, x: np.ndarray, cache: list[Any]) -> Any:
    from cellgpt.engine.kernels import matmul  # the same BLAS as the cells' products

    qkv = matmul(_ln(x, w[p + "ln_1.weight"], w[p + "ln_1.bias"]), w[p + "attn.c_attn.weight"])
    qkv += w[p + "attn.c_attn.bias"]
    q, k, v = (qkv[:, j * 768 : (j + 1) * 768].reshape(N_HEAD, 1, D_HEAD) for j in range(3))
    keys, values = _extend(cache, 0, k), _extend(cache, 1, v)
    s = np.matmul(q, keys.transpose(0, 2, 1)) * np.float32(0.125)
    s -= s.max(-1, keepdims=True)
    np.exp(s, out=s)
    s /= s.sum(-1, keepdims=True)
    z = np.matmul(s, values).reshape(1, 768)
    mid = x + (matmul(z, w[p + "attn.c_proj.weight"]) + w[p + "attn.c_proj.bias"])
    f = matmul(_ln(mid, w[p + "ln_2.weight"], w[p + "ln_2.bias"]), w[p + "mlp.c_fc.weight"])
    f += w[p + "mlp.c_fc.bias"]
    g = np.float32(0.5) * f * (1 + np.tanh(np.float32(0.7978846) * (f + 0.044715 * f * f * f)))
    return mid + (matmul(g, w[p + "mlp.c_proj.weight"]) + w[p + "mlp.c_proj.bias"])


if __name__ == "__main__":
    sys.exit(main())
