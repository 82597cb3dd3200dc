"""Evictable cells (hint `evict=True`): the value is dropped once every reader is up to date,
the cell stays fresh, and reading it recomputes it without disturbing the cells after it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import cellgpt
from cellgpt.engine import CellError, CellSpec, Status, Workbook
from cellgpt.engine.append import RowExtender
from cellgpt.gpt2.generate import generate

WORKBOOK = Path(__file__).resolve().parents[2] / "workbooks" / "gpt2.py"
EVICT = {"evict": True}


def _book() -> Workbook:
    wb = Workbook()
    wb.define_many(
        [
            CellSpec("xs", "[1.0, 2.0, 3.0]"),
            CellSpec("x", "array(xs)"),
            CellSpec("big", "x * 2", hints=EVICT),
            CellSpec("y", "big + 1"),
            CellSpec("z", "sum(y)"),
        ]
    )
    return wb


def test_value_is_dropped_once_readers_are_done_and_the_cell_stays_fresh():
    wb = _book()
    assert wb["z"] == 15.0
    state = wb.state("big")
    assert state.evicted and not state.has_value
    assert wb.status("big") == Status.FRESH
    assert wb.info("big").evicted
    assert wb.value("big") is None and wb.value("big", "gone") == "gone"
    assert wb.evicted() == ["big"]
    assert wb.stale() == []


def test_reading_recomputes_without_rerunning_or_bumping_dependents():
    wb = _book()
    wb.run()
    runs = {n: wb.state(n).runs for n in wb.cells()}
    versions = {n: wb.state(n).version for n in wb.cells()}
    np.testing.assert_array_equal(wb["big"], [2.0, 4.0, 6.0])
    assert wb.state("big").runs == runs["big"] + 1
    assert {n: wb.state(n).version for n in wb.cells()} == versions
    assert {n: wb.state(n).runs for n in wb.cells() if n != "big"} == {
        n: r for n, r in runs.items() if n != "big"
    }
    assert not wb.state("big").evicted  # kept until a later run computes something
    assert wb.value("big") is not None
    assert wb.stale() == []
    np.testing.assert_array_equal(wb.table("big").to_numpy().ravel(), [2.0, 4.0, 6.0])
    np.testing.assert_array_equal(wb.run("big"), [2.0, 4.0, 6.0])
    wb.set("xs", [1.0, 1.0, 1.0])
    assert wb["z"] == 9.0
    assert wb.state("big").evicted  # dropped again by the later run


def test_a_leaf_asked_for_is_kept_until_the_next_run():
    wb = Workbook()
    wb.define("a", "arange(4)")
    wb.define("leaf", "a * 3", hints=EVICT)
    np.testing.assert_array_equal(wb["leaf"], [0, 3, 6, 9])
    assert not wb.state("leaf").evicted
    wb.set_formula("a", "arange(2)")
    wb.run("a")
    assert wb.state("leaf").status == Status.STALE
    np.testing.assert_array_equal(wb["leaf"], [0, 3])


def test_a_new_reader_gets_the_recomputed_value():
    wb = _book()
    wb.run()
    wb.define("w", "big * 10")
    np.testing.assert_array_equal(wb["w"], [20.0, 40.0, 60.0])
    wb.run()
    assert wb.state("big").evicted


def test_pinned_cells_are_never_evicted():
    wb = _book()
    wb.run()
    wb.pin("big")
    np.testing.assert_array_equal(wb.value("big"), [2.0, 4.0, 6.0])  # pin ran it (restored)
    assert wb["z"] == 15.0
    assert not wb.state("big").evicted and wb.value("big") is not None
    wb.pin("big", np.array([1.0, 1.0, 1.0]))
    assert wb["z"] == 6.0
    assert wb.value("big") is not None
    wb.unpin("big")
    assert wb["z"] == 15.0
    assert wb.state("big").evicted


def test_editing_formula_or_inputs_behaves_normally():
    wb = _book()
    wb.run()
    wb.set_formula("big", "x * 3")
    assert wb.status("big") == Status.STALE and wb.status("z") == Status.STALE
    assert wb["z"] == 21.0
    assert wb.state("big").evicted
    wb.set("xs", [0.0])
    assert wb["z"] == 1.0
    np.testing.assert_array_equal(wb["big"], [0.0])


def test_errors_are_not_affected():
    wb = _book()
    wb.run()
    wb.set_formula("big", "reshape(x, [7])")
    with pytest.raises(CellError):
        wb.run("z")
    assert wb.status("big") == Status.ERROR and not wb.state("big").evicted
    assert wb.status("z") == Status.BLOCKED
    wb.set_formula("big", "x * 2")
    assert wb["z"] == 15.0
    # a reader in error keeps the value held (not every reader is up to date)
    wb.define("bad", "reshape(big, [5])")
    wb.run()
    assert wb.status("bad") == Status.ERROR
    assert not wb.state("big").evicted


def test_evict_hint_in_a_workbook_file(tmp_path):
    path = tmp_path / "book.py"
    text = "x = arange(5)\nbig: cell(evict=True) = x * 2\ny = big + 1\n"
    path.write_text(text)
    wb = cellgpt.open(path)
    np.testing.assert_array_equal(wb["y"], [1, 3, 5, 7, 9])
    assert wb.state("big").evicted
    wb.save()
    assert path.read_text() == text


def test_an_evicted_cell_in_row_append_keeps_only_its_new_rows():
    wb = Workbook()
    wb.define_many(
        [
            CellSpec("xs", "[1.0, 2.0]"),
            CellSpec("x", "reshape(array(xs), [-1, 1])"),
            CellSpec("big", "x * 2", hints=EVICT),
            CellSpec("y", "big + 1"),
        ]
    )
    wb.set_extender("big", RowExtender({"x": 0}))
    wb.set_extender("y", RowExtender({"big": 0}))
    wb.run()
    assert wb.state("big").evicted
    wb.set("xs", [1.0, 2.0, 3.0])
    runs = wb.state("big").runs
    np.testing.assert_array_equal(wb["y"], [[3.0], [5.0], [7.0]])
    assert wb.state("big").runs == runs + 1  # only the new row, never the whole value
    assert wb.state("y").appended_from == 2
    assert wb.state("big").evicted and wb.state("big").tail is None
    np.testing.assert_array_equal(wb["big"], [[2.0], [4.0], [6.0]])


# ---------------------------------------------------------------- GPT-2


@pytest.fixture(scope="module")
def tiny_wb(params_tiny_dir) -> Workbook:
    wb = cellgpt.open(WORKBOOK, model=str(params_tiny_dir), prompt="Mike is quick. He moves")
    wb.run()
    return wb


def test_gpt2_scores_are_evicted_and_recomputed_consistently(tiny_wb):
    wb = tiny_wb
    n_layer = int(wb["n_layer"])
    # the big per-token intermediates are dropped once their block has used them
    for local in ("attn.scores", "attn.pattern", "attn.z", "qkv", "mlp.fc", "mlp.gelu"):
        assert all(wb.state(f"h{i}.{local}").evicted for i in range(n_layer)), local
    assert not any(wb.state(f"h{i}.resid_post").evicted for i in range(n_layer))
    logits_version = wb.state("logits").version
    scores = wb["h1.attn.scores"]
    shifted = np.exp(scores - scores.max(axis=-1, keepdims=True))
    np.testing.assert_allclose(
        shifted / shifted.sum(axis=-1, keepdims=True), wb["h1.attn.pattern"], atol=1e-6
    )
    assert wb.state("logits").version == logits_version  # reading them touched nothing after
    assert wb["blocks.1.attn.hook_attn_scores"] is scores


def test_gpt2_generation_with_evicted_scores_equals_full_recompute(params_tiny_dir):
    wb = cellgpt.open(WORKBOOK, model=str(params_tiny_dir), prompt="Mike is quick. He moves")
    new = generate(wb, 5)
    wb.run()  # the last token's rows too
    n = int(wb["n_tokens"])
    # only the new row of the scores was computed (and dropped), the pattern was extended
    assert wb.state("h1.attn.scores").evicted
    assert wb.state("h1.attn.scores").appended_from == n - 1
    assert wb.state("h1.attn.pattern").appended_from == n - 1
    full = cellgpt.open(WORKBOOK, model=str(params_tiny_dir), prompt="Mike is quick. He moves")
    full.set("generated", new)
    for name in ("h1.attn.scores", "h1.attn.pattern", "logits"):
        np.testing.assert_allclose(wb[name], full[name], atol=1e-5)
    assert int(wb["next_token"]) == int(full["next_token"])
