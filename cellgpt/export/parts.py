"""GPT-2 in formulas mode as K workbooks of consecutive blocks (`cellgpt export --parts K`),
so that each one fits the memory of the spreadsheet program that recalculates it.

Part 1 holds the prompt, tokenization, embeddings and the first blocks; middle parts hold
blocks; the last part holds the last blocks, ln_f, the logits and the Summary's next token.
A part after the first starts from the residual stream entering its first block
(`h{a}.resid_pre`) and the token count (`n_tokens`), both written as the values cellgpt
computed, labelled as such on the Index and the Summary. Every part but the last checks its
output residual (`h{b-1}.resid_post`) against cellgpt's values on a `check` sheet.
`split.export_parts` writes the parts; `feed` copies one part's recalculated output into
the next part's input, to chain them.
"""

from __future__ import annotations

import itertools
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cellgpt.engine import Workbook
from cellgpt.export.layout import DATA_COL0, DATA_ROW0, Placement, col_letter, logical_view
from cellgpt.export.plan import ON_DEMAND, select
from cellgpt.export.sheetio import RowWriter, formula_cell, number_texts, text_cell
from cellgpt.export.styles import BOLD, HEADER_FILL
from cellgpt.gpt2 import cells

_BLOCK = re.compile(r"^h(\d+)\.")
CHECK_SHEET = "check"
OUTPUT_SAME = "output same as cellgpt?"
# LibreOffice computes in float64 from float32 parameters; cellgpt in float32. The residual
# stream of GPT-2 small agrees to ~1e-6 of its largest value; 1e-4 leaves room, and a wrong
# formula is off by far more.
RELATIVE_TOLERANCE = 1e-4


@dataclass(frozen=True)
class Part:
    """One workbook of a split export: blocks `blocks` of `n_blocks`."""

    index: int  # 1-based
    count: int
    blocks: range
    n_blocks: int
    cells: list[str]  # the cells exported (exact names; their inputs come along)
    inputs: dict[str, str] = field(default_factory=dict)  # cell -> note: the engine's values

    @property
    def first(self) -> bool:
        return self.index == 1

    @property
    def last(self) -> bool:
        return self.index == self.count

    @property
    def output(self) -> str | None:
        """The residual this part hands on (None for the last part)."""
        return None if self.last else f"h{self.blocks[-1]}.resid_post"

    @property
    def input(self) -> str | None:
        return None if self.first else f"h{self.blocks[0]}.resid_pre"

    def title(self) -> str:
        return f"part {self.index} of {self.count}: blocks {_span(self.blocks)}"

    def index_lines(self) -> list[str]:
        """What the Index says about the split."""
        lines = [
            f"This is {self.title()} of {self.n_blocks} (cellgpt export --parts): "
            "GPT-2 split into workbooks of consecutive blocks so each fits in memory."
        ]
        if self.input is not None:
            lines.append(
                f"{self.input} and n_tokens are inputs from part {self.index - 1}, computed "
                f"by cellgpt (values, not formulas). To chain the parts, paste part "
                f"{self.index - 1}'s recalculated h{self.blocks[0] - 1}.resid_post values "
                f"over {self.input} (cellgpt.export.parts.feed does it)."
            )
        if self.output is not None:
            lines.append(
                f"{self.output} is part {self.index + 1}'s input; the Summary checks it "
                f"against cellgpt's values (sheet {CHECK_SHEET})."
            )
        return lines


def _span(blocks: range) -> str:
    return f"{blocks[0]}" if len(blocks) == 1 else f"{blocks[0]}–{blocks[-1]}"


def block_of(name: str) -> int | None:
    found = _BLOCK.match(name)
    return int(found.group(1)) if found else None


def n_blocks(wb: Workbook) -> int:
    found = [b for b in map(block_of, wb.cells()) if b is not None]
    if not found or any(f"h{i}.resid_post" not in wb for i in range(max(found) + 1)):
        raise ValueError("--parts splits GPT-2 workbooks (blocks h0.…, h1.… with resid_post)")
    return max(found) + 1


def parse_parts(spec: str, wb: Workbook, capacity: int | None = None) -> list[range]:
    """`spec` is a number of parts ("3", balanced by estimated memory) or block ranges
    ("0-3,4-7,8-11"), which must cover every block once, in order."""
    total = n_blocks(wb)
    spec = spec.strip()
    if spec.isdigit():
        k = int(spec)
        if not 1 <= k <= total:
            raise ValueError(f"--parts {spec}: between 1 and the {total} blocks")
        return balanced(wb, k, capacity)
    ranges = []
    for piece in spec.split(","):
        found = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+))?\s*", piece)
        if not found:
            raise ValueError(f"--parts: {piece!r} is not a block range like 0-3")
        a = int(found.group(1))
        b = int(found.group(2) or a)
        ranges.append(range(a, b + 1))
    flat = [b for r in ranges for b in r]
    if flat != list(range(total)):
        raise ValueError(
            f"--parts {spec}: the ranges must cover blocks 0-{total - 1} once, in order"
        )
    return ranges


