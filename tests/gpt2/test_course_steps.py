"""The GPT-2 workbook speaks the course's language: the original spreadsheet's steps 1–16 land
on the cells DESIGN.md §4 names, and every TransformerLens hook alias holds what TL's hook
holds, checked against values taken independently from Hugging Face's GPT2LMHeadModel
(module hooks and hidden states) and plain float64 arithmetic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import cellgpt

WORKBOOK = Path(__file__).resolve().parents[2] / "workbooks" / "gpt2.py"
TOL = 1e-4

# DESIGN.md §4, written out by hand: step -> the block cell it names.
STEPS = {
    1: "resid_pre",
    2: "ln_1.normalized",
    3: "ln_1",
    4: "qkv",
    5: "q",
    6: "attn.scores",
    7: "attn.pattern",
    8: "attn.z",
    9: "attn.out",
    10: "resid_mid",
    11: "ln_2.normalized",
    12: "ln_2",
    13: "mlp.fc",
    14: "mlp.gelu",
    15: "mlp.out",
    16: "resid_post",
}
STEP5 = {"q": "q", "k": "k", "v": "v"}


@pytest.fixture(scope="module")
def run(hf_tiny, params_tiny_dir) -> tuple[Any, cellgpt.engine.Workbook, list[int]]:
    wb = cellgpt.open(WORKBOOK, model=str(params_tiny_dir), prompt="x")
    ids = wb["tokenizer"].encode("ROMEO: But soft, what light through yonder window breaks?")
    wb.pin("prompt_ids", ids)
    wb.run()
    return hf_tiny.model, wb, ids


def test_every_step_lands_on_the_cell_the_course_names(run):
    _, wb, _ = run
    n_layer = int(wb["n_layer"])
    for i in range(n_layer):
        for n, local in STEPS.items():
            assert wb.resolve(f"h{i}.step{n}") == f"h{i}.{local}"
        for suffix, local in STEP5.items():
            assert wb.resolve(f"h{i}.step5.{suffix}") == f"h{i}.{local}"
    steps = {a for a in wb.aliases() if ".step" in a}
    assert len(steps) == (16 + 3) * n_layer  # nothing extra, nothing missing
    with pytest.raises(KeyError):
        wb.resolve("h0.step0")
    with pytest.raises(KeyError):
        wb.resolve("h0.step17")


def test_step_1_and_16_chain_the_blocks(run):
    _, wb, _ = run
    np.testing.assert_array_equal(wb["h0.step1"], wb["embed"])
    np.testing.assert_array_equal(wb["h1.step1"], wb["h0.step16"])


def _normalise64(x: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)  # population variance
    scale = np.sqrt(var + eps)
    return (x - mean) / scale, scale


@pytest.mark.parametrize(("before", "ln"), [("resid_pre", "ln_1"), ("resid_mid", "ln_2")])
def test_layer_norm_steps_against_plain_arithmetic(run, before, ln):
    _, wb, _ = run
    eps = float(wb["eps"])
    for i in range(int(wb["n_layer"])):
        normalized, scale = _normalise64(wb[f"h{i}.{before}"], eps)
        np.testing.assert_allclose(wb[f"h{i}.{ln}.normalized"], normalized, atol=1e-5)
        np.testing.assert_allclose(wb[f"h{i}.{ln}.scale"], scale, rtol=1e-6)
        gain, bias = wb[f"h{i}.{ln}.weight"], wb[f"h{i}.{ln}.bias"]
        np.testing.assert_allclose(wb[f"h{i}.{ln}"], normalized * gain + bias, atol=1e-5)
    # every row of a normalised step has mean 0 and variance var/(var + eps): 1 but for eps
    step2 = np.asarray(wb["h0.step2"], dtype=np.float64)
    var = np.asarray(wb["h0.step1"], dtype=np.float64).var(axis=-1)
    np.testing.assert_allclose(step2.mean(axis=-1), 0, atol=1e-5)
    np.testing.assert_allclose(step2.var(axis=-1), var / (var + eps), rtol=1e-4)


def test_final_layer_norm_and_prediction_sections(run):
    _, wb, _ = run
    normalized, scale = _normalise64(wb["h.out"], float(wb["eps"]))
    np.testing.assert_allclose(wb["ln_final.hook_normalized"], normalized, atol=1e-5)
    np.testing.assert_allclose(wb["ln_final.hook_scale"], scale, rtol=1e-6)
    np.testing.assert_array_equal(wb["predicted"], wb["ln_f"][-1])
    assert int(wb["next_token"]) == int(np.argmax(wb["logits"]))
    assert float(wb["max_logit"]) == float(np.max(wb["logits"]))


# ---------------------------------------------------------------- TransformerLens hooks


def _hf_hooks(model: Any, ids: list[int]) -> dict[str, np.ndarray]:
    """Every TL hook's value for `ids`, in TL's layout without the batch axis, taken from
    HF's modules (forward hooks on their inputs and outputs) and plain float64 arithmetic."""
    seen: dict[str, Any] = {}
    handles = []

    def keep(name: str, what: str):
        def hook(module: Any, args: tuple[Any, ...], output: Any) -> None:
            value = args[0] if what == "in" else output
            seen[name] = (value[0] if isinstance(value, tuple) else value)[0].detach()

        return hook

    t = model.transformer
    modules = {"wte": t.wte, "wpe": t.wpe, "ln_f": t.ln_f}
    for i, block in enumerate(t.h):
        modules |= {
            f"{i}.block": block,
            f"{i}.ln_1": block.ln_1,
            f"{i}.c_attn": block.attn.c_attn,
            f"{i}.attn_proj": block.attn.c_proj,
            f"{i}.ln_2": block.ln_2,
            f"{i}.c_fc": block.mlp.c_fc,
            f"{i}.act": block.mlp.act,
            f"{i}.mlp": block.mlp,
        }
    for name, module in modules.items():
        handles.append(module.register_forward_hook(keep(name + ":out", "out")))
        handles.append(module.register_forward_hook(keep(name + ":in", "in")))
    try:
        with torch.no_grad():
            out = model(torch.tensor([ids]), output_attentions=True)
    finally:
        for h in handles:
            h.remove()
    cfg = model.config
    heads, d_head, eps = cfg.n_head, cfg.n_embd // cfg.n_head, cfg.layer_norm_epsilon
    n = len(ids)
    got = {k: v.double().numpy() for k, v in seen.items()}
    hooks = {"hook_embed": got["wte:out"], "hook_pos_embed": got["wpe:out"]}
    for i in range(cfg.n_layer):
        b = f"blocks.{i}."
        resid_pre = got[f"{i}.block:in"]
        q, k, v = np.split(got[f"{i}.c_attn:out"], 3, axis=-1)
        q, k, v = (m.reshape(n, heads, d_head) for m in (q, k, v))  # TL: [pos, head, d_head]
        scores = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(d_head)
        scores[:, np.triu(np.ones((n, n), dtype=bool), k=1)] = -np.inf
        attn_out = got[f"{i}.attn_proj:out"]
        resid_mid = got[f"{i}.ln_2:in"]
        hooks |= {
            b + "hook_resid_pre": resid_pre,
            b + "attn.hook_q": q,
            b + "attn.hook_k": k,
            b + "attn.hook_v": v,
            b + "attn.hook_attn_scores": scores,
            b + "attn.hook_pattern": out.attentions[i][0].double().numpy(),
            b + "attn.hook_z": got[f"{i}.attn_proj:in"].reshape(n, heads, d_head),
            b + "hook_attn_out": attn_out,
            b + "hook_resid_mid": resid_mid,
            b + "mlp.hook_pre": got[f"{i}.c_fc:out"],
            b + "mlp.hook_post": got[f"{i}.act:out"],
            b + "hook_mlp_out": got[f"{i}.mlp:out"],
            b + "hook_resid_post": got[f"{i}.block:out"],
        }
        np.testing.assert_allclose(resid_mid, resid_pre + attn_out, atol=1e-5)  # HF agrees
        for tl, ln in (("ln1", "ln_1"), ("ln2", "ln_2")):
            normalized, scale = _normalise64(got[f"{i}.{ln}:in"], eps)
            hooks[b + tl + ".hook_normalized"] = normalized
            hooks[b + tl + ".hook_scale"] = scale
    normalized, scale = _normalise64(got["ln_f:in"], eps)
    hooks["ln_final.hook_normalized"] = normalized
    hooks["ln_final.hook_scale"] = scale
    return hooks


