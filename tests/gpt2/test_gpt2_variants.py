"""The worked example of function cells, workbooks/gpt2_variants.py: GPT-2 with RMSNorm and a
ReLU MLP swapped into block 0. Its logits equal Hugging Face's GPT2LMHeadModel with the same
two modules swapped by hand (an independent reference), its other statements are exactly the
GPT-2 workbook's (so the copy cannot drift), and generation still works after the swap."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import cellgpt
from cellgpt.engine import Status
from cellgpt.engine.workbook_file import parse_text

REPO = Path(__file__).resolve().parents[2]
VARIANTS = REPO / "workbooks" / "gpt2_variants.py"
GPT2 = REPO / "workbooks" / "gpt2.py"
SWAPPED = {"h0.ln_1", "h0.ln_2", "h0.mlp.out"}


class _RMSNorm(torch.nn.Module):
    """RMSNorm written in torch, with the gain of the layer norm it replaces."""

    def __init__(self, ln: torch.nn.LayerNorm) -> None:
        super().__init__()
        self.weight, self.eps = ln.weight, ln.eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + self.eps) * self.weight


def _swapped_hf(model: Any) -> Any:
    swapped = copy.deepcopy(model)
    block = swapped.transformer.h[0]
    block.ln_1, block.ln_2 = _RMSNorm(block.ln_1), _RMSNorm(block.ln_2)
    block.mlp.act = torch.nn.ReLU()
    return swapped


def test_the_variant_equals_hf_with_the_same_modules_swapped(
    hf_tiny: Any, params_tiny_dir: Path
) -> None:
    wb = cellgpt.open(VARIANTS, model=str(params_tiny_dir), prompt="Hello there, general Kenobi")
    wb.run()
    assert all(wb.status(n) == Status.FRESH for n in wb.cells() if n != "logits_all")
    assert {n for n in wb.cells() if wb.cell(n).overridden} == SWAPPED
    ids = list(wb["token_ids"])
    with torch.no_grad():
        ours_ref = _swapped_hf(hf_tiny.model)(torch.tensor([ids])).logits[0, -1].numpy()
        plain = hf_tiny.model(torch.tensor([ids])).logits[0, -1].numpy()
    np.testing.assert_allclose(wb["logits"], ours_ref, atol=2e-4, rtol=1e-4)
    assert np.abs(ours_ref - plain).max() > 1e-2  # the swap changes the prediction
    # block 0's parts, by hand in numpy
    x, w = wb["h0.resid_pre"].astype(np.float64), wb["h0.ln_1.weight"]
    rms = x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-5) * w
    np.testing.assert_allclose(wb["h0.ln_1"], rms, rtol=1e-5, atol=1e-6)


def test_generation_runs_through_the_swapped_block(hf_tiny: Any, params_tiny_dir: Path) -> None:
    wb = cellgpt.open(VARIANTS, model=str(params_tiny_dir), prompt="ROMEO: But soft")
    ids = list(wb["prompt_ids"])
    ours = cellgpt.generate(wb, 5, greedy=True)
    with torch.no_grad():
        ref = _swapped_hf(hf_tiny.model).generate(
            torch.tensor([ids]), max_new_tokens=5, do_sample=False, pad_token_id=0
        )
    assert ours == ref[0, len(ids) :].tolist()
    # relu_mlp's body is row-wise (matmul, relu): the cell calling it computes only each new
    # token's row, derived through the function cell's body
    assert type(wb.extender("h0.mlp.out")).__name__ == "DerivedRows"


def test_everything_but_the_swap_is_the_gpt2_workbook() -> None:
    variants = parse_text(VARIANTS.read_text(), str(VARIANTS))
    gpt2 = parse_text(GPT2.read_text(), str(GPT2))
    assert [s.name for s, _, _ in variants.functions] == ["rms_norm", "relu_mlp"]
    mine = {s.name: (s.formula, s.doc, s.hints) for s, _, _ in variants.cells}
    theirs = {s.name: (s.formula, s.doc, s.hints) for s, _, _ in gpt2.cells}
    assert set(mine) - set(theirs) == SWAPPED
    assert {n: mine[n] for n in theirs} == theirs
    assert [t for t, _, _ in variants.templates] == [t for t, _, _ in gpt2.templates]


@pytest.mark.parametrize("name", sorted(SWAPPED))
def test_the_swapped_cells_call_the_function_cells(name: str) -> None:
    wb = cellgpt.open(VARIANTS, prompt="Hi")
    assert wb.cell(name).formula is not None
    assert set(wb.cell(name).formula.functions) & {"rms_norm", "relu_mlp"}
    assert name in wb.function_callers("rms_norm") | wb.function_callers("relu_mlp")
