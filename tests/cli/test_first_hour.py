"""Issue #16, the command line's first hour: --version, `cellgpt cells`, 'did you mean',
labelled 3-D values, --set, prompts only where a workbook has one, errors in the user's words,
arguments in any order."""

from __future__ import annotations

import csv
import io
import json

import pytest

import cellgpt
from cellgpt.cli import build_parser, main
from cellgpt.tokenizer.named import load_tokenizer

MINI_TOKENS = load_tokenizer("gpt2-mini")


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _tokens(text: str) -> list[str]:
    return [MINI_TOKENS.token_str(i) for i in MINI_TOKENS.encode(text)]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"cellgpt {cellgpt.__version__}"


# --- arguments in any order; text starting with '-' after `--` ---------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["export", "o.xlsx", "--mode", "formulas", "ROMEO:"], ("o.xlsx", "ROMEO:")),
        (["export", "--mode", "formulas", "o.xlsx", "ROMEO:"], ("o.xlsx", "ROMEO:")),
        (["export", "o.xlsx", "--cells", "h0.*", "logits", "--", "-x"], ("o.xlsx", "-x")),
        (["export", "o.xlsx", "--", "--mode"], ("o.xlsx", "--mode")),
    ],
)
def test_export_takes_the_prompt_anywhere(argv: list[str], expected: tuple[str, str]) -> None:
    args = build_parser().parse_args(argv)
    assert (args.out, args.prompt) == expected


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--", "-x"],
        ["run", "--top-k", "3", "--", "-x"],
        ["cell", "tokens", "--format", "json", "--", "-x"],
        ["cell", "--", "tokens", "-x"],
        ["cell", "tokens", "--", "-x"],
    ],
)
def test_text_starting_with_a_dash_goes_after_double_dash(argv: list[str]) -> None:
    assert build_parser().parse_args(argv).prompt == "-x"


def test_double_dash_prompt_runs(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["cell", "tokens", "--format", "json", "--", "--hi"], capsys)
    assert code == 0, err
    assert json.loads(out) == _tokens("--hi")


def test_a_dash_prompt_without_double_dash_says_how(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "-x"])
    err = capsys.readouterr().err
    assert "unrecognized arguments: -x" in err
    assert "cellgpt run -- '-x'" in err


# --- cellgpt cells --------------------------------------------------------------------


