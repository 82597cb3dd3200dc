"""GPT-4 and friends with our own BPE: every bundled rank table (r50k_base, p50k_base,
cl100k_base, o200k_base) and GPT-2 give the ids of tiktoken built from the same ranks.

The reference is independent of our loader: the shipped file is unpacked by the few lines
below, and the split pattern and special tokens come from tiktoken's own package
(`tiktoken_ext.openai_public`, with its downloads switched off)."""

from __future__ import annotations

import json
import lzma
from pathlib import Path

import pytest
import tiktoken
import tiktoken_ext.openai_public as openai_public
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cellgpt.locations import bundled_rank_tables
from cellgpt.tokenizer import rankfile
from cellgpt.tokenizer.alphabet import PATTERNS, TokenizerError
from cellgpt.tokenizer.bpe import Tokenizer
from cellgpt.tokenizer.named import describe_tokenizer, load_tokenizer
from cellgpt.tokenizer.ranked import (
    LONG_PIECE,
    RankTokenizer,
    _merge_long,
    _merge_short,
    merge_parts,
)
from cellgpt.tokenizer.rankfile import RankTable, read_ranks, write_ranks

REPO = Path(__file__).resolve().parents[2]
NAMES = ["r50k_base", "p50k_base", "p50k_edit", "cl100k_base", "o200k_base"]
EOT = "<|endoftext|>"

TEXTS = [
    "hello world",
    "Strawberry has three r's: STRAWBERRY, strawberry. It's, isn't, I'LL, we'Ve.",
    "def f(x):\n    if x:\n        return x  \n\n\tpass   \n",
    "    " * 3 + "eight:        end",
    "1234567 and 12,345.678 and 3.14159 and -42e10 and 2024-01-01",
    "Family: 👨‍👩‍👧‍👦 flag 🏳️‍🌈 thumbs 👍🏽 and 😀😃😄",
    "中文分词测试，日本語のテキスト。한국어 문장을 토큰화합니다.",
    "Привет, мир! مرحبا بالعالم، नमस्ते दुनिया",
    "line one\r\nline two\r\n\r\nline four\n\n\n",
    "   leading and trailing spaces   ",
    "tabs\t\tand\u00a0nbsp\u2003em\u3000ideographic",
    f"first{EOT}second <|fim_prefix|>x<|fim_suffix|>y<|fim_middle|> <|endofprompt|>",
    "x\u0301 combining \u0301 marks \u200b zero width ſ'S K'S",
    "camelCaseWords HTTPServer iPhone McDonald's O'Neil's path/to/file.py //",
    "a" * 1000,
    " " * 700 + "x",
    "\U0001f600" * 300,
    "",
]


def _openai(name: str) -> dict:
    """tiktoken's own definition of an encoding, without fetching its ranks."""
    real = openai_public.load_tiktoken_bpe, openai_public.data_gym_to_mergeable_bpe_ranks
    openai_public.load_tiktoken_bpe = lambda *a, **k: {}
    openai_public.data_gym_to_mergeable_bpe_ranks = lambda *a, **k: {}
    try:
        return getattr(openai_public, name)()
    finally:
        openai_public.load_tiktoken_bpe, openai_public.data_gym_to_mergeable_bpe_ranks = real


def shipped_ranks(name: str) -> dict[bytes, int]:
    """The shipped table, unpacked here without our loader: magic, JSON header, then each
    token as a length byte and its bytes, over the header's runs of ranks."""
    raw = lzma.decompress((REPO / "cellgpt/tokenizer/data/ranks" / f"{name}.ranks.xz").read_bytes())
    magic, header, body = raw.split(b"\n", 2)
    assert magic == b"cellgpt-ranks 1"
    ranks, pos = {}, 0
    for start, count in json.loads(header)["runs"]:
        for rank in range(start, start + count):
            ranks[body[pos + 1 : pos + 1 + body[pos]]] = rank
            pos += 1 + body[pos]
    assert pos == len(body)
    return ranks


def reference(name: str) -> tiktoken.Encoding:
    spec = _openai(name)
    return tiktoken.Encoding(
        name=f"{name}-ref",
        pat_str=spec["pat_str"],
        mergeable_ranks=shipped_ranks("r50k_base" if name == "gpt2" else name),
        special_tokens=spec["special_tokens"],
    )


REFS = {name: reference(name) for name in [*NAMES, "gpt2"]}
OURS: dict[str, Tokenizer] = {name: load_tokenizer(name) for name in [*NAMES, "gpt2"]}
CORPUS = (REPO / "data/corpus/shakespeare_val.txt").read_text(encoding="utf-8")[:150_000]
CODE = (REPO / "cellgpt/tokenizer/bpe.py").read_text(encoding="utf-8")


