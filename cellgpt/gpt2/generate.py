"""Autoregressive generation through the workbook: choose a token, append it to the
`generated` input cell, re-run. Each step's choice is the `next_token` cell (greedy) or the
`sample` cell (temperature / top-k / top-p, seeded per step).

Each step only computes the new token's rows: the engine derives, from each cell's formula
and its functions' row rules, a variant that computes just the rows of the new token (a KV
cache by another name), and uses it when the inputs only grew. Every cell still holds all
rows afterwards (the same values a full recompute gives), except the evictable attention
scores: each step computes only their new rows, `attn.pattern` extends itself from those,
and reading the scores recomputes them in full."""

from __future__ import annotations

from collections.abc import Callable

from cellgpt.engine import Workbook, derive_row_extenders


def generate(
    wb: Workbook,
    n_new: int,
    *,
    greedy: bool = True,
    stop_at_eot: bool = False,
    on_token: Callable[[int], None] | None = None,
) -> list[int]:
    """Generate up to `n_new` tokens; stops early at the context limit (or end-of-text)."""
    chooser = "next_token" if greedy else "sample"
    new_ids: list[int] = []
    n_ctx = int(wb["config"]["n_ctx"])
    eot = wb["tokenizer"].special_tokens.get("<|endoftext|>")
    for step in range(n_new):
        if int(wb["n_tokens"]) >= n_ctx:
            break
        token = int(wb[chooser])
        if step == 0:  # the derivation reads the computed values' shapes
            derive_row_extenders(wb, grows=["generated"])
        new_ids.append(token)
        wb.set("generated", [*wb["generated"], token])
        if on_token is not None:
            on_token(token)
        if stop_at_eot and token == eot:
            break
    return new_ids
