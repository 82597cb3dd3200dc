"""The ASCII twins of the split patterns (tokenizer/ascii_split.py) find exactly the pieces
the `regex` originals find, on any ASCII text."""

from __future__ import annotations

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from cellgpt.tokenizer.alphabet import PATTERNS
from cellgpt.tokenizer.ascii_split import ascii_splitter, ascii_stretches
from cellgpt.tokenizer.bpe import Tokenizer
from cellgpt.tokenizer.named import load_tokenizer

# Every ASCII character, with the ones the patterns treat specially drawn more often.
_SPECIAL = list(" \t\n\r\x0b\x0c\x1c\x1f'sStTdDmMlLvVrReE0123456789/.,!?-_ aZ")
ASCII = st.text(
    alphabet=st.one_of(st.sampled_from(_SPECIAL), st.characters(max_codepoint=127)),
    max_size=200,
)
KNOWN = ["gpt2", "gpt4", "r50k", "o200k"]


@settings(max_examples=400, deadline=None)
@given(ASCII)
def test_each_twin_splits_ascii_exactly_like_the_regex_pattern(text: str) -> None:
    for name in KNOWN:
        pattern = PATTERNS[name]
        twin = ascii_splitter(pattern)
        assert twin is not None, name
        assert twin.findall(text) == regex.findall(pattern, text), (name, text)


def test_tricky_ascii_cases() -> None:
    texts = [
        "I'LL do it, they're 12345 x   \n\n  y\t\x1c z  ",
        "   trailing spaces   ",
        "CamelCase HTTPServer don'T 's",
        "a/b//c\r\n\r\n/x",
        "",
    ]
    for name in KNOWN:
        pattern = PATTERNS[name]
        for text in texts:
            assert ascii_splitter(pattern).findall(text) == regex.findall(pattern, text)


def test_unknown_patterns_have_no_twin_and_non_ascii_text_goes_to_regex() -> None:
    assert ascii_splitter(r"\p{L}+|.") is None
    tok = Tokenizer.gpt2()
    text = "naïve café 東京 and plain words"
    assert tok.split(text) == regex.findall(PATTERNS["gpt2"], text)


MIXED = st.text(
    alphabet=st.one_of(
        st.sampled_from(_SPECIAL + list("\n\n\nAb1")),
        st.sampled_from(list("éñ東京😀\u00a0\u2028ßİ")),
        st.characters(max_codepoint=127),
    ),
    max_size=300,
)


@pytest.fixture(scope="module")
def named() -> dict[str, object]:
    return {n: load_tokenizer(n) for n in ("gpt2", "r50k_base", "cl100k_base", "o200k_base")}


@settings(max_examples=300, deadline=None)
@given(text=MIXED)
def test_mixed_text_splits_like_the_regex_pattern_alone(named, text: str) -> None:
    # ASCII stretches through the twin, lines with other characters through `regex`: the
    # pieces are the same as one `regex` pass over the whole text
    for name, tok in named.items():
        assert tok.split(text) == regex.findall(tok.pattern, text), (name, text)


def test_stretches_cover_the_text_and_cut_only_before_a_line_starting_with_a_letter() -> None:
    text = "abc\nXé y\n  z\nQ\nfoo\nbaré\n"
    stretches = ascii_stretches(text)
    assert [text[a:b] for a, b, _ in stretches] == ["abc\n", "Xé y\n  z\n", "Q\nfoo\n", "baré\n"]
    assert [plain for *_, plain in stretches] == [True, False, True, False]
