"""Evaluate Formula (`wb.explain`): each sub-expression's value equals an independent numpy
computation (float64) for layer norm, attention scores with the causal mask and GELU; every
explain expansion equals its library function's result; nothing is stored; budgets hold."""

from __future__ import annotations

import math

import numpy as np
import pytest

import cellgpt
from cellgpt.engine import Workbook
from cellgpt.engine.explain_summary import summarize
from cellgpt.engine.limits import DEFAULT_LIMITS

PROMPT = "Mike is quick. He moves"


@pytest.fixture(scope="module")
def wb() -> Workbook:
    book = cellgpt.open("gpt2", model="gpt2-mini", prompt=PROMPT)
    book.run()
    return book


def close(a: object, b: object) -> None:
    a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a64.shape == b64.shape
    np.testing.assert_allclose(a64, b64, rtol=2e-5, atol=2e-6)


def step_value(explanation: object, label: str) -> np.ndarray:
    node = explanation.find(label)  # type: ignore[attr-defined]
    return explanation.value(node.index)  # type: ignore[attr-defined]


def test_ln_1_shows_the_whole_layer_norm_step_by_step(wb: Workbook) -> None:
    x = np.asarray(wb["h0.resid_pre"], dtype=np.float64)
    w = np.asarray(wb["h0.ln_1.weight"], dtype=np.float64)
    b = np.asarray(wb["h0.ln_1.bias"], dtype=np.float64)
    eps = float(wb["eps"])
    mu = x.mean(axis=-1, keepdims=True)
    centred = x - mu
    var = (centred**2).mean(axis=-1, keepdims=True)
    scale = np.sqrt(var + eps)
    normalized = centred / scale

    e = wb.explain("h0.ln_1")
    labels = [n.label for n in e.nodes if n.label]
    # ln_1.normalized is fused into ln_1 by the runner: its formula is shown inline
    assert labels == ["mu", "centred", "variance", "scale", "normalized", "h0.ln_1.normalized"]
    for label, expected in [
        ("mu", mu),
        ("centred", centred),
        ("variance", var),
        ("scale", scale),
        ("normalized", normalized),
        ("h0.ln_1.normalized", normalized),
        ("h0.ln_1.normalized * h0.ln_1.weight", normalized * w),
        ("h0.ln_1.normalized * h0.ln_1.weight + h0.ln_1.bias", normalized * w + b),
    ]:
        close(step_value(e, label), expected)
    # evaluation order: every child comes before its parent
    assert all(n.parent is None or n.parent > n.index for n in e.nodes)
    assert [n.parent for n in e.nodes].count(None) == 1 and e.nodes[-1].parent is None
    inlined = e.find("h0.ln_1.normalized")
    assert inlined.kind == "inlined" and inlined.check is not None and inlined.check.equal
    root = e.nodes[-1]
    assert root.summary is not None and root.summary.shape == x.shape
    assert root.summary.dtype == "float32"


def test_a_layer_norm_call_expands_into_its_steps_and_matches_the_library() -> None:
    wb = Workbook()
    wb.define("x", "random_normal((6, 16), seed=1) * 3 + 2")
    wb.define("w", "random_normal((16,), seed=2)")
    wb.define("b", "random_normal((16,), seed=3)")
    wb.define("y", "layer_norm(x, w, b)")
    x, w, b = (np.asarray(wb[n], dtype=np.float64) for n in "xwb")
    mu = x.mean(-1, keepdims=True)
    normalized = (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + 1e-5)
    e = wb.explain("y")
    assert [n.label for n in e.nodes if n.kind == "step"] == [
        "mu",
        "centred",
        "variance",
        "scale",
        "normalized",
        "out",
    ]
    close(step_value(e, "normalized"), normalized)
    close(step_value(e, "normalized * gain"), normalized * w)  # × weight
    close(step_value(e, "out"), normalized * w + b)  # + bias
    call = e.nodes[-1]
    assert call.op == "layer_norm()" and call.check is not None and call.check.equal
    assert call.check.what == "layer_norm()'s result"


def test_attention_scores_with_the_causal_mask(wb: Workbook) -> None:
    q = np.asarray(wb["h1.q"], dtype=np.float64)
    k = np.asarray(wb["h1.k"], dtype=np.float64)
    t = q.shape[1]
    qk = q @ k.transpose(0, 2, 1)
    scaled = qk / math.sqrt(q.shape[-1])
    future = np.triu(np.ones((t, t), dtype=bool), k=1)
    masked = np.where(future, -np.inf, scaled)

    e = wb.explain("h1.attn.scores")
    close(step_value(e, "qk"), qk)
    close(step_value(e, "scaled"), scaled)
    assert np.array_equal(step_value(e, "mask"), ~future)
    got = step_value(e, "masked")
    assert got.dtype == np.float32  # as the library's (a Python -inf keeps float32)
    assert np.array_equal(np.isneginf(got), np.broadcast_to(future, got.shape))
    close(np.where(future, 0, got), np.where(future, 0, masked))
    root = e.nodes[-1]
    assert root.check is not None and root.check.equal
    assert root.summary is not None and root.summary.nonfinite == q.shape[0] * future.sum()
    assert root.summary.max == pytest.approx(scaled[:, ~future].max(), rel=1e-5)


