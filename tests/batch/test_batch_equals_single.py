"""Batch runs give exactly what one `cellgpt.open` per prompt gives, for every cell asked
for; prompts of several lengths in one input exercise the grouping by length."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import cellgpt
from cellgpt.batchrun.evaluate import Setup, evaluator
from cellgpt.batchrun.run import make_setup

MODEL = "gpt2-mini"
REPO = Path(__file__).resolve().parents[2]
# Several lengths, some shared (gpt2-mini's small vocabulary: 3, 3, 5, 1 ... tokens), and an
# empty prompt.
PROMPTS = [
    "ROMEO: hi",
    "JULIET: oh",
    "To be or not to be",
    "Hello there my friend",
    "",
    "The cat sat",
]
CELLS = [
    "logits",
    "probs",
    "h1.resid_post",
    "h0.attn.pattern",
    "h11.attn.z",
    "ln_f.scale",
    "top_k",
    "next_text",
    "next_token",
    "max_logit",
    "tokens",
]


def same(batch: Any, single: Any) -> bool:
    """Equal, up to float32 rounding (≤ 1e-5): the model's cells go through the same
    kernels and are bit-equal; the head's [prompts, width] x [width, vocab] product rounds
    differently from one prompt's vector x matrix."""
    if isinstance(single, np.ndarray):
        assert batch.shape == single.shape and batch.dtype == single.dtype
        return bool(np.allclose(batch, single, rtol=0, atol=1e-5, equal_nan=True))
    if isinstance(single, list) and single and isinstance(single[0], tuple):
        return len(batch) == len(single) and all(
            len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=False))
            for a, b in zip(batch, single, strict=False)
        )
    if isinstance(single, float | np.floating):
        return abs(batch - single) <= 1e-5
    return batch == single


def single_runs(cells: list[str], **inputs: Any) -> list[dict[str, Any] | None]:
    out: list[dict[str, Any] | None] = []
    for text in PROMPTS:
        wb = cellgpt.open("gpt2", model=MODEL, prompt=text, **inputs)
        if not wb["token_ids"]:
            out.append(None)
            continue
        out.append({c: wb[c] for c in cells})
    return out


@pytest.fixture(scope="module")
def singles() -> list[dict[str, Any] | None]:
    return single_runs(CELLS)


def test_the_plan_batches_the_model_and_leaves_lookups_per_prompt() -> None:
    ev = evaluator(make_setup("gpt2", CELLS, {"model": MODEL}, None, None))
    plan = ev.plan
    for name in ("embed", "h0.attn.pattern", "h11.resid_post", "ln_f", "logits", "probs"):
        assert name in plan.batched
    assert plan.rewrites == {"predicted": "batch_last_row(ln_f)"}
    assert {"top_k", "next_text", "next_token", "tokens"} <= plan.tail
    assert plan.frontier == {"logits"}


def test_dataframe_equals_single_runs(singles: list[dict[str, Any] | None]) -> None:
    df = cellgpt.batch("gpt2", PROMPTS, cells=CELLS, model=MODEL, scheduler="inline", shard_size=2)
    assert list(df["prompt_id"]) == list(range(len(PROMPTS)))
    for i, single in enumerate(singles):
        if single is None:
            assert "empty" in df["error"][i]
            continue
        assert df["error"][i] is None
        for c in CELLS:
            assert same(df[c][i], single[c]), (PROMPTS[i], c)


def test_shards_hold_equal_length_prompts_computed_together() -> None:
    shards = list(
        cellgpt.batch(
            "gpt2", PROMPTS, cells=["h0.attn.pattern"], model=MODEL, scheduler="inline", shards=True
        )
    )
    computed = [s for s in shards if s.index >= 0]
    lengths = [len(cellgpt.open("gpt2", model=MODEL, prompt=p)["token_ids"]) for p in PROMPTS]
    groups = Counter(n for n in lengths if n)
    assert max(groups.values()) > 1  # the input really has prompts computed together
    assert sorted(len(s.prompt_ids) for s in computed) == sorted(groups.values())
    for s in computed:
        assert len({len(t) for t in s.token_ids}) == 1  # one length: no padding
    assert [s.errors for s in shards if s.index < 0] == [{4: "the prompt is empty (no tokens)"}]


