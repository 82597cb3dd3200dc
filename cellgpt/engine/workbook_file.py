"""Workbook files: plain text in Python expression syntax, parsed with `ast`, never executed.

    \"\"\"Module docstring: what the workbook is.\"\"\"
    x = 3                       # an input cell (a literal)
    \"\"\"A docstring right after a cell documents it.\"\"\"
    y: cell(rows="labels") = x * 2      # display hints / aliases in a cell(...) annotation
    with block("h", count=n, input=y, output="out"):   # a template, instantiated n times
        out = prev + i
    h1.out = prev * 10          # a top-level cell named like a block instance overrides it

This module reads and writes the text; `loader.py` builds a Workbook from it. A loaded
workbook keeps the original text (a `WorkbookDocument`); saving rewrites only the spans of
formulas that changed (appending new cells and overrides at the end), so a load/save round
trip is byte-identical and comments survive. Saves are atomic: a temp file in the same
folder, then os.replace.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cellgpt.engine.cells import Cell, CellSpec
from cellgpt.engine.errors import EngineError
from cellgpt.engine.formula_parse import OffsetMap, dotted_name
from cellgpt.engine.steps import FIRST_STEP, STEP, STEPS, number_steps
from cellgpt.engine.templates import Template

MAX_FILE_BYTES = 16 * 1024 * 1024
_ALIAS = re.compile(r"(?:[A-Za-z_0-9.]|\{i\}|\{prefix\})+")


class WorkbookFileError(EngineError):
    """A workbook file that cannot be loaded; names the file, line and column."""

    def __init__(self, path: str, line: int | None, col: int | None, message: str) -> None:
        self.path, self.line, self.col, self.message = path, line, col, message
        where = path if line is None else f"{path}:{line}:{col or 1}"
        super().__init__(f"{where}: {message}")


@dataclass
class Entry:
    """One top-level `name = formula` statement in the file."""

    name: str
    formula: str
    value_span: tuple[int, int]  # character offsets of the formula text
    stmt_span: tuple[int, int]  # whole statement incl. a following docstring, whole lines
    line: int
    col: int
    parenthesised: bool


@dataclass
class ParsedFile:
    doc: str = ""
    cells: list[tuple[CellSpec, int, int]] = field(default_factory=list)
    templates: list[tuple[Template, int, int]] = field(default_factory=list)
    entries: dict[str, Entry] = field(default_factory=dict)
    # "prefix.name" of each cell inside a `with block(...)` → its line and column.
    template_lines: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass
class WorkbookDocument:
    """The text of a loaded workbook file, kept so that saves can be minimal edits."""

    path: str
    text: str
    bom: bool
    parsed: ParsedFile
    # Where a save without a path goes instead of `path`, when the loaded file must not be
    # overwritten (a file shipped with the application); its folder is created on save.
    save_path: str | None = None


class SavedWorkbook(Protocol):
    """What saving reads from a workbook (a `Workbook` is one)."""

    doc: str
    document: WorkbookDocument | None

    def __contains__(self, name: str) -> bool: ...
    def cells(self) -> list[str]: ...
    def cell(self, name: str) -> Cell: ...
    def overrides(self) -> dict[str, str]: ...
    def templates(self) -> list[Template]: ...


# ---------------------------------------------------------------------------------------
# Parsing


def read_text(path: str) -> tuple[str, bool]:
    try:
        size = os.path.getsize(path)
        if size > MAX_FILE_BYTES:
            raise WorkbookFileError(
                path, None, None, f"file is {size:,} bytes; the limit is {MAX_FILE_BYTES:,}"
            )
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise WorkbookFileError(path, None, None, f"cannot read: {exc.strerror or exc}") from None
    bom = data.startswith(b"\xef\xbb\xbf")
    if bom:
        data = data[3:]
    if b"\x00" in data:
        pos = data.index(b"\x00")
        line = data.count(b"\n", 0, pos) + 1
        raise WorkbookFileError(path, line, None, "binary data (a NUL byte): not a workbook file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise WorkbookFileError(path, line, col, "not valid UTF-8 text") from None
    return text, bom


def parse_text(text: str, path: str = "<workbook>") -> ParsedFile:
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise WorkbookFileError(path, exc.lineno, exc.offset, f"syntax error: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise WorkbookFileError(path, None, None, f"cannot parse: {type(exc).__name__}") from None
    return _FileParser(text, path).parse(tree)


class _FileParser:
    def __init__(self, text: str, path: str) -> None:
        self.text = text
        self.path = path
        self.offsets = OffsetMap(text, 0)
        self.template_lines: dict[str, tuple[int, int]] = {}
        self.line_starts = [0]
        for m in re.finditer("\n", text):
            self.line_starts.append(m.end())

    def error(self, node: ast.AST, message: str) -> WorkbookFileError:
        return WorkbookFileError(
            self.path, getattr(node, "lineno", None), getattr(node, "col_offset", 0) + 1, message
        )

    def parse(self, tree: ast.Module) -> ParsedFile:
        result = ParsedFile()
        body = list(tree.body)
        if body and _is_docstring(body[0]):
            result.doc = _docstring(body.pop(0))
        last: tuple[CellSpec, ast.stmt] | None = None
        for stmt in body:
            if _is_docstring(stmt):
                if last is None:
                    raise self.error(stmt, "a docstring must follow a cell definition")
                last[0].doc = _docstring(stmt)
                entry = result.entries.get(last[0].name)
                if entry is not None:
                    entry.stmt_span = (entry.stmt_span[0], self._line_end(stmt))
                last = None
                continue
            if isinstance(stmt, ast.With):
                result.templates.append((self.template(stmt), stmt.lineno, stmt.col_offset + 1))
                last = None
                continue
            spec, entry = self.cell(stmt)
            if STEP in spec.hints:
                raise self.error(stmt, _STEP_OUTSIDE)
            if spec.name in result.entries:
                first = result.entries[spec.name]
                raise self.error(
                    stmt, f"{spec.name!r} is defined twice (first at line {first.line})"
                )
            result.cells.append((spec, stmt.lineno, stmt.col_offset + 1))
            result.entries[spec.name] = entry
            last = (spec, stmt)
        result.template_lines = self.template_lines
        return result

    def _line_end(self, node: ast.AST) -> int:
        end_line = node.end_lineno  # type: ignore[attr-defined]
        return self.line_starts[end_line] if end_line < len(self.line_starts) else len(self.text)

    def cell(self, stmt: ast.stmt) -> tuple[CellSpec, Entry]:
        hints: dict[str, Any] = {}
        if isinstance(stmt, ast.Assign):
            if len(stmt.targets) != 1:
                raise self.error(stmt, "one cell per line: `name = formula`")
            target, value = stmt.targets[0], stmt.value
        elif isinstance(stmt, ast.AnnAssign):
            if stmt.value is None:
                raise self.error(stmt, "a cell needs a formula: `name: cell(...) = formula`")
            target, value = stmt.target, stmt.value
            hints = self.hints(stmt.annotation)
        else:
            raise self.error(
                stmt,
                f"only `name = formula` cells, docstrings and `with block(...)` templates are allowed here, not {_describe_stmt(stmt)}",
            )
        name = dotted_name(target)
        if name is None or "__" in name:
            raise self.error(
                stmt, "the left side must be a cell name like `x` or `h3.attn.pattern`"
            )
        start, end = self.offsets.span(value)
        parenthesised = self._parenthesised(start, end)
        formula = self.text[start:end]
        line_start = self.line_starts[stmt.lineno - 1]
        entry = Entry(
            name,
            formula,
            (start, end),
            (line_start, self._line_end(stmt)),
            stmt.lineno,
            stmt.col_offset + 1,
            parenthesised,
        )
        return CellSpec(name, formula, "", hints), entry

    def _parenthesised(self, start: int, end: int) -> bool:
        before = self.text[:start].rstrip()
        return before.endswith("(")

    def hints(self, annotation: ast.expr) -> dict[str, Any]:
        if not (
            isinstance(annotation, ast.Call)
            and isinstance(annotation.func, ast.Name)
            and annotation.func.id == "cell"
        ):
            raise self.error(annotation, "a cell annotation must be `cell(key=value, ...)`")
        if annotation.args:
            raise self.error(annotation, "cell(...) takes keyword arguments only")
        hints: dict[str, Any] = {}
        for kw in annotation.keywords:
            if kw.arg is None or "__" in kw.arg:
                raise self.error(annotation, "cell(...) takes plain keyword arguments only")
            hints[kw.arg] = self.literal(kw.value)
            if kw.arg == "alias":
                self.check_aliases(kw.value, hints["alias"])
            if kw.arg == STEP and hints[STEP] is not True:
                raise self.error(kw.value, "a step is marked `cell(step=True, ...)`")
        return hints

    def check_aliases(self, node: ast.expr, value: Any) -> None:
        # An alias must be a cell name with optional {i} / {prefix} slots; anything else
        # (`{i:>999999999}`, `{i.__class__}`) is refused with its line and column.
        for alias in (value,) if isinstance(value, str) else value:
            if not isinstance(alias, str) or not _ALIAS.fullmatch(alias) or "__" in alias:
                raise self.error(
                    node,
                    f"alias {alias!r} must be a cell name, optionally with {{i}} or {{prefix}}",
                )

    def literal(self, node: ast.expr) -> Any:
        """Constants, and tuples/lists of constants; a bare name stands for its text."""
        if isinstance(node, ast.Constant) and isinstance(
            node.value, str | int | float | bool | type(None)
        ):
            return node.value
        if isinstance(node, ast.Tuple | ast.List):
            return tuple(self.literal(e) for e in node.elts)
        name = dotted_name(node)
        if name is not None:
            return name
        raise self.error(node, "hint values must be text, numbers, names or tuples of them")

    def template(self, stmt: ast.With) -> Template:
        if len(stmt.items) != 1 or stmt.items[0].optional_vars is not None:
            raise self.error(
                stmt, 'a template is written `with block("h", count=..., input=..., output="..."):`'
            )
        call = stmt.items[0].context_expr
        if not (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Name)
            and call.func.id == "block"
        ):
            raise self.error(stmt, "only `with block(...)` templates are allowed")
        if (
            len(call.args) != 1
            or not isinstance(call.args[0], ast.Constant)
            or not isinstance(call.args[0].value, str)
        ):
            raise self.error(
                call, 'block(...) needs its prefix as the first argument, e.g. block("h", ...)'
            )
        prefix = call.args[0].value
        if not prefix.isidentifier() or "__" in prefix:
            raise self.error(call, f"block prefix {prefix!r} must be an identifier")
        kwargs = {kw.arg: self.literal(kw.value) for kw in call.keywords if kw.arg}
        missing = {"count", "input", "output"} - set(kwargs)
        if missing:
            raise self.error(call, f"block(...) is missing {', '.join(sorted(missing))}")
        unknown = set(kwargs) - {"count", "input", "output", STEPS, FIRST_STEP}
        if unknown:
            raise self.error(call, f"block(...) does not take {', '.join(sorted(unknown))}")
        steps, first_step = self.step_numbering(call, kwargs)
        body = list(stmt.body)
        doc = _docstring(body.pop(0)) if body and _is_docstring(body[0]) else ""
        cells: list[CellSpec] = []
        last: CellSpec | None = None
        seen: set[str] = set()
        for inner in body:
            if _is_docstring(inner):
                if last is None:
                    raise self.error(inner, "a docstring must follow a cell definition")
                last.doc = _docstring(inner)
                last = None
                continue
            spec, _ = self.cell(inner)
            if STEP in spec.hints and steps is None:
                raise self.error(inner, _STEP_OUTSIDE)
            if spec.name in seen:
                raise self.error(inner, f"{spec.name!r} is defined twice in block {prefix!r}")
            seen.add(spec.name)
            self.template_lines[f"{prefix}.{spec.name}"] = (inner.lineno, inner.col_offset + 1)
            cells.append(spec)
            last = spec
        if steps is not None:
            number_steps(cells, steps, first_step)
        return Template(
            prefix, str(kwargs["count"]), str(kwargs["input"]), str(kwargs["output"]), cells, doc
        )

    def step_numbering(self, call: ast.Call, kwargs: dict[str, Any]) -> tuple[str | None, int]:
        """block(...)'s `steps` alias pattern (None: no step aliases) and first number."""
        steps, first = kwargs.get(STEPS), kwargs.get(FIRST_STEP, 0)
        node = {kw.arg: kw.value for kw in call.keywords}
        if steps is None:
            if FIRST_STEP in kwargs:
                raise self.error(
                    node[FIRST_STEP], 'first_step needs steps=..., e.g. steps="h{i}.step"'
                )
            return None, 0
        if not isinstance(steps, str):
            raise self.error(node[STEPS], 'steps must be an alias pattern, e.g. "h{i}.step"')
        self.check_aliases(node[STEPS], f"{steps}0")
        if not isinstance(first, int) or isinstance(first, bool) or first < 0:
            raise self.error(node.get(FIRST_STEP, call), "first_step must be a whole number ≥ 0")
        return steps, first