def test_gelu_steps(wb: Workbook) -> None:
    x = np.asarray(wb["h0.mlp.fc"], dtype=np.float64)
    cube = x**3
    inner = math.sqrt(2 / math.pi) * (x + 0.044715 * cube)
    out = 0.5 * x * (1 + np.tanh(inner))
    e = wb.explain("h0.mlp.gelu")
    close(step_value(e, "cube"), cube)
    close(step_value(e, "inner"), inner)
    close(step_value(e, "t"), np.tanh(inner))
    close(step_value(e, "out"), out)
    close(e.value(len(e.nodes) - 1), out)
    assert e.nodes[-1].check is not None and e.nodes[-1].check.equal


def test_attention_z_inlines_the_fused_scores_and_pattern(wb: Workbook) -> None:
    e = wb.explain("h0.attn.z")
    inlined = [n.label for n in e.nodes if n.kind == "inlined"]
    assert inlined == ["h0.attn.scores", "h0.attn.pattern"]
    assert all(n.check is not None and n.check.equal for n in e.nodes if n.kind == "inlined")
    pattern = step_value(e, "h0.attn.pattern")
    assert np.array_equal(pattern, wb["h0.attn.pattern"])
    # inline nothing: the cells are read as they are
    plain = wb.explain("h0.attn.z", inline=())
    assert [n.kind for n in plain.nodes] == ["cell", "cell", "operation", "operation"]


@pytest.mark.parametrize("fname", ["layer_norm", "normalize", "norm_scale", "softmax", "gelu"])
def test_every_core_expansion_equals_its_library_function(fname: str) -> None:
    wb = Workbook()
    wb.define("x", "random_normal((5, 33), seed=4, scale=2.0)")
    wb.define("w", "random_normal((33,), seed=5)")
    wb.define("b", "random_normal((33,), seed=6)")
    args = {"layer_norm": "x, w, b", "normalize": "x", "norm_scale": "x"}.get(fname, "x")
    wb.define("y", f"{fname}({args})")
    e = wb.explain("y")
    call = e.nodes[-1]
    assert call.check is not None and call.check.equal, call.check
    assert call.check.max_diff is not None and call.check.max_diff < 1e-5
    last_step = [n for n in e.nodes if n.kind == "step"][-1]
    assert last_step.summary is not None and call.summary is not None
    assert last_step.summary.dtype == call.summary.dtype == "float32"


def test_gpt2_expansions_are_registered_and_parse(wb: Workbook) -> None:
    assert {"attention_scores", "layer_norm", "softmax", "gelu"} <= set(wb.library.expansions)
    for expansion in wb.library.expansions.values():
        assert expansion.parsed  # every step parses with the formula parser


def test_explaining_stores_nothing(wb: Workbook) -> None:
    before = {n: (wb.state(n).version, wb.state(n).status) for n in wb.cells()}
    for name in ("h0.ln_1", "h1.attn.z", "h0.mlp.gelu", "top_k"):
        wb.explain(name)
    after = {n: (wb.state(n).version, wb.state(n).status) for n in wb.cells()}
    assert after == before


def test_summaries_are_finite_aware() -> None:
    s = summarize(np.array([[1.0, -np.inf], [3.0, np.nan]], dtype=np.float32))
    assert (s.min, s.max, s.mean, s.nonfinite) == (1.0, 3.0, 2.0, 2)
    assert s.shape == (2, 2) and s.dtype == "float32"
    assert s.preview.startswith("[[1 -inf] [3 nan]")
    assert summarize([1, 2, 3]).type == "list[3]"


def test_explain_runs_under_the_workbooks_budgets() -> None:
    wb = Workbook()
    wb.define("x", "ones((64, 64))")
    wb.define("y", "matmul(x, x) + 1")
    wb.run()
    wb.limits = DEFAULT_LIMITS.with_(max_cost=1000)
    e = wb.explain("y")
    assert e.error is not None and "limit" in e.error
    failed = e.nodes[-1]
    assert failed.op == "matmul()" and failed.error == e.error
    assert failed.span == (0, len("matmul(x, x)"))


def test_a_short_circuit_branch_is_not_evaluated() -> None:
    wb = Workbook()
    wb.define("n", "0")
    wb.define("y", "1 if n == 0 else 1 / n")
    e = wb.explain("y")
    assert e.error is None and e.nodes[-1].summary is not None
    assert e.nodes[-1].summary.preview == "1"
    assert all(n.text != "1 / n" for n in e.nodes)
