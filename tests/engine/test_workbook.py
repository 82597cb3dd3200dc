"""The workbook runtime: laziness, staleness, errors, pins, templates, queries."""

from __future__ import annotations

import numpy as np
import pytest

from cellgpt.engine import (
    CellError,
    CellSpec,
    CycleError,
    DefinitionError,
    DuplicateNameError,
    FormulaError,
    Status,
    Template,
    UnknownNameError,
    Workbook,
)


def diamond() -> Workbook:
    """a -> b -> d, a -> c -> d, d -> h; f is independent."""
    wb = Workbook()
    wb.define("a", "2")
    wb.define("b", "a * 10")
    wb.define("c", "a + 1")
    wb.define("d", "b + c")
    wb.define("h", "d * 2")
    wb.define("f", "7")
    return wb


def runs(wb: Workbook) -> dict[str, int]:
    return {n: wb.state(n).runs for n in wb.cells()}


def test_lazy_run_computes_only_what_is_needed():
    wb = diamond()
    assert wb["b"] == 20
    assert runs(wb) == {"a": 1, "b": 1, "c": 0, "d": 0, "h": 0, "f": 0}
    assert wb["h"] == 2 * (20 + 3)
    assert wb.status("f") == Status.STALE


def test_mid_graph_edit_marks_exactly_its_descendants_stale_and_reruns_only_them():
    wb = diamond()
    wb.run()
    before = runs(wb)
    wb.set_formula("b", "a * 100")
    stale = {n for n in wb.cells() if wb.status(n) == Status.STALE}
    assert stale == {"b", "d", "h"}
    evaluations = wb.evaluations
    wb.run()
    assert wb.evaluations - evaluations == 3
    after = runs(wb)
    assert {n for n in after if after[n] != before[n]} == {"b", "d", "h"}
    assert wb["h"] == 2 * (200 + 3)


def test_set_input_invalidates_downstream():
    wb = diamond()
    wb.run()
    wb.set("a", 5)
    assert wb.stale() == ["a", "b", "c", "d", "h"]
    assert wb["h"] == 2 * (50 + 6)
    assert wb.cell("a").source == "5"


def test_set_on_a_formula_cell_is_refused():
    wb = diamond()
    with pytest.raises(DefinitionError, match="computed by a formula"):
        wb.set("b", 3)


def test_non_literal_input_values():
    wb = Workbook()
    wb.define("m", "zeros((2, 2))")
    wb.define("x", "0")
    wb.define("y", "x * 2")
    wb.set("x", np.arange(3))
    np.testing.assert_array_equal(wb["y"], [0, 2, 4])


def test_cycle_is_refused_and_valid_cells_are_not_disturbed():
    wb = diamond()
    wb.run()
    with pytest.raises(CycleError) as info:
        wb.set_formula("a", "h + 1")
    assert info.value.cycle[0] == "a" and info.value.cycle[-1] == "a"
    assert "h" in info.value.cycle
    assert wb.cell("a").source == "2"
    assert all(wb.status(n) == Status.FRESH for n in wb.cells())
    with pytest.raises(CycleError):
        wb.set_formula("b", "b + 1")
    with pytest.raises(CycleError):
        wb.define_many([CellSpec("p", "q"), CellSpec("q", "p")])
    assert "p" not in wb and "q" not in wb


def test_duplicate_and_unknown_names_are_refused():
    wb = diamond()
    with pytest.raises(DuplicateNameError, match="'b'"):
        wb.define("b", "1")
    with pytest.raises(UnknownNameError, match="unknown name 'zz'"):
        wb.define("g", "zz + 1")
    with pytest.raises(UnknownNameError, match="unknown function 'frobnicate'"):
        wb.define("g", "frobnicate(a)")
    with pytest.raises(UnknownNameError, match="attribute access"):
        wb.define("g", "a.real")
    assert "g" not in wb
    assert wb["d"] == 23


