"""Generation replays its row-append steps (engine/replay.py): the replay must leave every
cell exactly as the generic row-append path does, hand back HF's greedy ids, and step aside
whenever the workbook is edited, pinned or read in a way the recording did not foresee."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import cellgpt
from cellgpt.engine import Workbook, replay
from cellgpt.engine.errors import CellError
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
    assert len(_cells_with_values(generic)) > 50  # 2 blocks: every cell, evicted ones too
    _same_cells(fast, generic)
    assert fast.needs_run() == generic.needs_run()


def _same_cells(fast: Workbook, generic: Workbook) -> None:
    """Every cell in the same state with the same value: same operations on the same
    numbers, bit for bit."""
    names = _cells_with_values(generic)
    assert names == _cells_with_values(fast)
    for name in names:
        mine, theirs = fast.state(name), generic.state(name)
        assert (mine.status, mine.appended_from, mine.evicted, mine.version) == (
            theirs.status,
            theirs.appended_from,
            theirs.evicted,
            theirs.version,
        ), name
        assert mine.input_versions == theirs.input_versions, name
        got, want = fast[name], generic[name]
        if isinstance(want, np.ndarray):
            np.testing.assert_array_equal(got, want, err_msg=name)
        else:
            assert got == want, name


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


# ---------------------------------------------------------------------------- replay groups
# A block's seventeen one-row cells run as one kernel while generating (gpt2/replay_block.py,
# engine/replay_group.py); the tests above compare every cell with the generic path with it
# on. These check that it is used, and that whatever stops it midway leaves the same cells.


def _generate_with(folder: Path, groups: Callable[[Workbook], None] | None) -> Workbook:
    wb = cellgpt.open(WORKBOOK, model=str(folder), prompt=PROMPT)
    if groups is not None:
        groups(wb)
    generate(wb, 8)
    return wb


@pytest.fixture
def group_runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many members each replayed group stored (a spy on run_group)."""
    from cellgpt.engine import replay_group

    stored: list[int] = []
    original = replay_group.run_group

    def spy(*args: Any) -> int:
        stored.append(original(*args))
        return stored[-1]

    monkeypatch.setattr(replay, "run_group", spy)
    return stored


def test_every_block_of_a_replayed_token_runs_as_one_group(
    params_tiny_dir: Path, group_runs: list[int]
) -> None:
    wb = _generate_with(params_tiny_dir, None)
    n_layer = int(wb["n_layer"])
    # tokens 3..8 replay (the 2nd records): every block, all seventeen cells each time
    assert group_runs == [17] * (6 * n_layer)


def test_an_edited_block_runs_cell_by_cell_and_the_others_as_groups(
    params_tiny_dir: Path, group_runs: list[int]
) -> None:
    def edit(wb: Workbook) -> None:
        wb.set_formula("h1.mlp.gelu", "gelu(h1.mlp.fc) * 1.0")

    fast = _generate_with(params_tiny_dir, edit)
    assert group_runs == [17] * 6  # block 0 only: block 1's gelu is not the group's formula
    replay.enabled = False
    try:
        generic = _generate_with(params_tiny_dir, edit)
    finally:
        replay.enabled = True
    _same_cells(fast, generic)


# the row axis of each member: [heads, rows, ...] for q, k, v, scores and pattern
ROW_AXIS = [0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]


@pytest.mark.parametrize("stop_after", [0, 6, 9, 16])
@pytest.mark.parametrize("how", ["raises", "wrong-rows"])
def test_a_group_stopped_midway_leaves_the_rest_to_the_ordinary_way(
    params_tiny_dir: Path, group_runs: list[int], stop_after: int, how: str
) -> None:
    """A kernel that fails (or hands over rows that do not fit) after some members: those
    are stored, the others run one by one, and every cell ends as in the generic path."""

    def failing(wb: Workbook) -> None:
        (block,) = wb.library.replay_groups
        kernel = block.kernel

        def stops(step: Callable[[Any], Any], *args: Any) -> None:
            stored = [0]

            def counted(new: Any) -> Any:
                if stored[0] == stop_after:
                    if how == "raises":
                        raise ZeroDivisionError("a kernel bug")
                    # twice the rows along the member's row axis: what it cannot store
                    new = np.concatenate([new, new], axis=ROW_AXIS[stop_after])
                stored[0] += 1
                return step(new)

            kernel(counted, *args)

        wb.library.replay_groups[0] = dataclasses.replace(block, kernel=stops)

    fast = _generate_with(params_tiny_dir, failing)
    assert group_runs and set(group_runs) == {stop_after}
    replay.enabled = False
    try:
        generic = _generate_with(params_tiny_dir, None)
    finally:
        replay.enabled = True
    assert fast["generated"] == generic["generated"]
    _same_cells(fast, generic)


@pytest.mark.parametrize(
    "cell, hint",
    [("k", 'step="k", rows="tokens", evict=True'), ("ln_1", 'step=True, rows="tokens"')],
    ids=["k-evictable", "ln_1-kept"],
)
def test_a_workbook_that_evicts_or_keeps_other_cells_gets_the_same_cells(
    params_tiny_dir: Path, tmp_path: Path, group_runs: list[int], cell: str, hint: str
) -> None:
    """A workbook file may keep cells the stock one drops, or drop one the attention reads
    whole (k): the group must not hand a cell's tail where its whole value is read."""
    text = WORKBOOK.read_text(encoding="utf-8")
    line = next(x for x in text.splitlines() if x.lstrip().startswith(f"{cell}: cell("))
    head, formula = line.split(") = ", 1)
    edited = text.replace(line, f"{head.split('cell(')[0]}cell({hint}) = {formula}")
    assert edited != text
    path = tmp_path / "gpt2_edited.py"
    path.write_text(edited, encoding="utf-8")
    runs = {}
    for on in (True, False):
        replay.enabled = on
        try:
            wb = cellgpt.open(path, model=str(params_tiny_dir), prompt=PROMPT)
            generate(wb, 8)
            runs[on] = wb
        finally:
            replay.enabled = True
    assert runs[True]["generated"] == runs[False]["generated"]
    _same_cells(runs[True], runs[False])
    if cell == "ln_1":
        assert group_runs and set(group_runs) == {17}  # a kept ln_1 is read as new rows


def test_a_group_over_the_memory_budget_fails_as_the_generic_path(
    params_tiny_dir: Path, group_runs: list[int]
) -> None:
    """A token whose kept cells no longer fit the workbook's memory budget: the group stops
    at the member that does not fit, and that cell gets the generic path's error (the
    same cell, the same message, at the same token)."""
    from cellgpt.engine.limits import Limits

    def run(on: bool) -> tuple[list[int], str]:
        replay.enabled = on
        try:
            wb = cellgpt.open(WORKBOOK, model=str(params_tiny_dir), prompt=PROMPT)
            generate(wb, 3)  # the replay is recorded and running
            used = wb._sheet.store.total_bytes
            # room for ~15 tokens: then the kept cells' buffers grow (append.py's spare
            # rows run out) and one of block 0's kept cells no longer fits
            wb.limits = Limits(store_bytes=used + 16_000)
            tokens: list[int] = []
            with pytest.raises(CellError) as failed:
                generate(wb, 20, on_token=tokens.append)
            return tokens, str(failed.value)
        finally:
            replay.enabled = True

    fast, generic = run(True), run(False)
    assert "over the workbook memory budget" in generic[1] and "blocked by h0." in generic[1]
    assert fast == generic
    # block 0's group stored its members up to a kept one (q, k, v, ...) that did not fit
    assert any(0 < stored < 17 for stored in group_runs)