def test_every_table_is_bundled_with_tiktokens_definition() -> None:
    assert sorted(bundled_rank_tables()) == sorted(NAMES)
    sizes = {"r50k_base": 50256, "p50k_base": 50280, "cl100k_base": 100256, "o200k_base": 199998}
    sizes["p50k_edit"] = sizes["p50k_base"]
    for name in NAMES:
        tok = OURS[name]
        assert isinstance(tok, RankTokenizer)
        spec = _openai(name)
        assert tok.pattern == spec["pat_str"]  # our pattern names spell tiktoken's patterns
        assert tok.special_tokens == spec["special_tokens"]
        if "explicit_n_vocab" in spec:
            assert tok.vocab_size == spec["explicit_n_vocab"]
        assert len(tok.ranks) == sizes[name]
        assert tok.ranks == shipped_ranks(name)
    folder = REPO / "cellgpt/tokenizer/data/ranks"
    assert "MIT License" in (folder / "LICENSE.js-tiktoken").read_text()
    assert "js-tiktoken 1.0.21" in (folder / "README.md").read_text()
    # GPT-2's own files and r50k_base are the same vocabulary.
    gpt2 = OURS["gpt2"]
    assert {gpt2.token_bytes(i): i for i in range(50256)} == OURS["r50k_base"].ranks


@pytest.mark.parametrize("name", [*NAMES, "gpt2"])
def test_texts_and_corpora_match_tiktoken(name: str) -> None:
    tok, ref = OURS[name], REFS[name]
    for text in [*TEXTS, CORPUS, CODE]:
        want = ref.encode(text, allowed_special="all")
        assert tok.encode(text, allowed_special="all") == want, text[:60]
        assert tok.encode_ordinary(text) == ref.encode_ordinary(text), text[:60]
        assert tok.decode(want) == text


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_known_ids(name: str) -> None:
    tok = OURS[name]
    # tiktoken's published examples: "hello world" in GPT-4 and GPT-4o.
    assert (
        tok.encode("hello world")
        == {"cl100k_base": [15339, 1917], "o200k_base": [24912, 2375]}[name]
    )
    assert len(tok.encode(" " * 8)) == 1  # 8 spaces: one token (GPT-2 makes 8)
    assert len(OURS["gpt2"].encode(" " * 8 + "x")) == 8


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    ("allowed", "disallowed"),
    [
        (frozenset(), "all"),
        ("all", "all"),
        ({EOT}, "all"),
        ({EOT}, ()),
        (frozenset(), ()),
        ("all", {"second"}),
        (frozenset(), {"<|fim_prefix|>"}),
    ],
)
def test_special_tokens_follow_tiktokens_rules(name: str, allowed, disallowed) -> None:
    tok, ref = OURS[name], REFS[name]
    for text in (TEXTS[11], f"a {EOT} b", "plain text", "<|endofprompt|><|endoftext|>"):
        try:
            want = ref.encode(text, allowed_special=allowed, disallowed_special=disallowed)
        except ValueError:
            with pytest.raises(TokenizerError, match="disallowed special token"):
                tok.encode(text, allowed_special=allowed, disallowed_special=disallowed)
            continue
        assert tok.encode(text, allowed_special=allowed, disallowed_special=disallowed) == want


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=80))
@example("'S'LL ǅungla 'ſ")
@example("\U0001f9d1\u200d\U0001f33e" * 3)
def test_any_text_matches_tiktoken_and_round_trips(text: str) -> None:
    for name in ("cl100k_base", "o200k_base", "p50k_base"):
        ids = OURS[name].encode(text, disallowed_special=())
        assert ids == REFS[name].encode(text, disallowed_special=())
        assert OURS[name].decode(ids) == REFS[name].decode(ids)
        if not any("\ud800" <= ch <= "\udfff" for ch in text):
            assert OURS[name].decode(ids) == text


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=LONG_PIECE + 1, max_size=3 * LONG_PIECE))
def test_long_pieces_merge_as_short_ones_do(data: bytes) -> None:
    # The heap merge for long pieces and the rescan for short ones are the same BPE, and
    # tiktoken's on the same bytes as one piece.
    ranks = OURS["cl100k_base"].ranks
    long = _merge_long(data, ranks, 1 << 62)
    assert long == _merge_short(data, ranks, 1 << 62) == merge_parts(data, ranks)
    assert b"".join(long) == data
    assert [ranks[p] for p in long] == REFS["cl100k_base"]._encode_single_piece(data)


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_the_pass_table_reaches_tiktokens_tokens(name: str) -> None:
    tok, ref = OURS[name], REFS[name]
    text = TEXTS[1] + TEXTS[2] + TEXTS[5] + TEXTS[6] + CORPUS[:5000]
    rows = tok.trace(text)
    assert [i for row in rows for i in row.ids] == ref.encode(text)
    strawberry = next(row for row in rows if row.word == " strawberry")
    assert strawberry.passes, "a word made of several merges shows its passes"
    assert strawberry.passes[-1].tokens == strawberry.tokens
    # each pass's rank is the rank of the token it made
    for p in strawberry.passes:
        assert tok.encoder[p.pair[0] + p.pair[1]] == p.rank


