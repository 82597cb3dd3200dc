"""The embedding explorer's functions on a hand-made table whose cosines are known by hand,
and workbooks/embeddings.py on the bundled model (checked against plain numpy) and on a tiny
random model with GPT-2's vocabulary."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import cellgpt
from cellgpt.engine import CellError, Workbook
from cellgpt.engine.errors import CellEvalError
from cellgpt.gpt2.embeddings import (
    cosine_matrix,
    cosine_rows,
    first_positions,
    most_similar,
    token_id_of,
    token_ids_of,
    token_labels,
)
from cellgpt.tokenizer.bpe import Tokenizer

REPO = Path(__file__).resolve().parents[2]
WORKBOOK = REPO / "workbooks" / "embeddings.py"
R2 = math.sqrt(2.0)

# A byte-level vocabulary of ten tokens ("Ġ" is the byte map's space): " ab" is one token,
# "ab" is two.
TOKENS = ["a", "b", "c", "d", "e", "f", "g", "Ġ", "Ġa", "Ġab"]
MERGES = [("Ġ", "a"), ("Ġa", "b")]
# Rows chosen so that every cosine is a simple number: a − b + c = [1, 0, 1] is row d exactly.
TABLE = np.array(
    [
        [1, 1, 0],  # a   ("king")
        [0, 1, 0],  # b   ("man")
        [0, 0, 1],  # c   ("woman")
        [1, 0, 1],  # d   ("queen")
        [1, 0, 1],  # e   the same row as d: an exact tie, listed by id
        [0, 0, 0],  # f   no direction: cosine undefined, never listed
        [-1, 0, -1],  # g   the opposite direction
        [1, 0, 0],  # " " 45° from d
        [0, 0, 3],  # " a" 45° from d, longer: length does not count
        [0, 1, 1],  # " ab" 60° from d
    ],
    dtype=np.float32,
)


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer({t: i for i, t in enumerate(TOKENS)}, MERGES)


def test_cosine_rows_are_the_angles_by_hand() -> None:
    query = TABLE[0] - TABLE[1] + TABLE[2]
    sims = cosine_rows(TABLE, query)
    # cos = x·q / (|x| |q|), |q| = √2: by hand for each row.
    expected = [1 / 2, 0, 1 / R2, 1, 1, np.nan, -1, 1 / R2, 1 / R2, 1 / 2]
    np.testing.assert_allclose(sims, expected, rtol=1e-15, atol=1e-15)
    assert sims.dtype == np.float64 and np.isnan(sims[5])
    assert sims[3] == sims[4]  # identical rows give identical cosines


def test_most_similar_orders_by_cosine_then_id_and_leaves_out_what_it_must(tok) -> None:
    query = TABLE[0] - TABLE[1] + TABLE[2]
    ranked = most_similar(tok, cosine_rows(TABLE, query), 10, [0, 1, 2])
    assert [(i, t) for i, t, _ in ranked] == [
        (3, "d"),
        (4, "e"),  # tie with d: the smaller id first
        (7, " "),
        (8, " a"),  # tie with " ": the smaller id first
        (9, " ab"),
        (6, "g"),
    ]  # a, b, c excluded; f (no direction) left out
    assert [c for _, _, c in ranked] == pytest.approx([1, 1, 1 / R2, 1 / R2, 1 / 2, -1], abs=1e-15)
    assert [i for i, _, _ in most_similar(tok, cosine_rows(TABLE, query), 2)] == [3, 4]
    assert most_similar(tok, cosine_rows(TABLE, query), 0) == []


def test_cosine_matrix_by_hand() -> None:
    got = cosine_matrix(np.array([[1, 0], [0, 2], [3, 3]], dtype=np.float32))
    expected = [[1, 0, 1 / R2], [0, 1, 1 / R2], [1 / R2, 1 / R2, 1]]
    np.testing.assert_allclose(got, expected, rtol=1e-15, atol=1e-15)
    assert np.array_equal(got, got.T)


def test_token_ids_from_text_or_id(tok) -> None:
    assert token_id_of(tok, "d") == 3
    assert token_id_of(tok, " ab") == 9
    assert token_id_of(tok, 7) == 7 and token_id_of(tok, np.int64(2)) == 2
    assert token_ids_of(tok, ["a", " a", 5]) == [0, 8, 5]
    assert token_labels(tok, 11) == ["a", "b", "c", "d", "e", "f", "g", " ", " a", " ab", "<id 10>"]


def test_a_text_that_is_not_one_token_is_refused_naming_its_pieces(tok) -> None:
    with pytest.raises(CellEvalError) as err:
        token_id_of(tok, "ab")
    message = str(err.value)
    assert "'ab' is not one token" in message and "2 tokens, 'a' + 'b' (ids 0, 1)" in message
    assert "with its leading space, ' ab' is one token (id 9)" in message
    with pytest.raises(CellEvalError, match=r"outside 0\.\.9"):
        token_id_of(tok, 10)
    with pytest.raises(CellEvalError, match="empty"):
        token_id_of(tok, "")
    with pytest.raises(CellEvalError, match="its text"):
        token_id_of(tok, 1.5)


def test_first_positions_clips_to_the_table() -> None:
    wpe = np.arange(12, dtype=np.float32).reshape(4, 3)
    assert first_positions(wpe, 2).shape == (2, 3)
    assert first_positions(wpe, 100).shape == (4, 3)
    with pytest.raises(CellEvalError, match="at least one"):
        first_positions(wpe, 0)


def test_the_library_charges_a_vocabulary_size_cosine_within_budget() -> None:
    # 50257 × 768 (GPT-2 small) must fit a cell's budget; a 1024 × 1024 position matrix too.
    from cellgpt.engine.limits import DEFAULT_LIMITS

    lib = cellgpt.full_library()
    wte = np.zeros((50257, 768), dtype=np.float32)
    nbytes, work = lib["cosine_rows"].cost(wte, wte[0])
    assert nbytes < 2**23 and work <= DEFAULT_LIMITS.max_cost
    nbytes, work = lib["cosine_matrix"].cost(np.zeros((1024, 768), dtype=np.float32))
    assert nbytes < DEFAULT_LIMITS.max_bytes and work <= DEFAULT_LIMITS.max_cost


# ---------------------------------------------------------------- the workbook


def _cos(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Independent float64 cosine of each row of x with y."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    return (x @ y) / (np.linalg.norm(x, axis=-1) * np.linalg.norm(y))


def _ranking(sims: np.ndarray, exclude: list[int], n: int) -> list[int]:
    order = [int(i) for i in np.lexsort((np.arange(sims.size), -sims))]  # cosine, then id
    return [i for i in order if i not in exclude][:n]


@pytest.fixture(scope="module")
def mini() -> Workbook:
    wb = cellgpt.open(WORKBOOK)
    wb.run()
    return wb


def test_workbook_on_the_bundled_model_matches_plain_numpy(mini) -> None:
    wb = mini
    assert wb.stale() == [] and not any(wb.info(n).error for n in wb.cells())
    tok, wte, wpe = wb["tokenizer"], wb["wte"], wb["wpe"]
    king = tok.encode(" king")
    assert len(king) == 1 and wb["token_id"] == king[0]
    sims = _cos(wte, wte[king[0]])
    np.testing.assert_allclose(wb["similarity"], sims, rtol=1e-12)
    assert [r[0] for r in wb["neighbours"]] == _ranking(sims, king, 10)
    assert [r[1] for r in wb["neighbours"]] == [tok.token_str(r[0]) for r in wb["neighbours"]]

    a, b, c = (tok.encode(w)[0] for w in (" father", " man", " woman"))
    analogy = _cos(wte, wte[a] - wte[b] + wte[c])
    assert [r[0] for r in wb["analogy"]] == _ranking(analogy, [a, b, c], 10)
    assert wb["answer"] == " mother"  # what the bundled model learned from Shakespeare

    ids = [tok.encode(w)[0] for w in wb["compare"]]
    expected = np.array([_cos(wte[ids], wte[i]) for i in ids])
    np.testing.assert_allclose(wb["compare_cosine"], expected, rtol=1e-12)
    assert list(wb.table("compare_cosine").columns) == wb["compare"]

    n_ctx = wpe.shape[0]  # show_positions (1024) is more than the model has: all of them
    assert wb["wpe_cosine"].shape == (n_ctx, n_ctx)
    np.testing.assert_allclose(wb["wpe_cosine"][5], _cos(wpe, wpe[5]), rtol=1e-12)
    assert list(wb["position_ids"]) == list(range(n_ctx))
    shift = _cos(wte[king[0]] + wpe, wte[king[0]])
    np.testing.assert_allclose(wb["position_shift"], shift, rtol=1e-6)

    assert wb["wte_negative"] == np.count_nonzero(wte < 0) / wte.size
    assert wb["wpe_negative"] == np.count_nonzero(wpe < 0) / wpe.size
    assert 0.3 < wb["wte_negative"] < 0.7  # "about half", as the course says


def test_a_word_that_is_several_tokens_is_a_clear_cell_error() -> None:
    wb = cellgpt.open(WORKBOOK, token=" kingdom", show_positions=8)
    with pytest.raises(CellError) as err:
        wb["neighbours"]
    message = str(err.value)
    assert "' kingdom' is not one token" in message and "' king' + 'dom'" in message
    assert wb["wpe_cosine"].shape == (8, 8)  # the rest of the workbook still works
    wb.set("token", "king")
    with pytest.raises(CellError, match="with its leading space, ' king' is one token"):
        wb["token_id"]


def test_workbook_on_a_tiny_random_model_with_gpt2s_vocabulary(params_tiny_dir: Path) -> None:
    wb = cellgpt.open(WORKBOOK, model=str(params_tiny_dir), show_positions=16)
    wb.run()
    assert not any(wb.info(n).error for n in wb.cells())
    gpt2 = Tokenizer.gpt2()
    assert wb["token_id"] == gpt2.encode(" king")[0] == 5822
    assert len(wb["vocab"]) == 50257 and wb["vocab"][5822] == " king"
    wte = wb["wte"]
    sims = _cos(wte, wte[5822])
    assert [r[0] for r in wb["neighbours"]] == _ranking(sims, [5822], 10)
    assert wb["wpe_cosine"].shape == (16, 16) and wb["position_shift"].shape == (16,)
    assert wb["compare_cosine"].shape == (8, 8)


def test_a_huge_label_count_is_refused_before_it_runs() -> None:
    wb = Workbook(cellgpt.full_library())
    wb.define("n", "10**7")
    wb.define("labels", "token_labels(load_tokenizer('gpt2-mini'), n)")
    with pytest.raises(CellError, match=r"token_labels\(\) would cost .* the limit is"):
        wb["labels"]
    wb.set_formula("n", "50257")  # GPT-2's vocabulary is well within budget
    assert len(wb["labels"]) == 50257


def test_a_long_text_error_lists_only_its_first_pieces(tok) -> None:
    with pytest.raises(CellEvalError) as err:
        token_id_of(tok, "abcdefg" * 10)
    message = str(err.value)
    assert message.startswith("'" + ("abcdefg" * 10)[:60] + "'… is not one token")
    assert "70 tokens, 'a' + 'b' + 'c' + 'd' + 'e' + 'f' + 'g' + 'a' + … (ids 0, 1, 2" in message
    assert "6, 0, …)" in message and len(message) < 300
