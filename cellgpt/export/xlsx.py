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
from openpyxl.cell import WriteOnlyCell
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.writer.excel import ExcelWriter

from cellgpt.engine import Workbook
from cellgpt.export import styles
from cellgpt.export.capacity import DEFAULT_CAPACITY, PAD_LABEL, Capacity, applies, padded
from cellgpt.export.cell_layout import LAYOUTS, CellFormulas
from cellgpt.export.front_sheets import (
    ID_COL,
    LOOKUP_COL,
    PROMPT_COL,
    TEXT_COL,
    write_index,
    write_summary,
)
from cellgpt.export.helpers import HelperSink
from cellgpt.export.layout import (
    DATA_COL0,
    DATA_ROW0,
    Placement,
    logical_view,
    quote_sheet,
    range_ref,
)
from cellgpt.export.parts import Part, write_check_sheet
from cellgpt.export.plan import Entry, Plan, build_plan, is_param, select
from cellgpt.export.running import run_for_export
from cellgpt.export.sheetio import (
    RowWriter,
    chunks,
    formula_cell,
    header_cell,
    plain_formula,
    text_cell,
    value_cell,
)
from cellgpt.export.styles import BOLD, HEADER_FILL
from cellgpt.export.tokenize_sheets import (
    from_prompt,
    sheet_tokenizes,
    tokenize_layout,
    write_tokenize_sheets,
)
from cellgpt.gpt2 import cells