def test_merges_are_recovered_from_the_ranks() -> None:
    tok = OURS["cl100k_base"]
    merges = tok.bpe_ranks
    assert len(merges) == len(tok.ranks) - 256  # every multi-byte token has its merge
    ranks = list(merges.values())
    assert ranks == sorted(ranks)
    for (left, right), rank in list(merges.items())[:2000]:
        assert tok.encoder[left + right] == rank
        assert tok.encoder[left] < rank and tok.encoder[right] < rank


def test_described_and_loaded_once() -> None:
    assert load_tokenizer("cl100k_base") is OURS["cl100k_base"]
    assert describe_tokenizer(OURS["cl100k_base"], "cl100k_base").startswith("cl100k_base (GPT-4")
    assert describe_tokenizer(OURS["o200k_base"], "o200k_base").startswith("o200k_base (GPT-4o)")


# --- the file format ------------------------------------------------------------------------


def test_write_read_round_trip(tmp_path: Path) -> None:
    table = RankTable(
        "tiny", {bytes([b]): b for b in range(256)} | {b"ab": 300}, "gpt4", {"<s>": 301}
    )
    path = write_ranks(tmp_path / "tiny.ranks.xz", table)
    back = read_ranks(path)
    assert (back.name, back.ranks, back.pattern, back.special_tokens) == (
        "tiny",
        table.ranks,
        "gpt4",
        {"<s>": 301},
    )
    tok = load_tokenizer(path)
    assert tok.encode("abab") == [300, 300]
    assert tok.encode("<s>", allowed_special="all") == [301]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda raw: b"not xz at all", "not an xz-compressed rank table"),
        (lambda raw: lzma.compress(b"hello\n{}\n"), "not a cellgpt rank table"),
        (lambda raw: lzma.compress(lzma.decompress(raw)[:-1]), "cut short"),
        (lambda raw: lzma.compress(lzma.decompress(raw) + b"\x01a"), "bytes after the last token"),
        (
            lambda raw: lzma.compress(
                lzma.decompress(raw).replace(b'"runs": [[0, 256]', b'"runs": [[0, 255]')
            ),
            "after the last token",
        ),
    ],
)
def test_damaged_files_name_the_file(tmp_path: Path, damage, message: str) -> None:
    table = RankTable("t", {bytes([b]): b for b in range(256)}, "gpt2", {})
    good = rankfile.dump_ranks(table)
    path = tmp_path / "bad.ranks.xz"
    path.write_bytes(damage(good))
    with pytest.raises(TokenizerError, match=message) as err:
        read_ranks(path)
    assert str(path) in str(err.value)


def test_a_table_missing_a_byte_is_refused(tmp_path: Path) -> None:
    table = RankTable("t", {bytes([b]): b for b in range(255)}, "gpt2", {})
    path = write_ranks(tmp_path / "t.ranks.xz", table)
    with pytest.raises(TokenizerError, match=r"byte 0xff has no token"):
        read_ranks(path)


def test_patterns_by_name() -> None:
    assert PATTERNS["gpt4"] == _openai("cl100k_base")["pat_str"]
    assert PATTERNS["o200k"] == _openai("o200k_base")["pat_str"]
    assert PATTERNS["r50k"] == _openai("r50k_base")["pat_str"]


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=60))
def test_the_traced_passes_end_in_the_encoders_ids(text: str) -> None:
    # The workbook's pass table and the fast encoder are two loops of one class: same ids.
    for name in ("cl100k_base", "o200k_base"):
        tok = OURS[name]
        rows = tok.trace(text, disallowed_special=())
        assert [i for row in rows for i in row.ids] == tok.encode(text, disallowed_special=())
