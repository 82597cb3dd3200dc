"""`cellgpt explain NAME [PROMPT]` (Evaluate Formula) and `cellgpt run PROMPT --trace`."""

from __future__ import annotations

import itertools
import json
import re

import numpy as np
import pytest

import cellgpt
from cellgpt.cli import main
from cellgpt.engine import stepping

PROMPT = "Mike is quick."


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_explain_prints_the_layer_norm_steps(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["explain", "h0.ln_1", PROMPT], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "h0.ln_1 = h0.ln_1.normalized * h0.ln_1.weight + h0.ln_1.bias"
    titles = [line for line in lines if line[:3].strip().isdigit()]
    order = ["mu = ", "centred = ", "variance = ", "scale = ", "normalized = "]
    found = [next(i for i, t in enumerate(titles) if name in t) for name in order]
    assert found == sorted(found)  # in evaluation order
    # the deeper a sub-expression, the more it is indented; the result is last, at the left
    assert titles[-1].startswith(" 13  h0.ln_1.normalized * h0.ln_1.weight + h0.ln_1.bias")
    assert "    mu = mean(x, axis=-1, keepdims=True)" in out
    assert "[5×64] float32  min " in out
    assert "✓ equals h0.ln_1.normalized's value" in out


def test_explain_json_matches_the_api(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["explain", "h0.attn.scores", PROMPT, "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    wb = cellgpt.open("gpt2", model="gpt2-mini", prompt=PROMPT)
    api = wb.explain("h0.attn.scores").to_json()
    assert [n["text"] for n in data["nodes"]] == [n["text"] for n in api["nodes"]]
    root = data["nodes"][-1]
    assert root["op"] == "attention_scores()" and root["check"]["equal"] is True
    scores = wb["h0.attn.scores"]
    assert root["value"]["shape"] == list(scores.shape)
    assert root["value"]["nonfinite"] == int(np.isinf(scores).sum())
    assert root["value"]["max"] == pytest.approx(float(scores[np.isfinite(scores)].max()))


def test_explain_an_unknown_cell_is_a_user_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["explain", "h0.nope", PROMPT], capsys)
    assert code == 2 and "h0.nope" in err


def test_run_trace_prints_every_step_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    wb = cellgpt.open("gpt2", model="gpt2-mini", prompt=PROMPT)
    expected = stepping.plan(wb, skip=lambda n: bool(wb.cell(n).hints.get("on_demand")))
    code, out, err = _run(["run", PROMPT, "--trace", "--top-k", "3"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    steps = list(itertools.takewhile(lambda line: re.match(r" *\d+  \S", line), lines))
    traced = [line.split()[1] for line in steps]
    assert [int(line.split()[0]) for line in steps] == list(range(1, len(steps) + 1))
    # the engine's topological order, every stale cell but the on-demand ones
    order = {name: i for i, name in enumerate(wb.cells())}
    assert traced == sorted(traced, key=order.__getitem__)
    assert set(traced) >= set(expected) - {"show_k", "temperature", "sample_top_k", "top_p"}
    assert "next_token" in traced and "logits_all" not in traced
    qkv = next(line for line in steps if line.split()[1] == "h0.qkv")
    assert "[5×192] float32" in qkv and qkv.endswith(" ms")
    # then the usual answer, the same as without --trace
    rest = "\n".join(lines[len(steps) :])
    code, plain, _ = _run(["run", PROMPT, "--top-k", "3"], capsys)
    assert code == 0 and rest.strip() == plain.strip()


def test_run_trace_with_json_keeps_stdout_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["run", PROMPT, "--trace", "--json"], capsys)
    assert code == 0
    assert json.loads(out)["tokens"]
    assert "next_token" in err and "h0.attn.z" in err
