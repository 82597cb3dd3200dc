"""Deciding what the .xlsx holds: which cells, of what kind, on which sheets, with which
labels, and (formulas mode) which cells become Excel formulas."""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cellgpt.engine import Status, Workbook
from cellgpt.engine.value_limits import ValueTooLarge, array_items, measure
from cellgpt.export.capacity import Capacity, counting, keeps_real_value
from cellgpt.export.excel_forms import with_excel_forms
from cellgpt.export.helpers import HelperColumn
from cellgpt.export.lambdas import Lambda, Lambdas
from cellgpt.export.layout import (
    MAX_DATA_COLS,
    MAX_DATA_ROWS,
    Placement,
    SheetNames,
    parts_needed,
    place,
    wants_transpose,
)
from cellgpt.export.names import DefinedNames
from cellgpt.export.translate import Translator
from cellgpt.export.xlarray import NoExcelForm, Piece, is_numeric
from cellgpt.export.xlexpr import cell_ref_expr
from cellgpt.gpt2 import cells
from cellgpt.gpt2.cells import WorkbookCells

MODES = ("values", "formulas")
# A workbook's mark for cells computed only when asked (GPT-2's logits_all: N x vocab x width
# multiply-adds that nothing else reads); formulas mode writes their values unless asked.
ON_DEMAND = "on_demand"
ON_DEMAND_NOTE = (
    "on demand: the exported prompt's values, not recalculated; export with --on-demand "
    "(or name it in --cells) for formulas"
)


@dataclass
class Entry:
    """One cell of the workbook and how it is exported."""

    name: str
    kind: str  # array | list | table | mapping | text | skip
    value: Any = None
    how: str = "values"  # formula | values | parameter values | not exported
    note: str = ""
    sheets: list[str] = field(default_factory=list)
    placement: Placement | None = None
    pieces: list[Piece] | None = None  # formulas mode: Excel pieces of the logical view
    helpers: list[HelperColumn] = field(default_factory=list)  # per-row results beside it
    row_labels: list[Any] | None = None  # stored rows
    blank_from: int | None = None  # stored rows from here on are left empty (padding ids)
    padded: tuple[bool, bool] = (False, False)  # its logical rows / columns run over tokens
    col_labels: list[Any] | None = None  # stored columns


@dataclass
class Plan:
    mode: str
    entries: list[Entry]
    vocab: list[str] | None
    capacity: Capacity | None = None
    lambdas: list[Lambda] = dataclasses.field(default_factory=list)  # --excel365 only
    part: Any = None  # parts.Part: one workbook of a split export (--parts)

    def entry(self, name: str) -> Entry | None:
        return next((e for e in self.entries if e.name == name), None)


def is_param(wb: Workbook, name: str) -> bool:
    return wb.cell(name).hints.get("kind") == "param"


def kind_of(value: Any) -> str:
    if isinstance(value, str):
        return "text"
    if is_numeric(value) and not isinstance(value, bool | np.bool_):
        return "array"  # numbers, arrays and lists of numbers (token ids)
    if isinstance(value, list | tuple):
        if value and all(isinstance(v, list | tuple) for v in value):
            return "table"
        if all(isinstance(v, str | int | float | bool | type(None)) for v in value):
            return "list"
    if isinstance(value, bool | np.bool_):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return "skip"


MAX_EXPORT_VALUES = 2**26  # numbers of one array (GPT-2 small's largest table has 38.6M)


def too_large_to_export(value: Any) -> str:
    """Why a value cannot go on sheets in bounded time and memory ('' when it can)."""
    if isinstance(value, np.ndarray) and value.dtype != object:
        n = array_items(value)  # rows and columns count too: (10**9, 0) has a billion rows
        return f"{n:,} values (the limit is {MAX_EXPORT_VALUES:,})" if n > MAX_EXPORT_VALUES else ""
    try:
        measure(value)
    except ValueTooLarge as exc:
        return exc.reason
    if isinstance(value, list | tuple | dict) and len(value) > MAX_DATA_ROWS:
        return f"{len(value):,} rows (a sheet holds {MAX_DATA_ROWS:,})"
    if isinstance(value, list | tuple):
        width = max((len(v) for v in value if isinstance(v, list | tuple)), default=0)
        if width > MAX_DATA_COLS:
            return f"rows of {width:,} items (a sheet holds {MAX_DATA_COLS:,} columns)"
    return ""