def _as_tl_layout(alias: str, value: np.ndarray, heads: int) -> np.ndarray:
    """Our cells keep heads first for q/k/v ([head, pos, d_head]) and merge them for z
    ([pos, head·d_head]); TL keeps [pos, head, d_head]. Same numbers, other axes."""
    value = np.asarray(value, dtype=np.float64)
    if alias.endswith(("hook_q", "hook_k", "hook_v")):
        return value.transpose(1, 0, 2)
    if alias.endswith("hook_z"):
        return value.reshape(value.shape[0], heads, -1)
    return value


def test_every_transformer_lens_alias_holds_tl_semantics(run):
    model, wb, ids = run
    want = _hf_hooks(model, ids)
    ours = {a for a in wb.aliases() if a.startswith(("blocks.", "hook_", "ln_final."))}
    assert ours == set(want), ours ^ set(want)  # every alias checked, none missing
    heads = int(wb["n_head"])
    for alias, expected in want.items():
        got = _as_tl_layout(alias, wb[alias], heads)
        assert got.shape == expected.shape, alias
        finite = np.isfinite(expected)
        assert np.array_equal(finite, np.isfinite(got)), alias  # the same masked entries
        np.testing.assert_allclose(got[finite], expected[finite], atol=TOL, err_msg=alias)


def test_hook_normalized_is_before_gain_and_bias(run):
    _, wb, _ = run
    # TL's LayerNorm hooks x/scale before the affine; the affine result is step 3, not it.
    assert wb.resolve("blocks.0.ln1.hook_normalized") == "h0.ln_1.normalized"
    assert wb.resolve("blocks.0.ln1.hook_normalized") == wb.resolve("h0.step2")
    assert not np.allclose(wb["blocks.0.ln1.hook_normalized"], wb["h0.step3"])
