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
from cellgpt.engine.parallel import one_row_steps
from cellgpt.gpt2 import cells
from cellgpt.gpt2.cells import WorkbookCells


def generate(
    wb: Workbook,
    n_new: int,
    *,
    greedy: bool = True,
    stop_at_eot: bool = False,
    on_token: Callable[[int], None] | None = None,
) -> list[int]:
    """Generate up to `n_new` tokens; stops early at the context limit (or end-of-text)."""
    with one_row_steps(), wb.replay_appends(cells.GENERATED):
        return _generate(wb, n_new, greedy, stop_at_eot, on_token)


def _generate(
    wb: Workbook,
    n_new: int,
    greedy: bool,
    stop_at_eot: bool,
    on_token: Callable[[int], None] | None,
) -> list[int]:
    chooser = cells.NEXT_TOKEN if greedy else cells.SAMPLE
    new_ids: list[int] = []
    known = WorkbookCells(wb)
    n_ctx, eot = known.n_ctx(), known.end_of_text()
    for step in range(n_new):
        if n_ctx is not None and int(wb[cells.N_TOKENS]) >= n_ctx:
            break
        token = int(wb[chooser])
        if step == 0:  # the derivation reads the computed values' shapes
            derive_row_extenders(wb, grows=[cells.GENERATED])
        new_ids.append(token)
        wb.set(cells.GENERATED, [*wb[cells.GENERATED], token])
        if on_token is not None:
            on_token(token)
        if stop_at_eot and token == eot:
            break
    return new_ids
