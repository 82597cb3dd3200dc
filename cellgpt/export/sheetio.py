"""Writing rows into openpyxl write-only worksheets: safe text cells and fast numeric rows.

Text is always a string cell (openpyxl would turn "=1+1" into a formula), with characters
XML cannot hold escaped the OOXML way (`_x001B_`). Numbers are written as the shortest text
that reads back to the same float32. For big matrices the rows are rendered as XML text
straight into openpyxl's stream (openpyxl's per-cell objects cost ~7 µs a number: 15 min for
GPT-2 small's parameters); if the stream does not allow that (lxml backend) we fall back to
openpyxl cells carrying the same text.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from openpyxl.cell import WriteOnlyCell
from openpyxl.worksheet.formula import ArrayFormula

from cellgpt.engine.value_limits import SMALL, fits, preview
from cellgpt.export.layout import col_letter
from cellgpt.export.styles import BOLD, style_id
from cellgpt.export.xlexpr import MASKED_VALUE
from cellgpt.weights.floatfmt import format_float32_shortest

MAX_TEXT = 32_767  # Excel's limit on one cell's text
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_LOOKS_ESCAPED = re.compile(r"_(?=x[0-9A-Fa-f]{4}_)")
# A lone surrogate (e.g. decoded from bad bytes in a prompt) is not XML: the file would be
# unreadable. It becomes U+FFFD, as the tokenizer shows it.
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Text a cell can hold: control characters as OOXML escapes (Excel and openpyxl decode
    `_xHHHH_`), a literal `_xHHHH_` protected, at most 32,767 characters."""
    text = text[: MAX_TEXT + 1]  # cut first: the escapes below need never see 100 MB
    text = _LOOKS_ESCAPED.sub("_x005F_", text)
    text = _CONTROL.sub(lambda m: f"_x{ord(m.group()):04X}_", text)
    text = _SURROGATE.sub("\ufffd", text)
    if len(text) > MAX_TEXT:
        text = text[: MAX_TEXT - 1] + "…"
    return text


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def text_cell(ws: Any, text: Any, **style: Any) -> WriteOnlyCell:
    """A cell that holds `text` as a string, never as a formula."""
    cell = WriteOnlyCell(ws)
    cell._value = clean_text(
        text if isinstance(text, str) else _str(text)
    )  # bypass openpyxl's "=" → formula guess
    cell.data_type = "s"
    for key, value in style.items():
        setattr(cell, key, value)
    return cell


def value_cell(ws: Any, value: Any) -> Any:
    """A plain Python value as a cell: strings stay strings, numbers stay numbers."""
    if value is None:
        return None
    if isinstance(value, str):
        return text_cell(ws, value)
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        if value == -np.inf:
            return MASKED_VALUE
        if not np.isfinite(value):
            return text_cell(ws, repr(float(value)))
        if isinstance(value, np.float32):
            return number_cell(ws, format_float32_shortest(np.array([value]))[0])
        return float(value)
    return text_cell(ws, _short_repr(value))


def header_cell(ws: Any, value: Any) -> Any:
    """A column title: bold; a number in General format, not its column's (0.0000)."""
    if isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_):
        cell = WriteOnlyCell(ws, value=int(value))
        cell.font, cell.number_format = BOLD, "General"
        return cell
    if isinstance(value, str):
        return text_cell(ws, value, font=BOLD)
    return value_cell(ws, value)


def _str(value: Any) -> str:
    return str(value) if fits(value, SMALL) else preview(value, MAX_TEXT)


def _short_repr(value: Any) -> str:
    if not fits(value, SMALL):  # a huge or deep item: a preview, never a full walk
        return preview(value, MAX_TEXT)
    if isinstance(value, tuple | list):
        return " ".join(str(v) for v in value)
    return str(value)


def number_cell(ws: Any, text: str, fmt: str | None = None) -> WriteOnlyCell:
    """A numeric cell whose XML text is exactly `text`."""
    cell = WriteOnlyCell(ws)
    cell._value = text  # openpyxl writes str values of numeric cells verbatim
    cell.data_type = "n"
    if fmt is not None:
        cell.number_format = fmt
    return cell


def formula_cell(ws: Any, ref: str, formula: str, fmt: str | None = None) -> WriteOnlyCell:
    """A legacy array formula over `ref` (openpyxl writes it at the range's top-left)."""
    cell = WriteOnlyCell(ws)
    cell.value = ArrayFormula(ref, "=" + formula)
    if fmt is not None:
        cell.number_format = fmt
    return cell


def plain_formula(ws: Any, formula: str) -> WriteOnlyCell:
    """An ordinary one-cell formula (text we built ourselves, never user text)."""
    return WriteOnlyCell(ws, value="=" + formula)


class NonFinite(str):
    """inf or nan: Excel has no such numbers, so they are written as text (a formula that
    reads one fails visibly). -inf, the engine's masked score, is the finite mask value the
    formulas use instead."""


MASK_TEXT = repr(MASKED_VALUE)  # -inf as a number cell


def _finite_text(value: float) -> str:
    return MASK_TEXT if value == -np.inf else NonFinite(repr(value))


def number_texts(block: np.ndarray) -> list[str]:
    """Cell text for each number of a 2-D block, row-major: shortest float32 text, full
    float64 repr, integers as such; non-finite values as NonFinite text."""
    flat = block.reshape(-1)
    if flat.dtype == np.float32:
        finite = np.isfinite(flat)
        if finite.all():
            return format_float32_shortest(flat)
        texts: list[str] = format_float32_shortest(np.where(finite, flat, 0))
        for i in np.flatnonzero(~finite):
            texts[i] = _finite_text(float(flat[i]))
        return texts
    if flat.dtype.kind == "f":
        return [repr(v) if np.isfinite(v) else _finite_text(v) for v in flat.tolist()]
    if flat.dtype.kind == "b":
        return ["1" if v else "0" for v in flat.tolist()]
    return [str(v) for v in flat.tolist()]


