"""BPE training: known merges, tie-breaking, agreement with a naive trainer, saved files, CLI."""

from __future__ import annotations

import json
import random
from collections import Counter
from itertools import pairwise
from pathlib import Path

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from cellgpt.cli import main
from cellgpt.tokenizer.bpe import DATA_DIR, PATTERNS, Tokenizer
from cellgpt.tokenizer.train import (
    TrainedBPE,
    _PairStats,
    gpt2_byte_order,
    printable,
    readable,
    train_bpe,
)

WORDS = r"\S+|\s+"  # words apart from their spaces, so they look like the textbook examples
EOT = "<|endoftext|>"


# ---------------------------------------------------------------------------------------------
# An independent, obviously-correct reference: bytes tokens, full recount at every merge
# ---------------------------------------------------------------------------------------------


def reference_chunks(texts: list[str], pattern: str, specials: list[str]) -> list[str]:
    """Every pre-split chunk (with repeats), cutting special tokens out first."""
    split_re = regex.compile(PATTERNS.get(pattern, pattern))
    chunks = []
    for text in texts:
        pieces = [text]
        for special in sorted(specials, key=len, reverse=True):
            pieces = [part for piece in pieces for part in piece.split(special)]
        for piece in pieces:
            chunks += split_re.findall(piece)
    return chunks


def reference_train(
    texts: list[str], max_merges: int, pattern: str = "gpt2", specials: list[str] | None = None
) -> tuple[list[tuple[bytes, bytes]], list[int]]:
    """Merges and counts: recount all pairs over all chunks, merge the best everywhere."""
    words = [
        [bytes([b]) for b in c.encode()] for c in reference_chunks(texts, pattern, specials or [])
    ]
    vocab = {bytes([b]) for b in range(256)}
    merges, counts = [], []
    while len(merges) < max_merges:
        stats = Counter(p for w in words for p in pairwise(w))
        allowed = [p for p in stats if p[0] + p[1] not in vocab]
        if not allowed:
            break
        best = min(allowed, key=lambda p: (-stats[p], p[0], p[1]))
        merges.append(best)
        counts.append(stats[best])
        vocab.add(best[0] + best[1])
        words = [reference_merge(w, best) for w in words]
    return merges, counts


def reference_merge(word: list[bytes], pair: tuple[bytes, bytes]) -> list[bytes]:
    """Left-to-right scan; a merged pair's right half cannot start another match."""
    result, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            result.append(word[i] + word[i + 1])
            i += 2
        else:
            result.append(word[i])
            i += 1
    return result


# ---------------------------------------------------------------------------------------------
# Known merges and tie-breaking
# ---------------------------------------------------------------------------------------------


def classic_corpus() -> list[str]:
    words = ["low"] * 5 + ["lower"] * 2 + ["newest"] * 6 + ["widest"] * 3
    return [" ".join(words)]


def test_classic_corpus_first_merges() -> None:
    trained = train_bpe(classic_corpus(), 256 + 12, pattern=WORDS, special_tokens=())
    got = [
        (a.decode(), b.decode(), n)
        for (a, b), n in zip(trained.merges, trained.merge_counts, strict=True)
    ]
    assert got == [
        ("e", "s", 9),  # ties with (s, t) at 9: b"e" < b"s"
        ("es", "t", 9),
        ("l", "o", 7),  # ties with (o, w) at 7
        ("lo", "w", 7),
        ("e", "w", 6),  # ties with (n, e) and (w, est)
        ("ew", "est", 6),  # b"ew" < b"n"
        ("n", "ewest", 6),
        ("d", "est", 3),
        ("i", "dest", 3),
        ("w", "idest", 3),
        ("e", "r", 2),  # ties with (low, e)
        ("low", "er", 2),
    ]
    assert trained.segmentation["newest"] == (256 + 6,)
    assert trained.segmentation["lower"] == (256 + 11,)


