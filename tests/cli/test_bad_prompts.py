"""Prompts are arbitrary text: through the real CLI on the bundled model, every odd prompt
either runs or gives exit code 2 and one line on stderr, never a traceback; the tokenizer
round-trips any text.

`python -m pytest tests/cli/test_bad_prompts.py -s` prints the counts per category.
"""

from __future__ import annotations

import json
import subprocess
import sys
import unicodedata
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cellgpt.cli import main
from cellgpt.tokenizer.bpe import Tokenizer

REPO = Path(__file__).resolve().parents[2]
MINI = REPO / "weights_csv" / "gpt2-mini"
N_CTX = 128  # gpt2-mini's context


def _plane_samples() -> list[str]:
    """One assigned character from each Unicode plane, plus a private-use and a noncharacter."""
    samples = []
    for plane in range(17):
        for cp in range(plane * 0x10000, plane * 0x10000 + 0x10000):
            if unicodedata.category(chr(cp)) not in ("Cn", "Cs"):
                samples.append(chr(cp))
                break
    return "".join(samples) + "\U000f0000\U0010fffd\ufffe\uffff"


# (category, prompt, expected: "ok" or a fragment of the exit-2 message)
PROMPTS: list[tuple[str, str, str]] = [
    ("empty", "", "the prompt is empty"),
    ("whitespace", " ", "ok"),
    ("whitespace", "\t\n\r\n", "ok"),
    ("whitespace", "\u00a0\u2003\u3000", "ok"),
    ("whitespace", "\n" * 50, "ok"),
    ("control", "\x00", "ok"),
    ("control", "a\x00b\x01c\x7f", "ok"),
    ("control", "\x1b[2J\x1b[31mred\x07", "ok"),
    ("control", "\u202eevil\u202c", "ok"),
    ("control", "\ufeffBOM", "ok"),
    ("control", "\u200b\u200c\u200d", "ok"),
    ("surrogate", "\ud800", "ok"),
    ("surrogate", "a\udfffb", "ok"),
    ("surrogate", "\udc80\udcff", "ok"),  # what bad UTF-8 in argv decodes to
    ("surrogate", "\ud83d\ude00", "ok"),  # a pair as two code units
    ("unicode", _plane_samples(), "ok"),
    ("unicode", "\U0001f600" * 20, "ok"),
    ("unicode", "e\u0301" * 20, "ok"),
    ("unicode", "\u0645\u0631\u062d\u0628\u0627 \u4f60\u597d \ud55c\uad6d\uc5b4", "ok"),
    ("special", "<|endoftext|>", "ok"),
    ("special", "ROMEO: <|endoftext|> JULIET:", "ok"),
    ("special", "<|endoftext|>" * 10, "ok"),
    ("special", "<|endoftext", "ok"),
    ("special", "<|fim_prefix|><|im_start|>", "ok"),
    ("length", "a " * N_CTX, "reads at most 128"),
    ("length", "the " * 5_000, "reads at most 128"),
    ("length", "x" * 50_000, "reads at most 128"),
    ("formula-like", "=1+1", "ok"),
    ("formula-like", '=HYPERLINK("http://x","y")', "ok"),
    ("formula-like", "__import__('os').system('echo pwned')", "ok"),
]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("category", "prompt", "expect"), PROMPTS, ids=[f"{c}:{p[:12]!r}" for c, p, _ in PROMPTS]
)
def test_cli_run_and_tokenize_any_prompt(
    category: str, prompt: str, expect: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(["run", prompt, "--json"], capsys)
    if expect == "ok":
        assert code == 0, err
        result = json.loads(out)
        assert len(result["top_k"]) == 10 and result["tokens"]
    else:
        assert code == 2
        assert out == ""
        assert err.startswith("cellgpt: error:") and expect in err, err
        assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    code, out, err = _run(["tokenize", prompt, "--json"], capsys)
    assert code == 0 and "Traceback" not in err


@pytest.mark.parametrize("prompt", ["a " * N_CTX, "the " * 5_000])
def test_truncate_left_keeps_the_last_n_ctx_tokens(
    prompt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(["run", prompt, "--truncate", "left", "--json"], capsys)
    assert code == 0, err
    assert len(json.loads(out)["token_ids"]) == N_CTX


def test_generation_stops_at_the_context_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    prompt = "the " * (N_CTX - 3)
    code, out, err = _run(["run", prompt, "--generate", "10", "--json"], capsys)
    assert code == 0
    assert 0 < len(json.loads(out)["generated_ids"]) < 10
    assert "n_ctx" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--temperature", "nan", "--generate", "2"], "--temperature"),
        (["--temperature", "-1", "--generate", "2"], "--temperature"),
        (["--temperature", "inf", "--generate", "2"], "--temperature"),
        (["--top-p", "0", "--generate", "2", "--temperature", "1"], "--top-p"),
        (["--top-p", "nan", "--generate", "2", "--temperature", "1"], "--top-p"),
        (["--seed", "-1", "--generate", "1", "--temperature", "1"], "negative"),
        (["--sample-top-k", "-2", "--generate", "1", "--temperature", "1"], "negative"),
        (["--generate", "-3"], "negative"),
    ],
)
def test_bad_sampling_flags_are_one_line_errors(
    flags: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(["run", "ROMEO:", *flags], capsys)
    assert code == 2 and out == ""
    assert err.startswith("cellgpt: error:") and fragment in err, err


def test_counts_per_category(capsys: pytest.CaptureFixture[str]) -> None:
    counts = Counter(c for c, _, _ in PROMPTS)
    counts["flags"] += 8
    counts["argv bytes"] += len(ARGV_BYTES)
    with capsys.disabled():
        print("\nbad prompts per category:", dict(sorted(counts.items())))
    assert sum(counts.values()) >= 35


# Raw bytes in argv (not valid UTF-8) reach Python as lone surrogates; the real process must
# still print its answer rather than die on an encoding error.
ARGV_BYTES = [b"a\xffb\xed\xa0\x80", b"\xc0\xaf\x1b]0;title\x07"]


@pytest.mark.parametrize("raw", ARGV_BYTES)
def test_real_process_with_undecodable_argv(raw: bytes) -> None:
    for cmd in ([b"run", raw, b"--generate", b"2"], [b"tokenize", raw]):
        proc = subprocess.run(
            [sys.executable.encode(), b"-m", b"cellgpt", *cmd],
            capture_output=True,
            cwd=REPO,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert b"Traceback" not in proc.stderr


# ---------------------------------------------------------------------------------------
# decode(encode(s)) == s for any text, with both bundled tokenizers.

GPT2_TOK = Tokenizer.gpt2()
MINI_TOK = Tokenizer.from_dir(MINI)
# Lone surrogates cannot be encoded as UTF-8, so they are not expected to round-trip.
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80)


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_decode_encode_round_trips_any_text(text: str) -> None:
    for tok in (GPT2_TOK, MINI_TOK):
        assert tok.decode(tok.encode(text, allowed_special="all")) == text


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([*_plane_samples(), "<|endoftext|>", " ", "\n", "a"]), max_size=30))
def test_round_trip_on_plane_samples_and_specials(parts: list[str]) -> None:
    text = "".join(parts)
    for tok in (GPT2_TOK, MINI_TOK):
        assert tok.decode(tok.encode(text, allowed_special="all")) == text
