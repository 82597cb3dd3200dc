"""Loading a workbook file into a Workbook.

Plain cells are defined first; a block template is defined once every name it reads exists,
and cells that read a block's output (or an instance of it) wait for that block. Every problem
raises WorkbookFileError naming the line and column of the cell at fault; the file itself is
only ever read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from cellgpt.engine.cells import CellSpec
from cellgpt.engine.errors import CycleError, DefinitionError, EngineError, FormulaError
from cellgpt.engine.formula_parse import parse_formula
from cellgpt.engine.functions import FunctionLibrary
from cellgpt.engine.grad_cells import expand_gradient_cells
from cellgpt.engine.templates import Template
from cellgpt.engine.workbook import Workbook
from cellgpt.engine.workbook_file import (
    WorkbookDocument,
    WorkbookFileError,
    parse_text,
    read_text,
)


def load_workbook(
    path: str | os.PathLike[str],
    library: FunctionLibrary | None = None,
    inputs: Mapping[str, Any] | None = None,
) -> Workbook:
    """Load a workbook file. Every problem raises WorkbookFileError naming line and column;
    the file itself is only ever read."""
    path = os.fspath(path)
    text, bom, identity = read_text(path)
    parsed = parse_text(text, path)
    wb = Workbook(library, doc=parsed.doc)
    prefixes = {t.prefix: {c.name for c in t.cells} for t, _, _ in parsed.templates}
    lines = {spec.name: (line, col) for spec, line, col in parsed.cells}
    _define_functions(wb, path, parsed, lines)
    overrides = [(s, ln, c) for s, ln, c in parsed.cells if _instance_of(s.name, prefixes)]
    override_lines = {s.name: (ln, c) for s, ln, c in overrides}
    plain = [s for s, _, _ in parsed.cells if not _instance_of(s.name, prefixes)]
    templates = list(parsed.templates)
    _define_cells(wb, path, lines, _ready_cells(plain, prefixes, path, lines))
    for name, value in (inputs or {}).items():
        if name not in wb:
            raise WorkbookFileError(path, None, None, f"no input cell named {name!r}")
        try:
            wb.set(name, value)
        except EngineError as exc:
            raise WorkbookFileError(path, *lines.get(name, (None, None)), str(exc)) from None
    for spec, line, col in overrides:
        try:
            wb.set_override(spec.name, spec.formula)
        except (DefinitionError, FormulaError) as exc:
            raise WorkbookFileError(path, line, col, str(exc)) from None
    # Blocks and the cells that read them are defined in rounds, as their inputs appear.
    while True:
        pending = [s for s in plain if s.name not in wb]
        waiting = {t.prefix: prefixes[t.prefix] for t, _, _ in templates}
        ready = _ready_cells(pending, waiting, path, lines)
        _define_cells(wb, path, lines, ready)
        defined = [
            (t, ln, c)
            for t, ln, c in templates
            if all(r in wb for r in _safe_refs(wb, t, path, ln, c))
        ]
        for template, line, col in defined:
            _define_template(wb, path, template, line, col, override_lines, parsed.template_lines)
        templates = [entry for entry in templates if entry not in defined]
        if not ready and not defined:
            break
    _define_cells(
        wb, path, lines, [s for s in plain if s.name not in wb]
    )  # reports what is missing
    for template, line, col in templates:
        _define_template(wb, path, template, line, col, override_lines, parsed.template_lines)
    _define_gradient_cells(wb, path, lines)
    wb.document = WorkbookDocument(path, text, bom, parsed, identity=identity)
    return wb


def _define_functions(
    wb: Workbook, path: str, parsed: Any, cell_lines: Mapping[str, tuple[int, int]]
) -> None:
    """Function cells first: they read no cell, and cells call them."""
    if not parsed.functions:
        return
    lines = {spec.name: (line, col) for spec, line, col in parsed.functions}
    try:
        wb.define_functions([spec for spec, _, _ in parsed.functions], cell_names=cell_lines)
    except DefinitionError as exc:
        raise _located(path, exc, lines) from None


def _define_gradient_cells(wb: Workbook, path: str, lines: Mapping[str, tuple[int, int]]) -> None:
    try:
        expand_gradient_cells(wb)  # grad.<cell> for each `grads(...)` table (grad_cells.py)
    except (DefinitionError, FormulaError) as exc:
        raise _located(path, exc, lines) from None


def _define_cells(
    wb: Workbook, path: str, lines: Mapping[str, tuple[int, int]], specs: list[CellSpec]
) -> None:
    try:
        wb.define_many(specs)
    except (DefinitionError, FormulaError) as exc:
        raise _located(path, exc, lines) from None


def _define_template(
    wb: Workbook,
    path: str,
    template: Template,
    line: int,
    col: int,
    override_lines: Mapping[str, tuple[int, int]] | None = None,
    template_lines: Mapping[str, tuple[int, int]] | None = None,
) -> None:
    template_lines = template_lines or {}
    try:
        wb.define_template(template)
    except (DefinitionError, FormulaError) as exc:
        # An override that breaks its instance (a cycle, say) is reported at its own line,
        # a bad cell inside the block at the cell's line.
        located = _located(path, exc, {**template_lines, **(override_lines or {})})
        if located.line is not None:
            raise located from None
        raise WorkbookFileError(path, line, col, str(exc)) from None


def _safe_refs(wb: Workbook, template: Template, path: str, line: int, col: int) -> set[str]:
    try:
        return wb.template_refs(template)
    except FormulaError as exc:
        raise WorkbookFileError(path, line, col, str(exc)) from None


def _ready_cells(
    specs: list[CellSpec],
    prefixes: Mapping[str, set[str]],
    path: str,
    lines: Mapping[str, tuple[int, int]],
) -> list[CellSpec]:
    """The cells that do not read (directly or through other pending cells) the output or an
    instance cell (`h3.attn.pattern`) of a block that is not instantiated yet; `prefixes`
    maps each such block's prefix to its cell names."""
    names: dict[str, tuple[str, ...]] = {}
    for spec in specs:
        try:
            names[spec.name] = parse_formula(spec.formula, cell=spec.name).names
        except FormulaError as exc:
            raise WorkbookFileError(path, *lines.get(spec.name, (None, None)), str(exc)) from None
    outs = {f"{p}.out" for p in prefixes}
    late = {
        n for n, refs in names.items() if any(r in outs or _instance_of(r, prefixes) for r in refs)
    }
    changed = True
    while changed:
        changed = False
        for n, refs in names.items():
            if n not in late and any(r in late for r in refs):
                late.add(n)
                changed = True
    return [s for s in specs if s.name not in late]


def _instance_of(name: str, prefixes: Mapping[str, set[str]]) -> bool:
    m = re.match(r"^([A-Za-z_][A-Za-z_]*?)(\d+)\.(.+)$", name)
    return bool(m and m.group(1) in prefixes and m.group(3) in prefixes[m.group(1)])


def _located(
    path: str, exc: EngineError, lines: Mapping[str, tuple[int, int]]
) -> WorkbookFileError:
    """Attach the line of the cell an engine error is about."""
    message = str(exc)
    candidates = [getattr(exc, "cell", None)]
    if isinstance(exc, CycleError):
        candidates += exc.cycle
    candidates += re.findall(r"'([^']+)'", message)
    for name in candidates:
        if name in lines:
            return WorkbookFileError(path, *lines[name], message)
    return WorkbookFileError(path, None, None, message)
