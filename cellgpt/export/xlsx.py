"""Export a workbook to .xlsx: `export_workbook(wb, path, mode="values" | "formulas")`.

values:   an Index sheet, then one sheet per cell with its value (token labels as row
          headers); parameters only with `with_params`.
formulas: parameters and tokenization as values, every computing cell from the embedding on
          as legacy array formulas, so Excel/LibreOffice recompute the model; a Summary sheet
          puts the sheet's next token beside the engine's.

Written with openpyxl in write-only mode (bounded memory, whatever the size); saved through
a temporary file and os.replace, so a failed export never leaves a broken file behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zipfile import ZIP_DEFLATED, ZipFile

import numpy as np
from openpyxl import Workbook as XlWorkbook
from openpyxl.styles import Font
from openpyxl.writer.excel import ExcelWriter

from cellgpt.engine import CellError, Workbook
from cellgpt.engine.steps import alias_tuple, step_number
from cellgpt.export.layout import DATA_COL0, DATA_ROW0, Placement, logical_view, quote_sheet
from cellgpt.export.plan import Entry, Plan, build_plan
from cellgpt.export.sheetio import (
    RowWriter,
    chunks,
    formula_cell,
    plain_formula,
    text_cell,
    value_cell,
)
from cellgpt.export.xlexpr import MASKED
from cellgpt.gpt2 import cells

Progress = Callable[[int, int, str], None]
ROWS_PER_CHUNK = 2048
BOLD = Font(bold=True)


@dataclass
class ExportReport:
    path: Path
    mode: str
    sheets: int
    numbers: int
    formulas: int  # cells exported as formulas
    seconds: float
    bytes: int
    plan: Plan


def export_workbook(
    wb: Workbook,
    path: str | os.PathLike[str],
    *,
    mode: str = "values",
    with_params: bool = False,
    cells: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> ExportReport:
    """Write `wb` (run first) to `path`. `cells`: fnmatch patterns of cells to export."""
    start = time.perf_counter()
    wb.run()
    for name in wb.evicted():  # values dropped to save memory: recompute them for the file
        with contextlib.suppress(CellError):  # (they stay held until the next run)
            wb.run(name)
    plan = build_plan(wb, mode, with_params, cells)
    path = Path(path)
    if not path.parent.is_dir():  # a typo in the folder should not create a tree of folders
        raise FileNotFoundError(2, "the folder does not exist", str(path.parent))
    writer = _Writer(wb, plan, progress)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer.write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 is not what a user expects
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return ExportReport(
        path=path,
        mode=mode,
        sheets=writer.sheet_count,
        numbers=writer.total,
        formulas=sum(1 for e in plan.entries if e.how == "formula"),
        seconds=time.perf_counter() - start,
        bytes=path.stat().st_size,
        plan=plan,
    )


class _Writer:
    def __init__(self, wb: Workbook, plan: Plan, progress: Progress | None) -> None:
        self.wb, self.plan, self.progress = wb, plan, progress
        self.book = XlWorkbook(write_only=True)
        self.sheet_count = 0
        self.done = 0
        self.total = sum(
            np.asarray(e.value).size
            for e in plan.entries
            if e.kind == "array" and e.how != "formula"
        )

    def write(self, path: str) -> None:
        self._index()
        if self.plan.mode == "formulas" or cells.NEXT_TOKEN in {e.name for e in self.plan.entries}:
            self._summary()
        for entry in self.plan.entries:
            if entry.how == "not exported":
                continue
            if entry.kind == "array":
                self._array(entry)
            else:
                self._other(entry)
        # LibreOffice and Excel recompute every formula when the file is opened.
        self.book.calculation.fullCalcOnLoad = True
        self._tick("saving")
        # openpyxl's save with a faster deflate level: compression is half the export time
        # at level 6, for a file only ~10% smaller.
        with ZipFile(path, "w", ZIP_DEFLATED, allowZip64=True, compresslevel=1) as archive:
            ExcelWriter(self.book, archive).save()

    def _sheet(self, title: str) -> Any:
        self.sheet_count += 1
        return self.book.create_sheet(title)

    def _tick(self, what: str) -> None:
        if self.progress is not None:
            self.progress(self.done, self.total, what)

    # ------------------------------------------------------------------ Index and Summary
    def _index(self) -> None:
        ws = self._sheet("Index")
        head = ["cell", "step", "section", "sheet", "shape", "type", "exported as", "formula"]
        head += ["doc", "also named"]
        ws.append([text_cell(ws, h, font=BOLD) for h in head])
        mode = self.plan.mode
        ws.append([text_cell(ws, f"cellgpt export, mode {mode}")])
        for entry in self.plan.entries:
            info = self.wb.info(entry.name)
            link = _link(ws, entry.sheets[0]) if entry.sheets else None
            how = entry.how + (f" ({entry.note})" if entry.note else "")
            aliases = alias_tuple(info.hints.get("alias"))
            title = info.hints.get("title")
            ws.append(
                [
                    text_cell(ws, entry.name),
                    step_number(aliases),  # the original spreadsheet's step, blank if none
                    text_cell(ws, title) if isinstance(title, str) else None,
                    link,
                    text_cell(ws, _shape_text(entry)),
                    text_cell(ws, info.dtype or type(entry.value).__name__),
                    text_cell(ws, how),
                    text_cell(ws, info.formula or ""),
                    text_cell(ws, info.doc),
                    text_cell(ws, ", ".join(aliases)),
                ]
            )
        if mode == "formulas":
            ws.append([])
            ws.append(
                [
                    text_cell(
                        ws,
                        f"Excel has no infinity: masked attention scores are {MASKED} "
                        "(the engine's -inf); their softmax weight is exactly 0.",
                    )
                ]
            )

    def _summary(self) -> None:
        ws = self._sheet("Summary")
        get = {e.name: e for e in self.plan.entries}
        lines: list[list[Any]] = [[text_cell(ws, "Summary", font=BOLD)]]
        for name in (cells.PROMPT, cells.TOKENS):
            if name in get:
                value = get[name].value
                text = " | ".join(map(str, value)) if isinstance(value, list) else str(value)
                lines.append([text_cell(ws, name), text_cell(ws, text)])
        nt = get.get(cells.NEXT_TOKEN)
        if nt is not None and nt.placement is not None:
            mine = f"B{len(lines) + 1}"  # the row this line will land on
            label = "next token id (this workbook" + ("'s formula)" if nt.how == "formula" else ")")
            lines.append([text_cell(ws, label), plain_formula(ws, _top_left(nt.placement))])
            engine = f"B{len(lines) + 1}"
            lines.append(
                [text_cell(ws, "next token id (cellgpt engine)"), int(np.asarray(nt.value))]
            )
            lines.append(
                [text_cell(ws, "same?"), plain_formula(ws, f'IF({mine}={engine},"yes","NO")')]
            )
            logits = get.get(cells.LOGITS)
            if logits is not None and logits.placement is not None and logits.placement.transposed:
                # The logits sheet lists the vocabulary down column A: look the id up there.
                p = logits.placement
                first, last = DATA_ROW0 + 1, DATA_ROW0 + p.parts[0].n_rows
                labels = f"{quote_sheet(p.sheet)}!$A${first}:$A${last}"
                lines.append(
                    [
                        text_cell(ws, "next token (this workbook)"),
                        plain_formula(ws, f"INDEX({labels},{mine}+1)"),
                    ]
                )
        if cells.NEXT_TEXT in get:
            text = str(get[cells.NEXT_TEXT].value)
            lines.append([text_cell(ws, "next token (cellgpt engine)"), text_cell(ws, text)])
        for line in lines:
            ws.append(line)

    # ------------------------------------------------------------------ cell sheets
    def _array(self, entry: Entry) -> None:
        p = entry.placement
        assert p is not None
        stored = logical_view(np.asarray(entry.value))
        if p.transposed:
            stored = stored.T
        row_labels = entry.row_labels or []
        for part in p.parts:
            ws = self._sheet(part.sheet)
            rows = RowWriter(ws)
            header = [text_cell(ws, entry.name, font=BOLD)]
            header += [value_cell(ws, c) for c in (entry.col_labels or [])]
            rows.append(header)
            labels = row_labels[part.row0 : part.row0 + part.n_rows]
            if entry.how == "formula":
                self._formula_rows(rows, entry, p, labels)
                continue
            for a, b in chunks(part.n_rows, ROWS_PER_CHUNK):
                block = np.asarray(stored[part.row0 + a : part.row0 + b])
                rows.numbers(labels[a:b], block, DATA_COL0)
                self.done += block.size
                self._tick(part.sheet)

    def _formula_rows(self, rows: RowWriter, entry: Entry, p: Placement, labels: list[Any]) -> None:
        """Each piece is one array formula over its rectangle of the sheet."""
        ws = rows.ws
        starts: dict[int, list[tuple[int, Any]]] = {}
        for piece in entry.pieces or []:
            r0, c0, nr, nc = piece.rect
            if p.transposed:
                r0, c0, nr, nc = c0, r0, nc, nr
            ref = p.stored_range(r0, c0, nr, nc).split("!", 1)[1].replace("$", "")
            text = piece.x.render(p.transposed)
            starts.setdefault(r0, []).append((c0, formula_cell(ws, ref, text)))
        for r in range(p.parts[0].n_rows):
            cells: list[Any] = [value_cell(ws, labels[r]) if r < len(labels) else None]
            for c0, cell in sorted(starts.get(r, []), key=lambda x: x[0]):
                cells += [None] * (c0 + DATA_COL0 - len(cells))
                cells.append(cell)
            rows.append(cells)

    def _other(self, entry: Entry) -> None:
        ws = self._sheet(entry.sheets[0])
        rows = RowWriter(ws)  # before the first row: it numbers the rows it writes raw
        value = entry.value
        rows.append([text_cell(ws, entry.name, font=BOLD)])
        if entry.kind == "text":
            for a, b in chunks(len(value), 30_000):  # Excel: at most 32,767 characters a cell
                ws.append([None, text_cell(ws, value[a:b])])
        elif entry.kind == "mapping":
            for key, item in value.items():
                ws.append([text_cell(ws, key), value_cell(ws, item)])
        elif entry.kind == "list":
            items = value if isinstance(value, list | tuple) else [value]
            labels = _list_labels(self.wb, entry.name, len(items))
            for i, item in enumerate(items):
                ws.append([value_cell(ws, labels[i]), value_cell(ws, item)])
        elif entry.kind == "table":
            cols = self.wb.cell(entry.name).hints.get("cols")
            head = self.wb.library.constants.get(cols) if isinstance(cols, str) else None
            if head:
                rows.append([None, *[text_cell(ws, h, font=BOLD) for h in head]])
            rows.records(value)  # raw XML: 50,257 vocabulary rows in well under a second


def _shape_text(entry: Entry) -> str:
    if entry.kind == "array":
        shape = np.asarray(entry.value).shape
        return "x".join(map(str, shape)) if shape else "scalar"
    if entry.kind in ("list", "table", "mapping") and hasattr(entry.value, "__len__"):
        return f"{len(entry.value)} items"
    if entry.kind == "text":
        return f"{len(entry.value)} characters"
    return ""


def _list_labels(wb: Workbook, name: str, n: int) -> list[Any]:
    from cellgpt.export.plan import _labels

    found = _labels(wb, wb.cell(name).hints.get("rows"), n)
    return found if found is not None else list(range(n))


def _top_left(p: Placement) -> str:
    return p.stored_range(0, 0, 1, 1)


def _link(ws: Any, sheet: str) -> Any:
    """A HYPERLINK formula built only from our own sheet name (never from prompt text)."""

    def q(text: str) -> str:
        return '"' + text.replace('"', '""') + '"'

    return plain_formula(ws, f"HYPERLINK({q('#' + quote_sheet(sheet) + '!A1')},{q(sheet)})")