_STEP_OUTSIDE = 'step=True needs a block that numbers its steps: with block(..., steps="h{i}.step")'


def _is_docstring(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


def _docstring(stmt: ast.stmt) -> str:
    return inspect.cleandoc(stmt.value.value)  # type: ignore[attr-defined]


def _describe_stmt(stmt: ast.stmt) -> str:
    names = {
        ast.FunctionDef: "a function definition",
        ast.AsyncFunctionDef: "a function definition",
        ast.ClassDef: "a class definition",
        ast.Import: "an import",
        ast.ImportFrom: "an import",
        ast.Expr: "a bare expression",
        ast.For: "a loop",
        ast.While: "a loop",
        ast.If: "an if statement",
        ast.AugAssign: "an augmented assignment",
    }
    return names.get(type(stmt), f"a {type(stmt).__name__} statement")


# ---------------------------------------------------------------------------------------
# Saving


def render_text(wb: SavedWorkbook) -> str:
    """The workbook file text for the workbook's current formulas (minimal edits)."""
    if wb.document is None:
        return _render_fresh(wb)
    text = wb.document.text
    entries = wb.document.parsed.entries
    overrides = wb.overrides()
    edits: list[tuple[int, int, str]] = []
    for name, entry in entries.items():
        current = _current_formula(wb, name, overrides)
        if current is None:
            edits.append((*entry.stmt_span, ""))
        elif current != entry.formula:
            edits.append((*entry.value_span, _fit(current, entry.parenthesised)))
    additions: list[str] = []
    for name in wb.cells():
        cell = wb.cell(name)
        if name in entries or cell.template is not None or cell.source is None:
            continue
        additions.append(_statement(name, cell.source, cell.doc, cell.hints))
    for name, formula in overrides.items():
        if name not in entries:
            additions.append(_statement(name, formula, "", {}))
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    if additions:
        if text and not text.endswith("\n"):
            text += "\n"
        text += "".join(additions)
    return text


def _current_formula(wb: SavedWorkbook, name: str, overrides: Mapping[str, str]) -> str | None:
    """What the file should say for `name` now; None when the statement should go."""
    if name in overrides:
        return overrides[name]
    if name not in wb:
        return None
    cell = wb.cell(name)
    if cell.template is not None:
        return None  # an override that was reset to the template's formula
    return cell.source if cell.source is not None else None


def _render_fresh(wb: SavedWorkbook) -> str:
    """A file for a workbook built in code: cells in dependency order, each block's template
    where its output first appears."""
    out = [f'"""{wb.doc}"""\n\n'] if wb.doc else []
    templates = {t.out_name: t for t in wb.templates()}
    for name in wb.cells():
        cell = wb.cell(name)
        if name in templates:
            out.append(_template_text(templates[name]))
        elif cell.template is None and cell.source is not None:
            out.append(_statement(name, cell.source, cell.doc, cell.hints))
    for name, formula in wb.overrides().items():
        out.append(_statement(name, formula, "", {}))
    return "".join(out)


def _template_text(t: Template) -> str:
    head = f"with block({t.prefix!r}, count={t.count}, input={t.input}, output={t.output!r}):\n"
    body = [f'    """{t.doc}"""\n'] if t.doc else []
    for spec in t.cells:
        body.append(
            "".join(
                "    " + line + "\n"
                for line in _statement(spec.name, spec.formula, spec.doc, spec.hints).splitlines()
            )
        )
    return head + "".join(body or ["    pass\n"])


def _fit(formula: str, parenthesised: bool) -> str:
    return formula if parenthesised or "\n" not in formula else f"(\n    {formula}\n)"


def _statement(name: str, formula: str, doc: str, hints: Mapping[str, Any]) -> str:
    shown = {k: v for k, v in hints.items() if k != "block"}
    annotation = ""
    if shown:
        annotation = ": cell(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"
    line = f"{name}{annotation} = {_fit(formula, False)}\n"
    if doc:
        line += '"""' + doc.replace('"""', '\\"\\"\\"') + '"""\n'
    return line


def save_workbook(wb: SavedWorkbook, path: str | os.PathLike[str] | None = None) -> None:
    """Write atomically; the previous file stays intact if anything fails. Without a path,
    to the document's `save_path` if it has one, else back to the file it was loaded from."""
    document = wb.document
    if path is not None:
        target = os.fspath(path)
    elif document is not None and document.save_path:
        target = document.save_path
        with contextlib.suppress(OSError):  # a failure to create it is reported by the write
            os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    elif document is not None:
        target = document.path
    else:
        raise WorkbookFileError("<workbook>", None, None, "no file name to save to")
    text = render_text(wb)
    parsed = parse_text(text, target)  # never write a file we could not load back
    data = text.encode("utf-8")
    if wb.document is not None and wb.document.bom:
        data = b"\xef\xbb\xbf" + data
    try:
        atomic_write(target, data)
    except OSError as exc:
        if exc.errno is None:
            raise
        # The raw error names the hidden temp file; say which file could not be written.
        raise WorkbookFileError(target, None, None, f"cannot write: {exc.strerror}") from None
    wb.document = WorkbookDocument(target, text, bool(wb.document and wb.document.bom), parsed)


def atomic_write(path: str, data: bytes) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + Path(path).name + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(OSError):
            os.chmod(tmp, os.stat(path).st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