class RawRow(list):
    """One pre-rendered `<row>` element, appended like a row of values."""


class RowWriter:
    """Appends rows of (label, numbers...) to a write-only worksheet, as raw XML when the
    stream allows it."""

    def __init__(self, ws: Any, fmt: str | None = None) -> None:
        self.ws = ws
        self.fmt = fmt  # the number format of every number written by `numbers`
        self.style = f' s="{style_id(ws, fmt)}"' if fmt is not None else ""
        self.raw = _install_raw_rows(ws)
        self.row = 0  # rows appended so far

    def append(self, cells: Sequence[Any]) -> None:
        self.ws.append(list(cells))
        self.row += 1

    def numbers(self, labels: Sequence[Any], block: np.ndarray, col0: int) -> None:
        """Append one row per row of `block` (2-D), its label in column A and its numbers
        from column `col0` (0-based) on."""
        n_cols = block.shape[1]
        letters = [col_letter(col0 + j) for j in range(n_cols)]
        texts = number_texts(block)
        for i in range(block.shape[0]):
            row_texts = texts[i * n_cols : (i + 1) * n_cols]
            label = labels[i] if i < len(labels) else None
            if self.raw:
                self.ws.append(RawRow([self._raw_row(self.row + 1, label, letters, row_texts)]))
                self.row += 1
            else:
                cells: list[Any] = [None if label is None else value_cell(self.ws, label)]
                cells += [None] * (col0 - 1)
                cells += [
                    text_cell(self.ws, t)
                    if isinstance(t, NonFinite)
                    else number_cell(self.ws, t, self.fmt)
                    for t in row_texts
                ]
                self.append(cells)

    def records(self, items: Sequence[Any]) -> None:
        """Append one row per record (a tuple or list of plain values; anything else is one
        value): its index in column A, its values from column B on. Text stays text."""
        for i, record in enumerate(items):
            values = record if isinstance(record, tuple | list) else (record,)
            if not self.raw:
                self.append([i, *[value_cell(self.ws, v) for v in values]])
                continue
            r = str(self.row + 1)
            parts = [f'<row r="{r}"><c r="A{r}"><v>{i}</v></c>']
            for j, v in enumerate(values):
                if v is not None:
                    parts.append(_raw_value(_letter(j + 1) + r, v))
            parts.append("</row>")
            self.ws.append(RawRow(["".join(parts)]))
            self.row += 1

    def _raw_row(self, r: int, label: Any, letters: list[str], texts: list[str]) -> str:
        rs = str(r)
        parts = [f'<row r="{rs}">']
        if label is not None:
            if isinstance(label, str):
                parts.append(_inline(f"A{rs}", label))
            else:
                parts.append(f'<c r="A{rs}"><v>{label}</v></c>')
        for letter, text in zip(letters, texts, strict=True):
            if isinstance(text, NonFinite):
                parts.append(_inline(letter + rs, text))
            else:
                parts.append(f'<c r="{letter}{rs}"{self.style}><v>{text}</v></c>')
        parts.append("</row>")
        return "".join(parts)


@functools.cache
def _letter(col: int) -> str:
    return col_letter(col)


def _raw_value(ref: str, value: Any) -> str:
    """One plain value as a cell's XML, as `value_cell` would write it."""
    if isinstance(value, str):
        return _inline(ref, value)
    if isinstance(value, bool | np.bool_):
        return f'<c r="{ref}" t="b"><v>{int(value)}</v></c>'
    if isinstance(value, int | np.integer):
        return f'<c r="{ref}"><v>{int(value)}</v></c>'
    if isinstance(value, float | np.floating) and np.isfinite(value):
        text = (
            format_float32_shortest(np.array([value]))[0]
            if isinstance(value, np.float32)
            else repr(float(value))
        )
        return f'<c r="{ref}"><v>{text}</v></c>'
    if isinstance(value, float | np.floating) and value == -np.inf:
        return f'<c r="{ref}"><v>{MASK_TEXT}</v></c>'
    if isinstance(value, float | np.floating):
        return _inline(ref, repr(float(value)))  # Excel has no inf or nan: text
    return _inline(ref, _short_repr(value))


def _inline(ref: str, text: str) -> str:
    return f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{_xml_escape(clean_text(text))}</t></is></c>'


def _install_raw_rows(ws: Any) -> bool:
    """Teach this worksheet to pass RawRow through to its XML stream untouched."""
    try:  # openpyxl internals: if they ever change, use the (slower) public path
        ws._get_writer()
        writer = ws._writer
        to_row, write_row = ws._values_to_row, writer.write_row
    except AttributeError:
        return False

    def values_to_row(values: Any, row_idx: int) -> Any:
        return values if isinstance(values, RawRow) else to_row(values, row_idx)

    def write(xf: Any, row: Any, row_idx: int) -> None:
        if isinstance(row, RawRow):
            xf._file(row[0])
        else:
            write_row(xf, row, row_idx)

    try:
        from openpyxl import LXML
    except ImportError:  # pragma: no cover
        LXML = False
    if LXML:  # lxml's stream escapes strings: use openpyxl cells instead
        return False
    ws._values_to_row, writer.write_row = values_to_row, write
    return True


def chunks(n: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, size):
        yield start, min(n, start + size)
