"""`cellgpt run --profile`: per-step times from the engine's recorded durations. Times are
never compared with a number: only their structure (every step, the right cells, shares that
add up to 100%) and the grouping of known durations."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

import cellgpt
from cellgpt.cli import main
from cellgpt.cli.profile import LOAD, STEP, add, profile

STEP_NAMES = {
    1: "resid_pre",
    2: "ln_1.normalized",
    3: "ln_1",
    4: "qkv",
    5: "q k v",
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
LINE = re.compile(r"^  (\S+(?: +\d+)?) +(.+?) +(\d+) cells? +([\d.]+) ms +([\d.]+)%(?: \*)?$")


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def _json_profiles(argv: list[str], capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return json.loads(_run([*argv, "--json", "--profile"], capsys))["profile"]


def _steps(prof: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {line["step"]: line for line in prof["lines"] if line["group"] == STEP}


def test_text_profile_lists_every_step_and_adds_up(capsys: pytest.CaptureFixture[str]) -> None:
    out = _run(["run", "Mike is quick. He moves", "--profile"], capsys)
    text = out[out.index("profile of the prompt's pass (8 tokens)") :]
    rows = [m.groups() for m in map(LINE.match, text.splitlines()) if m]
    steps = {
        int(head.split()[1]): (label, int(n)) for head, label, n, _, _ in rows if "step" in head
    }
    n_layer = int(cellgpt.open("gpt2")["n_layer"])  # the bundled gpt2-mini's
    assert steps == {
        k: (name, 3 * n_layer if k == 5 else n_layer) for k, name in STEP_NAMES.items()
    }
    # the cells the fused kernels skipped are marked, with a footnote naming the reader
    marked = [LINE.match(line) for line in text.splitlines() if line.endswith("% *")]
    skipped = {m.group(2) for m in marked if m}
    assert skipped == {
        "ln_1.normalized",
        "attn.scores",
        "attn.pattern",
        "ln_2.normalized",
        "ln_f.normalized",
    }
    assert "* attn.scores and attn.pattern: computed inside attn.z's fused kernel" in text
    labels = [label for _, label, _, _, _ in rows]
    assert {"words", "wte_rows", "embed", "logits", "top_k"} <= set(labels)
    assert sum(float(pct) for *_, pct in rows) == pytest.approx(100, abs=0.1 * len(rows))
    total = re.search(r"^  total +(\d+) cells +([\d.]+) ms$", text, re.M)
    header = re.search(r": (\d+) cells ran, ([\d.]+) ms in cells of [\d.]+ ms wall", text)
    assert total and header and total.group(1) == header.group(1)
    assert int(total.group(1)) == sum(int(n) for _, _, n, _, _ in rows)


def test_json_profile_shares_sum_to_100(capsys: pytest.CaptureFixture[str]) -> None:
    (prof,) = _json_profiles(["run", "Mike is quick."], capsys)
    assert set(_steps(prof)) == set(range(1, 17))
    assert sum(line["percent"] for line in prof["lines"]) == pytest.approx(100)
    assert sum(line["ms"] for line in prof["lines"]) == pytest.approx(prof["cell_ms"])
    assert prof["cells_run"] == sum(line["cells"] for line in prof["lines"])
    assert all(line["ms"] >= 0 for line in prof["lines"])
    assert prof["lines"][0]["group"] == LOAD  # a fresh workbook: the weights were loaded


def test_profile_on_a_tiny_model_with_generation(
    params_tiny_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "hello world", "--model", str(params_tiny_dir), "--generate", "3"]
    prompt, generation = _json_profiles(argv, capsys)
    for prof in (prompt, generation):
        steps = _steps(prof)
        assert {k: line["label"] for k, line in steps.items()} == STEP_NAMES
        assert all(line["cells"] == (6 if k == 5 else 2) for k, line in steps.items())  # 2 blocks
    assert "generating 3 tokens" in generation["what"]
    # Generation only appends rows: nothing is loaded and the prompt is not tokenized again.
    labels = {line["label"] for line in generation["lines"]}
    assert LOAD not in {line["group"] for line in generation["lines"]}
    assert "token_ids" in labels and labels.isdisjoint({"words", "bpe", "prompt_ids"})


def test_without_profile_there_is_none(capsys: pytest.CaptureFixture[str]) -> None:
    out = _run(["run", "Mike is quick.", "--json"], capsys)
    assert "profile" not in json.loads(out)
    assert "profile of" not in _run(["run", "Mike is quick."], capsys)


def test_grouping_sums_known_durations() -> None:
    wb = cellgpt.open("gpt2", prompt="Mike is quick.")
    wb.run("logits")
    ran = {name: 0.001 for name in wb.cells() if wb.state(name).runs}
    twice: dict[str, float] = {}
    add(twice, ran)
    add(twice, ran)
    prof = profile(wb, twice)
    by_step = {line.step: line for line in prof.lines if line.group == STEP}
    n_layer = int(wb["n_layer"])
    assert by_step[4].seconds == pytest.approx(n_layer * 0.002)  # h{i}.qkv, two passes each
    assert by_step[5].seconds == pytest.approx(3 * n_layer * 0.002)  # q, k and v
    assert prof.total == pytest.approx(len(ran) * 0.002)
    assert prof.cells == len(ran)
    logits = [line for line in prof.lines if line.label == "logits"]
    assert [(line.group, line.cells) for line in logits] == [("output", 1)]
    assert "h0.ln_1.scale" not in ran  # not read by logits: not run, so not listed
    assert not any(line.label == "ln_1.scale" for line in prof.lines)