Progress = Callable[[int, int, str], None]
ID_INPUT = "type an id"
TEXT_INPUT = "or a token's text"
FROM_PROMPT = "ids from prompt"
ROWS_PER_CHUNK = 2048


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
    capacity: int | None = DEFAULT_CAPACITY,
    on_demand: bool = False,
    excel365: bool = False,
    layout: str = "arrays",
    part: Part | None = None,
) -> ExportReport:
    """Write `wb` (run first) to `path`. `cells`: fnmatch patterns of cells to export.
    `capacity` (formulas mode, GPT-2 workbooks): N token rows on every sheet, the ids an
    input column (see capacity.py); 16 like the CLI; None: exactly the prompt's rows.
    `on_demand` (formulas mode): on-demand cells (logits_all) as formulas, not values.
    `excel365`: function cells become LAMBDA defined names called by name (Excel 365 only;
    see lambdas.py) instead of being spelled out in every formula.
    `layout` (formulas mode): "arrays", one array formula per block; "cells", one ordinary
    formula per number, for small models (see cell_layout.py).
    `part` (formulas mode): one workbook of a split export (parts.py; `export_parts`)."""
    start = time.perf_counter()
    path = Path(path)
    if not path.parent.is_dir():  # a typo in the folder should not create a tree of folders
        raise FileNotFoundError(2, "the folder does not exist", str(path.parent))
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
    if layout == "cells" and (mode != "formulas" or excel365):
        raise ValueError("layout cells needs mode formulas (and not excel365)")
    inputs = part.inputs if part is not None else {}
    if part is not None:
        cells = part.cells
    exported = select(wb, cells, mode, with_params, stops=inputs)
    run_for_export(wb, exported)
    padding: contextlib.AbstractContextManager[Capacity | None] = contextlib.nullcontext()
    if mode == "formulas" and capacity is not None and applies(wb):
        padding = padded(wb, capacity, exported)
    with padding as cap:
        plan = build_plan(
            wb,
            mode,
            with_params,
            cells,
            capacity=cap,
            on_demand=on_demand,
            excel365=excel365,
            inputs=inputs,
        )
        plan.part = part
        per_cell = CellFormulas(plan) if layout == "cells" else None
        writer = _Writer(wb, plan, progress, per_cell)
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
    def __init__(
        self,
        wb: Workbook,
        plan: Plan,
        progress: Progress | None,
        per_cell: CellFormulas | None = None,
    ) -> None:
        self.wb, self.plan, self.progress = wb, plan, progress
        self.per_cell = per_cell  # --layout cells: one formula per number
        self.book = XlWorkbook(write_only=True)
        self.sheet_count = 0
        self.done = 0
        self.total = sum(
            np.asarray(e.value).size
            for e in plan.entries
            if e.kind == "array" and e.how != "formula"
        )
        self.tok, self.tok_live = None, False  # tokenization in formulas (tokenize_sheets)
        tokenizer = wb.value(cells.TOKENIZER) if cells.TOKENIZER in wb else None
        prompt = plan.entry(cells.PROMPT)
        vocab = plan.entry(cells.VOCAB)  # token_ids' lookup columns, beside which G goes
        if plan.capacity is not None and prompt is not None and prompt.sheets and vocab:
            self.tok = tokenize_layout(tokenizer, plan.capacity.n)
        if self.tok is not None and prompt is not None:
            self.tok.prompt_ref = f"{quote_sheet(prompt.sheets[0])}!$B${DATA_ROW0 + 1}"
            real = plan.capacity.real.get(cells.TOKEN_IDS) if plan.capacity else None
            ids = [int(i) for i in np.asarray(real).reshape(-1)] if real is not None else []
            self.tok_live = sheet_tokenizes(self.tok, tokenizer, str(prompt.value), ids)

    def write(self, path: str) -> None:
        write_index(self)
        if self.plan.mode == "formulas" or cells.NEXT_TOKEN in {e.name for e in self.plan.entries}:
            write_summary(self)
        for entry in self.plan.entries:
            if entry.how == "not exported":
                continue
            if entry.kind == "array":
                self._array(entry)
            else:
                self._other(entry)
            if entry.name == cells.PROMPT and self.tok is not None:
                specials = list(getattr(self.wb.value(cells.TOKENIZER), "special_tokens", {}))
                write_tokenize_sheets(self.tok, self.book, self._sheet, specials)
        if self.plan.part is not None:
            write_check_sheet(self, self.plan.part)
        for entry in self.plan.entries:
            p = entry.placement
            if p is not None and p.name is not None and entry.how != "not exported":
                self.book.defined_names[p.name] = DefinedName(p.name, attr_text=p.whole_range())
        for made in self.plan.lambdas:
            self.book.defined_names[made.name] = DefinedName(made.name, attr_text=made.text)
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

    # ------------------------------------------------------------------ cell sheets
    def _array(self, entry: Entry) -> None:
        p = entry.placement
        assert p is not None
        value = np.asarray(entry.value)
        stored = logical_view(value)
        if p.transposed:
            stored = stored.T
        row_labels = entry.row_labels or []
        fmt = styles.number_format(
            entry.name, value.dtype.kind in "iub", is_param(self.wb, entry.name)
        )
        for part in p.parts:
            ws = self._sheet(part.sheet)
            labels = row_labels[part.row0 : part.row0 + part.n_rows]
            self._look(ws, entry, p, labels, fmt)
            rows = RowWriter(ws, fmt)
            header = [text_cell(ws, entry.name, font=BOLD, fill=HEADER_FILL)]
            header += [header_cell(ws, c) for c in (entry.col_labels or [])]
            if entry.helpers and not p.transposed:
                header += [None] + [text_cell(ws, h.label, font=BOLD) for h in entry.helpers]
            if entry.blank_from is not None:
                self._input_ids(rows, header, entry, labels, stored)
                continue
            rows.append(header)
            if entry.how == "formula":
                self._formula_rows(rows, entry, p, labels, fmt)
                continue
            for a, b in chunks(part.n_rows, ROWS_PER_CHUNK):
                block = np.asarray(stored[part.row0 + a : part.row0 + b])
                rows.numbers(labels[a:b], block, DATA_COL0)
                self.done += block.size
                self._tick(part.sheet)

    def _input_ids(
        self, rows: RowWriter, header: list[Any], entry: Entry, labels: list[Any], ids: Any
    ) -> None:
        """The ids the model reads (column B) come from input cells: an id typed in column D
        (the prompt's are there), else a token's text typed in column E, found in the vocab
        sheet. Rows left empty are padding. Column F shows each id's token."""
        ws = rows.ws
        vocab = next((e for e in self.plan.entries if e.name == cells.VOCAB), None)
        tokens = None
        if vocab is not None and vocab.sheets and isinstance(vocab.value, list):
            # vocab rows: title, column titles, then (index, id, token, ...) from row 3
            first, last = DATA_ROW0 + 2, DATA_ROW0 + 1 + len(vocab.value)
            tokens = f"{quote_sheet(vocab.sheets[0])}!$C${first}:$C${last}"
        titles = [ID_INPUT] + ([TEXT_INPUT, "token (vocab lookup)"] if tokens else [])
        if self.tok is not None and tokens:
            titles.append(FROM_PROMPT)
        rows.append([*header, None, *[text_cell(ws, t, font=BOLD) for t in titles]])
        for r in range(len(ids)):
            at = r + DATA_ROW0 + 1
            typed = int(ids[r, 0]) if r < (entry.blank_from or 0) and not self.tok_live else None
            line: list[Any] = [value_cell(ws, labels[r]) if r < len(labels) else None]
            d, e = f"{ID_COL}{at}", f"{TEXT_COL}{at}"
            if tokens is None:
                used = f'IF(ISNUMBER({d}),{d},"")'
            else:  # the vocab shows a space as ·; EXACT: MATCH alone ignores case
                found = f'MATCH(TRUE,EXACT({tokens},SUBSTITUTE({e}," ","\u00b7")),0)-1'
                rest = f"{PROMPT_COL}{at}" if self.tok is not None else '""'
                used = f'IF(ISNUMBER({d}),{d},IF({e}<>"",{found},{rest}))'
            line += [formula_cell(ws, f"B{at}", used, styles.INTEGER), None]
            line += [_input_cell(ws, typed, styles.INTEGER)]
            if tokens is not None:
                line.append(_input_cell(ws, None, "@"))
                line.append(plain_formula(ws, f'IF(ISNUMBER(B{at}),INDEX({tokens},B{at}+1),"")'))
                if self.tok is not None:
                    line.append(plain_formula(ws, from_prompt(r + 1)) if r < self.tok.n else None)
            rows.append(line)

    def _look(
        self, ws: Any, entry: Entry, p: Placement, labels: list[Any], fmt: str | None
    ) -> None:
        """Frozen header and labels, fitted widths, a colour scale: set before any row (the
        write-only sheet emits them with its first row)."""
        styles.freeze_header(ws)
        n_rows, n_cols = p.stored
        helper_labels = [h.label for h in entry.helpers]
        styles.set_widths(ws, [styles.text_width([entry.name, *labels[:5000], *helper_labels])])
        col_labels = entry.col_labels or []
        widths = [styles.text_width([c], styles.NUMBER_WIDTH) for c in col_labels[:n_cols]]
        widths += [styles.NUMBER_WIDTH] * (n_cols - len(widths))
        styles.set_widths(ws, widths, DATA_COL0, fmt)
        if entry.helpers and not p.transposed:
            helper_widths = [styles.text_width([h], styles.NUMBER_WIDTH) for h in helper_labels]
            styles.set_widths(ws, helper_widths, DATA_COL0 + n_cols + 1, styles.ACTIVATION)
        if entry.blank_from is not None:  # the ids' inputs and vocab lookup
            widths = [styles.text_width([t], styles.NUMBER_WIDTH) for t in (ID_INPUT, TEXT_INPUT)]
            styles.set_widths(ws, [*widths, 24.0, 15.0], DATA_COL0 + n_cols + 1)
        data = range_ref(DATA_ROW0, DATA_COL0, min(n_rows, p.parts[0].n_rows), n_cols, False)
        padding = self._padding_rule(entry, p)
        if padding is not None:  # first: it wins over the colour scale
            ws.conditional_formatting.add(data, padding)
        rule = styles.colour_scale(entry.name)
        if rule is not None:
            ws.conditional_formatting.add(data, rule)

    def _padding_rule(self, entry: Entry, p: Placement) -> Any:
        """Greys the padding rows (and columns) of a token-row sheet: those past n_tokens."""
        cap = self.plan.capacity
        count = self.plan.entry(cells.N_TOKENS) if cap is not None else None
        if cap is None or count is None or count.placement is None or not any(entry.padded):
            return None
        n_tokens = count.placement.name or count.placement.whole_range()
        # 0-based logical row and column of a data cell, from its sheet position
        row, col = ("COLUMN()", "ROW()") if p.transposed else ("ROW()", "COLUMN()")
        first_row, first_col = (DATA_COL0, DATA_ROW0) if p.transposed else (DATA_ROW0, DATA_COL0)
        tests = []
        if entry.padded[0]:
            tests.append(f"MOD({row}-{first_row + 1},{cap.n})>={n_tokens}")
        if entry.padded[1]:
            tests.append(f"{col}-{first_col + 1}>={n_tokens}")
        formula = tests[0] if len(tests) == 1 else f"OR({','.join(tests)})"
        return styles.padding_rule(formula)

    def _formula_rows(
        self, rows: RowWriter, entry: Entry, p: Placement, labels: list[Any], fmt: str | None
    ) -> None:
        """Each piece is one array formula over its rectangle of the sheet; helper columns
        (per-row max, mean, ...) follow the data after one blank column (or row)."""
        ws = rows.ws

        def label(r: int) -> Any:
            if r < len(labels):
                return self._live_label(ws, entry, p, r, len(labels)) or value_cell(ws, labels[r])
            if r > p.parts[0].n_rows:  # a helper row of a transposed sheet
                return text_cell(ws, entry.helpers[r - p.parts[0].n_rows - 1].label, font=BOLD)
            return None

        if self.per_cell is not None:
            self.per_cell.write_rows(rows, entry, p, fmt, label)
            return
        starts: dict[int, list[tuple[int, Any]]] = {}

        def add(rect: tuple[int, int, int, int], text: str, number_format: str | None) -> None:
            r0, c0, nr, nc = rect  # stored coordinates, relative to the data's top-left
            ref = range_ref(r0 + DATA_ROW0, c0 + DATA_COL0, nr, nc, absolute=False)
            starts.setdefault(r0, []).append((c0, formula_cell(ws, ref, text, number_format)))

        for piece in entry.pieces or []:
            r0, c0, nr, nc = piece.rect
            rect = (c0, r0, nc, nr) if p.transposed else (r0, c0, nr, nc)
            add(rect, piece.x.render(p.transposed), fmt)
        sink = HelperSink(p)
        for slot, column in enumerate(entry.helpers):
            for piece in column.pieces:
                rect = sink.stored_rect(slot, piece.r0, piece.x.rows)
                add(rect, piece.x.render(p.transposed), styles.ACTIVATION)
        n_data = p.parts[0].n_rows
        n_rows = n_data + (1 + len(entry.helpers) if p.transposed and entry.helpers else 0)
        for r in range(n_rows):
            cells: list[Any] = [label(r)]
            for c0, cell in sorted(starts.get(r, []), key=lambda x: x[0]):
                cells += [None] * (c0 + DATA_COL0 - len(cells))
                cells.append(cell)
            rows.append(cells)

    def _live_label(self, ws: Any, entry: Entry, p: Placement, r: int, n_labels: int) -> Any:
        """A token row's label as a formula: the token the model reads now (token_ids'
        vocab lookup), so labels follow edited ids; None where labels are not token rows."""
        cap, ids = self.plan.capacity, self.plan.entry(cells.TOKEN_IDS)
        if cap is None or ids is None or not ids.sheets or not entry.padded[0] or p.transposed:
            return None
        if self.plan.entry(cells.VOCAB) is None:  # no lookup column on token_ids
            return None
        head, row = divmod(r, cap.n)
        ref = f"{quote_sheet(ids.sheets[0])}!${LOOKUP_COL}${row + DATA_ROW0 + 1}"
        text = f'IF({ref}="","{PAD_LABEL}",{ref})'
        return plain_formula(ws, f'"{head}:"&{text}' if n_labels > cap.n else text)

    def _other(self, entry: Entry) -> None:
        ws = self._sheet(entry.sheets[0])
        value = entry.value
        head = None
        if entry.kind == "table":
            cols = self.wb.cell(entry.name).hints.get("cols")
            head = self.wb.library.constants.get(cols) if isinstance(cols, str) else None
        self._other_look(ws, entry, head)
        rows = RowWriter(ws)  # before the first row: it numbers the rows it writes raw
        rows.append([text_cell(ws, entry.name, font=BOLD, fill=HEADER_FILL)])
        if entry.kind == "text":
            live = entry.name == cells.PROMPT and self.tok is not None  # an input: shaded
            for a, b in chunks(len(value), 30_000):  # Excel: at most 32,767 characters a cell
                shade = {"fill": styles.INPUT_FILL} if live else {}
                ws.append([None, text_cell(ws, value[a:b], **shade)])
        elif entry.kind == "mapping":
            for key, item in value.items():
                ws.append([text_cell(ws, key), value_cell(ws, item)])
        elif entry.kind == "list":
            items = value if isinstance(value, list | tuple) else [value]
            labels = _list_labels(self.wb, entry.name, len(items))
            for i, item in enumerate(items):
                ws.append([value_cell(ws, labels[i]), value_cell(ws, item)])
        elif entry.kind == "table":
            if head:
                rows.append([None, *[text_cell(ws, h, font=BOLD) for h in head]])
            rows.records(value)  # raw XML: 50,257 vocabulary rows in well under a second

    def _other_look(self, ws: Any, entry: Entry, head: Sequence[str] | None) -> None:
        """Widths fitted to (a sample of) the values; the titles frozen."""
        value = entry.value
        sample: list[Sequence[Any]]
        if entry.kind == "table":
            sample = [r if isinstance(r, list | tuple) else (r,) for r in value[:2000]]
            sample = [(len(value),), *[(None, *r) for r in sample]]
        elif entry.kind == "mapping":
            sample = list(value.items())
        elif entry.kind == "list":
            items = value if isinstance(value, list | tuple) else [value]
            labels = _list_labels(self.wb, entry.name, len(items))[:2000]
            sample = list(zip(labels, items[:2000], strict=True))
        else:
            sample = [(None, value[:60])]
        n_cols = max((len(r) for r in sample), default=1)
        widths = [
            styles.text_width(
                [r[k] for r in sample if len(r) > k] + ([entry.name] if k == 0 else [])
            )
            for k in range(n_cols)
        ]
        if head:
            widths[1:] = [
                max(w, styles.text_width([h])) for w, h in zip(widths[1:], head, strict=False)
            ]
        styles.set_widths(ws, widths)
        ws.freeze_panes = "B3" if head else "B2"


def _input_cell(ws: Any, value: Any, fmt: str) -> WriteOnlyCell:
    """A cell meant to be typed in (shaded; written even when empty)."""
    cell = WriteOnlyCell(ws, value=value)
    cell.fill, cell.number_format = styles.INPUT_FILL, fmt
    return cell


def _list_labels(wb: Workbook, name: str, n: int) -> list[Any]:
    from cellgpt.export.plan import _labels

    found = _labels(wb, wb.cell(name).hints.get("rows"), n)
    return found if found is not None else list(range(n))