def select(
    wb: Workbook,
    patterns: Sequence[str] | None,
    mode: str,
    with_params: bool,
    stops: Collection[str] = (),
) -> list[str]:
    """Cells to export, in workbook order. Patterns match names or aliases (fnmatch).
    `stops`: cells exported as values whose own inputs are not pulled in (a part's input)."""
    names = wb.cells()
    if patterns:
        aliases = wb.aliases()
        chosen = {
            wb.resolve(n)
            for n in [*names, *aliases]
            if any(fnmatch.fnmatchcase(n, p) for p in patterns)
        }
        if not chosen:
            raise ValueError(f"no cell matches {' '.join(patterns)}")
        if mode == "formulas":  # formulas need their inputs on sheets too
            chosen |= _inputs_until(wb, chosen, set(stops))
        names = [n for n in names if n in chosen]
    if mode == "values" and not with_params:
        names = [n for n in names if not is_param(wb, n)]
    if not with_params and not patterns:  # parameter-sized gradients (grad_cells.py)
        names = [n for n in names if wb.cell(n).hints.get("kind") != "grad"]
    return names


def _inputs_until(wb: Workbook, chosen: set[str], stops: set[str]) -> set[str]:
    """Every input of `chosen`, transitively, not going past the `stops`."""
    if not stops:
        return set().union(*(wb.ancestors(n) for n in chosen)) if chosen else set()
    seen: set[str] = set()
    todo = [n for n in chosen if n not in stops]
    while todo:
        for parent in wb.precedents(todo.pop()):
            if parent not in seen:
                seen.add(parent)
                if parent not in stops:
                    todo.append(parent)
    return seen


def vocab_labels(wb: Workbook) -> list[str] | None:
    """The vocabulary as text, when the workbook has a tokenizer (labels logits rows)."""
    known = WorkbookCells(wb)
    tok = known.value(cells.TOKENIZER)
    if tok is None or not hasattr(tok, "token_str"):
        return None
    config = known.value(cells.CONFIG)
    size = config.get("vocab_size") if isinstance(config, dict) else None
    if not isinstance(size, int):
        return None
    try:
        return [tok.token_str(i) for i in range(size)]
    except (ValueError, KeyError):
        return None


def _labels(wb: Workbook, hint: Any, n: int) -> list[Any] | None:
    if not isinstance(hint, str):
        return None
    if hint in wb.library.constants:
        labels = list(wb.library.constants[hint])
    elif hint in wb:
        value = wb.value(hint)
        # The length first: never list() a huge label cell for nothing.
        if not isinstance(value, list | tuple | np.ndarray) or np.ndim(value[:0]) != 1:
            return None
        if len(value) != n:
            return None
        labels = list(value)
    else:
        return None
    return labels if len(labels) == n else None


def array_labels(
    wb: Workbook, name: str, shape: tuple[int, ...], vocab: list[str] | None
) -> tuple[list[Any], list[Any]]:
    """Row and column labels of the logical view: hinted cells (token strings), the
    vocabulary for vocab-sized axes, else 0-based indices."""
    hints = wb.cell(name).hints

    def axis(hint: Any, n: int) -> list[Any]:
        found = _labels(wb, hint, n)
        if found is None and vocab is not None and n == len(vocab) and n > 1:
            found = vocab
        return found if found is not None else list(range(n))

    if len(shape) == 0:
        return [name], [0]
    if len(shape) == 1:
        return [name], axis(hints.get("cols") or hints.get("rows"), shape[0])
    col_labels = axis(hints.get("cols"), shape[-1])
    inner = axis(hints.get("rows"), shape[-2])
    if len(shape) == 2:
        return inner, col_labels
    outer = int(np.prod(shape[:-2]))
    return [f"{k}:{lab}" for k in range(outer) for lab in inner], col_labels


