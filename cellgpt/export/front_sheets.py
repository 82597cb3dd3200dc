"""The export's two front sheets: the Index (a table of contents with the course's step
numbers) and the Summary (prompt, tokens and the next token, the workbook's own beside the
engine's, with a check that they agree). Both are written by `xlsx._Writer` (passed in as
`writer`: its plan, workbook, tokenization layout and sheet factory)."""

from __future__ import annotations

from typing import Any

import numpy as np

from cellgpt.engine.steps import alias_tuple, step_number
from cellgpt.export import styles
from cellgpt.export.capacity import PAD_LABEL
from cellgpt.export.layout import DATA_ROW0, Placement, quote_sheet
from cellgpt.export.parts import summary_lines
from cellgpt.export.plan import Entry
from cellgpt.export.sheetio import plain_formula, text_cell, value_cell
from cellgpt.export.styles import BOLD, HEADER_FILL
from cellgpt.export.xlexpr import MASKED
from cellgpt.gpt2 import cells

SAME_AS_CELLGPT = "same as cellgpt?"
# token_ids sheet: A labels, B the ids the model reads, C blank, then these (see xlsx._input_ids)
ID_COL, TEXT_COL, LOOKUP_COL, PROMPT_COL = "D", "E", "F", "G"


def write_index(writer: Any) -> None:
    """A table of contents: every cell with the course's step number, its section and a
    link to its sheet."""
    ws = writer._sheet("Index")
    head = ["cell", "step", "section", "sheet", "shape", "type", "exported as", "formula"]
    head += ["doc", "also named"]
    mode = writer.plan.mode
    table: list[list[Any]] = [[f"cellgpt export, mode {mode}"]]
    for entry in writer.plan.entries:
        info = writer.wb.info(entry.name)
        how = entry.how + (f" ({entry.note})" if entry.note else "")
        aliases = alias_tuple(info.hints.get("alias"))
        title = info.hints.get("title")
        table.append(
            [
                entry.name,
                step_number(aliases),  # the original spreadsheet's step, blank if none
                title if isinstance(title, str) else None,
                entry.sheets[0] if entry.sheets else None,
                shape_text(entry),
                info.dtype or type(entry.value).__name__,
                how,
                info.formula or "",
                info.doc,
                ", ".join(aliases),
            ]
        )
    table.append([])
    table.append(
        [
            f"Excel has no infinity: masked attention scores are {MASKED} "
            "(the engine's -inf); their softmax weight is exactly 0."
        ]
    )
    cap = writer.plan.capacity
    if cap is not None:
        table.append(
            [
                f"Token capacity {cap.n}: every token-row sheet has {cap.n} rows; the "
                f"prompt fills the first n_tokens ({cap.n_tokens} now). Type ids into "
                "token_ids (an empty row below the prompt grows it); padding rows are "
                f"computed from id {0} and never reach the prompt's rows (causal mask)."
            ]
        )
    if writer.tok is not None:
        table.append(
            [
                "The prompt (an input) is tokenized by formulas: tok_chars (pre-split) → "
                "tok_words → tok_bpe (merge passes, ranks from tok_merges) → token_ids' "
                "'ids from prompt'. tok_status (on tok_words) says when it cannot be, e.g. "
                "for characters outside ASCII: then type the ids."
            ]
        )
    if writer.per_cell is not None:
        table.append([writer.per_cell.index_note()])
    if writer.plan.part is not None:
        table += [[line] for line in writer.plan.part.index_lines()]
    if mode == "formulas":
        table.append(
            [
                "Helper columns right of a sheet's data (below it on sheets listed by "
                "vocabulary) hold each row's max, sum of exps, mean and variance, "
                "computed once."
            ]
        )
    styles.freeze_header(ws)
    widths = [
        styles.text_width([h, *[r[k] for r in table[1 : len(writer.plan.entries) + 1]]])
        for k, h in enumerate(head)
    ]
    styles.set_widths(ws, widths)
    ws.append([text_cell(ws, h, font=BOLD, fill=HEADER_FILL) for h in head])
    for k, row in enumerate(table):
        cells_ = [value_cell(ws, v) for v in row]
        if 0 < k <= len(writer.plan.entries) and row[3] is not None:
            cells_[3] = link(ws, row[3])
        ws.append(cells_)


