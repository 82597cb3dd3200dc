"""Key-major attention blocks (cellgpt/engine/key_major.py): the order of the sums over the
keys, the scale folded into q, and the fused kernel agreeing with the separate cells on every
path that reaches these blocks (one prompt, a batch, a scale that is not a power of two)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cellgpt.engine import kernels, key_major, parallel
from cellgpt.gpt2.functions import attention_scores, merge_heads, split_heads
from cellgpt.gpt2.fused_attention import fused_attention


def _in_order(s: np.ndarray) -> np.ndarray:
    """Each column's sum in the order key_sums promises: key i into lane i % LANES, lanes
    summed one after the other, then the leftover keys one by one."""
    lanes, groups = key_major.LANES, s.shape[0] // key_major.LANES
    partial = [np.zeros(s.shape[1], dtype=s.dtype) for _ in range(lanes)]
    for i in range(groups * lanes):
        partial[i % lanes] = s[i] if i < lanes else partial[i % lanes] + s[i]
    total = np.zeros(s.shape[1], dtype=s.dtype)
    if groups:
        total = partial[0]
        for lane in partial[1:]:
            total = total + lane
    for row in s[groups * lanes :]:
        total = total + row
    return total


@pytest.mark.parametrize("keys", [1, 2, 7, 8, 9, 100, 1024])
@pytest.mark.parametrize("queries", [1, 2, 3, 12, 128])
def test_key_sums_add_the_keys_in_order_on_every_block_shape(keys, queries):
    rng = np.random.default_rng(keys * queries)
    buffer = key_major.scratch(keys, 128, np.dtype(np.float32))  # blocks are views of this
    block = buffer[: keys * 128].reshape(keys, 128)[:, :queries]
    block[...] = rng.random((keys, queries), dtype=np.float32)
    np.testing.assert_array_equal(key_major.key_sums(block), _in_order(block))
    # A transposed view (columns not contiguous) takes the running sum: the same order.
    transposed = np.ascontiguousarray(block.T).T
    np.testing.assert_array_equal(key_major.key_sums(transposed), _in_order(block))


def test_which_attentions_run_key_major():
    assert not key_major.key_major(1)  # a generated token's row
    assert not key_major.key_major(key_major.FEW_ROWS)  # a few new rows
    assert key_major.key_major(key_major.FEW_ROWS + 1)  # a prompt


@pytest.mark.parametrize("keys", [1, 7, 8, 9, 100, 1024])
def test_key_max_is_the_columns_maximum(keys):
    rng = np.random.default_rng(keys)
    block = key_major.scratch(keys, 64, np.dtype(np.float32))[: keys * 48].reshape(keys, 48)
    block[...] = rng.standard_normal(block.shape, dtype=np.float32)
    block[rng.integers(0, keys), 3] = np.nan  # NaN wins, as in np.max
    block[:, 5] = -np.inf
    np.testing.assert_array_equal(key_major.key_max(block), np.max(block, axis=0))


def test_head_groups_fit_the_cache_and_cover_every_head_once():
    for block in [(0, 128, 128), (896, 1024, 1024), (0, 64, 64), (0, 9, 300)]:
        groups = key_major.head_groups(2, 12, block, 4)
        assert groups[0][0] == 2 and groups[-1][1] == 12
        assert all(a < b for a, b in groups)
        assert all(b == c for (_, b), (c, _) in itertools.pairwise(groups))
        seen, n = block[2], block[1] - block[0]
        fits = key_major.GROUP_BYTES
        assert all((b - a) == 1 or (b - a) * seen * n * 4 <= fits for a, b in groups)


@pytest.mark.parametrize("scale", [0.125, 0.25, 1 / np.sqrt(12.0)])
def test_a_power_of_two_scale_goes_into_q_exactly(scale):
    rng = np.random.default_rng(5)
    q = rng.standard_normal((2, 50, 12), dtype=np.float32)
    s32 = np.float32(scale)
    q_t, post = key_major.scaled_queries(q, s32)
    if np.frexp(s32)[0] == 0.5:
        assert post is None
        np.testing.assert_array_equal(q_t, (q * s32).transpose(0, 2, 1))
    else:  # rounding would differ: the scale stays for each block
        assert post == s32 and np.shares_memory(q_t, q)


def _plain_attention(q, k, v):
    return merge_heads(kernels.matmul(kernels.softmax_last(attention_scores(q, k)), v))


def _reference(q, k, v):
    """float64 softmax(q·kᵀ/√d with the future masked)·v, heads side by side."""
    q64, k64, v64 = (x.astype(np.float64) for x in (q, k, v))
    s = q64 @ k64.transpose(0, 2, 1) / np.sqrt(q.shape[-1])
    offset = k.shape[1] - q.shape[1]
    s[:, np.arange(k.shape[1])[None, :] > offset + np.arange(q.shape[1])[:, None]] = -np.inf
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    return merge_heads(p @ v64)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("d_head", [16, 12])  # 1/4 goes into q; 1/√12 is applied per block
def test_fused_and_separate_cells_agree_to_the_bit_and_match_float64(monkeypatch, workers, d_head):
    monkeypatch.setattr(parallel, "WORKERS", workers)
    rng = np.random.default_rng(d_head)
    qkv = rng.standard_normal((300, 3 * 4 * d_head)).astype(np.float32) * 2
    q, k, v = (split_heads(qkv, part, 4) for part in range(3))
    assert key_major.key_major(300)
    got = fused_attention(q, k, v)
    np.testing.assert_array_equal(got, _plain_attention(q, k, v))
    want = _reference(q, k, v)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # As close as numpy's own query-major softmax (an unmarked copy takes that path), whose
    # pairwise sums the lanes of key_sums stand in for.
    scores = attention_scores(q, k).copy()
    query_major = merge_heads(np.matmul(kernels.softmax_last(scores), v))
    assert np.abs(got - want).max() <= 1.5 * np.abs(query_major - want).max()


@pytest.mark.parametrize("tokens", [9, 64, 200])
def test_every_grouping_of_heads_gives_the_same_numbers(monkeypatch, tokens):
    """With one worker all 6 heads share groups; with two each worker groups its 3; with a
    tiny GROUP_BYTES every head is its own group: the same bits each time."""
    rng = np.random.default_rng(tokens)
    qkv = rng.standard_normal((tokens, 3 * 6 * 16)).astype(np.float32)
    q, k, v = (split_heads(qkv, part, 6) for part in range(3))
    runs = []
    for workers, group_bytes in [(1, key_major.GROUP_BYTES), (2, key_major.GROUP_BYTES), (1, 1)]:
        monkeypatch.setattr(parallel, "WORKERS", workers)
        monkeypatch.setattr(key_major, "GROUP_BYTES", group_bytes)
        monkeypatch.setitem(parallel.for_chunks.__kwdefaults__, "min_work", 0.0)
        monkeypatch.setattr(parallel, "_foreign_spin_until", [0.0])  # no MKL spin: split
        runs.append(fused_attention(q, k, v))
        np.testing.assert_array_equal(runs[-1], _plain_attention(q, k, v))
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(runs[0], runs[2])


def test_a_batch_of_prompts_agrees_with_one_prompt_at_a_time():
    """Fused attention runs a batch one prompt at a time; the separate cells flatten it into
    more heads. Both choose the key-major path per head, so both agree to the bit."""
    rng = np.random.default_rng(9)
    qkv = rng.standard_normal((3, 200, 3 * 4 * 16)).astype(np.float32)
    q, k, v = (split_heads(qkv, part, 4) for part in range(3))  # [batch, head, T, d]
    got = fused_attention(q, k, v)
    np.testing.assert_array_equal(got, _plain_attention(q, k, v))
    for b in range(3):
        np.testing.assert_array_equal(got[b], fused_attention(q[b], k[b], v[b]))


def test_the_pattern_a_user_reads_is_query_major_and_causal():
    rng = np.random.default_rng(4)
    q, k = (rng.standard_normal((2, 260, 16), dtype=np.float32) for _ in range(2))
    pattern = kernels.softmax_last(attention_scores(q, k))
    assert pattern.shape == (2, 260, 260)
    np.testing.assert_allclose(pattern.sum(axis=-1), 1.0, rtol=1e-5)
    assert np.all(pattern[:, np.triu_indices(260, 1)[0], np.triu_indices(260, 1)[1]] == 0)
    s = q.astype(np.float64) @ k.transpose(0, 2, 1).astype(np.float64) / 4.0
    s[:, np.triu_indices(260, 1)[0], np.triu_indices(260, 1)[1]] = -np.inf
    want = np.exp(s - s.max(axis=-1, keepdims=True))
    np.testing.assert_allclose(pattern, want / want.sum(axis=-1, keepdims=True), atol=1e-6)


def test_a_huge_or_missing_number_spreads_as_in_the_plain_formula():
    """A user's edit can put inf or NaN into q or k (ablations, typos): each query's column
    goes NaN exactly where numpy's query-major softmax of the same scores does."""
    rng = np.random.default_rng(8)
    qkv = rng.standard_normal((40, 3 * 2 * 16)).astype(np.float32)
    qkv[5, 3] = np.inf  # q of token 5, head 0
    qkv[7, 2 * 16 + 20] = np.nan  # k of token 7, head 1
    q, k, v = (split_heads(qkv, part, 2) for part in range(3))
    with np.errstate(invalid="ignore"):  # inf - inf: NaN, as intended here
        got = fused_attention(q, k, v)
        np.testing.assert_array_equal(got, _plain_attention(q, k, v))
        scores = attention_scores(q, k).copy()  # unmarked: numpy's own query-major softmax
        query_major = merge_heads(np.matmul(kernels.softmax_last(scores), v))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(query_major))
    assert np.isnan(got).any() and np.isfinite(got[:5]).all()  # earlier tokens untouched
