"""Hugging Face tokenizer.json files of every family load for encode, decode and compare: a
BERT-style WordPiece, a T5-style Unigram, a Llama-style BPE with byte fallback and a
StarCoder-style byte-level BPE, each trained here by the `tokenizers` trainers (no
download). Bad files are refused with their path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from cellgpt.cli import main
from cellgpt.tokenizer.alphabet import TokenizerError
from cellgpt.tokenizer.compare import SAMPLE, compare_one
from cellgpt.tokenizer.hf import HFTokenizer
from cellgpt.tokenizer.named import load_any_tokenizer

REPO = Path(__file__).resolve().parents[2]
LINES = (REPO / "data/corpus/shakespeare_val.txt").read_text(encoding="utf-8")[:40_000].split("\n")
BYTES = [f"<0x{i:02X}>" for i in range(256)]


def wordpiece() -> Tokenizer:
    t = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    t.normalizer = normalizers.BertNormalizer(lowercase=True)
    t.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    t.decoder = decoders.WordPiece()
    t.train_from_iterator(
        LINES, trainers.WordPieceTrainer(vocab_size=400, special_tokens=["[UNK]", "[CLS]"])
    )
    return t


def unigram() -> Tokenizer:
    t = Tokenizer(models.Unigram())
    t.pre_tokenizer = pre_tokenizers.Metaspace()
    t.decoder = decoders.Metaspace()
    t.train_from_iterator(
        LINES, trainers.UnigramTrainer(vocab_size=300, special_tokens=["<unk>"], unk_token="<unk>")
    )
    return t


def byte_fallback_bpe() -> Tokenizer:
    t = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    t.pre_tokenizer = pre_tokenizers.Metaspace()
    t.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    t.train_from_iterator(
        LINES, trainers.BpeTrainer(vocab_size=600, special_tokens=["<unk>", *BYTES])
    )
    return t


def byte_level_bpe() -> Tokenizer:
    t = Tokenizer(models.BPE())
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    t.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    t.train_from_iterator(
        LINES,
        trainers.BpeTrainer(
            vocab_size=500, initial_alphabet=alphabet, special_tokens=["<|endoftext|>"]
        ),
    )
    return t


KINDS = {
    "bert-wordpiece": wordpiece,
    "t5-unigram": unigram,
    "llama-bpe": byte_fallback_bpe,
    "starcoder-bpe": byte_level_bpe,
}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for name, build in KINDS.items():
        folder = tmp_path_factory.mktemp(name)
        build().save(str(folder / "tokenizer.json"))
        out[name] = folder / "tokenizer.json"
    return out


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_family_encodes_like_the_library(kind: str, files: dict[str, Path]) -> None:
    tok = load_any_tokenizer(files[kind])
    assert isinstance(tok, HFTokenizer)
    ref = Tokenizer.from_file(str(files[kind]))
    text = "Hello World! To be, or not to be: 1234567 🍓 안녕"
    assert tok.encode(text) == ref.encode(text, add_special_tokens=False).ids
    assert tok.decode(tok.encode("to be or not")).strip() == "to be or not"
    # a folder holding tokenizer.json resolves to it
    assert load_any_tokenizer(files[kind].parent) is tok


def test_counts_of_unknown_and_byte_fallback_tokens(files: dict[str, Path]) -> None:
    text = "good night 🍓 안녕"
    bert = compare_one("bert", load_any_tokenizer(files["bert-wordpiece"]), text)
    assert bert.unknown == 2 and bert.byte_tokens == 0  # the emoji and the Korean word
    llama = compare_one("llama", load_any_tokenizer(files["llama-bpe"]), text)
    assert llama.unknown == 0 and llama.byte_tokens >= 4 + 6  # 🍓 is 4 bytes, 안녕 6
    star = compare_one("starcoder", load_any_tokenizer(files["starcoder-bpe"]), text)
    assert star.unknown == 0 and star.byte_tokens > 0  # byte-level: characters split


@pytest.mark.parametrize("kind", list(KINDS))
def test_pieces_cover_the_text(kind: str, files: dict[str, Path]) -> None:
    row = compare_one(kind, load_any_tokenizer(files[kind]), SAMPLE)
    assert len(row.pieces) == row.tokens == len(row.ids)
    assert "".join(row.pieces) == SAMPLE


def test_cli_encode_decode_and_compare(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(files["bert-wordpiece"])
    assert main(["tokenize", "good night", "--tokenizer", path, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tokenizer"] == path and "".join(data["tokens"]).replace("#", "") == "goodnight"
    assert main(["tokenizer", "decode", *map(str, data["token_ids"]), "--tokenizer", path]) == 0
    out = capsys.readouterr()
    assert out.out == "good night\n" and "Hugging Face tokenizer.json" in out.err
    argv = ["tokenizer", "compare", "--json", "--tokenizer", "gpt2"]
    for kind in KINDS:
        argv += ["--tokenizer", str(files[kind])]
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)["tokenizers"]
    assert [r["tokenizer"] for r in rows] == ["gpt2", *(str(files[k]) for k in KINDS)]
    assert all("".join(r["pieces"]) == SAMPLE for r in rows)


def test_bad_files_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "tokenizer.json"
    bad.write_text('{"model": {"type": "BPE",\n "vocab": 3}}')
    with pytest.raises(TokenizerError, match=f"{bad}: not a valid tokenizer.json"):
        HFTokenizer.from_file(bad)
    bad.write_text('{"model": {\n  "type": }')
    with pytest.raises(TokenizerError, match=f"{bad} line 2 column 11: invalid JSON"):
        HFTokenizer.from_file(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(TokenizerError, match="no 'model' object"):
        HFTokenizer.from_file(bad)
    with pytest.raises(TokenizerError, match="unknown token id 99999"):
        HFTokenizer.from_file(_saved(tmp_path)).decode([99999])


def _saved(tmp_path: Path) -> Path:
    path = tmp_path / "ok" / "tokenizer.json"
    path.parent.mkdir()
    wordpiece().save(str(path))
    return path


def test_workbooks_cannot_load_hf_files(files: dict[str, Path]) -> None:
    # Our BPE (and so the workbooks) reads only its own kinds; the message says where HF goes.
    from cellgpt.tokenizer.named import load_tokenizer

    with pytest.raises(TokenizerError, match=r"Hugging Face tokenizer\.json is for"):
        load_tokenizer(files["bert-wordpiece"])
