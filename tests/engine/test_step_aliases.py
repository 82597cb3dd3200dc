"""Step aliases (`h{i}.step{n}`) numbered by the engine in definition order:
`with block(..., steps="h{i}.step", first_step=0)` and `cell(step=True, ...)`."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellgpt import full_library
from cellgpt.engine import WorkbookFileError, load_workbook

GPT2 = Path(__file__).resolve().parents[2] / "workbooks" / "gpt2.py"


@pytest.fixture(scope="module")
def gpt2():
    return load_workbook(GPT2, full_library())


def test_gpt2_step_alias_comes_first_and_hook_names_stay(gpt2):
    # (the step table itself is tested in tests/gpt2/test_course_steps.py)
    assert gpt2.cell("h3.q").hints["alias"] == ("h3.step5", "h3.step5.q", "blocks.3.attn.hook_q")
    assert gpt2.cell("h3.k").hints["alias"] == ("h3.step5.k", "blocks.3.attn.hook_k")
    assert gpt2.cell("h1.qkv").hints["alias"] == ("h1.step4",)
    assert gpt2.cell("h0.attn.scores").hints == {
        "rows": "tokens",
        "cols": "tokens",
        "evict": True,
        "alias": ("h0.step6", "blocks.0.attn.hook_attn_scores"),
        "block": "h0",
    }
    assert "step" not in gpt2.cell("h0.resid_pre").hints
    assert gpt2.resolve("blocks.2.hook_resid_post") == "h2.resid_post"


def test_gpt2_round_trip_is_byte_identical(tmp_path):
    path = tmp_path / "gpt2.py"
    path.write_bytes(GPT2.read_bytes())
    load_workbook(path, full_library()).save()
    assert path.read_bytes() == GPT2.read_bytes()


def _load(tmp_path: Path, text: str):
    path = tmp_path / "wb.py"
    path.write_text(text, encoding="utf-8")
    return load_workbook(path)


BLOCK = """n = 2
x = 1
with block("h", count=n, input=x, output="c"{extra}):
    a: cell(step=True) = prev + 1
    b = a * 2
    c: cell(step=True, alias="h{{i}}.last") = b + i
"""


def test_steps_count_from_first_step_and_skip_unmarked_cells(tmp_path):
    wb = _load(tmp_path, BLOCK.format(extra=', steps="h{i}.s", first_step=4'))
    assert wb.resolve("h1.s4") == "h1.a"
    assert wb.resolve("h1.s5") == "h1.c"
    assert wb.cell("h0.c").hints["alias"] == ("h0.s5", "h0.last")
    assert wb["h.out"] == 11  # h0.c = (1+1)*2 + 0 = 4, h1.c = (4+1)*2 + 1


SHARED = """n = 2
x = 1
with block("h", count=n, input=x, output="d", steps="h{i}.s", first_step=1):
    a: cell(step=True) = prev + 1
    q: cell(step="q") = a + 1
    k: cell(step="k") = a + 2
    b: cell(step="q") = q + k
    c: cell(step="k") = b + 1
    d: cell(step=True) = c * 2
"""


def test_consecutive_suffixed_cells_share_one_step(tmp_path):
    wb = _load(tmp_path, SHARED)
    assert [wb.resolve(f"h1.s{n}") for n in (1, 2, 3, 4)] == ["h1.a", "h1.q", "h1.b", "h1.d"]
    assert wb.resolve("h1.s2.q") == "h1.q"
    assert wb.resolve("h1.s2.k") == "h1.k"
    # a suffix seen again starts the next step: b and c share step 3
    assert wb.resolve("h0.s3.q") == "h0.b"
    assert wb.resolve("h0.s3.k") == "h0.c"
    assert wb.cell("h0.k").hints["alias"] == ("h0.s2.k",)
    with pytest.raises(KeyError):
        wb.resolve("h0.s5")


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("x = 1\ny: cell(step=True) = x\n", 2, "step=True needs a block"),
        (BLOCK.format(extra=""), 4, "step=True needs a block"),
        (
            BLOCK.format(extra=', steps="h{i}.s"').replace("step=True)", "step=1)", 1),
            4,
            "step=True",
        ),
        (
            BLOCK.format(extra=', steps="h{i}.s"').replace("step=True)", 'step="a.b")', 1),
            4,
            "step=True",
        ),
        (BLOCK.format(extra=", first_step=1"), 3, "first_step needs steps"),
        (BLOCK.format(extra=', steps="h{i}.s", first_step=1.5'), 3, "whole number"),
        (BLOCK.format(extra=', steps="h{j}.s"'), 3, "alias"),
    ],
)
def test_misplaced_steps_are_located_errors(tmp_path, text, line, fragment):
    with pytest.raises(WorkbookFileError) as info:
        _load(tmp_path, text)
    assert fragment in str(info.value)
    assert info.value.line == line
