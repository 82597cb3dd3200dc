"""A transformer block's seventeen cells, for a generated token, in one kernel.

While generating, each new token runs every block's cells on one new row (engine/replay.py);
most of a cell's time is then the engine's way of running a formula, not the numbers. This
group (engine/replay_group.py) computes the block's new rows with the same library
functions and operators the formulas name, in the formulas' order, and stores each cell's
rows as the replay would: the values, versions and tails are the same, bit for bit
(tests/gpt2/test_generate_replay.py compares every cell with the generic path). Any edit of
one of the block's formulas turns it off for that block.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any

from cellgpt.engine.replay_group import Calls, ReplayGroup

ADD, MUL = ast.Add, ast.Mult


def block_rows(
    step: Callable[[Any], Any],
    calls: Calls,
    x: Any,
    eps: Any,
    n_head: Any,
    w1: Any,
    b1: Any,
    wa: Any,
    ba: Any,
    wo: Any,
    bo: Any,
    w2: Any,
    b2: Any,
    wf: Any,
    bf: Any,
    wp: Any,
    bp: Any,
) -> None:
    """The block's new rows from the residual stream's new rows `x`, cell by cell. `step`
    stores a cell's rows and returns the whole cell: only k and v are read whole (by the
    attention); every other cell is read as the new rows computed here."""
    op = calls.op
    step(n1 := calls.normalize(x, eps))  # ln_1.normalized
    step(l1 := op(ADD, op(MUL, n1, w1), b1))  # ln_1
    step(qkv := op(ADD, calls.matmul(l1, wa), ba))  # qkv
    step(q := calls.split_heads(qkv, 0, n_head))  # q
    keys = step(calls.split_heads(qkv, 1, n_head))  # k, every key so far
    values = step(calls.split_heads(qkv, 2, n_head))  # v, every value so far
    step(scores := calls.attention_scores(q, keys))  # attn.scores
    step(pattern := calls.softmax(scores))  # attn.pattern
    step(z := calls.merge_heads(calls.matmul(pattern, values)))  # attn.z
    step(out := op(ADD, calls.matmul(z, wo), bo))  # attn.out
    step(mid := op(ADD, x, out))  # resid_mid
    step(n2 := calls.normalize(mid, eps))  # ln_2.normalized
    step(l2 := op(ADD, op(MUL, n2, w2), b2))  # ln_2
    step(fc := op(ADD, calls.matmul(l2, wf), bf))  # mlp.fc
    step(gelu := calls.gelu(fc))  # mlp.gelu
    step(mlp_out := op(ADD, calls.matmul(gelu, wp), bp))  # mlp.out
    step(op(ADD, mid, mlp_out))  # resid_post


BLOCK = ReplayGroup(
    "gpt2 block",
    cells=(
        "N1 = normalize(X, EPS)",
        "L1 = N1 * W1 + B1",
        "QKV = matmul(L1, WA) + BA",
        "Q = split_heads(QKV, 0, NH)",
        "K = split_heads(QKV, 1, NH)",
        "V = split_heads(QKV, 2, NH)",
        "S = attention_scores(Q, K)",
        "P = softmax(S)",
        "Z = merge_heads(matmul(P, V))",
        "O = matmul(Z, WO) + BO",
        "M = X + O",
        "N2 = normalize(M, EPS)",
        "L2 = N2 * W2 + B2",
        "FC = matmul(L2, WF) + BF",
        "G = gelu(FC)",
        "MO = matmul(G, WP) + BP",
        "R = M + MO",
    ),
    whole=frozenset({"K", "V"}),
    inputs=(
        "X",
        "EPS",
        "NH",
        "W1",
        "B1",
        "WA",
        "BA",
        "WO",
        "BO",
        "W2",
        "B2",
        "WF",
        "BF",
        "WP",
        "BP",
    ),
    kernel=block_rows,
)
