"""Computing what an export writes: `wb.run()` leaves on-demand cells (every position's
logits, the gradients) for when they are named, and may drop large values after use; an
export names the cells it writes, so it computes those and brings dropped values back."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from cellgpt.engine import CellError, Status, Workbook


def run_for_export(wb: Workbook, names: Iterable[str]) -> None:
    """Run everything stale, then each of `names` still waiting (on-demand), then every
    value dropped to save memory (held until the next run). A cell that fails keeps its
    error, which the export reports."""
    wb.run()
    dropped = set(wb.evicted())
    for name in [*names, *sorted(dropped)]:
        if wb.status(name) == Status.STALE or name in dropped:
            with contextlib.suppress(CellError):
                wb.run(name)