# A rough model of LibreOffice 7.4's memory, fitted to GPT-2 small (docs/excel.md): ~10 bytes
# per stored number (a parameter); ~1.1 KB per activation cell, which is a block's whole
# cost (~0.4 GiB: formula cells, columns, matrices) over its ~300,000 activation cells.
NUMBER_BYTES, FORMULA_BYTES = 10, 1100


def _cost(wb: Workbook, names: Sequence[str], scale: float) -> float:
    """Estimated LibreOffice bytes for these cells; `scale` stretches activations from the
    prompt's rows to the capacity's."""
    total = 0.0
    for name in names:
        value = wb.value(name)
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiub":
            continue
        if wb.cell(name).hints.get("kind") == "param":
            total += NUMBER_BYTES * value.size
        else:
            total += FORMULA_BYTES * value.size * scale
    return total


def balanced(wb: Workbook, k: int, capacity: int | None = None) -> list[range]:
    """K ranges of consecutive blocks that minimise the largest part's estimated
    LibreOffice memory (the first part also holds the embeddings, the last the logits)."""
    total = n_blocks(wb)
    n_tokens = max(1, int(np.size(wb.value(cells.TOKEN_IDS))))
    scale = (capacity or n_tokens) / n_tokens
    names = wb.cells()
    per_block = [_cost(wb, [n for n in names if block_of(n) == b], scale) for b in range(total)]
    after = wb.descendants(f"h{total - 1}.resid_post")
    before = wb.ancestors("h0.resid_pre")
    head = _cost(wb, [n for n in before if block_of(n) is None], scale)
    tail = _cost(wb, [n for n in after | {"ln_f.weight", "ln_f.bias", "wte"} if n in wb], scale)
    best: tuple[float, list[range]] | None = None
    for cuts in itertools.combinations(range(1, total), k - 1):
        bounds = [0, *cuts, total]
        ranges = [range(a, b) for a, b in itertools.pairwise(bounds)]
        sizes = [sum(per_block[b] for b in r) for r in ranges]
        sizes[0] += head
        sizes[-1] += tail
        if best is None or max(sizes) < best[0]:
            best = (max(sizes), ranges)
    assert best is not None
    return best[1]


def plan_parts(wb: Workbook, ranges: Sequence[range], exported: Sequence[str]) -> list[Part]:
    """The cells of each part. `exported`: what the single workbook would hold."""
    total = n_blocks(wb)
    after = wb.descendants(f"h{total - 1}.resid_post")

    def feeds_only_after(name: str) -> bool:  # ln_f.weight, show_k, ...
        below = wb.descendants(name)
        return bool(below) and below <= after

    # On-demand cells (logits_all, the gradients) read the embeddings too: the single
    # workbook shows them as values; a split one leaves them out.
    on_demand = {n for n in exported if wb.cell(n).hints.get(ON_DEMAND)}
    later = [n for n in exported if block_of(n) is None and (n in after or feeds_only_after(n))]
    tail = [n for n in later if n not in on_demand]
    head = [n for n in exported if block_of(n) is None and n not in later]
    parts = []
    for i, blocks in enumerate(ranges):
        own = [n for n in exported if block_of(n) in blocks]
        chosen = ([*head] if i == 0 else []) + own + (tail if i == len(ranges) - 1 else [])
        inputs = {}
        if i > 0:
            note = f"input from part {i}, computed by cellgpt"
            inputs = {f"h{blocks[0]}.resid_pre": note, cells.N_TOKENS: note}
            chosen = [*inputs, *chosen]
        order = {n: k for k, n in enumerate(wb.cells())}
        chosen = sorted(set(chosen), key=order.__getitem__)
        pulled = select(wb, chosen, "formulas", False, stops=inputs)
        strays = [n for n in pulled if block_of(n) is not None and block_of(n) not in blocks]
        if strays:  # a workbook whose cells read other blocks would not be split
            raise ValueError(f"part {i + 1} would need {strays[0]} from another part")
        parts.append(Part(i + 1, len(ranges), blocks, total, chosen, inputs))
    return parts


def part_path(path: Path, part: Part) -> Path:
    """model.xlsx → model.part1of3.xlsx"""
    return path.with_name(f"{path.stem}.part{part.index}of{part.count}{path.suffix}")


# ---------------------------------------------------------------------- in the workbook
def check_name(placement: Placement) -> str:
    return f"cellgpt_{placement.name}"


