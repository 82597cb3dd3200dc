"""The fast paths of the GPT-2 workbook: chunked kernels equal the plain numpy formulas, and
row-incremental generation leaves every cell equal to a full recompute (HF agreement of the
forward and of greedy generation is in test_gpt2_workbook.py)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import cellgpt
from cellgpt.engine import causal, kernels, parallel
from cellgpt.gpt2 import functions as gpt2_functions
from cellgpt.gpt2.generate import generate

WORKBOOK = Path(__file__).resolve().parents[2] / "workbooks" / "gpt2.py"


@pytest.fixture(params=[1, 3], ids=["inline", "3-workers"])
def workers(request, monkeypatch):
    monkeypatch.setattr(parallel, "WORKERS", request.param)
    return request.param


def _plain_gelu(x):
    c = np.float32(math.sqrt(2.0 / math.pi))
    return (
        np.float32(0.5)
        * x
        * (np.float32(1.0) + np.tanh(c * (x + np.float32(0.044715) * x * x * x)))
    )


def test_elementwise_kernels_equal_the_plain_formulas_bit_for_bit(workers):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 700, 1024), dtype=np.float32)
    gain, bias = (
        rng.standard_normal(1024, dtype=np.float32),
        rng.standard_normal(1024, dtype=np.float32),
    )
    np.testing.assert_array_equal(kernels.gelu(x), _plain_gelu(x))
    shifted = x - x.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    np.testing.assert_array_equal(kernels.softmax_last(x), e / e.sum(axis=-1, keepdims=True))
    centred = x - x.mean(axis=-1, keepdims=True)
    var = np.mean(centred * centred, axis=-1, keepdims=True)
    want = centred / np.sqrt(var + np.float32(1e-5)) * gain + bias
    np.testing.assert_array_equal(kernels.layer_norm(x, gain, bias, 1e-5), want)
    # layer norm's two halves, as the GPT-2 workbook's cells compute them
    scale = np.sqrt(var + np.float32(1e-5))
    np.testing.assert_array_equal(kernels.normalize(x, 1e-5), centred / scale)
    np.testing.assert_array_equal(kernels.norm_scale(x, 1e-5), scale)
    np.testing.assert_array_equal(kernels.normalize(x, 1e-5) * gain + bias, want)


@pytest.mark.parametrize(
    "shape_a,shape_b",
    [
        ((700, 768), (768, 3072)),
        ((3, 768), (768, 9000)),
        ((768,), (768, 9000)),
        ((12, 300, 64), (12, 64, 300)),
    ],
)
def test_matmul_kernel_matches_numpy(workers, shape_a, shape_b):
    rng = np.random.default_rng(1)
    a, b = (
        rng.standard_normal(shape_a, dtype=np.float32),
        rng.standard_normal(shape_b, dtype=np.float32),
    )
    got = kernels.matmul(a, b)
    assert got.dtype == np.float32 and got.shape == np.matmul(a, b).shape
    np.testing.assert_allclose(got, np.matmul(a.astype(np.float64), b), rtol=1e-4, atol=1e-4)
    # a transposed operand (the tied output head reads wteᵀ without copying it)
    got_t = kernels.matmul(a, np.ascontiguousarray(b.T).T)
    np.testing.assert_allclose(got_t, np.matmul(a.astype(np.float64), b), rtol=1e-4, atol=1e-4)


def test_attention_scores_match_the_plain_formula_and_extend_by_rows(workers):
    rng = np.random.default_rng(2)
    q, k = (rng.standard_normal((4, 200, 16), dtype=np.float32) for _ in range(2))
    got = gpt2_functions.attention_scores(q, k)
    want = gpt2_functions._attention_scores_plain(q, k)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert np.all(np.isneginf(got[:, np.triu_indices(200, 1)[0], np.triu_indices(200, 1)[1]]))
    # the last 5 queries against all keys = the last 5 rows
    np.testing.assert_allclose(
        gpt2_functions.attention_scores(q[:, -5:], k), got[:, -5:], rtol=1e-6, atol=1e-6
    )


def _array_cells(wb):
    """Cells holding arrays, and evictable ones (reading them recomputes the array)."""
    return [
        n
        for n in wb.cells()
        if wb.info(n).evicted or (isinstance(wb.value(n), np.ndarray) and wb.value(n).ndim)
    ]


@pytest.mark.parametrize("edit", [None, "zero_head(softmax(h1.attn.scores), 2)"])
def test_incremental_generation_equals_a_full_recompute(params_tiny_dir, edit):
    wb = cellgpt.open(WORKBOOK, model=str(params_tiny_dir), prompt="Once upon a time, in")
    if edit:
        wb.set_formula("h1.attn.pattern", edit)
    n_prompt = len(wb["prompt_ids"])
    ids = generate(wb, 12)
    wb.run()  # every cell at prompt + 12 tokens
    wb.run("logits_all")  # and an on-demand one, asked for by name
    assert wb.state("h0.attn.pattern").appended_from == n_prompt + 11  # rows were appended
    assert wb.state("h1.mlp.out").appended_from == n_prompt + 11
    if edit:  # the edited cell is recomputed in full; its readers resume appending
        assert wb.extender("h1.attn.pattern") is None
    full = cellgpt.open(
        WORKBOOK, model=str(params_tiny_dir), prompt="Once upon a time, in", generated=ids
    )
    if edit:
        full.set_formula("h1.attn.pattern", edit)
    full.run()
    full.run("logits_all")
    names = _array_cells(full)
    assert "h1.attn.pattern" in names and "logits_all" in names
    for name in names:
        assert wb[name].shape == full[name].shape, name
        np.testing.assert_allclose(wb[name], full[name], rtol=1e-5, atol=1e-5, err_msg=name)
    assert wb["h1.attn.pattern"].shape[1] == n_prompt + 12  # every row is there for the TUI


def test_editing_the_prompt_after_generation_recomputes_in_full(params_tiny_dir):
    wb = cellgpt.open(WORKBOOK, model=str(params_tiny_dir), prompt="Hello there")
    generate(wb, 3)
    wb.set("prompt", "Goodbye there")  # earlier rows change: nothing may be reused
    wb.set("generated", [])
    got = np.array(wb["logits"])
    fresh = cellgpt.open(WORKBOOK, model=str(params_tiny_dir), prompt="Goodbye there")
    np.testing.assert_array_equal(got, fresh["logits"])
    assert wb.state("h0.ln_1").appended_from is None


def test_generation_gives_the_same_tokens_on_blas_threads_and_on_our_split(
    params_tiny_dir, monkeypatch
):
    from cellgpt.engine import load_watch

    runs = {}
    for quiet in (True, False):  # True: one-row products go to OpenBLAS's threads
        monkeypatch.setattr(load_watch, "machine_is_quiet", lambda q=quiet: q)
        wb = cellgpt.open(WORKBOOK, model=str(params_tiny_dir), prompt="Once upon a time")
        runs[quiet] = (generate(wb, 8), np.array(wb["logits"]))
    assert runs[True][0] == runs[False][0]
    np.testing.assert_allclose(runs[True][1], runs[False][1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rows,keys", [(1, 1), (1, 37), (1, 1024), (3, 300)])
def test_causal_softmax_of_new_rows_equals_the_plain_formula_bit_for_bit(rows, keys):
    # A generated token's scores: [heads, new rows, keys], -inf after each row's own key.
    rng = np.random.default_rng(rows * keys)
    scores = rng.standard_normal((12, rows, keys), dtype=np.float32) * np.float32(4)
    offset = keys - rows
    future = np.arange(keys)[None, :] > offset + np.arange(rows)[:, None]
    scores[:, future] = -np.inf
    got = kernels.softmax_last(causal.mark(scores, offset, -np.inf))
    shifted = scores - scores.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    np.testing.assert_array_equal(got, e / e.sum(axis=-1, keepdims=True))