def write_summary(writer: Any) -> None:
    """Prompt, tokens and the next token: the workbook's own (a formula in formulas
    mode) beside the engine's, with a check that they agree."""
    ws = writer._sheet("Summary")
    get = {e.name: e for e in writer.plan.entries}
    lines: list[list[Any]] = [[text_cell(ws, "Summary", font=BOLD, fill=HEADER_FILL)]]
    texts: list[str] = []
    for name in (cells.PROMPT, cells.TOKENS):
        if name in get:
            value = get[name].value
            if isinstance(value, list):
                value = [v for v in value if v != PAD_LABEL]
            text = " | ".join(map(str, value)) if isinstance(value, list) else str(value)
            lines.append([text_cell(ws, name), text_cell(ws, text)])
            texts.append(text)
    ids = get.get(cells.TOKEN_IDS)
    if writer.plan.capacity is not None and ids is not None and ids.sheets:
        # the tokens the model reads now: the ids sheet's vocab lookups (column F)
        sheet = quote_sheet(ids.sheets[0])
        looked = [f"{sheet}!{LOOKUP_COL}{r + DATA_ROW0 + 1}" for r in range(writer.plan.capacity.n)]
        joined = "&".join([looked[0], *[f'IF({c}="",""," | "&{c})' for c in looked[1:]]])
        lines.append([text_cell(ws, "tokens read now"), plain_formula(ws, joined)])
        lines.append(
            [
                text_cell(ws, "to change the input"),
                text_cell(
                    ws,
                    "edit the prompt (ASCII: tokenized by formulas, see tok_words), or "
                    "type ids or token texts on token_ids (they override it)"
                    if writer.tok is not None
                    else "type ids or token texts on token_ids (the prompt is not "
                    "re-tokenized by formulas)",
                ),
            ]
        )
    nt = get.get(cells.NEXT_TOKEN)
    if nt is not None and nt.placement is not None:
        mine = f"B{len(lines) + 1}"  # the row this line will land on
        label = "next token id (this workbook" + ("'s formula)" if nt.how == "formula" else ")")
        lines.append([text_cell(ws, label), plain_formula(ws, top_left(nt.placement))])
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
        probs = get.get(cells.PROBS)
        if probs is not None and probs.placement is not None and len(probs.placement.parts) == 1:
            p = probs.placement
            whole = p.name or p.whole_range()
            cell = plain_formula(ws, f"INDEX({whole},{mine}+1)")
            cell.number_format = styles.PERCENT
            lines.append([text_cell(ws, "its probability (this workbook)"), cell])
        engine = f"B{len(lines) + 1}"
        lines.append([text_cell(ws, "next token id (cellgpt engine)"), int(np.asarray(nt.value))])
        if cells.NEXT_TEXT in get:
            text = str(get[cells.NEXT_TEXT].value)
            lines.append([text_cell(ws, "next token (cellgpt engine)"), text_cell(ws, text)])
        same = plain_formula(ws, f'IF({mine}={engine},"yes","NO")')
        same.font = BOLD
        lines.append([text_cell(ws, SAME_AS_CELLGPT), same])
    elif cells.NEXT_TEXT in get:
        text = str(get[cells.NEXT_TEXT].value)
        lines.append([text_cell(ws, "next token (cellgpt engine)"), text_cell(ws, text)])
    if writer.plan.part is not None:
        lines += summary_lines(ws, writer.plan.part, writer.plan, len(lines) + 1)
    labels = [line[0].value for line in lines]
    styles.set_widths(ws, [styles.text_width(labels), styles.text_width(texts, 24.0)])
    for line in lines:
        ws.append(line)


def shape_text(entry: Entry) -> str:
    if entry.kind == "array":
        shape = np.asarray(entry.value).shape
        return "x".join(map(str, shape)) if shape else "scalar"
    if entry.kind in ("list", "table", "mapping") and hasattr(entry.value, "__len__"):
        return f"{len(entry.value)} items"
    if entry.kind == "text":
        return f"{len(entry.value)} characters"
    return ""


def top_left(p: Placement) -> str:
    return p.stored_range(0, 0, 1, 1)


def link(ws: Any, sheet: str) -> Any:
    """A HYPERLINK formula built only from our own sheet name (never from prompt text)."""

    def q(text: str) -> str:
        return '"' + text.replace('"', '""') + '"'

    return plain_formula(ws, f"HYPERLINK({q('#' + quote_sheet(sheet) + '!A1')},{q(sheet)})")