def write_check_sheet(writer: Any, part: Part) -> None:
    """The engine's values of the part's output, for the Summary's check."""
    entry = writer.plan.entry(part.output) if part.output else None
    if entry is None or entry.placement is None or entry.placement.name is None:
        return
    from openpyxl.workbook.defined_name import DefinedName

    p = entry.placement
    ws = writer._sheet(CHECK_SHEET)
    rows = RowWriter(ws)
    title = f"{part.output} as cellgpt computed it (for the Summary's check)"
    rows.append([text_cell(ws, title, font=BOLD, fill=HEADER_FILL)])
    stored = np.asarray(logical_view(np.asarray(entry.value)), dtype=np.float64)
    rows.numbers(entry.row_labels or [], stored, DATA_COL0)
    n_rows, n_cols = stored.shape
    first, last = f"${col_letter(DATA_COL0)}${DATA_ROW0 + 1}", ""
    last = f"${col_letter(DATA_COL0 + n_cols - 1)}${DATA_ROW0 + n_rows}"
    name = check_name(p)
    writer.book.defined_names[name] = DefinedName(name, attr_text=f"{CHECK_SHEET}!{first}:{last}")


def summary_lines(ws: Any, part: Part, plan: Any, row0: int) -> list[list[Any]]:
    """The Summary's lines about this part; `row0`: the sheet row of the first one."""
    lines: list[list[Any]] = [[text_cell(ws, "this workbook"), text_cell(ws, part.title())]]
    if part.input is not None:
        lines.append(
            [
                text_cell(ws, "its input"),
                text_cell(
                    ws,
                    f"{part.input} and n_tokens: values from part {part.index - 1}, "
                    "computed by cellgpt",
                ),
            ]
        )
    entry = plan.entry(part.output) if part.output else None
    if entry is None or entry.placement is None or entry.placement.name is None:
        return lines
    mine, theirs = entry.placement.name, check_name(entry.placement)
    diff_row = row0 + len(lines)
    lines.append(
        [
            text_cell(ws, f"its output {part.output}: max |difference| from cellgpt"),
            formula_cell(ws, f"B{diff_row}", f"MAX(ABS({mine}-{theirs}))"),
        ]
    )
    same = formula_cell(
        ws,
        f"B{diff_row + 1}",
        f'IF(B{diff_row}<={RELATIVE_TOLERANCE}*MAX(1,MAX(ABS({theirs}))),"yes","NO")',
    )
    same.font = BOLD
    lines.append([text_cell(ws, OUTPUT_SAME), same])
    return lines


# ---------------------------------------------------------------------- chaining parts
def feed(values: np.ndarray, placement: Placement, path: Path) -> None:
    """Write `values` (the logical array of `placement`'s cell) over that cell's numbers in
    the workbook at `path`, editing its sheet XML in place (openpyxl would load every
    parameter). Used to chain parts: part k's recalculated output → part k+1's input."""
    if len(placement.parts) != 1:
        raise ValueError("feed: the input must be on one sheet")
    stored = np.asarray(logical_view(np.asarray(values, dtype=np.float64)))
    if placement.transposed:
        stored = stored.T
    if stored.shape != placement.stored:
        raise ValueError(f"feed: {stored.shape} values for a {placement.stored} range")
    texts = number_texts(stored)
    n_cols = stored.shape[1]
    wanted = {
        f"{col_letter(DATA_COL0 + c)}{DATA_ROW0 + 1 + r}": texts[r * n_cols + c]
        for r in range(stored.shape[0])
        for c in range(n_cols)
    }
    member = _sheet_member(path, placement.parts[0].sheet)
    tmp = path.with_name(path.name + ".feeding")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == member:
                data = _replace_values(data.decode(), wanted, placement.parts[0].sheet).encode()
            dst.writestr(item, data)
    tmp.replace(path)


def _replace_values(xml: str, wanted: dict[str, str], sheet: str) -> str:
    seen: set[str] = set()

    def put(found: re.Match[str]) -> str:
        ref = found.group(1)
        if ref not in wanted:
            return found.group(0)
        seen.add(ref)
        return f'<c r="{ref}"><v>{wanted[ref]}</v></c>'

    xml = re.sub(r'<c r="([A-Z]+[0-9]+)"[^>]*?(?:/>|>.*?</c>)', put, xml)
    missing = set(wanted) - seen
    if missing:
        raise ValueError(f"feed: sheet {sheet!r} has no cell {sorted(missing)[0]}")
    return xml


def _sheet_member(path: Path, sheet: str) -> str:
    """The zip member holding `sheet`'s XML (workbook.xml → its relationship target)."""
    with zipfile.ZipFile(path) as z:
        book = z.read("xl/workbook.xml").decode()
        rels = z.read("xl/_rels/workbook.xml.rels").decode()
    escaped = sheet.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    found = re.search(rf'<sheet [^>]*name="{re.escape(escaped)}"[^>]*/>', book)
    rid = re.search(r'r:id="([^"]+)"', found.group(0)) if found else None
    if rid is None:
        raise ValueError(f"{path}: no sheet {sheet!r}")
    for rel in re.findall(r"<Relationship [^>]*/>", rels):
        if f'Id="{rid.group(1)}"' in rel:
            target = re.search(r'Target="([^"]+)"', rel)
            assert target is not None
            t = target.group(1)
            return t.lstrip("/") if t.startswith("/") else f"xl/{t}"
    raise ValueError(f"{path}: sheet {sheet!r} has no part")
