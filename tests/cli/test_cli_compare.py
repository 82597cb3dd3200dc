"""`cellgpt tokenizer compare` with no text: the built-in crafted sample through the default
set (the model's own, GPT-2, GPT-4, GPT-4o), as text and as JSON."""

from __future__ import annotations

import json

import pytest

from cellgpt.cli import main
from cellgpt.tokenizer.compare import SAMPLE
from cellgpt.tokenizer.named import load_tokenizer

DEFAULT_SET = ["gpt2-mini", "gpt2", "cl100k_base", "o200k_base"]


def _json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_the_sample_has_what_the_lecture_shows() -> None:
    assert "strawberry" in SAMPLE and "STRAWBERRY" in SAMPLE
    assert "\n    total" in SAMPLE and "\n        if" in SAMPLE  # 4- and 8-space indents
    assert "1234567" in SAMPLE and "🍓" in SAMPLE
    assert "안녕하세요" in SAMPLE and "你好" in SAMPLE and "<|endoftext|>" in SAMPLE


def test_json_on_the_builtin_sample(capsys: pytest.CaptureFixture[str]) -> None:
    data = _json(["tokenizer", "compare", "--json"], capsys)
    assert data["text"] == SAMPLE
    rows = data["tokenizers"]
    assert [r["tokenizer"] for r in rows] == DEFAULT_SET
    n_bytes = len(SAMPLE.encode())
    for row in rows:
        tok = load_tokenizer(row["tokenizer"])
        ids = tok.encode(SAMPLE, allowed_special="all")
        assert row["ids"] == ids and row["tokens"] == len(ids)
        assert row["bytes_per_token"] == round(n_bytes / len(ids), 3)
        assert row["unknown"] == 0
        assert "".join(row["pieces"]) == SAMPLE
        assert row["pieces"][-1] == "<|endoftext|>"  # the special token is one token
        partial = sum(1 for i in ids if not _decodes(tok.token_bytes(i)))
        assert row["byte_tokens"] == partial
    by = {r["tokenizer"]: r for r in rows}
    # each newer OpenAI tokenizer reads the sample in fewer tokens
    assert by["gpt2"]["tokens"] > by["cl100k_base"]["tokens"] > by["o200k_base"]["tokens"]
    # GPT-2 spends one token per space of an 8-space indent; GPT-4 one token for 7 of them
    gpt2_pieces, gpt4_pieces = by["gpt2"]["pieces"], by["cl100k_base"]["pieces"]
    assert "       " in gpt4_pieces and "       " not in gpt2_pieces
    assert gpt2_pieces.count(" ") > 20


def _decodes(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_eight_spaces(capsys: pytest.CaptureFixture[str]) -> None:
    text = " " * 8
    data = _json(["tokenizer", "compare", text, "--json", "--tokenizer", "gpt2"], capsys)
    assert data["tokenizers"][0]["tokens"] == 8
    data = _json(["tokenizer", "compare", text, "--json", "--tokenizer", "cl100k_base"], capsys)
    assert data["tokenizers"][0]["tokens"] == 1


def test_text_output_one_block_per_tokenizer(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tokenizer", "compare", "--no-color", "--model", "gpt2"]) == 0
    out = capsys.readouterr().out
    heads = [line for line in out.splitlines() if line.endswith("byte tokens")]
    assert [h.split(":")[0] for h in heads] == ["gpt2", "cl100k_base", "o200k_base"]
    assert heads[1].startswith("cl100k_base: ") and ", 0 unknown, " in heads[1]


def test_unknown_tokenizer_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tokenizer", "compare", "x", "--tokenizer", "cl100k"]) == 2
    err = capsys.readouterr().err
    assert "no tokenizer 'cl100k'; did you mean 'cl100k_base'?" in err
