"""Row-incremental generation for the GPT-2 workbook (a KV cache by another name).

GPT-2 is causal: appending a token leaves every earlier row of every stage unchanged. This
module tells the engine, cell by cell, how to compute only the new rows (see
cellgpt/engine/append.py): row-wise cells cut their row inputs down to the new rows; the
attention cells take the new queries against *all* keys and values, and the old rows of
the scores/pattern matrices are padded with a masked column (-inf / 0). The scores are
evictable (no previous value to extend): the engine keeps just their new rows, which is all
the pattern's extender cuts from them.

An extender is installed only for a cell whose formula still uses the functions it was
written for; the engine also drops it as soon as the formula is edited, so an ablation such
as `zero_head(softmax(h1.attn.scores), 2)` simply recomputes that cell in full (and the cells
after it resume appending as soon as their inputs only grew again).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cellgpt.engine import Workbook
from cellgpt.engine.append import RowExtender


@dataclass(frozen=True)
class Spec:
    functions: frozenset[str]  # the formula may call only these
    cut: dict[str, int]  # inputs cut to their new rows, and along which axis
    axis: int = 0  # along which axis the new rows join
    whole: tuple[str, ...] = ()  # grown inputs read whole (causal: all keys / values)
    pad: float | None = None  # old rows' value in the new columns


def _spec(functions: str, cut: dict[str, int], **kw: object) -> Spec:
    return Spec(frozenset(functions.split()), cut, **kw)  # type: ignore[arg-type]


# Block cells, by their name inside the block (inputs too; `{b}` is the block's prefix).
BLOCK: dict[str, Spec] = {
    "ln_1": _spec("layer_norm", {"resid_pre": 0}),
    "qkv": _spec("matmul", {"ln_1": 0}),
    "q": _spec("split_heads", {"qkv": 0}, axis=1),
    "k": _spec("split_heads", {"qkv": 0}, axis=1),
    "v": _spec("split_heads", {"qkv": 0}, axis=1),
    "attn.scores": _spec("attention_scores", {"q": 1}, axis=1, whole=("k",), pad=-math.inf),
    "attn.pattern": _spec("softmax", {"attn.scores": 1}, axis=1, pad=0.0),
    "attn.z": _spec("merge_heads matmul", {"attn.pattern": 1}, whole=("v",)),
    "attn.out": _spec("matmul", {"attn.z": 0}),
    "resid_mid": _spec("", {"resid_pre": 0, "attn.out": 0}),
    "ln_2": _spec("layer_norm", {"resid_mid": 0}),
    "mlp.fc": _spec("matmul", {"ln_2": 0}),
    "mlp.gelu": _spec("gelu", {"mlp.fc": 0}),
    "mlp.out": _spec("matmul", {"mlp.gelu": 0}),
    "resid_post": _spec("", {"resid_mid": 0, "mlp.out": 0}),
}
# Cells outside the blocks.
TOP: dict[str, Spec] = {
    "wte_rows": _spec("embed_tokens", {"token_ids": 0}),
    "embed": _spec("", {"wte_rows": 0, "wpe_rows": 0}),
    "ln_f": _spec("layer_norm", {"h.out": 0}),
    "logits_all": _spec("matmul transpose", {"ln_f": 0}),
}


def install_extenders(wb: Workbook) -> int:
    """Register row-append variants on the workbook's GPT-2 cells; returns how many."""
    count = 0
    for name in wb.cells():
        cell = wb.cell(name)
        if cell.formula is None or cell.pinned:
            continue
        block, _, local = name.partition(".")
        if cell.template is not None and local in BLOCK:
            spec, qualify = BLOCK[local], (lambda ref, b=block: f"{b}.{ref}")
        elif name in TOP:
            spec, qualify = TOP[name], (lambda ref: ref)
        else:
            continue
        cut = {qualify(ref): axis for ref, axis in spec.cut.items()}
        whole = frozenset(qualify(ref) for ref in spec.whole)
        refs = set(wb.precedents(name))
        if not set(cell.formula.functions) <= spec.functions or not (set(cut) | whole) <= refs:
            wb.set_extender(name, None)
            continue
        wb.set_extender(name, RowExtender(cut, spec.axis, whole, spec.pad))
        count += 1
    return count