def test_overlapping_pairs_merge_left_to_right(tmp_path: Path) -> None:
    one = train_bpe(["aaaaa"], 257, special_tokens=())
    assert one.merges == [(b"a", b"a")]
    assert one.merge_counts == [4]  # overlapping occurrences are counted, as in minbpe
    assert one.segmentation == {"aaaaa": (256, 256, gpt2_byte_order().index(ord("a")))}
    full = train_bpe(["aaaaa"], 259, special_tokens=())
    assert full.merges == [(b"a", b"a"), (b"aa", b"a"), (b"aa", b"aaa")]
    assert full.merge_counts == [4, 1, 1]
    assert full.segmentation == {"aaaaa": (258,)}
    assert Tokenizer.from_dir(_saved(one, tmp_path)).encode("aaaaa") == list(
        one.segmentation["aaaaa"]
    )


def test_ties_break_by_smallest_byte_pair() -> None:
    # (x, y) and (a, b) both occur once; b"a" < b"x" decides.
    trained = train_bpe(["xy ab"], 258, pattern=WORDS, special_tokens=())
    assert trained.merges == [(b"a", b"b"), (b"x", b"y")]
    # Bytes order, not character order: b"\xc3\xa9" ("é") sorts after b"z".
    trained = train_bpe(["zz éé"], 258, pattern=WORDS, special_tokens=())
    assert trained.merges[:2] == [(b"\xc3", b"\xa9"), (b"z", b"z")]


def test_result_does_not_depend_on_input_order() -> None:
    rng = random.Random(7)
    docs = [" ".join(rng.choice(["to", "be", "or", "not", "tobe"]) for _ in range(30))] * 3
    docs += ["the question", "whether tis nobler", "to be or not to be"]
    first = train_bpe(docs, 280)
    for _ in range(5):
        shuffled = docs[:]
        rng.shuffle(shuffled)
        again = train_bpe(shuffled, 280)
        assert again.merges == first.merges
        assert again.merge_counts == first.merge_counts


texts_strategy = st.lists(
    st.text(alphabet=st.sampled_from("ab c\n'é1<|>"), max_size=40), min_size=1, max_size=4
)


@settings(max_examples=300, deadline=None)
@given(texts=texts_strategy, pattern=st.sampled_from(["gpt2", "gpt4", WORDS]), frac=st.floats(0, 1))
def test_matches_naive_reference(texts: list[str], pattern: str, frac: float) -> None:
    possible, _ = reference_train(texts, 10**9, pattern)
    n = round(frac * len(possible))
    want_merges, want_counts = reference_train(texts, n, pattern)
    trained = train_bpe(texts, 256 + n, pattern=pattern, special_tokens=())
    assert trained.merges == want_merges
    assert trained.merge_counts == want_counts


@settings(max_examples=150, deadline=None)
@given(texts=texts_strategy)
def test_matches_naive_reference_with_specials(texts: list[str]) -> None:
    texts = [t + "<|>" + t for t in texts]  # "<|>" is a special token here
    possible, _ = reference_train(texts, 10**9, "gpt2", ["<|>"])
    want_merges, want_counts = reference_train(texts, len(possible), "gpt2", ["<|>"])
    trained = train_bpe(texts, 256 + len(possible) + 1, special_tokens=["<|>"])
    assert trained.merges == want_merges
    assert trained.merge_counts == want_counts
    assert trained.special_tokens == {"<|>": 256 + len(possible)}


# ---------------------------------------------------------------------------------------------
# Special tokens, errors
# ---------------------------------------------------------------------------------------------


