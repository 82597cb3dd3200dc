"""`cellgpt cell NAME [PROMPT]`: the prompt is needed exactly when the workbook has a prompt
cell (gpt2 does; word_analogy, relu_parabola and embeddings do not)."""

from __future__ import annotations

import json

import pytest

from cellgpt.cli import build_parser, main


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_prompt_is_an_optional_second_positional() -> None:
    parser = build_parser()
    args = parser.parse_args(["cell", "answer", "--workbook", "word_analogy"])
    assert (args.name, args.prompt, args.workbook) == ("answer", None, "word_analogy")
    args = parser.parse_args(["cell", "logits", "ROMEO:", "--format", "json"])
    assert (args.name, args.prompt, args.format) == ("logits", "ROMEO:", "json")
    args = parser.parse_args(["cell", "--workbook", "gpt2", "logits", "ROMEO:"])
    assert (args.name, args.prompt) == ("logits", "ROMEO:")


@pytest.mark.parametrize(
    ("workbook", "cell", "expected"),
    [
        ("word_analogy", "answer", "queen"),
        (
            "word_analogy",
            "ranking",
            [["queen", pytest.approx(1.0, abs=1e-12)]],
        ),  # king − man + woman is its row
        ("relu_parabola", "n_neurons", 8),
        ("workbooks/embeddings.py", "answer", " mother"),
        ("embeddings", "token_id", 686),
    ],
)
def test_workbooks_without_a_prompt_need_none(
    workbook: str, cell: str, expected: object, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(["cell", cell, "--workbook", workbook, "--format", "json"], capsys)
    assert code == 0, err
    value = json.loads(out)
    if isinstance(expected, list):
        assert value[: len(expected)] == expected
    else:
        assert value == expected


def test_relu_parabola_loss_as_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["cell", "loss", "--workbook", "relu_parabola"], capsys)
    assert code == 0, err
    assert out.startswith("loss  shape=None  dtype=float")


def test_gpt2_still_runs_on_the_prompt_given(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["cell", "tokens", "Mike is quick.", "--format", "json"], capsys)
    assert code == 0, err
    from cellgpt.tokenizer.named import load_tokenizer

    tok = load_tokenizer("gpt2-mini")
    assert json.loads(out) == [tok.token_str(i) for i in tok.encode("Mike is quick.")]


def test_gpt2_without_a_prompt_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["cell", "logits"], capsys)
    assert code == 2 and out == ""
    assert err.strip() == (
        "cellgpt: error: the gpt2 workbook runs on a prompt: give the text after the cell "
        'name, e.g. cellgpt cell logits "Mike is quick."'
    )


def test_a_prompt_for_a_workbook_without_one_is_a_clear_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = _run(["cell", "answer", "hello", "--workbook", "word_analogy"], capsys)
    assert code == 2 and out == ""
    assert err.strip() == (
        "cellgpt: error: the word_analogy workbook has no prompt cell: leave out 'hello'"
    )


def test_prompt_and_name_swapped_says_which_comes_first(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = _run(["cell", "ROMEO:", "next_text"], capsys)
    assert code == 2 and out == ""
    assert "the cell name comes first: cellgpt cell next_text 'ROMEO:'" in err


def test_tui_and_export_keep_the_workbook_prompt_when_none_is_given() -> None:
    parser = build_parser()
    assert parser.parse_args(["tui"]).prompt is None
    assert parser.parse_args(["export", "out.xlsx"]).prompt is None
    assert parser.parse_args(["tui"]).prompt_rule == "optional"
    assert parser.parse_args(["run", "hi"]).prompt_rule == "required"


def _strict(constant: str) -> None:
    raise ValueError(f"not JSON: {constant}")


def test_json_is_strict_masked_scores_are_null(capsys: pytest.CaptureFixture[str]) -> None:
    # JSON has no infinity: jq and JavaScript refuse `-Infinity`
    code, out, err = _run(["cell", "h0.attn.scores", "Mike is quick.", "--format", "json"], capsys)
    assert code == 0, err
    scores = json.loads(out, parse_constant=_strict)
    head = scores[0]
    assert head[0][1] is None and isinstance(head[0][0], float)  # the future is masked
    assert all(isinstance(x, float) for x in head[-1])  # the last query sees every key
    code, out, err = _run(["run", "Mike is quick.", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out, parse_constant=_strict)["top_k"]