def test_per_row_inputs_and_truncation_equal_single_runs() -> None:
    rows = [
        {"prompt": p, "temperature": t}
        for p, t in zip(PROMPTS, [0.5, 1.5, 0.7, 0.7, 1, 2], strict=True)
    ]
    df = cellgpt.batch(
        "gpt2",
        rows,
        cells=["sample", "logits"],
        model=MODEL,
        scheduler="inline",
        truncate=3,
        seed=7,
    )
    # the temperature is read only by `sample`, computed per prompt: it does not split shards
    shards = cellgpt.batch(
        "gpt2", rows, cells=["sample"], model=MODEL, scheduler="inline", shards=True, truncate=3
    )
    computed = [s for s in shards if s.index >= 0]
    assert len(computed) == len({len(t) for s in computed for t in s.token_ids})
    for i, row in enumerate(rows):
        wb = cellgpt.open(
            "gpt2", model=MODEL, prompt=row["prompt"], temperature=row["temperature"], seed=7
        )
        if not wb["prompt_ids"]:
            continue
        wb.pin("prompt_ids", wb["prompt_ids"][:3])
        assert len(df["tokens"][i]) == len(wb["token_ids"]) <= 3
        assert df["sample"][i] == wb["sample"]
        assert same(df["logits"][i], wb["logits"])


def test_reduce_mean_equals_the_mean_of_single_runs(singles: list[dict[str, Any] | None]) -> None:
    df = cellgpt.batch(
        "gpt2",
        PROMPTS,
        cells=["logits", "h1.resid_post"],
        model=MODEL,
        scheduler="inline",
        reduce="mean",
    )
    ok = [s for s in singles if s is not None]
    means = df.attrs["mean"]
    expect = np.mean([s["logits"].astype(np.float64) for s in ok], axis=0)
    assert np.allclose(means["logits"], expect, atol=1e-5)
    # one row per token: the mean over every token of every prompt
    rows = np.concatenate([s["h1.resid_post"].astype(np.float64) for s in ok])
    assert np.allclose(means["h1.resid_post"], rows.mean(axis=0), atol=1e-5)


def test_setup_is_hashable_per_worker_cache() -> None:
    setup = make_setup("gpt2", ["logits"], {"model": MODEL}, None, None)
    assert isinstance(setup, Setup) and hash(setup) == hash(
        make_setup("gpt2", ["logits"], {"model": MODEL}, None, None)
    )


def test_an_edited_formula_that_cannot_take_a_batch_axis_runs_per_prompt(tmp_path: Path) -> None:
    # `ln_f[-1]` on a batch would take the last prompt, not each prompt's last token: the plan
    # sees the subscript and computes `predicted` and what reads it one prompt at a time.
    text = (REPO / "workbooks" / "gpt2.py").read_text(encoding="utf-8")
    edited = text.replace("= last_row(ln_f)", "= ln_f[-1]", 1)
    assert edited != text
    path = tmp_path / "edited.py"
    path.write_text(edited, encoding="utf-8")
    cells = ["predicted", "logits", "h1.resid_post"]
    ev = evaluator(make_setup(path, cells, {"model": MODEL}, None, None))
    assert {"predicted", "logits"} <= ev.plan.tail and "h1.resid_post" in ev.plan.batched
    df = cellgpt.batch(path, PROMPTS, cells=cells, model=MODEL, scheduler="inline")
    for i, text in enumerate(PROMPTS):
        wb = cellgpt.open(path, model=MODEL, prompt=text)
        if not wb["token_ids"]:
            continue
        for c in cells:
            assert same(df[c][i], wb[c]), (text, c)
