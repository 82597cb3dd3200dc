"""The GPT-2 workbook against Hugging Face's GPT2LMHeadModel (an independent implementation):
every stage, the logits, and greedy generation, on random models saved with save_pretrained
and brought in through the user-facing importer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import GPT2LMHeadModel

import cellgpt
from cellgpt.engine import Status

WORKBOOK = Path(__file__).resolve().parents[2] / "workbooks" / "gpt2.py"
TOL = 1e-4
TEXT = (
    "The quick brown fox jumps over the lazy dog. ROMEO: But soft, what light through yonder "
    "window breaks? It is the east, and Juliet is the sun. 1234567 + 89 = ? Ünïcödé ✓ 漢字 "
)


@pytest.fixture(scope="module")
def tiny(hf_tiny, params_tiny_dir) -> tuple[GPT2LMHeadModel, Path]:
    """The shared tiny random model (2 blocks, n_ctx 128) and its imported CSV folder."""
    return hf_tiny.model, params_tiny_dir


@pytest.fixture(scope="module")
def small(hf_small, params_small_dir) -> tuple[GPT2LMHeadModel, Path]:
    """Full GPT-2 small shapes: 12 blocks, 12 heads, 768 wide, 1024 context, 50257 vocab."""
    return hf_small.model, params_small_dir


def _hf_stages(model: GPT2LMHeadModel, ids: list[int]) -> dict[str, np.ndarray]:
    with torch.no_grad():
        out = model(torch.tensor([ids]), output_hidden_states=True, output_attentions=True)
    n = model.config.n_layer
    stages = {"logits_all": out.logits[0].numpy()}
    for i in range(n):
        stages[f"h{i}.resid_pre"] = out.hidden_states[i][0].numpy()
        stages[f"h{i}.attn.pattern"] = out.attentions[i][0].numpy()
    # HF's last hidden state already has ln_f applied.
    stages["ln_f"] = out.hidden_states[n][0].numpy()
    return stages


def _prompt_of_length(wb: cellgpt.engine.Workbook, n: int) -> list[int]:
    tok = wb["tokenizer"]
    ids = tok.encode(TEXT * (1 + n // 20))
    return ids[:n]


def _compare(model: GPT2LMHeadModel, folder: Path, n_tokens: int) -> dict[str, float]:
    wb = cellgpt.open(WORKBOOK, model=str(folder), prompt="x")
    ids = _prompt_of_length(wb, n_tokens)
    assert len(ids) == n_tokens
    wb.pin("prompt_ids", ids)
    wb.run()
    # on-demand cells (every position's logits, the gradients) wait to be asked for
    waiting = [n for n in wb.cells() if wb.status(n) not in (Status.FRESH, Status.PINNED)]
    assert waiting and all(wb.cell(n).hints.get("on_demand") for n in waiting)
    ref = _hf_stages(model, ids)
    deltas = {name: float(np.max(np.abs(wb[name] - want))) for name, want in ref.items()}
    deltas["logits"] = float(np.max(np.abs(wb["logits"] - ref["logits_all"][-1])))
    # The last block's output before ln_f, against HF's hidden states via ln_f's inverse route:
    assert wb["next_token"] == int(np.argmax(ref["logits_all"][-1]))
    pattern = wb["h0.attn.pattern"]
    np.testing.assert_allclose(pattern.sum(axis=-1), 1.0, atol=1e-5)
    assert np.all(np.triu(pattern[0], k=1) == 0)
    return deltas


# Both product libraries: MKL when installed (the test extras install it), numpy's OpenBLAS as
# a user without the `mkl` extra has it (cellgpt/engine/mkl_blas.py).
BLAS = ["mkl", "numpy"]


@pytest.mark.parametrize("blas", BLAS)
@pytest.mark.parametrize("n_tokens", [1, 7, 128])
def test_tiny_model_every_stage_matches_hf(tiny, n_tokens, blas, monkeypatch):
    monkeypatch.setenv("CELLGPT_BLAS", blas)
    model, folder = tiny
    deltas = _compare(model, folder, n_tokens)
    assert max(deltas.values()) <= TOL, deltas


@pytest.mark.parametrize("blas", BLAS)
@pytest.mark.parametrize("n_tokens", [1, 7, 1024])
def test_gpt2_small_shapes_every_stage_matches_hf(small, n_tokens, blas, monkeypatch):
    monkeypatch.setenv("CELLGPT_BLAS", blas)
    model, folder = small
    deltas = _compare(model, folder, n_tokens)
    print(
        f"\nmax |delta| at {n_tokens} tokens:",
        {k: f"{v:.2e}" for k, v in sorted(deltas.items(), key=lambda kv: -kv[1])[:5]},
    )
    assert max(deltas.values()) <= TOL, deltas


@pytest.mark.parametrize("blas", BLAS)
def test_greedy_generation_matches_hf_generate(small, blas, monkeypatch):
    monkeypatch.setenv("CELLGPT_BLAS", blas)
    model, folder = small
    wb = cellgpt.open(WORKBOOK, model=str(folder), prompt="ROMEO: But soft, what light")
    ids = list(wb["prompt_ids"])
    ours = cellgpt.generate(wb, 20, greedy=True)  # the public API
    # each step appended one row to every block cell instead of recomputing them all
    assert wb["h11.attn.pattern"].shape == (12, len(ids) + 20, len(ids) + 20)
    assert wb.state("h11.attn.pattern").appended_from == len(ids) + 19
    with torch.no_grad():
        theirs = model.generate(
            torch.tensor([ids]),
            max_new_tokens=20,
            do_sample=False,
            pad_token_id=50256,
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
        )[0, len(ids) :].tolist()
    assert ours == theirs


def test_hook_and_step_aliases_point_at_the_same_cells(tiny):
    _, folder = tiny
    wb = cellgpt.open(WORKBOOK, model=str(folder), prompt="Hello there")
    assert wb.resolve("blocks.1.attn.hook_pattern") == "h1.attn.pattern"
    assert wb.resolve("h1.step7") == "h1.attn.pattern"
    assert wb.resolve("blocks.1.hook_resid_post") == "h1.resid_post"
    np.testing.assert_array_equal(wb["blocks.0.mlp.hook_post"], wb["h0.mlp.gelu"])


def test_zeroing_a_head_changes_only_downstream(tiny):
    _, folder = tiny
    wb = cellgpt.open(WORKBOOK, model=str(folder), prompt="Hello there, general Kenobi")
    before = np.array(wb["logits"])
    h0_out = np.array(wb["h0.resid_post"])
    runs_h0 = wb.state("h0.resid_post").runs
    wb.set_formula("h1.attn.pattern", "zero_head(softmax(h1.attn.scores), 2)")
    stale = set(wb.stale())
    assert (
        "h1.attn.pattern" in stale
        and "logits" in stale
        and "h1.resid_post" in stale
        and "ln_f" in stale
    )
    assert "h0.resid_post" not in stale and "h1.attn.scores" not in stale
    after = wb["logits"]
    assert wb.state("h0.resid_post").runs == runs_h0
    np.testing.assert_array_equal(wb["h0.resid_post"], h0_out)
    assert np.all(wb["h1.attn.pattern"][2] == 0)
    assert np.max(np.abs(after - before)) > 1e-6


def test_sampling_is_seeded_and_respects_top_k(tiny):
    _, folder = tiny
    wb = cellgpt.open(
        WORKBOOK, model=str(folder), prompt="Once upon a time", temperature=1.0, sample_top_k=3
    )
    allowed = {int(i) for i in np.argsort(-wb["logits"])[:3]}
    first = int(wb["sample"])
    assert first in allowed
    wb.set("seed", 0)
    assert int(wb["sample"]) == first
    draws = set()
    for seed in range(30):
        wb.set("seed", seed)
        draws.add(int(wb["sample"]))
    assert draws <= allowed and len(draws) > 1
    wb.set("temperature", 0.0)
    assert int(wb["sample"]) == int(wb["next_token"])
    wb.set("temperature", 1.0)
    wb.set("sample_top_k", 0)
    wb.set("top_p", 1e-9)  # the nucleus shrinks to the single most likely token
    assert int(wb["sample"]) == int(wb["next_token"])


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("temperature", float("nan")),
        ("temperature", float("inf")),
        ("top_p", float("nan")),
        ("seed", -1),
    ],
)
def test_bad_sampling_settings_are_a_clear_cell_error(tiny, name, value):
    _, folder = tiny
    wb = cellgpt.open(WORKBOOK, model=str(folder), prompt="Once upon a time")
    wb.set(name, value)
    wb.run_all()
    assert wb.status("sample") is Status.ERROR
    message = wb.state("sample").error.message
    assert ("finite temperature" in message) or ("seed must be" in message), message
    assert wb.status("next_token") is Status.FRESH  # the greedy answer is unaffected
