"""A fixed token capacity for the formulas export: every token-row matrix gets N rows, so
the sheets keep their shape when the prompt changes, like the original spreadsheet.

The workbook is run a second time with its token ids padded to N (id 0 after the prompt):
the model is causal, so the prompt's rows are those of the real run and the padding rows
never reach them (the causal mask hides later columns). Cells whose shape does not depend on
the number of tokens (the predicted embedding, logits, the next token) keep the real run's
values; on the sheet they read row `n_tokens`, a COUNT of the typed ids, so typing an id in
the next empty row grows the prompt.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cellgpt.engine import Workbook
from cellgpt.export.running import run_for_export
from cellgpt.export.xlexpr import XlExpr
from cellgpt.gpt2 import cells

PAD_ID = 0
DEFAULT_CAPACITY = 16  # token rows per sheet unless asked otherwise (the CLI's default too)
PAD_LABEL = "(padding)"


@dataclass
class Capacity:
    """The padded run: N rows on every sheet, n_tokens of them the prompt's."""

    n: int
    n_tokens: int
    real: dict[str, Any] = field(default_factory=dict)  # the real run's values


def _saved_pin(wb: Workbook, name: str) -> tuple[bool, Any]:
    cell = wb.cell(name)
    return cell.pinned, cell.pin_value


def _restore_pin(wb: Workbook, name: str, saved: tuple[bool, Any]) -> None:
    pinned, value = saved
    if pinned:
        wb.pin(name, value)
    else:
        wb.unpin(name)


def applies(wb: Workbook) -> bool:
    """Only workbooks that read token ids (GPT-2's) have rows to pad."""
    return all(name in wb for name in (cells.TOKEN_IDS, cells.TOKENS, cells.N_TOKENS))


@contextlib.contextmanager
def padded(wb: Workbook, n: int, exported: Sequence[str] = ()) -> Iterator[Capacity]:
    """Run `wb` with its token ids padded to `n` rows (the real run's values kept in
    `Capacity.real`), the cells in `exported` included; afterwards the workbook is as it was
    (pins restored, re-run)."""
    ids = [int(i) for i in np.asarray(wb.value(cells.TOKEN_IDS)).reshape(-1)]
    n_ctx = _n_ctx(wb)
    if n < 1 or (n_ctx is not None and n > n_ctx):
        raise ValueError(f"capacity {n}: it must be between 1 and the model's context ({n_ctx})")
    if len(ids) > n:
        raise ValueError(
            f"the prompt has {len(ids)} tokens (cell {cells.TOKEN_IDS}); "
            f"a capacity of {n} holds at most {n}: raise --capacity"
        )
    real = {name: wb.value(name) for name in wb.cells()}
    saved = {name: _saved_pin(wb, name) for name in (cells.TOKEN_IDS, cells.TOKENS)}
    tokens = list(wb.value(cells.TOKENS))
    try:
        wb.pin(cells.TOKEN_IDS, ids + [PAD_ID] * (n - len(ids)))
        wb.pin(cells.TOKENS, tokens + [PAD_LABEL] * (n - len(ids)))
        run_for_export(wb, exported)  # the export needs them (see export_workbook)
        yield Capacity(n, len(ids), real)
    finally:
        for name, pin in saved.items():
            _restore_pin(wb, name, pin)
        wb.run()


def _n_ctx(wb: Workbook) -> int | None:
    config = wb.value(cells.CONFIG) if cells.CONFIG in wb else None
    value = config.get("n_ctx") if isinstance(config, dict) else None
    return int(value) if isinstance(value, int) else None


def keeps_real_value(padded_value: Any, real_value: Any) -> bool:
    """A cell whose shape does not follow the number of tokens shows the real run."""
    if isinstance(padded_value, np.ndarray | list | tuple) or np.isscalar(padded_value):
        try:
            return np.shape(padded_value) == np.shape(real_value)
        except ValueError:  # ragged lists (tables)
            return len(padded_value) == len(real_value)  # type: ignore[arg-type]
    return True


# The sheet's n_tokens cell, while cells are translated with a capacity (for last_row).
_COUNT: ContextVar[XlExpr | None] = ContextVar("cellgpt_export_n_tokens", default=None)


def count_ref() -> XlExpr | None:
    """The n_tokens cell of the sheet being built, or None without a capacity."""
    return _COUNT.get()


@contextlib.contextmanager
def counting(ref: XlExpr | None) -> Iterator[None]:
    token = _COUNT.set(ref)
    try:
        yield
    finally:
        _COUNT.reset(token)
