"""Every gradient rule (engine/vjp.py, gpt2/vjp.py) against central finite differences of the
library function itself, in float64: for a random cotangent g, <g, f(x + h·e) - f(x - h·e)> /
2h must equal the rule's gradient at e, for every entry e of every differentiable argument."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest

from cellgpt.engine.functions import core
from cellgpt.engine.grad_sum import RowUpdates
from cellgpt.engine.vjp import VJPS
from cellgpt.gpt2.functions import register as register_gpt2

LIBRARY = register_gpt2(core.copy())
H = 1e-6


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _fd_check(fname: str, args: list[Any], diff: list[int], kwargs: dict | None = None) -> None:
    kwargs = kwargs or {}
    impl = LIBRARY[fname].impl
    out = impl(*args, **kwargs)
    g = _rng(1).standard_normal(np.shape(out))
    bound = inspect.signature(impl).bind(*args, **kwargs)
    grads = VJPS[fname](g, out, *bound.arguments.values())
    for i in diff:
        x = np.array(args[i], dtype=np.float64)
        numeric = np.zeros_like(x)
        for idx in np.ndindex(x.shape):
            up, down = x.copy(), x.copy()
            up[idx] += H
            down[idx] -= H
            f_up = impl(*[up if j == i else a for j, a in enumerate(args)], **kwargs)
            f_down = impl(*[down if j == i else a for j, a in enumerate(args)], **kwargs)
            f_up, f_down = np.asarray(f_up), np.asarray(f_down)
            with np.errstate(invalid="ignore"):  # masked (-inf) entries are constants
                change = np.where(np.isfinite(f_up), f_up - f_down, 0.0)
            numeric[idx] = np.sum(g * change) / (2 * H)
        grad = grads[i].dense() if isinstance(grads[i], RowUpdates) else grads[i]
        got = np.asarray(grad, dtype=np.float64)
        assert got.shape == x.shape, (fname, i, got.shape, x.shape)
        np.testing.assert_allclose(got, numeric, rtol=1e-5, atol=1e-7, err_msg=f"{fname} arg {i}")


def _x(*shape: int, seed: int = 0, positive: bool = False) -> np.ndarray:
    x = _rng(seed).standard_normal(shape)
    return np.abs(x) + 0.5 if positive else x


CASES: list[tuple[str, list[Any], list[int], dict]] = [
    ("matmul", [_x(3, 4), _x(4, 5, seed=1)], [0, 1], {}),
    ("matmul", [_x(4), _x(4, 5, seed=1)], [0, 1], {}),
    ("matmul", [_x(3, 4), _x(4, seed=1)], [0, 1], {}),
    ("matmul", [_x(2, 3, 4), _x(2, 4, 5, seed=1)], [0, 1], {}),
    ("matmul", [_x(2, 3, 4), _x(4, 5, seed=1)], [0, 1], {}),
    ("matmul", [_x(3, 4), np.asfortranarray(_x(4, 5, seed=1))], [0, 1], {}),
    ("dot", [_x(4), _x(4, seed=1)], [0, 1], {}),
    ("transpose", [_x(3, 4)], [0], {}),
    ("transpose", [_x(2, 3, 4), (2, 0, 1)], [0], {}),
    ("reshape", [_x(3, 4), (2, 6)], [0], {}),
    ("take", [_x(5, 3), [0, 2, 2, 4]], [0], {}),
    ("take", [_x(3, 5), [1, 1, 3], 1], [0], {}),
    ("rows", [_x(5, 3), 1, 4], [0], {}),
    ("row", [_x(5, 3), 2], [0], {}),
    ("sum", [_x(3, 4)], [0], {}),
    ("sum", [_x(3, 4), 1], [0], {}),
    ("sum", [_x(3, 4), 0, True], [0], {}),
    ("mean", [_x(3, 4)], [0], {}),
    ("mean", [_x(3, 4), -1], [0], {}),
    ("var", [_x(3, 4), -1], [0], {}),
    ("std", [_x(3, 4), 0], [0], {}),
    ("amax", [_x(3, 4), 1], [0], {}),
    ("amin", [_x(3, 4)], [0], {}),
    ("norm", [_x(3, 4), -1], [0], {}),
    ("exp", [_x(3, 4)], [0], {}),
    ("log", [_x(3, 4, positive=True)], [0], {}),
    ("sqrt", [_x(3, 4, positive=True)], [0], {}),
    ("tanh", [_x(3, 4)], [0], {}),
    ("abs", [_x(3, 4)], [0], {}),
    ("relu", [_x(3, 4)], [0], {}),
    ("gelu", [_x(3, 4)], [0], {}),
    ("maximum", [_x(3, 4), _x(4, seed=2)], [0, 1], {}),
    ("minimum", [_x(3, 4), _x(3, 4, seed=2)], [0, 1], {}),
    ("where", [_x(3, 4, seed=5) > 0, _x(3, 4), _x(4, seed=2)], [1, 2], {}),
    ("clip", [_x(3, 4), -0.5, 0.5], [0], {}),
    ("softmax", [_x(3, 4)], [0], {}),
    ("softmax", [_x(3, 4), 0], [0], {}),
    ("layer_norm", [_x(3, 6), _x(6, seed=1), _x(6, seed=2)], [0, 1, 2], {}),
    ("normalize", [_x(3, 6)], [0], {}),
    ("norm_scale", [_x(3, 6)], [0], {}),
    ("mse", [_x(5), _x(5, seed=1)], [0, 1], {}),
    ("cross_entropy", [_x(4, 7), np.array([0, 3, 6, 3])], [0], {}),
    ("concat", [[_x(2, 3), _x(4, 3, seed=1)]], [], {}),
    ("cast", [_x(3), "float64"], [0], {}),
    # GPT-2's functions
    ("embed_tokens", [_x(6, 3), [1, 4, 1, 0]], [0], {}),
    ("positions", [_x(6, 3), 4], [0], {}),
    ("split_heads", [_x(4, 12), 1, 2], [0], {}),
    ("merge_heads", [_x(2, 4, 3)], [0], {}),
    ("attention_scores", [_x(2, 5, 3), _x(2, 5, 3, seed=1)], [0, 1], {}),
    ("last_row", [_x(4, 3)], [0], {}),
    ("zero_head", [_x(3, 4, 2), 1], [0], {}),
]


@pytest.mark.parametrize(("fname", "args", "diff", "kwargs"), CASES, ids=[c[0] for c in CASES])
def test_vjp_matches_finite_differences(fname, args, diff, kwargs):
    _fd_check(fname, args, diff, kwargs)


def test_attention_scores_gradient_ignores_the_masked_future():
    q, k = _x(2, 5, 3), _x(2, 5, 3, seed=1)
    out = LIBRARY["attention_scores"].impl(q, k)
    g = np.ones_like(out)  # even a gradient on the -inf entries must not leak back
    gq, gk = VJPS["attention_scores"](g, out, q, k)
    g_past = np.tril(np.ones((5, 5)))[None] * np.ones((2, 1, 1)) / np.sqrt(3)
    np.testing.assert_allclose(gq, g_past @ k, rtol=1e-6)  # scale rounded to float32
    np.testing.assert_allclose(gk, g_past.transpose(0, 2, 1) @ q, rtol=1e-6)


def test_concat_splits_the_gradient_between_its_parts():
    parts = [_x(2, 3), _x(4, 3, seed=1)]
    out = LIBRARY["concat"].impl(parts)
    g = _x(*out.shape, seed=3)
    grads, _ = VJPS["concat"](g, out, parts)
    np.testing.assert_array_equal(grads[0], g[:2])
    np.testing.assert_array_equal(grads[1], g[2:])
