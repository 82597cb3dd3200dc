"""`cellgpt tokenize` is `cellgpt tokenizer encode`: same options, same output."""

from __future__ import annotations

import io
import json

import pytest

from cellgpt.cli import build_parser, main


def _out(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 0
    return capsys.readouterr().out


def test_tokenize_is_tokenizer_encode() -> None:
    parser = build_parser()
    short = parser.parse_args(["tokenize", "hi", "--tokenizer", "gpt2", "--json"])
    long = parser.parse_args(["tokenizer", "encode", "hi", "--tokenizer", "gpt2", "--json"])
    assert short.func is long.func
    assert (short.text, short.tokenizer, short.json) == (long.text, long.tokenizer, long.json)


@pytest.mark.parametrize("flags", [[], ["--json"]])
def test_both_names_print_the_same(flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    text = "hello world<|endoftext|>"
    assert _out(["tokenize", text, *flags], capsys) == _out(
        ["tokenizer", "encode", text, *flags], capsys
    )


def test_json_shape_uses_the_cell_names(capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(_out(["tokenize", "hello world", "--json"], capsys))
    assert data == {"tokens": ["hello", " world"], "token_ids": [31373, 995]}


def test_text_output_is_the_ids(capsys: pytest.CaptureFixture[str]) -> None:
    assert _out(["tokenize", "hello world"], capsys) == "31373 995\n"


def test_dash_reads_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("hello world"))
    assert json.loads(_out(["tokenize", "-", "--json"], capsys))["token_ids"] == [31373, 995]
