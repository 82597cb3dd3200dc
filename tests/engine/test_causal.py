"""Causal marks: attention scores marked as -inf above the diagonal let softmax and the
pattern × values product skip the future, with the same numbers as the general path."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from cellgpt.engine import causal, kernels, parallel
from cellgpt.gpt2.functions import attention_scores


@pytest.fixture(params=[1, 2], ids=["inline", "2-workers"])
def workers(request, monkeypatch):
    monkeypatch.setattr(parallel, "WORKERS", request.param)
    monkeypatch.setitem(parallel.for_chunks.__kwdefaults__, "min_work", 0.0)  # always split
    return request.param


@pytest.mark.parametrize(("queries", "keys"), [(300, 300), (1, 9), (5, 300), (130, 130)])
def test_causal_softmax_and_product_equal_the_general_path(workers, queries, keys):
    rng = np.random.default_rng(3)
    q, k, v = (rng.standard_normal((4, n, 16), dtype=np.float32) for n in (queries, keys, keys))
    scores = attention_scores(q, k)
    assert causal.causal(scores, -np.inf) == causal.Causal(keys - queries, -np.inf)
    pattern = kernels.softmax_last(scores)
    plain = kernels.softmax_last(scores.copy())  # a copy is never marked
    assert causal.causal(plain, 0.0) is None and causal.causal(pattern, 0.0) is not None
    np.testing.assert_allclose(pattern, plain, rtol=1e-6, atol=1e-7)
    future = np.arange(keys)[None, :] > np.arange(keys - queries, keys)[:, None]
    assert np.all(pattern[:, future] == 0)  # exactly 0, as exp(-inf) is
    z, z_plain = kernels.matmul(pattern, v), kernels.matmul(plain, v)
    np.testing.assert_allclose(z, z_plain, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(z, np.matmul(plain.astype(np.float64), v), rtol=1e-4, atol=1e-5)


def test_a_mark_is_about_one_array_and_dies_with_it():
    a = np.zeros((2, 3, 3), dtype=np.float32)
    causal.mark(a, 0, 0.0)
    assert causal.causal(a, 0.0) is not None
    assert causal.causal(a, -np.inf) is None  # another fill is another promise
    assert causal.causal(a[:], 0.0) is None  # a view is not the marked array
    key = id(a)
    del a
    gc.collect()
    assert key not in causal._marks
