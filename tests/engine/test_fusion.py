"""Fused chains (engine/fusion.py): the runner computes GPT-2's attn.z without building
attn.scores and attn.pattern, only when nobody needs those two, and every value a user can
read is bit for bit what the plain cells give."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from cellgpt.api import full_library
from cellgpt.engine import kernels, load_workbook, parallel
from cellgpt.engine.formula_parse import parse_formula
from cellgpt.engine.fusion import ChainFinder, Fusion, match
from cellgpt.gpt2.functions import attention_scores, merge_heads, split_heads
from cellgpt.gpt2.fused_attention import ATTENTION, fused_attention
from cellgpt.gpt2.generate import generate
from cellgpt.locations import grant_user_model

WORKBOOK = Path(__file__).resolve().parents[2] / "workbooks" / "gpt2.py"
PROMPT = "ROMEO: the king is dead, long live the king; and so say all of us"


def _plain_attention(q, k, v):
    return merge_heads(kernels.matmul(kernels.softmax_last(attention_scores(q, k)), v))


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "tokens,keys", [(1, 1), (5, 5), (128, 128), (129, 129), (300, 300), (7, 200)]
)
def test_fused_attention_is_bit_identical_to_the_three_cells(
    monkeypatch, workers, dtype, tokens, keys
):
    monkeypatch.setattr(parallel, "WORKERS", workers)
    rng = np.random.default_rng(tokens + keys)
    qkv = rng.standard_normal((keys, 3 * 6 * 16)).astype(dtype) * 3
    q, k, v = (split_heads(qkv, part, 6) for part in range(3))
    q = q[:, keys - tokens :]  # fewer queries than keys: the newest positions
    got = fused_attention(q, k, v)
    assert got.dtype == dtype and got.shape == (tokens, 6 * 16)
    np.testing.assert_array_equal(got, _plain_attention(q, k, v))


def test_fused_attention_refuses_what_the_plain_cells_would_handle_otherwise():
    q = np.zeros((2, 3, 4), dtype=np.float32)
    with pytest.raises(Exception, match="fused attention"):
        fused_attention(q, q.astype(np.float64), q)
    with pytest.raises(Exception, match="fused attention"):
        fused_attention(q, np.zeros((2, 3, 5), dtype=np.float32), q)


def _tree(text: str) -> ast.AST:
    return ast.parse(text, mode="eval").body


def test_patterns_bind_placeholders_to_dotted_names_consistently():
    binds: dict[str, str] = {}
    assert match(_tree("softmax(S)"), _tree("softmax(h3.attn.scores)"), binds)
    assert binds == {"S": "h3.attn.scores"}
    assert not match(_tree("softmax(S)"), _tree("softmax(h3.attn.scores, axis=0)"), {})
    assert not match(_tree("softmax(S)"), _tree("softmax(h3.attn.scores * 2)"), {})
    assert not match(_tree("softmax(S)"), _tree("exp(h3.attn.scores)"), {})
    assert match(_tree("f(X, X)"), _tree("f(a.b, a.b)"), {})
    assert not match(_tree("f(X, X)"), _tree("f(a.b, a.c)"), {})


def test_the_finder_follows_links_and_forgets_a_match_when_a_formula_changes():
    texts = {
        "s": "attention_scores(q, k)",
        "p": "softmax(s)",
        "z": "merge_heads(matmul(p, v))",
        "q": "1",
        "k": "1",
        "v": "1",
    }
    formulas = {name: parse_formula(text) for name, text in texts.items()}
    finder = ChainFinder([ATTENTION], lambda n: n if n in formulas else None)
    chain = finder.chain("z", formulas.get)
    assert chain is not None
    assert (chain.links, chain.reader, chain.inputs) == (("s", "p"), "z", ("q", "k", "v"))
    assert finder.chain("p", formulas.get) is None
    formulas["p"] = parse_formula("softmax(s) * 0")  # an ablation: not the rule's shape
    assert finder.chain("z", formulas.get) is None
    formulas["p"] = parse_formula("softmax(s)")
    assert finder.chain("z", formulas.get) is not None
    # with a version, answers are kept until the version changes
    assert finder.chain("z", formulas.get, 1) is not None
    formulas["p"] = parse_formula("softmax(s) * 0")
    assert finder.chain("z", formulas.get, 1) is not None  # kept: the version says unchanged
    assert finder.chain("z", formulas.get, 2) is None
    bad = Fusion("bad", ("S = nope(Q)",), "merge_heads(matmul(S, V))", ("Q", "V"), fused_attention)
    assert (
        ChainFinder([bad], lambda n: n if n in formulas else None).chain("z", formulas.get) is None
    )


def _open(params_tiny_dir, fused: bool = True, prompt: str = PROMPT):
    library = full_library()
    if not fused:
        library.fusions.clear()
    return load_workbook(
        WORKBOOK, library, {"model": grant_user_model(str(params_tiny_dir)), "prompt": prompt}
    )


def test_a_forward_pass_fuses_every_block_and_reads_back_the_same_values(params_tiny_dir):
    wb, plain = _open(params_tiny_dir), _open(params_tiny_dir, fused=False)
    np.testing.assert_array_equal(wb["logits"], plain["logits"])
    assert np.shape(wb["logits"]) == (50257,)
    for block in ("h0", "h1"):
        for name in (f"{block}.attn.scores", f"{block}.attn.pattern"):
            state = wb.state(name)
            assert state.fused_into == f"{block}.attn.z" and state.evicted
            assert plain.state(name).fused_into is None
        np.testing.assert_array_equal(wb[f"{block}.attn.z"], plain[f"{block}.attn.z"])
        for norm in ("ln_1", "ln_2"):  # the layer norms' normalize → affine pairs too
            state = wb.state(f"{block}.{norm}.normalized")
            assert state.fused_into == f"{block}.{norm}" and state.evicted
            np.testing.assert_array_equal(wb[f"{block}.{norm}"], plain[f"{block}.{norm}"])
    assert wb.state("ln_f.normalized").fused_into == "ln_f"
    np.testing.assert_array_equal(wb["h1.ln_2.normalized"], plain["h1.ln_2.normalized"])
    # reading a skipped cell computes it: the same numbers as the plain workbook's
    np.testing.assert_array_equal(wb["h1.attn.pattern"], plain["h1.attn.pattern"])
    np.testing.assert_array_equal(wb["h0.attn.scores"], plain["h0.attn.scores"])
    assert (
        not wb.state("h1.attn.pattern").evicted and wb.state("h1.attn.pattern").fused_into is None
    )


def test_an_edited_pattern_turns_the_fusion_off_for_its_block_only(params_tiny_dir):
    wb, plain = _open(params_tiny_dir), _open(params_tiny_dir, fused=False)
    for book in (wb, plain):
        book.set_formula("h1.attn.pattern", "zero_head(softmax(h1.attn.scores), 2)")
    np.testing.assert_array_equal(wb["logits"], plain["logits"])
    assert wb.state("h1.attn.pattern").fused_into is None
    assert wb.state("h1.attn.scores").fused_into is None
    assert wb.state("h0.attn.pattern").fused_into == "h0.attn.z"


def test_no_fusion_when_a_link_is_pinned_asked_for_or_read_elsewhere(params_tiny_dir):
    wb = _open(params_tiny_dir)
    pattern = np.array(_open(params_tiny_dir, fused=False)["h0.attn.pattern"])
    wb.pin("h0.attn.pattern", pattern * 0)  # pinned: attn.z must read the pin
    z = wb["h0.attn.z"]
    assert not np.any(z)  # a zero pattern gives zero mixed values
    assert wb.state("h0.attn.scores").fused_into is None

    wb = _open(params_tiny_dir)
    wb["h1.attn.pattern"]  # the cell asked for is computed, not skipped
    assert wb.state("h1.attn.pattern").fused_into is None

    wb = _open(params_tiny_dir)
    wb.define("peek", "max(h1.attn.scores)")  # a second reader needs the scores
    wb["logits"]
    wb["peek"]
    assert wb.state("h1.attn.scores").fused_into is None
    assert wb.state("h0.attn.scores").fused_into == "h0.attn.z"


def test_generation_after_a_fused_prompt_pass_equals_a_plain_workbook(params_tiny_dir):
    wb, plain = _open(params_tiny_dir), _open(params_tiny_dir, fused=False)
    assert generate(wb, 6) == generate(plain, 6)
    np.testing.assert_array_equal(wb["logits"], plain["logits"])
    np.testing.assert_array_equal(wb["h1.attn.pattern"], plain["h1.attn.pattern"])


def test_a_failing_fused_kernel_falls_back_to_the_cells_which_report_the_error(params_tiny_dir):
    library = full_library()
    calls = []

    def broken(q, k, v):
        calls.append(1)
        raise RuntimeError("boom")

    library.fusions[:] = [
        Fusion("broken", ATTENTION.links, ATTENTION.reader, ATTENTION.inputs, broken)
    ]
    wb = load_workbook(
        WORKBOOK, library, {"model": grant_user_model(str(params_tiny_dir)), "prompt": PROMPT}
    )
    plain = _open(params_tiny_dir, fused=False)
    np.testing.assert_array_equal(wb["logits"], plain["logits"])
    assert calls and wb.state("h0.attn.pattern").fused_into is None


def test_generating_tokens_does_not_match_the_chains_again(params_tiny_dir, monkeypatch):
    # each token sets the `generated` input; an input's new value changes no formula, so the
    # chains found for the prompt's pass are reused (matching ~20 formulas a block per token
    # cost ~1 ms of a 40 ms token at GPT-2 small shapes)
    wb = _open(params_tiny_dir)
    wb["next_token"]
    finds: list[str] = []
    original = ChainFinder._find

    def counting(self, reader, formula):
        finds.append(reader)
        return original(self, reader, formula)

    monkeypatch.setattr(ChainFinder, "_find", counting)
    generate(wb, 4)
    assert finds == []
    wb.set_formula("h1.attn.pattern", "zero_head(softmax(h1.attn.scores), 1)")
    wb["logits"]
    assert finds  # a formula changed: matched again
