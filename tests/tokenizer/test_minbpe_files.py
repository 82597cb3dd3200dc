"""minbpe's `.model` and `.vocab`: what we write reads back the way minbpe's `load` reads it,
a file as minbpe writes it loads into our BPE with minbpe's ids, and broken files name the
line at fault. minbpe itself is not on PyPI; its loader and encoder are restated below from
the file format (merge k makes id 256 + k; encoding merges the pair of lowest merge index)."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest
import regex

from cellgpt.cli import main
from cellgpt.tokenizer.alphabet import PATTERNS, TokenizerError
from cellgpt.tokenizer.minbpe_files import read_model, write_model
from cellgpt.tokenizer.named import load_tokenizer
from cellgpt.tokenizer.train import train_bpe

REPO = Path(__file__).resolve().parents[2]
CORPUS = (REPO / "data/corpus/shakespeare_val.txt").read_text(encoding="utf-8")[:30_000]
HELD_OUT = (REPO / "data/corpus/shakespeare_val.txt").read_text(encoding="utf-8")[-8_000:]


def minbpe_load(path: Path) -> tuple[str, dict[str, int], dict[tuple[int, int], int]]:
    """minbpe's `Tokenizer.load`: pattern, special tokens, merges (pair -> new id)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "minbpe v1"
    pattern = lines[1].strip()
    n = int(lines[2])
    specials = {t: int(i) for t, i in (line.split() for line in lines[3 : 3 + n])}
    merges = {}
    for k, line in enumerate(lines[3 + n :]):
        a, b = map(int, line.split())
        merges[(a, b)] = 256 + k
    return pattern, specials, merges


def minbpe_encode(text: str, pattern: str, merges: dict[tuple[int, int], int]) -> list[int]:
    """minbpe's RegexTokenizer.encode_ordinary (BasicTokenizer's when pattern is empty)."""
    chunks = regex.findall(pattern, text) if pattern else [text]
    out: list[int] = []
    for chunk in chunks:
        ids = list(chunk.encode("utf-8"))
        while len(ids) >= 2:
            pairs = set(pairwise(ids))
            pair = min(pairs, key=lambda p: merges.get(p, float("inf")))
            if pair not in merges:
                break
            new, i, merged = merges[pair], 0, []
            while i < len(ids):
                if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
                    merged.append(new)
                    i += 2
                else:
                    merged.append(ids[i])
                    i += 1
            ids = merged
        out.extend(ids)
    return out


@pytest.mark.parametrize("pattern", ["gpt4", "none"])
def test_ours_reads_in_minbpe_and_back(tmp_path: Path, pattern: str) -> None:
    corpus = CORPUS if pattern == "gpt4" else CORPUS[:6000]
    trained = train_bpe([corpus], 256 + 60 + 1, pattern=pattern, special_tokens=["<|endoftext|>"])
    model, vocab = write_model(tmp_path / "t", trained.merges, pattern, trained.special_tokens)
    assert (model.name, vocab.name) == ("t.model", "t.vocab")
    pat, specials, merges = minbpe_load(model)
    assert pat == ("" if pattern == "none" else PATTERNS["gpt4"])
    assert specials == {"<|endoftext|>": 316} and len(merges) == 60
    ours = load_tokenizer(model)
    for text in (HELD_OUT, "Hello, wörld! 🍓 안녕"):
        assert ours.encode(text) == minbpe_encode(text, pat, merges)
        assert ours.decode(ours.encode(text)) == text
    assert ours.encode("<|endoftext|>", allowed_special="all") == [316]
    # the vocab file: bytes first, then each merge with its parts
    lines = vocab.read_text(encoding="utf-8").splitlines()
    assert lines[32] == "[ ] 32" and lines[10] == "[\\u000a] 10"
    first = trained.merges[0]
    assert (
        lines[256]
        == f"[{first[0].decode()}][{first[1].decode()}] -> [{(first[0] + first[1]).decode()}] 256"
    )


def test_a_minbpe_file_loads_with_minbpes_ids(tmp_path: Path) -> None:
    # As minbpe's BasicTokenizer writes it after learning "aa" (256) and "aaa" (257 = 256+97).
    path = tmp_path / "basic.model"
    path.write_text("minbpe v1\n\n1\n<|end|> 258\n97 97\n256 97\n", encoding="utf-8")
    table = read_model(path)
    assert table.pattern == "none" and table.special_tokens == {"<|end|>": 258}
    tok = load_tokenizer(path)
    assert tok.encode("aaaaaaa") == minbpe_encode("aaaaaaa", "", {(97, 97): 256, (256, 97): 257})
    assert tok.encode("b<|end|>", allowed_special="all") == [98, 258]
    rows = tok.trace("aaaa")  # the pass table works on minbpe's vocabularies too
    assert [p.rank for p in rows[0].passes] == [256] and rows[0].ids == (256, 256)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("minbpe v2\n\n0\n", "line 1: expected 'minbpe v1'"),
        ("minbpe v1\n\nx\n", "line 3: expected the number of special tokens"),
        ("minbpe v1\n\n1\nnospace\n", "line 4: expected 'TOKEN ID'"),
        ("minbpe v1\n\n0\n97 97\n97 x\n", "line 5: expected two token ids"),
        ("minbpe v1\n\n0\n97 97\n300 1\n", "line 5: merge 300 1 uses an id not made yet"),
        ("minbpe v1\n\n0\n97 97\n97 97\n", "line 5: merge 97 97 makes b'aa' again \\(line 4\\)"),
        ("minbpe v1\n\n1\n<s> 3\n97 97\n", "special token '<s>' reuses id 3"),
        ("minbpe v1\n(unclosed\n0\n", "line 2: the split pattern is not a valid regex"),
    ],
)
def test_broken_files_name_the_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.model"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TokenizerError, match=message) as err:
        read_model(path)
    assert str(path) in str(err.value)


def test_cli_train_writes_minbpe_files_and_reports_compression(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus, held = tmp_path / "c.txt", tmp_path / "h.txt"
    corpus.write_text(CORPUS[:5000], encoding="utf-8")
    held.write_text(HELD_OUT, encoding="utf-8")
    argv = ["tokenizer", "train", str(corpus), "--vocab-size", "300", "--pattern", "none"]
    argv += ["--out", str(tmp_path / "out"), "--held-out", str(held), "--minbpe", "--no-special"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    tok = load_tokenizer(tmp_path / "out" / "minbpe.model")
    for label, text in (("corpus", CORPUS[:5000]), ("held-out", HELD_OUT)):
        n = len(tok.encode(text))
        ratio = len(text.encode()) / n
        assert f"compression on the {label}: {ratio:.2f} bytes/token" in err
    assert "compression on the held-out" in err
    # minbpe's basic tokenizer: no pre-split, so tokens such as "e " or ", " exist (GPT-2's
    # split puts a space before a word, never after one)
    tokens = [tok.token_str(i) for i in range(256, 300)]
    assert any(t.endswith(" ") and t.strip() for t in tokens)
