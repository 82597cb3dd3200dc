"""`export_parts`: the formulas export as several workbooks (`cellgpt export --parts`); what a
part holds and how it checks itself is in parts.py."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cellgpt.engine import Workbook
from cellgpt.export.capacity import DEFAULT_CAPACITY
from cellgpt.export.parts import parse_parts, part_path, plan_parts
from cellgpt.export.plan import select
from cellgpt.export.xlsx import ExportReport, export_workbook


def export_parts(
    wb: Workbook,
    path: str | Path,
    parts: str | int | Sequence[range],
    **options: Any,
) -> list[ExportReport]:
    """Write `wb` (run first) in formulas mode as several workbooks: `parts` is a count
    (balanced by estimated LibreOffice memory), "0-3,4-7,8-11" or block ranges. `options` go to
    `export_workbook` (capacity, on_demand, excel365, progress). Returns one ExportReport
    per part, in order; files are named model.part1of3.xlsx, ..."""
    path = Path(path)
    wb.run()  # the balance reads values
    capacity = options.get("capacity", DEFAULT_CAPACITY)
    given = isinstance(parts, str | int)
    ranges = parse_parts(str(parts), wb, capacity) if given else list(parts)  # type: ignore[arg-type]
    split = plan_parts(wb, ranges, select(wb, None, "formulas", False))
    return [
        export_workbook(wb, part_path(path, p), mode="formulas", part=p, **options) for p in split
    ]
