"""Cell records: what a caller or file says about a cell (`CellSpec`), what the workbook keeps
for it (`Cell`: formula, compiled evaluator, pin, block origin) and the read-only snapshot UIs
read (`CellInfo`). Run state (value, status, version) lives apart, in `store.py`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cellgpt.engine.append import Extender
from cellgpt.engine.errors import DefinitionError, ErrorInfo, FormulaError
from cellgpt.engine.formula_compile import Evaluator
from cellgpt.engine.formula_parse import Formula, parse_formula
from cellgpt.engine.limits import MAX_FORMULA_CHARS, MAX_NODES
from cellgpt.engine.store import MISSING, Status


@dataclass
class CellSpec:
    """What a workbook file (or a caller) says about one cell, before it is registered."""

    name: str
    formula: str
    doc: str = ""
    hints: dict[str, Any] = field(default_factory=dict)


@dataclass
class Cell:
    name: str
    source: str | None  # formula text; None for an input given a non-literal value
    formula: Formula | None
    evaluator: Evaluator | None
    refs: tuple[str, ...]
    doc: str = ""
    hints: dict[str, Any] = field(default_factory=dict)
    template: str | None = None  # prefix of the template that generated it
    template_source: str | None = None  # the template's formula text for this instance
    pinned: bool = False
    pin_value: Any = MISSING
    input_value: Any = MISSING
    extender: Extender | None = None  # row-append variant, valid for `extender_source` only
    extender_source: str | None = None

    @property
    def is_input(self) -> bool:
        return self.source is None or (self.formula is not None and self.formula.is_literal)

    @property
    def overridden(self) -> bool:
        return self.template_source is not None and self.source != self.template_source


@dataclass(frozen=True)
class CellInfo:
    """A read-only snapshot of one cell, for UIs and scripts."""

    name: str
    formula: str | None
    doc: str
    hints: dict[str, Any]
    status: Status
    error: ErrorInfo | None
    shape: tuple[int, ...] | None
    dtype: str | None
    duration: float
    version: int
    runs: int
    pinned: bool
    is_input: bool
    template: str | None
    overridden: bool
    precedents: tuple[str, ...]
    dependents: tuple[str, ...]
    evicted: bool = False  # value dropped to save memory; reading the cell recomputes it


def check_cell_name(name: str) -> None:
    parts = name.split(".")
    if not name or not all(p.isidentifier() for p in parts) or "__" in name:
        raise DefinitionError(f"invalid cell name {name!r}: use identifiers joined by dots")


def literal_text(value: Any) -> str | None:
    """Formula text for a plain Python literal value, or None if it is not one."""
    if isinstance(value, bool | int | float | str | type(None)):
        text = repr(value)
    elif isinstance(value, list | tuple) and len(value) <= 10_000:
        if not all(isinstance(v, bool | int | float | str | type(None)) for v in value):
            return None
        text = repr(value)
        if _plain_ids(value, text):
            return text  # token ids (generation sets a longer list per token): no parse
    else:
        return None
    if text in ("inf", "-inf", "nan"):
        return None
    try:
        return text if parse_formula(text).is_literal else None
    except FormulaError:
        return None


def _plain_ids(value: list[Any] | tuple[Any, ...], text: str) -> bool:
    """A non-empty list of non-negative ints whose text is within the formula limits: its
    repr always parses as a literal, so literal_text need not parse it to know (set_formula
    parses it once anyway)."""
    return (
        isinstance(value, list)
        and 0 < len(value) < MAX_NODES // 2
        and len(text) <= MAX_FORMULA_CHARS
        and all(type(v) is int and v >= 0 for v in value)
    )
