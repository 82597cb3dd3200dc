"""The tokenizer's own tables (`vocab_table`, `merges_table`) against the files they come from,
read here independently: encoder.json for ids and bytes, vocab.bpe's lines for the ranks; and
against tiktoken for a handful of ids. Both the real GPT-2 tokenizer and the bundled model's."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest
import tiktoken

import cellgpt
from cellgpt.engine.errors import CellEvalError
from cellgpt.tokenizer.bpe import Tokenizer
from cellgpt.tokenizer.display import token_text, visible
from cellgpt.tokenizer.functions import merges_table as merges_cell
from cellgpt.tokenizer.tables import (
    MERGES_TABLE_COLUMNS,
    VOCAB_TABLE_COLUMNS,
    merges_table,
    vocab_table,
)

REPO = Path(__file__).resolve().parents[2]
GPT2_DIR = REPO / "cellgpt" / "tokenizer" / "data" / "gpt2"
MINI_DIR = REPO / "weights_csv" / "gpt2-mini"
EOT = "<|endoftext|>"


def byte_map() -> dict[int, str]:
    """GPT-2's byte → printable symbol map from its definition (printable bytes stay)."""
    keep = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    moved = iter(range(256, 512))
    return {b: chr(b) if b in keep else chr(next(moved)) for b in range(256)}


class Files:
    """A tokenizer folder read without our loader."""

    def __init__(self, folder: Path) -> None:
        self.encoder: dict[str, int] = json.loads((folder / "encoder.json").read_text("utf-8"))
        lines = (folder / "vocab.bpe").read_text("utf-8").split("\n")
        assert lines[0].startswith("#version")
        # rank r is line r + 2 of the file (line 1 is the header)
        self.merges = [tuple(line.split(" ")) for line in lines[1:] if line]
        config = folder / "tokenizer_config.json"
        specials = (
            json.loads(config.read_text("utf-8")).get("special_tokens") if config.exists() else None
        )
        self.specials: dict[str, int] = specials or {EOT: self.encoder[EOT]}
        to_byte = {ch: b for b, ch in byte_map().items()}
        self.bytes_of = {
            i: (t.encode() if t in self.specials else bytes(to_byte[c] for c in t))
            for t, i in self.encoder.items()
        }


def dotted(text: str) -> str:
    """Edge spaces as ·, written here with a regex rather than the library's string methods."""
    return re.sub(r"^ +| +$", lambda m: "·" * len(m.group()), text)


SYMBOLS = {"\n": "↵", "\t": "→", "\r": "␍"}


def shown(data: bytes) -> str:
    """What the token column must say, spelled out char by char: UTF-8 text where it decodes,
    line breaks as symbols, bytes that do not decode and invisible characters escaped."""
    out = []
    for ch in data.decode("utf-8", errors="surrogateescape"):
        if ch in SYMBOLS:
            out.append(SYMBOLS[ch])
        elif 0xDC80 <= ord(ch) <= 0xDCFF:
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        elif not ch.isprintable():
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return dotted("".join(out))


@pytest.fixture(scope="module", params=[GPT2_DIR, MINI_DIR], ids=["gpt2", "gpt2-mini"])
def case(request: pytest.FixtureRequest) -> tuple[Files, Tokenizer]:
    return Files(request.param), Tokenizer.from_dir(request.param)


def test_vocab_rows_are_encoder_json_id_by_id(case: tuple[Files, Tokenizer]) -> None:
    files, tok = case
    rows = vocab_table(tok)
    assert len(VOCAB_TABLE_COLUMNS) == len(rows[0]) == 5
    assert [r[0] for r in rows] == sorted(files.encoder.values()) == list(range(len(rows)))
    for i, token, literal, n_bytes, _ in rows:
        data = ast.literal_eval(literal)  # the bytes column is an exact bytes literal
        assert isinstance(data, bytes) and data == files.bytes_of[i] and n_bytes == len(data)
        assert token == shown(data), i
        # half a character is escaped, never U+FFFD (unless the token is U+FFFD itself)
        assert "\ufffd" not in token or "\ufffd".encode() in data


