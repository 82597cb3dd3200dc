"""The encoder's merge loop for ordered merge lists (one pair at a time, no pass records)
gives exactly the trace's final tokens; merge lists that are not ordered keep the pass by
pass loop."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cellgpt.tokenizer.bpe import Tokenizer, _ordered, bytes_to_unicode
from cellgpt.tokenizer.named import load_tokenizer
from cellgpt.tokenizer.train import train_bpe

GPT2 = Tokenizer.gpt2()
MINI = load_tokenizer("gpt2-mini")
CORPUS = "aaaa abab aaab bbbb baba " * 20 + "low lower lowest newer newest wider widest " * 5
TRAINED = train_bpe([CORPUS], 256 + 20 + 1).to_tokenizer()


def test_real_vocabularies_are_ordered() -> None:
    assert GPT2._ordered_merges and MINI._ordered_merges and TRAINED._ordered_merges
    assert not _ordered({("b", "c"): 0, ("a", "bc"): 1, ("ab", "c"): 2})  # "abc" twice
    assert not _ordered({("a", "bc"): 0, ("b", "c"): 1})  # "bc" used before it is made


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ab lowernst\n", max_size=40) | st.text(max_size=30))
def test_fast_loop_equals_the_trace(text: str) -> None:
    for tok in (GPT2, MINI, TRAINED):
        for word in tok.split(text):
            symbols = tok.word_to_symbols(word)
            passes = tok.bpe_trace(symbols)
            assert tok.bpe(symbols) == (passes[-1].tokens if passes else tuple(symbols))


def test_an_unordered_list_encodes_as_its_trace() -> None:
    byte = bytes_to_unicode()
    encoder = {ch: i for i, ch in enumerate(byte.values())}
    encoder.update({"abc": 256, "bc": 257})
    # (a, bc) is ranked before "bc" is made: not an ordered list
    tok = Tokenizer(encoder, [("a", "bc"), ("b", "c")], {}, "gpt2")
    assert not tok._ordered_merges
    for word in ("abc", "abcbc", "aabcc"):
        passes = tok.bpe_trace(word)
        assert tok.bpe(word) == passes[-1].tokens
    assert tok.encode("abc") == [256]


def test_long_words_are_not_cached() -> None:
    tok = load_tokenizer("cl100k_base")
    tok.clear_cache()
    text = "x" * 5000  # one pre-split piece
    assert tok.encode(text) == tok.encode(text) and len(tok._ids_cache) == 0
    tok.encode("short words are")
    assert "short" in tok._ids_cache
