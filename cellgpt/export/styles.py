"""How the exported sheets look: number formats per kind of cell, fitted column widths,
frozen headers and colour scales, like a hand-built workbook.

Everything here is decided from a cell's name and labels before its rows are written:
openpyxl's write-only sheets emit frozen panes and column widths with the first row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from openpyxl.cell import WriteOnlyCell
from openpyxl.formatting.rule import ColorScaleRule, Rule
from openpyxl.styles import Font, PatternFill
from openpyxl.styles.differential import DifferentialStyle

from cellgpt.export.layout import col_letter
from cellgpt.gpt2 import cells

# The default font named: a bold cell with no font name is drawn in a serif by LibreOffice.
BOLD = Font(name="Calibri", sz=11, bold=True)
HEADER_FILL = PatternFill("solid", start_color="FFDDEBF7")
INPUT_FILL = PatternFill("solid", start_color="FFFFF2CC")  # cells meant to be typed in
PERCENT = "0.00%"
LOGIT = "0.000"
ACTIVATION = "0.0000"
INTEGER = "0"
MIN_WIDTH, MAX_WIDTH, NUMBER_WIDTH = 6.0, 48.0, 10.0

_SCALES = {
    # attention weights and probabilities: 0 → white, high → strong colour
    "pattern": ("FFFFFFFF", "FF2F75B5"),
    "probs": ("FFFFFFFF", "FF63BE7B"),
}


def _leaf(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def number_format(name: str, integers: bool, is_param: bool) -> str | None:
    """The format of a cell's numbers (None: General, e.g. parameters as read from CSV)."""
    leaf = _leaf(name)
    if integers:
        return INTEGER
    if leaf in ("pattern", "probs"):
        return PERCENT
    if leaf in ("logits", "logits_all", "max_logit", "scores"):
        return LOGIT
    return None if is_param else ACTIVATION


def colour_scale(name: str) -> ColorScaleRule | None:
    """A colour scale for attention patterns, probabilities and logits (None: none)."""
    leaf = _leaf(name)
    if leaf == "pattern":
        low, high = _SCALES["pattern"]
        return ColorScaleRule(
            start_type="num", start_value=0, start_color=low,
            end_type="num", end_value=1, end_color=high,
        )  # fmt: skip
    if leaf == cells.PROBS:
        low, high = _SCALES[cells.PROBS]
        return ColorScaleRule(start_type="min", start_color=low, end_type="max", end_color=high)
    if leaf in ("logits", "logits_all"):
        return ColorScaleRule(
            start_type="min", start_color="FFF8696B",
            mid_type="percentile", mid_value=50, mid_color="FFFFFFFF",
            end_type="max", end_color="FF5A8AC6",
        )  # fmt: skip
    return None


def padding_rule(formula: str) -> Rule:
    """Grey text on grey for cells where `formula` (true on padding) holds."""
    look = DifferentialStyle(
        font=Font(color="FFA6A6A6"), fill=PatternFill("solid", bgColor="FFF2F2F2")
    )
    return Rule(type="expression", dxf=look, formula=[formula], stopIfTrue=True)


def text_width(values: Sequence[Any], floor: float = MIN_WIDTH) -> float:
    """A column width that shows the longest of `values` (within limits)."""
    longest = max((len(str(v)) for v in values if v is not None), default=0)
    return min(MAX_WIDTH, max(floor, longest + 2.0))


def style_id(ws: Any, fmt: str | None, bold: bool = False) -> int:
    """The workbook's style index for a number format (for cells written as raw XML)."""
    cell = WriteOnlyCell(ws)
    if fmt is not None:
        cell.number_format = fmt
    if bold:
        cell.font = BOLD
    return int(cell.style_id)


def set_widths(ws: Any, widths: Sequence[float], start: int = 0, fmt: str | None = None) -> None:
    """Column widths from 0-based column `start` on; runs of equal widths share one <col>;
    `fmt` also becomes the columns' number format (array-formula cells that are not written
    to the file take it from their column)."""
    i = 0
    while i < len(widths):
        j = i
        while j + 1 < len(widths) and widths[j + 1] == widths[i]:
            j += 1
        dim = ws.column_dimensions[col_letter(start + i)]
        dim.min, dim.max, dim.width = start + i + 1, start + j + 1, widths[i]
        if fmt is not None:
            dim.number_format = fmt
        i = j + 1


def freeze_header(ws: Any, with_labels: bool = True) -> None:
    """Keep the header row (and the label column) in view while scrolling."""
    ws.freeze_panes = "B2" if with_labels else "A2"