def test_special_tokens_are_never_split_or_merged(tmp_path: Path) -> None:
    doc = "abXYab XYba"
    trained = train_bpe([doc] * 5, 256 + 2 + 2, pattern=WORDS, special_tokens=["XY", "<pad>"])
    for left, right in trained.merges:
        assert b"X" not in left + right and b"Y" not in left + right
    assert set(trained.segmentation) == {"ab", " ", "ba"}  # "abXYab" was cut at XY
    assert trained.merges == [(b"a", b"b"), (b"b", b"a")]
    assert trained.special_tokens == {"XY": 258, "<pad>": 259}
    tok = Tokenizer.from_dir(_saved(trained, tmp_path))
    ids = tok.encode(doc, allowed_special="all")
    assert ids.count(258) == 2
    assert tok.decode(ids) == doc


def test_error_when_corpus_is_too_small() -> None:
    with pytest.raises(ValueError, match=r"supports only 2 merges.*at most 259 is possible"):
        train_bpe(["abc"], 400, special_tokens=[EOT])
    with pytest.raises(ValueError, match="at least 256 byte tokens"):
        train_bpe(["abc"], 256, special_tokens=[EOT])
    with pytest.raises(ValueError, match="bad split pattern"):
        train_bpe(["abc"], 300, pattern="(unclosed")
    with pytest.raises(ValueError, match="repeat"):
        train_bpe(["abc"], 300, special_tokens=[EOT, EOT])
    with pytest.raises(ValueError, match="list of strings"):
        train_bpe(["abc"], 300, special_tokens=EOT)
    with pytest.raises(ValueError, match="'a' is spelled like an ordinary token"):
        train_bpe(["abc"], 258, special_tokens=["a"])
    with pytest.raises(ValueError, match="'Ġthe' is spelled like an ordinary token"):
        train_bpe([" the Ġthe"] * 3, 260, special_tokens=["Ġthe"])


def test_pair_making_an_existing_token_is_skipped() -> None:
    # White-box: the guard that keeps each merge's result new (ids = 256 + rank).
    a, b = (gpt2_byte_order().index(ord(c)) for c in "ab")
    token_bytes = [bytes([x]) for x in gpt2_byte_order()] + [b"ab"]
    stats = _PairStats([[a, b, a]], [3], token_bytes)
    assert stats.pop_best() == ((b, a), 3)  # (a, b) would win the tie, but "ab" exists
    assert stats.pop_best() is None


def test_progress_reports_every_merge() -> None:
    seen: list[tuple[int, int]] = []
    train_bpe(
        classic_corpus(),
        256 + 5,
        pattern=WORDS,
        special_tokens=(),
        progress=lambda *a: seen.append(a),
    )
    assert seen == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]


# ---------------------------------------------------------------------------------------------
# Saved files load through the tokenizer and reproduce training
# ---------------------------------------------------------------------------------------------

SAMPLE = (
    "To be, or not to be, that is the question:\n"
    "Whether 'tis nobler in the mind to suffer\n"
    "The slings and arrows of outrageous fortune,\n"
    "Or to take arms against a sea of troubles,\n"
    "And by opposing end them? To die: to sleep;\n"
    "No more; and by a sleep to say we end\n"
    "The heart-ache and the thousand natural shocks\n"
    "That flesh is heir to, 'tis a consummation\n"
    "Devoutly to be wish'd. To die, to sleep; — naïve café, 1600 A.D.\n"
)


def _saved(trained: TrainedBPE, folder: Path) -> Path:
    trained.save(folder)
    return folder


