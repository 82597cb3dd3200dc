"""Row-append variants derived from formulas and the library's row rules: which formulas
are row-wise, and that the derived variants give exactly what a full recompute gives."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import cellgpt
from cellgpt.engine import CellSpec, Workbook, core, derive_row_extenders
from cellgpt.engine.row_rules import Fixed, Rows, elementwise, matmul_rows, softmax_rows
from cellgpt.gpt2 import functions as gpt2_functions

WORKBOOK = Path(__file__).resolve().parents[2] / "workbooks" / "gpt2.py"

XS = [[1.0, 2.0], [3.0, -1.0], [0.5, 0.25]]
MORE = [[2.0, -3.0], [1.5, 4.0]]


def _book(extra: list[CellSpec], xs: list[list[float]] = XS) -> Workbook:
    wb = Workbook(gpt2_functions.register(core.copy()))
    wb.define_many(
        [
            CellSpec("xs", repr(xs)),
            CellSpec("x", "array(xs, 'float64')"),
            CellSpec("w", "array([[1.0, -2.0, 0.5], [0.25, 3.0, -1.0]], 'float64')"),
            CellSpec("b", "array([0.5, -0.5, 2.0], 'float64')"),
            CellSpec("g", "ones(3, 'float64')"),
            *extra,
        ]
    )
    wb.run()
    return wb


def _derived(extra: list[CellSpec]) -> set[str]:
    wb = _book(extra)
    return set(derive_row_extenders(wb, grows=["xs"]))


def test_row_wise_formulas_are_derived():
    got = _derived(
        [
            CellSpec("y", "matmul(x, w) + b"),
            CellSpec("n", "layer_norm(y, g, b, 1e-5)"),
            CellSpec("a", "gelu(n) * 0.5 - relu(y)"),
            CellSpec("s", "softmax(a)"),
            CellSpec("t", "transpose(transpose(s))"),
            CellSpec("m", "maximum(t, 0.0) @ transpose(w)"),
        ]
    )
    assert {"y", "n", "a", "s", "t", "m"} <= got
    assert not {"x", "w", "b", "g"} & got  # array() has no rule; the rest does not grow


@pytest.mark.parametrize(
    "formula",
    [
        "sum(x, 0)",  # a function without a row rule (a reduction over the rows)
        "softmax(transpose(x), -1)",  # softmax across the rows
        "softmax(x, 0)",
        "matmul(transpose(x), x)",  # rows contracted away
        "matmul(w2, x)",  # the matrix grows too (w2 depends on the rows)
        "x[0]",  # indexing picks a row
        "x + transpose(x)",  # rows on two different axes
        "layer_norm(transpose(x), g2, g2)",  # normalising across the rows
    ],
)
def test_formulas_that_mix_rows_are_not_derived(formula):
    extra = [
        CellSpec("w2", "transpose(x)"),
        CellSpec("g2", "ones(3, 'float64')"),
        CellSpec("y", formula),
    ]
    assert "y" not in _derived(extra)


def test_the_rules_answer_kinds():
    rows = Rows(0, 2)
    assert elementwise([rows, Fixed(1)]) == rows
    assert elementwise([Rows(0, 1), Fixed(2)]) == Rows(1, 2)  # broadcasting moves the rows
    assert elementwise([rows, Fixed(None)]) is None  # could move them anywhere
    assert softmax_rows([Rows(1, 3, -math.inf), Fixed(0, -1)]) == Rows(1, 3, 0.0)
    assert softmax_rows([Rows(0, 1), Fixed(0, -1)]) is None
    assert matmul_rows([Rows(0, 1), Fixed(2)]) is None  # a vector of rows is contracted
    assert matmul_rows([Rows(1, 3), Fixed(2)]) == Rows(1, 3)


def _append_and_compare(
    extra: list[CellSpec], edit: tuple[str, str] | None = None, start: list[list[float]] = XS
) -> Workbook:
    wb = _book(extra, start)
    derive_row_extenders(wb, grows=["xs"])
    if edit:
        wb.set_formula(*edit)
    xs = list(start)
    for row in MORE:
        xs.append(row)
        wb.set("xs", xs)
        wb.run()
    full = _book(extra, xs)
    if edit:
        full.set_formula(*edit)
        full.run()
    for name in full.cells():  # equal up to BLAS's summation order for fewer rows
        np.testing.assert_allclose(wb[name], full[name], rtol=1e-13, atol=0, err_msg=name)
    return wb


def test_derived_variants_give_exactly_a_full_recompute():
    extra = [
        CellSpec("y", "matmul(x, w) + b"),
        CellSpec("n", "layer_norm(y, g, b, 1e-5)"),
        CellSpec("a", "softmax(gelu(n) * 0.5 - y)"),
        CellSpec("o", "a @ transpose(w)"),
    ]
    wb = _append_and_compare(extra)
    for name in ("y", "n", "a", "o"):
        assert wb.state(name).appended_from == len(XS) + len(MORE) - 1, name


ATTENTION = [
    CellSpec("qkv", "concat([x, x * 2.0, x - 1.0, x, -x, x * 0.5], 1)"),  # [T, 12]
    CellSpec("q", "split_heads(qkv, 0, 2)"),
    CellSpec("k", "split_heads(qkv, 1, 2)"),
    CellSpec("v", "split_heads(qkv, 2, 2)"),
    CellSpec("scores", "attention_scores(q, k)", hints={"evict": True}),
    CellSpec("pattern", "softmax(scores)"),
    CellSpec("z", "merge_heads(matmul(pattern, v))"),
    CellSpec("out", "z * 3.0 + x[0, 0]"),
]


def test_causal_attention_is_derived_and_equals_a_full_recompute():
    wb = _append_and_compare(ATTENTION)
    scores = wb.extender("scores")
    assert (dict(scores.cut), scores.whole, scores.pad) == ({"q": 1}, {"k"}, -math.inf)
    assert wb.extender("pattern").pad == 0.0 and wb.extender("z").whole == {"v"}
    assert wb.state("z").appended_from == len(XS) + len(MORE) - 1
    assert wb.extender("qkv") is None and wb.extender("out") is None  # concat, indexing


def test_an_edited_formula_falls_back_and_its_readers_stay_right():
    edit = ("pattern", "zero_head(softmax(scores), 1)")
    wb = _append_and_compare(ATTENTION, edit)
    assert wb.extender("pattern") is None


def test_an_edit_that_moves_the_rows_is_not_trusted_by_its_readers():
    # t's rows move from axis 1 to axis 0 after the variants were derived: u must not cut
    # t on axis 1 any more (from one row of two columns, the shapes alone would not tell)
    wb = _append_and_compare(
        [CellSpec("t", "transpose(x)"), CellSpec("u", "t * 2.0")],
        edit=("t", "x + 0.0"),
        start=XS[:1],
    )
    assert wb.extender("u") is not None  # still there, but it refused: u equals a full run


def test_pinned_cells_get_no_variant():
    wb = _book([CellSpec("y", "matmul(x, w) + b"), CellSpec("n", "gelu(y)")])
    wb.pin("y", wb["y"])
    got = derive_row_extenders(wb, grows=["xs"])
    assert "y" not in got and wb.extender("y") is None
    assert "n" not in got  # with y fixed, n no longer depends on the rows


def test_every_row_wise_gpt2_cell_gets_a_derived_variant(params_tiny_dir):
    wb = cellgpt.open(WORKBOOK, model=str(params_tiny_dir), prompt="Once upon a time")
    wb.run("next_token")
    got = set(derive_row_extenders(wb, grows=["generated"]))

    def passes_through(name: str) -> bool:  # `x = y`: nothing to compute
        return wb.cell(name).source in wb.precedents(name)

    token_dependent = wb.descendants("generated")
    block = {
        n
        for n in token_dependent
        if wb.cell(n).template and wb.cell(n).formula and not passes_through(n)
    }
    assert len(block) == 19 * int(wb["n_layer"])  # 16 steps, k and v, ln_1/ln_2 scales
    assert block | {"wte_rows", "embed", "ln_f.scale", "ln_f.normalized", "ln_f"} <= got
    assert "logits_all" in got
    scores = wb.extender("h0.attn.scores")
    assert (dict(scores.cut), scores.axis, scores.whole) == ({"h0.q": 1}, 1, {"h0.k"})


def test_a_repeated_derivation_reuses_the_variants_until_something_changes():
    wb = _book([CellSpec("y", "matmul(x, w) + b"), CellSpec("z", "relu(y)")])
    first = derive_row_extenders(wb, grows=["xs"])
    variant = wb.extender("z")
    assert set(first) >= {"y", "z"} and variant is not None
    assert derive_row_extenders(wb, grows=["xs"]) == first
    assert wb.extender("z") is variant  # nothing changed: the same variant, not a new one
    wb.set_formula("z", "sum(y)")  # a reduction over the rows: no variant any more
    wb.run()
    assert "z" not in derive_row_extenders(wb, grows=["xs"])
    wb.set_formula("z", "relu(y)")
    wb.run()
    assert "z" in derive_row_extenders(wb, grows=["xs"])
    wb.set_extender("y", None)  # removed by someone else: derived again
    assert "y" in derive_row_extenders(wb, grows=["xs"]) and wb.extender("y") is not None
    wb.pin("y", np.zeros((3, 3)))
    assert "y" not in derive_row_extenders(wb, grows=["xs"])


def test_calls_of_function_cells_are_walked_through_their_bodies():
    wb = _book([])
    wb.define_function("def lin(a, m, c): return matmul(a, m) + c")
    wb.define_function("def mix(a): return a - mean(a, axis=0)")  # across the rows
    wb.define("y", "lin(x, w, b) * 2.0")
    wb.define("z", "mix(x)")
    wb.run()
    assert set(derive_row_extenders(wb, grows=["xs"])) >= {"y"}
    assert wb.extender("z") is None
    xs = [*XS, MORE[0]]
    wb.set("xs", xs)
    wb.run()
    assert wb.state("y").appended_from == len(XS)
    # a redefinition that mixes rows drops the variant derived from the old body, at once
    wb.set_function("lin", "def lin(a, m, c): return matmul(a - mean(a, axis=0), m) + c")
    assert wb.extender("y") is None
    xs.append(MORE[1])
    wb.set("xs", xs)
    full = _book([], xs)
    full.define_function(wb.function("lin").source)
    full.define("y", "lin(x, w, b) * 2.0")
    np.testing.assert_allclose(wb["y"], full["y"], rtol=1e-13)