def build_plan(
    wb: Workbook,
    mode: str,
    with_params: bool = False,
    patterns: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
    capacity: Capacity | None = None,
    on_demand: bool = False,
    excel365: bool = False,
    inputs: Mapping[str, str] | None = None,
) -> Plan:
    """What goes where. With `capacity` (the workbook run padded, see capacity.py), cells
    keep the padded run's rows and the real run's values where the shapes agree. On-demand
    cells become formulas only with `on_demand` or when `patterns` name them directly.
    `inputs` (cell -> note): cells written as values, their own inputs left out."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    inputs = dict(inputs or {})
    names = select(wb, patterns, mode, with_params, stops=inputs)
    vocab = vocab_labels(wb)
    sheets = SheetNames()
    names_ = DefinedNames()
    entries: list[Entry] = []
    placements: dict[str, Placement] = {}
    for name in names:
        state = wb.state(name)
        if state.status in (Status.ERROR, Status.BLOCKED):
            message = state.error.message if state.error else str(state.status)
            entries.append(Entry(name, "skip", how="not exported", note=f"error: {message}"))
            continue
        value = wb.value(name)
        too_large = too_large_to_export(value)
        if too_large:
            entries.append(Entry(name, "skip", how="not exported", note=f"too large: {too_large}"))
            continue
        entry = Entry(name, kind_of(value), value)
        if entry.kind == "skip":
            entry.how, entry.note = "not exported", f"not a table ({type(value).__name__})"
        elif entry.kind == "array":
            _place_array(wb, entry, sheets, vocab)
            assert entry.placement is not None
            if len(entry.placement.parts) == 1:
                defined = names_.make(name, is_param(wb, name))
                entry.placement = dataclasses.replace(entry.placement, name=defined)
            placements[name] = entry.placement
        else:
            entry.sheets = [sheets.make(name)]
        if is_param(wb, name) and entry.kind != "skip":
            entry.how = "parameter values"
        if name in inputs:
            entry.note = inputs[name]
        entries.append(entry)
    lambdas = Lambdas(names_) if excel365 else None
    if mode == "formulas":
        count = placements.get(cells.N_TOKENS) if capacity is not None else None
        with counting(cell_ref_expr(count, 0, 0, 1, 1) if count is not None else None):
            wanted = _wanted_on_demand(wb, patterns, on_demand)
            _translate(wb, entries, placements, progress, wanted, lambdas, set(inputs))
    if capacity is not None:
        _real_values(wb, entries, capacity)
    return Plan(mode, entries, vocab, capacity, lambdas.all() if lambdas else [])


def _real_values(wb: Workbook, entries: list[Entry], capacity: Capacity) -> None:
    """Cells whose shape does not follow the token count show the real run; the ids are an
    input column, blank below the prompt; token axes are marked (the writer greys padding)."""
    for entry in entries:
        real = capacity.real.get(entry.name)
        if entry.name == cells.TOKEN_IDS:
            entry.blank_from = capacity.n_tokens
            entry.how = "input"
            entry.note = "type an id or a token's text per row; n_tokens counts them"
        elif entry.name != cells.TOKENS and keeps_real_value(entry.value, real):
            entry.value = real
        elif entry.kind == "array" and entry.placement is not None:
            hints = wb.cell(entry.name).hints
            entry.padded = (hints.get("rows") == cells.TOKENS, hints.get("cols") == cells.TOKENS)


def _place_array(wb: Workbook, entry: Entry, sheets: SheetNames, vocab: list[str] | None) -> None:
    arr = np.asarray(entry.value)
    shape = arr.shape
    hints = wb.cell(entry.name).hints
    transposed = wants_transpose(shape, len(vocab) if vocab else None)
    # A token-labelled vector reads best as a column, one row per token.
    transposed = transposed or (
        arr.ndim == 1 and _labels(wb, hints.get("rows"), shape[0]) is not None
    )
    n = parts_needed(shape, transposed)
    names = [sheets.make(entry.name if i == 0 else f"{entry.name} ({i + 1})") for i in range(n)]
    entry.placement, _ = place(shape, names, transposed)
    entry.sheets = names
    rows, cols = array_labels(wb, entry.name, shape, vocab)
    entry.row_labels, entry.col_labels = (cols, rows) if transposed else (rows, cols)
    if n > 1:
        entry.note = f"split over {n} sheets (Excel's row limit)"


def _wanted_on_demand(wb: Workbook, patterns: Sequence[str] | None, every: bool) -> set[str]:
    """The on-demand cells asked for as formulas: all with `every`, else those the patterns
    match by name or alias (not those pulled in as another cell's input)."""
    marked = [n for n in wb.cells() if wb.cell(n).hints.get(ON_DEMAND)]
    if every or not patterns:
        return set(marked) if every else set()
    aliases = wb.aliases()
    named = {
        wb.resolve(n)
        for n in [*wb.cells(), *aliases]
        if any(fnmatch.fnmatchcase(n, p) for p in patterns)
    }
    return {n for n in marked if n in named}


def _translate(
    wb: Workbook,
    entries: list[Entry],
    placements: dict[str, Placement],
    progress: Callable[[str], None] | None,
    on_demand: set[str],
    lambdas: Lambdas | None = None,
    inputs: Collection[str] = (),
) -> None:
    translator = Translator(wb, with_excel_forms(wb.library), placements, lambdas)
    for entry in entries:
        if entry.kind != "array" or entry.how != "values" or wb.cell(entry.name).is_input:
            continue
        if entry.name in inputs:  # a part's input: the engine's values
            continue
        if wb.cell(entry.name).hints.get(ON_DEMAND) and entry.name not in on_demand:
            entry.note = ON_DEMAND_NOTE
            continue
        if entry.placement is not None and len(entry.placement.parts) > 1:
            entry.note = "no Excel form: split over several sheets"
            continue
        if progress is not None:
            progress(entry.name)
        try:
            entry.pieces, entry.helpers = translator.cell(entry.name)
            entry.how = "formula"
        except NoExcelForm as exc:
            entry.note = f"no Excel form: {exc}"
        except (ValueError, TypeError) as exc:  # an unexpected shape inside a form
            entry.note = f"no Excel form: {type(exc).__name__}: {exc}"
