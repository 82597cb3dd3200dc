"""Generation replays its row-append steps (engine/replay.py): the replay must leave every
cell exactly as the generic row-append path does, hand back HF's greedy ids, and step aside
whenever the workbook is edited, pinned or read in a way the recording did not foresee."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import cellgpt
from cellgpt.engine import Workbook, replay
from cellgpt.gpt2.generate import generate

WORKBOOK = Path(__file__).resolve().parents[2] / "workbooks" / "gpt2.py"
PROMPT = "Once upon a time, in"


@pytest.fixture
def replays(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The targets of the segments replayed (a spy on AppendReplay.replay)."""
    seen: list[str] = []
    original = replay.AppendReplay.replay

    def spy(self: replay.AppendReplay, target: str) -> None:
        seen.append(target)
        original(self, target)

    monkeypatch.setattr(replay.AppendReplay, "replay", spy)
    return seen


def _pin_weight(wb: Workbook) -> None:
    wb.pin("h0.ln_1.weight", np.asarray(wb["h0.ln_1.weight"]) * np.float32(0.5))


def _read_evicted(wb: Workbook) -> None:
    wb["h1.attn.pattern"]  # recomputes a dropped value: not what the recording saw


EDITS: dict[str, Callable[[Workbook], Any] | None] = {
    "none": None,
    "formula": lambda wb: wb.set_formula(
        "h1.attn.pattern", "zero_head(softmax(h1.attn.scores), 2)"
    ),
    "pin": _pin_weight,
    "read-evicted": _read_evicted,
    "extenders-dropped": lambda wb: wb.set_extender("h0.mlp.fc", None),
}


def _generate(folder: Path, edit: Callable[[Workbook], Any] | None, *, on: bool) -> Workbook:
    replay.enabled = on
    try:
        wb = cellgpt.open(WORKBOOK, model=str(folder), prompt=PROMPT)

        def on_token(_token: int) -> None:
            if edit is not None and len(wb["generated"]) == 5:
                edit(wb)

        generate(wb, 10, on_token=on_token)
    finally:
        replay.enabled = True
    return wb


def _cells_with_values(wb: Workbook) -> list[str]:
    return [n for n in wb.cells() if wb.info(n).evicted or wb.value(n) is not None]


@pytest.mark.parametrize("edit", list(EDITS), ids=list(EDITS))
def test_replayed_generation_equals_the_generic_path_cell_for_cell(
    params_tiny_dir: Path, replays: list[str], edit: str
) -> None:
    generic = _generate(params_tiny_dir, EDITS[edit], on=False)
    assert replays == []
    fast = _generate(params_tiny_dir, EDITS[edit], on=True)
    # the 2nd token records the cycle (set generated, run n_tokens, run next_token), the
    # rest replay it; an edit after the 5th drops the replay: the 6th runs the generic way,
    # the 7th is recorded afresh
    assert replays.count("next_token") == (8 if edit == "none" else 6)
    assert fast["generated"] == generic["generated"]
    names = _cells_with_values(generic)
    assert names == _cells_with_values(fast)
    assert len(names) > 50  # 2 blocks: every block cell, evicted ones included
    for name in names:  # same operations on the same numbers: bit for bit
        mine, theirs = fast.state(name), generic.state(name)
        assert (mine.status, mine.appended_from, mine.evicted) == (
            theirs.status,
            theirs.appended_from,
            theirs.evicted,
        ), name
        assert mine.input_versions == theirs.input_versions, name
        got, want = fast[name], generic[name]
        if isinstance(want, np.ndarray):
            np.testing.assert_array_equal(got, want, err_msg=name)
        else:
            assert got == want, name
    assert fast.needs_run() == generic.needs_run()


@pytest.mark.parametrize("edit", ["none", "formula", "pin"])
def test_replayed_generation_equals_a_full_rerun(params_tiny_dir: Path, edit: str) -> None:
    wb = _generate(params_tiny_dir, EDITS[edit], on=True)
    full = cellgpt.open(WORKBOOK, model=str(params_tiny_dir), prompt=PROMPT)
    if EDITS[edit] is not None:
        EDITS[edit](full)
    full.set("generated", wb["generated"])
    wb.run()
    full.run()
    for name in _cells_with_values(full):
        want = full[name]
        if isinstance(want, np.ndarray) and want.dtype.kind == "f":
            np.testing.assert_allclose(wb[name], want, rtol=1e-5, atol=1e-5, err_msg=name)
        elif isinstance(want, np.ndarray):
            np.testing.assert_array_equal(wb[name], want, err_msg=name)
        else:
            _assert_close(wb[name], want, name)


def _assert_close(got: Any, want: Any, name: str) -> None:
    """Equal, floats within the one-row vs all-rows rounding (top_k's probabilities)."""
    if isinstance(want, list | tuple):
        assert isinstance(got, list | tuple) and len(got) == len(want), name
        for g, w in zip(got, want, strict=True):
            _assert_close(g, w, name)
    elif isinstance(want, float | np.floating):  # a float32 scalar cell (max_logit) too
        assert math.isclose(got, want, rel_tol=1e-5, abs_tol=1e-5), name
    else:
        assert got == want, name


def test_replayed_greedy_ids_match_hf_generate(
    hf_tiny: Any, params_tiny_dir: Path, replays: list[str]
) -> None:
    wb = cellgpt.open(WORKBOOK, model=str(params_tiny_dir), prompt="The quick brown fox")
    ids = list(wb["prompt_ids"])
    ours = cellgpt.generate(wb, 16, greedy=True)
    assert replays.count("next_token") == 14
    with torch.no_grad():
        theirs = hf_tiny.model.generate(
            torch.tensor([ids]),
            max_new_tokens=16,
            min_new_tokens=16,
            do_sample=False,
            pad_token_id=50256,
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
        )[0, len(ids) :].tolist()
    assert ours == theirs


def test_a_run_of_another_cell_between_tokens_drops_the_replay(
    params_tiny_dir: Path, replays: list[str]
) -> None:
    wb = cellgpt.open(WORKBOOK, model=str(params_tiny_dir), prompt=PROMPT)
    seen: list[int] = []

    def on_token(_token: int) -> None:
        seen.append(replays.count("next_token"))
        if len(wb["generated"]) == 6:
            wb["top_k"]  # an output cell next_token does not need: computed now

    generate(wb, 10, on_token=on_token)
    # replays from the 3rd token on; the run of top_k after the 6th drops the recording:
    # the 7th runs the generic way, the 8th is recorded, the 9th replays again
    assert np.diff([0, *seen]).tolist() == [0, 0, 1, 1, 1, 1, 0, 0, 1, 1]


def test_listeners_hear_of_the_same_cells_as_in_the_generic_path(params_tiny_dir: Path) -> None:
    """The TUI subscribes to cell changes: a replayed token announces every cell it
    recomputes or drops, as the generic path does (once each instead of twice)."""
    heard: dict[bool, list[set[str]]] = {}
    for on in (False, True):
        replay.enabled = on
        try:
            wb = cellgpt.open(WORKBOOK, model=str(params_tiny_dir), prompt=PROMPT)
            names: list[str] = []
            wb.subscribe(names.append)
            per_token: list[set[str]] = []

            def on_token(_token: int, names: list[str] = names, out: list = per_token) -> None:
                out.append(set(names))
                names.clear()

            generate(wb, 6, on_token=on_token)
            heard[on] = per_token
        finally:
            replay.enabled = True
    assert heard[True][2:] == heard[False][2:]  # tokens 3-6 are replayed
    assert len(heard[True][-1]) > 40  # 2 blocks: ~20 cells each
