"""Whole-model gradients of the bundled gpt2-mini's next-token cross-entropy (the workbook's
`loss` and `grad.*` cells) against PyTorch autograd through Hugging Face's GPT2LMHeadModel
with the same weights; and the attribution cells against autograd on the input embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

import cellgpt
from cellgpt.engine import CellError, Status

WORKBOOK = Path(__file__).resolve().parents[2] / "workbooks" / "gpt2.py"
PROMPT = "Mike is quick. He moves fast and he never stops to look back."
REL_TOL = 1e-4


@pytest.fixture(scope="module")
def opened() -> cellgpt.engine.Workbook:
    return cellgpt.open(WORKBOOK, model="gpt2-mini", prompt=PROMPT)


@pytest.fixture(scope="module")
def hf(opened) -> GPT2LMHeadModel:
    weights = opened["weights"]
    cfg = weights.config
    model = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=cfg.vocab_size,
            n_positions=cfg.n_ctx,
            n_embd=cfg.n_embd,
            n_layer=cfg.n_layer,
            n_head=cfg.n_head,
            layer_norm_epsilon=cfg.layer_norm_epsilon,
            attn_implementation="eager",
        )
    )
    state = {f"transformer.{k}": torch.tensor(np.array(weights[k])) for k in _param_keys(cfg)}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all(".attn.bias" in m or m == "lm_head.weight" for m in missing)
    return model.eval()


def _param_keys(cfg) -> list[str]:
    keys = ["wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias"]
    for i in range(cfg.n_layer):
        for p in ("ln_1", "attn.c_attn", "attn.c_proj", "ln_2", "mlp.c_fc", "mlp.c_proj"):
            keys += [f"h.{i}.{p}.weight", f"h.{i}.{p}.bias"]
    return keys


def _cell_of(key: str) -> str:
    # h.3.mlp.c_fc.weight -> h3.mlp.c_fc.weight; wte.weight -> wte
    if key.startswith("h."):
        _, i, rest = key.split(".", 2)
        return f"h{i}.{rest}"
    return {"wte.weight": "wte", "wpe.weight": "wpe"}.get(key, key)


def test_loss_and_every_parameter_gradient_match_pytorch(opened, hf):
    wb = opened
    ids = list(wb["token_ids"])
    assert len(ids) > 8
    hf.zero_grad()
    out = hf(torch.tensor([ids]), labels=torch.tensor([ids]))
    out.loss.backward()
    assert wb.run("loss") == pytest.approx(out.loss.item(), rel=1e-5)
    named = dict(hf.named_parameters())
    checked = 0
    for key in _param_keys(hf.config):
        want = named[f"transformer.{key}"].grad.numpy()
        got = wb.run(f"grad.{_cell_of(key)}")
        assert got.shape == want.shape and got.dtype == np.float32, key
        scale = np.abs(want).max()
        assert scale > 0, key
        assert np.abs(got - want).max() <= REL_TOL * scale, (key, np.abs(got - want).max(), scale)
        checked += 1
    assert checked == 4 + 12 * wb["n_layer"]
    assert wb.status("backward") == Status.FRESH


def test_attributions_match_autograd_on_the_input_embeddings(opened, hf):
    wb = opened
    ids = list(wb["token_ids"])
    token = int(wb.run("attr_token"))
    embeds = hf.transformer.wte.weight[torch.tensor(ids)].detach().clone().requires_grad_(True)
    logits = hf(inputs_embeds=embeds[None]).logits[0, -1]
    logits[token].backward()
    want = embeds.grad.numpy()
    got = wb.run("embed_grad")
    assert np.abs(got - want).max() <= REL_TOL * np.abs(want).max()
    x = (embeds + hf.transformer.wpe.weight[: len(ids)]).detach().numpy()
    np.testing.assert_allclose(wb.run("saliency"), np.linalg.norm(want, axis=-1), rtol=1e-4)
    np.testing.assert_allclose(
        wb.run("grad_x_input"), (want * x).sum(-1), atol=1e-4 * np.abs(want * x).sum(-1).max()
    )


def test_gradient_cells_go_stale_with_the_prompt_and_follow_it(opened):
    wb = cellgpt.open(WORKBOOK, model="gpt2-mini", prompt="Hello there, friend")
    first = wb.run("grad.h0.ln_1.weight").copy()
    wb.set("prompt", "A different prompt entirely")
    assert wb.status("grad.h0.ln_1.weight") == Status.STALE
    assert wb.status("backward") == Status.STALE
    assert not np.allclose(wb.run("grad.h0.ln_1.weight"), first)


def test_a_function_without_a_gradient_rule_is_named_with_its_cell():
    wb = cellgpt.engine.Workbook()
    wb.define("x", "array([1.0, 2.0, 3.0])")
    wb.define("y", "cosine(x, array([1.0, 0.0, 0.0]))")
    wb.define("g", "grad(y, x)")
    with pytest.raises(CellError) as err:
        wb.run("g")
    message = str(err.value)
    assert "cosine()" in message and "'y'" in message
