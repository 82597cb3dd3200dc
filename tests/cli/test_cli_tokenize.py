"""`cellgpt tokenize` is `cellgpt tokenizer encode`: same options, same output. Both read text
with the default model's own tokenizer (gpt2-mini, 2,048 tokens) unless given `--tokenizer
gpt2`, and say which one they used."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from cellgpt.cli import build_parser, main
from cellgpt.tokenizer.bpe import Tokenizer

REPO = Path(__file__).resolve().parents[2]
MINI = Tokenizer.from_dir(REPO / "weights_csv" / "gpt2-mini")  # read here, not by name


def _out(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 0
    return capsys.readouterr().out


def test_tokenize_is_tokenizer_encode() -> None:
    parser = build_parser()
    short = parser.parse_args(["tokenize", "hi", "--tokenizer", "gpt2", "--json"])
    long = parser.parse_args(["tokenizer", "encode", "hi", "--tokenizer", "gpt2", "--json"])
    assert short.func is long.func
    assert (short.text, short.tokenizer, short.json) == (long.text, long.tokenizer, long.json)
    assert parser.parse_args(["tokenize", "hi"]).tokenizer == "gpt2-mini"
    assert parser.parse_args(["tokenizer", "decode", "1"]).tokenizer == "gpt2-mini"


@pytest.mark.parametrize("flags", [[], ["--json"], ["--tokenizer", "gpt2"]])
def test_both_names_print_the_same(flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    text = "hello world<|endoftext|>"
    assert _out(["tokenize", text, *flags], capsys) == _out(
        ["tokenizer", "encode", text, *flags], capsys
    )


def test_json_shape_uses_the_cell_names(capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(_out(["tokenize", "hello world", "--json", "--tokenizer", "gpt2"], capsys))
    assert data == {"tokenizer": "gpt2", "tokens": ["hello", " world"], "token_ids": [31373, 995]}


def test_the_default_is_the_default_models_own_tokenizer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ids = MINI.encode("hello world")
    assert ids != [31373, 995] and max(ids) < 2048
    data = json.loads(_out(["tokenize", "hello world", "--json"], capsys))
    assert data == {
        "tokenizer": "gpt2-mini",
        "tokens": [MINI.token_str(i) for i in ids],
        "token_ids": ids,
    }
    assert main(["tokenize", "hello world"]) == 0
    captured = capsys.readouterr()
    assert captured.out == " ".join(map(str, ids)) + "\n"
    assert captured.err == "tokenizer: gpt2-mini's own (2,048 tokens)\n"


def test_text_output_is_the_ids_and_stderr_names_the_tokenizer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["tokenize", "hello world", "--tokenizer", "gpt2"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "31373 995\n"
    assert captured.err == "tokenizer: GPT-2 (50,257 tokens)\n"


def test_json_names_the_tokenizer_by_what_loads_it_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A model folder holding GPT-2's files reads text as GPT-2 does: named "gpt2".
    folder = tmp_path / "copy"
    folder.mkdir()
    for name in ("encoder.json", "vocab.bpe"):
        shutil.copy(REPO / "cellgpt" / "tokenizer" / "data" / "gpt2" / name, folder / name)
    data = json.loads(_out(["tokenize", "hi", "--json", "--tokenizer", str(folder)], capsys))
    assert data["tokenizer"] == "gpt2"


def test_decode_defaults_to_the_same_tokenizer(capsys: pytest.CaptureFixture[str]) -> None:
    ids = MINI.encode("To be, or not")
    assert main(["tokenizer", "decode", *map(str, ids)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "To be, or not\n"
    assert captured.err == "tokenizer: gpt2-mini's own (2,048 tokens)\n"


def test_compare_defaults_to_the_default_model_and_gpt2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = "To be, or not to be"
    lines = _out(["tokenizer", "compare", text, "--no-color"], capsys).splitlines()
    n_mini, n_gpt2 = len(MINI.encode(text)), len(Tokenizer.gpt2().encode(text))
    assert lines[0].startswith(f"gpt2-mini: {n_mini} tokens,")
    assert lines[3].startswith(f"gpt2: {n_gpt2} tokens,")


def test_dash_reads_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("hello world"))
    argv = ["tokenize", "-", "--json", "--tokenizer", "gpt2"]
    assert json.loads(_out(argv, capsys))["token_ids"] == [31373, 995]


# ---------------------------------------------------------------- `cellgpt run` says it too


@pytest.fixture(scope="module")
def gpt2_vocab_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 1-block model that reads text with GPT-2's tokenizer."""
    import numpy as np

    from cellgpt.weights.config import GPT2Config
    from cellgpt.weights.params import expected_shapes, save_params

    cfg = GPT2Config(n_layer=1, n_head=2, n_embd=8, n_ctx=16, vocab_size=50257)
    rng = np.random.default_rng(0)
    tensors = {
        k: rng.standard_normal(s).astype(np.float32) for k, s in expected_shapes(cfg).items()
    }
    folder = tmp_path_factory.mktemp("vocab") / "tiny-gpt2-vocab"
    return save_params(folder, cfg, tensors, tokenizer_dir=REPO / "cellgpt/tokenizer/data/gpt2")


def test_run_prints_the_model_and_its_tokenizer_first(capsys: pytest.CaptureFixture[str]) -> None:
    lines = _out(["run", "To be, or not", "--top-k", "2"], capsys).splitlines()
    assert lines[0] == "model gpt2-mini   tokenizer gpt2-mini's own (2,048 tokens)"
    assert lines[1].startswith(f"tokens ({len(MINI.encode('To be, or not'))}): ")


def test_run_with_a_gpt2_vocabulary_model_says_gpt2(
    gpt2_vocab_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "hello world", "--model", str(gpt2_vocab_model), "--top-k", "1"]
    first = _out(argv, capsys).splitlines()[0]
    assert first == "model tiny-gpt2-vocab   tokenizer GPT-2 (50,257 tokens)"
    data = json.loads(_out([*argv, "--json"], capsys))
    assert data["tokenizer"] == "gpt2" and data["token_ids"] == [31373, 995]


def test_run_json_names_the_default_models_tokenizer(capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(_out(["run", "hello world", "--json", "--top-k", "1"], capsys))
    assert data["tokenizer"] == "gpt2-mini" and data["token_ids"] == MINI.encode("hello world")