def test_bad_formula_edit_keeps_the_old_one():
    wb = diamond()
    for text in ["b +", "__import__('os')", "nope(1)", "missing * 2"]:
        with pytest.raises((FormulaError, DefinitionError)):
            wb.set_formula("d", text)
        assert wb.cell("d").source == "b + c"
    assert wb["d"] == 23


def test_runtime_error_blocks_only_dependents():
    wb = diamond()
    wb.set_formula("c", "a / 0")
    wb.run()
    assert wb.status("c") == Status.ERROR
    assert "ZeroDivisionError" in wb.state("c").error.message
    assert wb.status("d") == Status.BLOCKED
    assert wb.status("h") == Status.BLOCKED
    assert wb.state("h").error.message == "blocked by c"
    assert wb.status("b") == Status.FRESH and wb.status("f") == Status.FRESH
    with pytest.raises(CellError, match="blocked by c"):
        wb["h"]
    wb.set_formula("c", "a + 2")
    assert wb["h"] == 2 * (20 + 4)


def test_pin_and_unpin():
    wb = diamond()
    wb.run()
    wb.pin("c", 100)
    assert wb.status("c") == Status.STALE
    assert wb["h"] == 2 * (20 + 100)
    assert wb.status("c") == Status.PINNED
    assert wb.cell("c").source == "a + 1"  # the formula is kept
    wb.set("a", 3)  # upstream change does not reach through a pin
    assert wb["d"] == 30 + 100
    wb.unpin("c")
    assert wb["h"] == 2 * (30 + 4)
    wb.pin("b")  # pin the current value
    wb.set("a", 0)
    assert wb["d"] == 30 + 1


def test_rerun_recomputes_one_cell_only():
    wb = diamond()
    wb.run()
    before = runs(wb)
    assert wb.rerun("d") == 23
    after = runs(wb)
    assert {n for n in after if after[n] != before[n]} == {"d"}
    assert wb.status("h") == Status.STALE  # its value may have changed, so downstream is stale


def test_stale_value_is_kept_for_display_until_recomputed():
    wb = diamond()
    wb.run()
    wb.set("a", 3)
    assert wb.status("h") == Status.STALE
    assert wb.value("h") == 46
    wb.run("h")
    assert wb.value("h") == 2 * (30 + 4)


def test_values_are_read_only_so_readers_cannot_corrupt_them():
    wb = Workbook()
    wb.define("m", "zeros(3)")
    m = wb["m"]
    with pytest.raises(ValueError):
        m[0] = 1


def test_metadata_and_queries():
    wb = diamond()
    wb.run()
    info = wb.info("d")
    assert info.status == Status.FRESH
    assert info.precedents == ("b", "c")
    assert info.dependents == ("h",)
    assert info.version == 1 and info.runs == 1
    assert info.duration >= 0
    assert wb.info("a").is_input and not info.is_input
    m = Workbook()
    m.define("m", "ones((2, 3))")
    m.run()
    assert m.info("m").shape == (2, 3) and m.info("m").dtype == "float32"
    assert wb.cells() == ["a", "b", "c", "d", "h", "f"]


def test_table_uses_label_hints():
    wb = Workbook()
    wb.define("words", "['x', 'y']")
    wb.define("dims", "['d0', 'd1', 'd2']")
    wb.define("m", "ones((2, 3))", hints={"rows": "words", "cols": "dims"})
    df = wb.table("m")
    assert list(df.index) == ["x", "y"] and list(df.columns) == ["d0", "d1", "d2"]
    assert df.loc["y", "d2"] == 1.0


def test_cancel_and_progress():
    wb = diamond()
    seen = []
    wb.run(progress=lambda done, total, name: seen.append((done, total, name)))
    assert seen[0] == (0, 6, "a") and seen[-1] == (6, 6, "")
    wb.set("a", 1)
    from cellgpt.engine import RunCancelled

    with pytest.raises(RunCancelled):
        wb.run(cancel=lambda: True)
    assert wb.status("h") == Status.STALE


def test_listeners_hear_about_changes():
    wb = diamond()
    heard: list[str] = []
    wb.subscribe(heard.append)
    wb.run("b")
    assert "a" in heard and "b" in heard


# --------------------------------------------------------------------- templates