def test_vocab_rank_is_the_merge_that_made_the_token(case: tuple[Files, Tokenizer]) -> None:
    files, tok = case
    rows = vocab_table(tok)
    special_ids = set(files.specials.values())
    singles = [r for r in rows if r[3] == 1 and r[0] not in special_ids]
    assert len(singles) == 256 and all(r[4] is None for r in singles)
    assert all(rows[i][4] is None for i in special_ids)
    made = {files.encoder[left + right]: rank for rank, (left, right) in enumerate(files.merges)}
    assert len(made) == len(files.merges)  # every merge makes a new token
    for i, *_, rank in rows:
        assert rank == made.get(i), i
    # 256 bytes + one token per merge + the specials: nothing else has a blank rank
    assert len(rows) == 256 + len(files.merges) + len(special_ids)


def test_merges_are_vocab_bpe_line_by_line(case: tuple[Files, Tokenizer]) -> None:
    files, tok = case
    rows, vocab = merges_table(tok), vocab_table(tok)
    assert len(MERGES_TABLE_COLUMNS) == len(rows[0]) == 5
    assert len(rows) == len(files.merges)
    for (rank, left, right, result, result_id), (a, b) in zip(rows, files.merges, strict=True):
        assert result_id == files.encoder[a + b]
        assert (left, right) == (vocab[files.encoder[a]][1], vocab[files.encoder[b]][1])
        assert result == vocab[result_id][1]
        assert vocab[result_id][4] == rank  # the result of merge r is the token of rank r
    assert [r[0] for r in rows] == list(range(len(rows)))


def test_gpt2_ids_agree_with_tiktoken() -> None:
    tok = Tokenizer.from_dir(GPT2_DIR)
    vocab = vocab_table(tok)
    by_bytes = {ast.literal_eval(r[2]): r[0] for r in vocab}
    # tiktoken's own BPE over encoder.json's ranks: an independent encoder of the same files
    files = Files(GPT2_DIR)
    ranks = {files.bytes_of[i]: i for t, i in files.encoder.items() if t != EOT}
    ref = tiktoken.Encoding(
        name="gpt2-files", pat_str=tok.pattern, mergeable_ranks=ranks, special_tokens={EOT: 50256}
    )
    words = [" the", "the", " The", "\n", " quick", "Mike", " moves", "!", " 2020", "ing"]
    for word in words:
        (expected,) = ref.encode(word)
        assert by_bytes[word.encode()] == expected, word
    assert [r[0] for r in vocab if r[1] == "·the"] == ref.encode(" the") == [262]
    assert vocab[50256][1:] == (EOT, repr(EOT.encode()), 13, None)


def test_fragments_and_control_bytes_are_shown_apart() -> None:
    assert token_text(b"\xe2\x80") == "\\xe2\\x80" != token_text(b"\xe2")
    assert token_text(b" \xe2\x80\x99s") == "·’s"  # complete characters stay text
    assert token_text(b"\x00") == "\\x00" and token_text(b"\n\n") == "↵↵"
    assert token_text(b"\xe3\x80\x80") == "\\u3000"  # an ideographic space is not invisible
    assert token_text(b"  a b ") == "··a b·" == visible("  a b ")
    assert token_text(b"   ") == "···"


def test_the_cells_of_the_gpt2_workbook() -> None:
    wb = cellgpt.open("gpt2")
    vocab, merges = wb["vocab"], wb["merges"]
    assert len(vocab) == wb["config"]["vocab_size"]
    assert wb.info("vocab").hints == {"stage": "tokenize", "cols": "VOCAB_TABLE_COLUMNS"}
    table = wb.table("merges")
    assert list(table.columns) == MERGES_TABLE_COLUMNS and len(table) == len(merges)
    ids = wb["token_ids"]
    assert [vocab[i][1] for i in ids] == [visible(t) for t in wb["tokens"]]
    with pytest.raises(CellEvalError, match="expected a tokenizer"):
        merges_cell("not a tokenizer")


def test_the_tokenizer_workbench_lists_what_it_learned(tmp_path: Path) -> None:
    wb = cellgpt.open(REPO / "workbooks" / "tokenizer.py")
    vocab: list[Any] = wb["vocab"]
    learned = wb["merges"]  # (id, token, left, right, count), learned in rank order
    assert len(vocab) == wb["vocab_size"]
    for rank, (token_id, *_rest) in enumerate(learned):
        assert vocab[token_id][4] == rank
    assert vocab[-1][1:] == (EOT, repr(EOT.encode()), 13, None)