def test_saved_files_follow_gpt2_conventions(tmp_path: Path) -> None:
    trained = train_bpe([SAMPLE, SAMPLE.upper()], 300, special_tokens=[EOT, "<|pad|>"])
    written = trained.save(tmp_path)
    assert sorted(p.name for p in written) == [
        "encoder.json",
        "merges_readable.txt",
        "tokenizer_config.json",
        "vocab.bpe",
    ]
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*"))
    encoder = json.loads((tmp_path / "encoder.json").read_text(encoding="utf-8"))
    gpt2 = json.loads((DATA_DIR / "encoder.json").read_text(encoding="utf-8"))
    assert {t: i for t, i in encoder.items() if i < 256} == {
        t: i for t, i in gpt2.items() if i < 256
    }
    assert sorted(encoder.values()) == list(range(300))
    assert encoder[EOT] == 298 and encoder["<|pad|>"] == 299
    lines = (tmp_path / "vocab.bpe").read_text(encoding="utf-8").split("\n")
    assert lines[0] == "#version: 0.2" and lines[-1] == ""
    assert len(lines) == 2 + len(trained.merges) == 2 + 42
    assert lines[1] == f"{printable(trained.merges[0][0])} {printable(trained.merges[0][1])}"
    for rank, line in enumerate(lines[1:-1]):
        left, right = line.split(" ")
        assert encoder[left + right] == 256 + rank
    config = json.loads((tmp_path / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config == {"pattern": "gpt2", "special_tokens": {EOT: 298, "<|pad|>": 299}}
    listing = (tmp_path / "merges_readable.txt").read_text(encoding="utf-8").splitlines()
    left, right = trained.merges[0]
    assert listing[1] == (
        f"0\t{readable(left)}\t{readable(right)}\t{readable(left + right)}\t"
        f"{trained.merge_counts[0]}"
    )


def test_readable_escapes_whitespace_and_broken_bytes() -> None:
    assert readable(b" the") == '" the"'
    assert readable(b"\n\t\r") == '"\\n\\t\\r"'
    assert readable(b'"\\') == '"\\"\\\\"'
    assert readable(b"\x00\x7f") == '"\\u0000\\u007f"'
    assert readable("é".encode()) == '"é"'
    assert readable("é".encode()[:1]) == '"\\xc3"'


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4", r"\w+|\s+|[^\w\s]+"])
def test_tokenizer_reproduces_training_segmentation(pattern: str, tmp_path: Path) -> None:
    text = SAMPLE + EOT + SAMPLE.lower()
    trained = train_bpe([text, "naïve naïve café"], 330, pattern=pattern)
    tok = Tokenizer.from_dir(_saved(trained, tmp_path))
    assert tok.vocab_size == trained.vocab_size == 330
    for chunk, ids in trained.segmentation.items():
        assert tuple(tok.encode_ordinary(chunk)) == ids, chunk
    ids = tok.encode(text, allowed_special="all")
    assert ids.count(trained.special_tokens[EOT]) == 1
    assert tok.decode(ids) == text


@settings(max_examples=150, deadline=None)
@given(texts=texts_strategy, frac=st.floats(0, 1))
def test_in_memory_tokenizer_round_trips(texts: list[str], frac: float) -> None:
    possible, _ = reference_train(texts, 10**9, "gpt2", [EOT])
    trained = train_bpe(texts, 257 + round(frac * len(possible)))
    tok = trained.to_tokenizer()
    for chunk, ids in trained.segmentation.items():
        assert tuple(tok.encode_ordinary(chunk)) == ids
    joined = EOT.join(texts)
    assert tok.decode(tok.encode(joined, allowed_special="all")) == joined


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def test_cli_train_encode_decode_compare(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text((SAMPLE + EOT) * 3, encoding="utf-8")
    out = tmp_path / "tok"
    assert main(["tokenizer", "train", str(corpus), "--vocab-size", "320", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "merges 63/63" in err and "merges/s" in err
    assert "vocab_size 320 = 256 bytes + 63 merges + 1 special" in err
    tok = Tokenizer.from_dir(out)
    assert tok.special_tokens == {EOT: 319}

    text = "To be, or not to be"
    assert main(["tokenizer", "encode", text, "--tokenizer", str(out)]) == 0
    printed = capsys.readouterr().out.split()
    assert [int(i) for i in printed] == tok.encode(text)
    assert main(["tokenizer", "encode", text + EOT, "--json", "--tokenizer", "gpt2"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["token_ids"][-1] == 50256 and "".join(data["tokens"]) == text + EOT
    assert main(["tokenizer", "decode", "[2514, 307,", "393]", "--tokenizer", "gpt2"]) == 0
    assert capsys.readouterr().out == "To be or\n"

    assert (
        main(
            [
                "tokenizer",
                "compare",
                text,
                "--tokenizer",
                "gpt2",
                "--tokenizer",
                str(out),
                "--no-color",
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    n_gpt2, n_ours = len(Tokenizer.gpt2().encode(text)), len(tok.encode(text))
    assert (
        lines[0]
        == f"gpt2: {n_gpt2} tokens, {19 / n_gpt2:.2f} bytes/token, {19 / n_gpt2:.2f} chars/token"
        ", 0 unknown, 0 byte tokens"
    )
    assert lines[1] == "|" + "|".join(Tokenizer.gpt2().tokenize(text)) + "|"
    assert lines[3].startswith(f"{out}: {n_ours} tokens,")
    assert lines[4].count("|") == n_ours + 1 and lines[4].replace("|", "") == text


def test_cli_compare_colours_and_split_characters(capsys: pytest.CaptureFixture) -> None:
    assert main(["tokenizer", "compare", "a🙂b", "--tokenizer", "gpt2", "--color"]) == 0
    out = capsys.readouterr().out
    assert "\x1b[" in out and "🙂" in out
    # GPT-2 splits the emoji's 4 bytes over tokens; it is shown once, with its first token.
    assert main(["tokenizer", "compare", "a🙂b", "--tokenizer", "gpt2", "--no-color"]) == 0
    shown = capsys.readouterr().out.splitlines()[1]
    assert shown.replace("|", "") == "a🙂b"
    assert shown.count("|") == len(Tokenizer.gpt2().encode("a🙂b")) + 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["tokenizer", "train", "missing.txt", "--vocab-size", "300", "--out", "x"],
            "corpus file not found",
        ),
        (
            ["tokenizer", "encode", "hi", "--tokenizer", "no/such/dir"],
            "no tokenizer folder",
        ),
        (["tokenizer", "decode", "1", "two"], "not a token id: 'two'"),
        (["tokenizer", "decode", "99999999"], "unknown token id 99999999"),
        (["tokenizer", "compare", "", "--tokenizer", "gpt2"], "TEXT is empty"),
    ],
)
def test_cli_user_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("cellgpt: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_cli_train_error_names_possible_size(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    corpus = tmp_path / "tiny.txt"
    corpus.write_text("abc", encoding="utf-8")
    argv = ["tokenizer", "train", str(corpus), "--vocab-size", "4096", "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert "supports only 2 merges" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------------------------
# The project's corpus and bundled tokenizer
# ---------------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "data" / "corpus"
MINI = ROOT / "weights_csv" / "gpt2-mini"


def test_matches_reference_on_corpus_excerpt() -> None:
    text = (CORPUS / "shakespeare_val.txt").read_text(encoding="utf-8")[:8000]
    want_merges, want_counts = reference_train([text], 120, "gpt2", [EOT])
    trained = train_bpe([text], 256 + 120 + 1)
    assert trained.merges == want_merges
    assert trained.merge_counts == want_counts


def test_bundled_tokenizer_is_reproducible_and_round_trips_validation() -> None:
    train = (CORPUS / "shakespeare_train.txt").read_text(encoding="utf-8")
    trained = train_bpe([train], 2048, pattern="gpt2", special_tokens=[EOT])
    tok = Tokenizer.from_dir(MINI)
    assert tok.encoder == trained.encoder()
    assert list(tok.bpe_ranks) == [tuple(line.split(" ")) for line in trained.merge_lines()]
    assert tok.special_tokens == {EOT: 2047} and tok.vocab_size == 2048
    val = (CORPUS / "shakespeare_val.txt").read_text(encoding="utf-8")
    ids = tok.encode(val, allowed_special="all")
    assert tok.decode(ids) == val
    assert ids.count(2047) == val.count(EOT) == 3