def chain_workbook(n: int = 3) -> Workbook:
    wb = Workbook()
    wb.define("n", str(n))
    wb.define("x0", "1.0")
    wb.define("scale", "10.0")
    wb.define_template(
        Template(
            prefix="h",
            count="n",
            input="x0",
            output="out",
            cells=[
                CellSpec("double", "prev * 2", hints={"alias": ("h{i}.step1",)}),
                CellSpec("out", "double + i * scale", hints={"alias": ("blocks.{i}.hook_out",)}),
            ],
        )
    )
    wb.define("final", "h.out + 0.5")
    return wb


def test_template_instances_are_wired_in_a_chain():
    wb = chain_workbook(3)
    assert [n for n in wb.cells() if n.startswith("h")] == [
        "h0.double",
        "h0.out",
        "h1.double",
        "h1.out",
        "h2.double",
        "h2.out",
        "h.out",
    ]
    assert wb.cell("h1.double").source == "h0.out * 2"
    assert wb.cell("h2.out").source == "h2.double + 2 * scale"
    # x=1 -> 2 -> 2+0 ; 4 -> 4+10 ; 28 -> 28+20 = 48
    assert wb["final"] == 48.5
    assert wb["h1.step1"] == 4.0
    assert wb["blocks.2.hook_out"] == 48.0
    assert wb.precedents("h0.double") == ("x0",)


def test_template_count_comes_from_a_cell_and_can_change():
    wb = chain_workbook(3)
    assert wb["final"] == 48.5
    wb.set("n", 5)
    wb.run()
    assert "h4.out" in wb and wb.cell("h.out").source == "h4.out"
    assert wb["final"] == 2 * (2 * 48 + 30) + 40 + 0.5
    wb.set("n", 1)
    wb.run()
    assert "h1.out" not in wb and "h1.step1" not in wb
    assert wb["final"] == 2.5


def test_editing_one_instance_overrides_only_it():
    wb = chain_workbook(3)
    wb.run()
    wb.set_formula("h1.double", "h0.out * 0")
    assert wb.stale() == ["h1.double", "h1.out", "h2.double", "h2.out", "h.out", "final"]
    # h1.double = 0, h1.out = 0 + 10, h2.double = 20, h2.out = 20 + 20
    assert wb["final"] == 40.5
    assert wb["h0.out"] == 2.0 and wb.state("h0.out").runs == 1
    assert wb.overrides() == {"h1.double": "h0.out * 0"}
    wb.reset_formula("h1.double")
    assert wb.overrides() == {}
    assert wb["final"] == 48.5


def test_block_wiring_cells_cannot_be_edited():
    wb = chain_workbook(2)
    with pytest.raises(DefinitionError, match="wired by its block template"):
        wb.set_formula("h.out", "x0")


def test_template_with_unknown_name_is_refused():
    wb = Workbook()
    wb.define("n", "2")
    wb.define("x0", "1")
    with pytest.raises(UnknownNameError, match="nothing_here"):
        wb.define_template(
            Template("h", "n", "x0", "out", [CellSpec("out", "prev + nothing_here")])
        )
    assert wb.templates() == []


def test_template_count_must_be_a_whole_number():
    wb = Workbook()
    wb.define("n", "'three'")
    wb.define("x0", "1")
    wb.define_template(Template("h", "n", "x0", "out", [CellSpec("out", "prev + 1")]))
    assert wb.status("n") == Status.ERROR
    assert "whole number" in wb.state("n").error.message


def test_block_aliases_are_filled_by_plain_replacement_not_format():
    wb = Workbook()
    wb.define("n", "2")
    wb.define("x0", "1")
    spec = CellSpec("out", "prev + 1", hints={"alias": ("blocks.{i}.out", "x{i.__class__}{i}")})
    wb.define_template(Template("h", "n", "x0", "out", [spec]))
    assert wb.resolve("blocks.1.out") == "h1.out"
    # A format-string walk stays literal text: it is never evaluated.
    assert "x{i.__class__}0" in wb.info("h0.out").hints["alias"]