def test_cells_lists_stage_aliases_and_doc(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["cells", "h3.attn.*"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["cell", "stage", "shape", "doc"]
    pattern = next(line for line in lines if line.startswith("h3.attn.pattern "))
    assert pattern.split()[1] == "h3"
    assert "Softmax turns each row" in pattern
    assert "[blocks.3.attn.hook_pattern, h3.step7]" in pattern
    names = [line.split()[0] for line in lines[1:]]
    assert "h3.attn.scores" in names and "h3.attn.c_attn.weight" in names
    assert all(n.startswith("h3.attn.") for n in names)


def test_cells_shows_the_shape_of_computed_cells(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["cells"], capsys)
    assert code == 0, err
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert len(rows) > 400  # every cell of the 12 blocks
    assert rows["config"].split()[1:3] == ["model", "dict"]  # computed when the workbook opens
    assert rows["wpe_rows"].split()[1] == "embed"
    assert "[hook_pos_embed]" in rows["wpe_rows"]


def test_cells_of_another_workbook(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["cells", "--workbook", "word_analogy", "a*"], capsys)
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["a", "analogy", "answer"]


def test_cells_lists_function_cells_with_their_signatures(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = _run(["cells", "--workbook", "gpt2_variants", "r*"], capsys)
    assert code == 0, err
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(rows) == {"rms_norm", "relu_mlp"}
    assert "functions" in rows["rms_norm"] and "rms_norm(x, w, eps)  RMSNorm" in rows["rms_norm"]
    code, out, err = _run(["cell", "rms_norm", "--workbook", "gpt2_variants"], capsys)
    assert code != 0 and "rms_norm(x, w, eps) is a function cell" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["cells", "h13.*"], "no cell matches 'h13.*': this model has 12 blocks, h0…h11"),
        (
            ["export", "x.xlsx", "hi", "--cells", "h1.*", "logit"],
            "--cells: no cell matches 'logit'; did you mean 'logits'",
        ),
        (["cell", "h15.attn.pattern", "hi"], "no cell named 'h15.attn.pattern': "),
        (
            ["cell", "blocks.12.attn.hook_pattern", "hi"],
            "this model has 12 blocks, blocks.0…blocks.11",
        ),
        (["cell", "h3.attn.patern", "hi"], "did you mean 'h3.attn.pattern'"),
        (["cell", "logit", "hi"], "did you mean 'logits'"),
        (["run", "hi", "--model", "gpt2-mimi"], "did you mean 'gpt2-mini'?"),
        (["run", "hi", "--workbook", "word_analogi"], "did you mean 'word_analogy'?"),
        (["tokenize", "hi", "--tokenizer", "gpt2-mimi"], "did you mean 'gpt2-mini'?"),
    ],
)
def test_unknown_names_say_what_was_meant(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(argv, capsys)
    assert code == 2 and out == ""
    assert err.startswith("cellgpt: error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1


# --- 3-D values with labels -------------------------------------------------------------

PROMPT = "Mike is quick."


def test_attention_table_is_one_block_per_head_with_token_labels(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = _run(["cell", "h3.attn.pattern", PROMPT], capsys)
    assert code == 0, err
    tokens = _tokens(PROMPT)
    labels = [f"{i}:{t}" for i, t in enumerate(tokens)]
    blocks = out.split("\n\n")
    assert blocks[0].splitlines()[0].startswith("h3.attn.pattern  shape=(4, ")
    assert [b.splitlines()[1 if i == 0 else 0] for i, b in enumerate(blocks)] == [
        f"head {h}" for h in range(4)
    ]
    first = blocks[0].splitlines()
    assert all(label in first[2] for label in labels)  # the columns: key tokens
    assert [line[: len(label)] for line, label in zip(first[3:], labels, strict=True)] == labels


def test_attention_csv_has_head_position_and_token_columns(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = _run(["cell", "h3.attn.pattern", PROMPT, "--format", "csv"], capsys)
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    tokens = _tokens(PROMPT)
    assert rows[0] == ["head", "position", "token", *[f"{i}:{t}" for i, t in enumerate(tokens)]]
    body = rows[1:]
    assert len(body) == 4 * len(tokens)
    assert [(int(r[0]), int(r[1]), r[2]) for r in body] == [
        (h, p, tokens[p]) for h in range(4) for p in range(len(tokens))
    ]
    wb = cellgpt.open("gpt2", model="gpt2-mini", prompt=PROMPT)
    pattern = wb["h3.attn.pattern"]
    assert [float(x) for x in body[5][3:]] == pytest.approx(pattern[1, 5 - len(tokens)].tolist())


def test_q_csv_columns_are_dimensions(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["cell", "h0.q", "hi", "--format", "csv"], capsys)
    assert code == 0, err
    header = out.splitlines()[0].split(",")
    assert header == ["head", "position", "token", *[str(d) for d in range(16)]]


# --- prompts only where needed; --set --------------------------------------------------


def test_run_on_a_workbook_without_a_prompt_shows_its_results(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = _run(["run", "--workbook", "embeddings", "--set", "top_n=3"], capsys)
    assert code == 0, err
    rows = {line.split()[0]: line for line in out.splitlines()}
    assert rows["answer"].split(maxsplit=1)[1] == "' mother'"
    assert rows["neighbours"].count("(") == 3  # top_n=3 took effect


def test_set_gives_any_input_a_value(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["cell", "answer", "--workbook", "embeddings", "--format", "json"]
    code, out, err = _run(
        [*argv, "--set", "a= king", "--set", "b= man", "--set", "c= woman"], capsys
    )
    assert code == 0, err
    assert json.loads(out) != " mother"  # not the workbook's own analogy
    code, out, err = _run(["run", "ROMEO:", "--json", "--set", "show_k=3"], capsys)
    assert code == 0, err
    assert len(json.loads(out)["top_k"]) == 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["run", "--workbook", "embeddings", "--set", "top=3"],
            "--set top: no input cell; did you mean 'top_n'?",
        ),
        (["run", "hi", "--set", "logits=3"], "--set logits: a computed cell, not an input"),
        (["run", "hi", "--set", "show_k"], "expected NAME=VALUE"),
    ],
)
def test_bad_set_is_a_clear_error(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) if "expected" in message else _no_exit():
        code, out, err = _run(argv, capsys)
        assert code == 2 and out == ""
        assert message in err
    if "expected" in message:
        assert message in capsys.readouterr().err


class _no_exit:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


def test_gpt2_run_without_a_prompt_asks_for_one(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["run"], capsys)
    assert code == 2 and out == ""
    assert "the gpt2 workbook runs on a prompt" in err


def test_a_gpt2_cell_that_does_not_read_the_prompt_needs_none(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = _run(["cell", "n_layer", "--format", "json"], capsys)
    assert code == 0, err
    assert json.loads(out) == 12


# --- errors in the user's words ---------------------------------------------------------


def test_a_prompt_over_the_context_says_how_long_the_limit_and_what_to_do(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for argv in (["run", "a " * 200], ["cell", "logits", "a " * 200]):
        code, out, err = _run(argv, capsys)
        assert code == 2 and out == ""
        assert err.strip() == (
            "cellgpt: error: the prompt has 201 tokens; this model reads at most 128 (n_ctx): "
            "use --truncate left to keep the last 128, or a shorter prompt"
        )


def test_an_empty_prompt_is_said_before_anything_runs(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["cell", "logits", ""], ["export", "x.xlsx", ""], ["run", ""]):
        code, out, err = _run(argv, capsys)
        assert code == 2 and out == ""
        assert err.strip() == "cellgpt: error: the prompt is empty: type at least one character"


def test_a_blocked_cell_reports_the_root_cause(capsys: pytest.CaptureFixture[str]) -> None:
    # logits is blocked by wte_rows, which fails on the id: the message is wte_rows's.
    code, out, err = _run(["cell", "logits", "hi", "--set", "generated=[99999]"], capsys)
    assert code == 2 and out == ""
    assert err.strip() == (
        "cellgpt: error: token id out of range for a vocabulary of 2048 (in cell wte_rows)"
    )
    argv = ["cell", "answer", "--workbook", "embeddings", "--set", "a=not one token"]
    code, out, err = _run(argv, capsys)
    assert code == 2 and "blocked by" not in err
    assert err.rstrip().endswith("use one of those, or another word (in cell analogy_ids)")


@pytest.mark.parametrize("k", ["0", "-1"])
def test_top_k_below_one_is_refused(k: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["run", "ROMEO:", "--top-k", k], capsys)
    assert code == 2 and out == ""
    assert "--top-k must be at least 1" in err and k in err


def test_scalars_and_small_mappings_print_plainly(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["cell", "n_layer"], capsys)
    assert code == 0, err
    assert out.splitlines() == ["n_layer  shape=None  dtype=int", "12"]
    code, out, err = _run(["cell", "config"], capsys)
    assert code == 0, err
    rows = dict(line.split(maxsplit=1) for line in out.splitlines()[1:])
    assert rows["n_layer"] == "12" and rows["n_ctx"] == "128"
