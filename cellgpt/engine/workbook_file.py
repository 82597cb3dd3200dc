"""Workbook files: plain text in Python expression syntax, parsed with `ast`, never executed.

    \"\"\"Module docstring: what the workbook is.\"\"\"
    x = 3                       # an input cell (a literal)
    \"\"\"A docstring right after a cell documents it.\"\"\"
    y: cell(rows="labels") = x * 2      # display hints / aliases in a cell(...) annotation
    with block("h", count=n, input=y, output="out"):   # a template, instantiated n times
        out = prev + i
    h1.out = prev * 10          # a top-level cell named like a block instance overrides it

This module reads and parses the text; `loader.py` builds a Workbook from it and
`workbook_save.py` writes it back. A loaded workbook keeps the original text (a
`WorkbookDocument`), so that a save rewrites only the spans of formulas that changed and a
load/save round trip is byte-identical, comments included.
"""

from __future__ import annotations

import ast
import bisect
import inspect
import itertools
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from cellgpt.engine.cells import Cell, CellSpec
from cellgpt.engine.errors import EngineError
from cellgpt.engine.formula_parse import dotted_name
from cellgpt.engine.function_def import FunctionDefError, FunctionSpec, read_function
from cellgpt.engine.safe_files import FileIdentity, UnsafeFileError, read_bytes_with_identity
from cellgpt.engine.steps import FIRST_STEP, STEP, STEPS, number_steps
from cellgpt.engine.templates import Template

MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_TITLE = 80  # characters of a cell's `title=` hint (a section name)
_ALIAS = re.compile(r"(?:[A-Za-z_0-9.]|\{i\}|\{prefix\})+")
_STEP_SUFFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,30}")  # step="q": h{i}.step5.q
# The only line breaks of Python's tokenizer. str.splitlines() also breaks at \x0b, \x0c,
# \x1c-\x1e, \x85, U+2028 and U+2029, which the tokenizer keeps inside a line (in comments
# and strings): splitting there would shift every later span.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def line_starts(text: str) -> list[int]:
    """The offset where each line begins, lines split exactly as Python's tokenizer splits."""
    return [0, *(m.end() for m in _LINE_BREAK.finditer(text))]


def has_line_break(text: str) -> bool:
    return _LINE_BREAK.search(text) is not None


def newline_of(text: str) -> str:
    """The file's own line ending (its first), "\n" for a file without one."""
    m = _LINE_BREAK.search(text)
    return m.group() if m else "\n"


class Positions:
    """Maps ast positions (1-based line, UTF-8 byte column) to character offsets in the text.
    Every span of the file is found through this one map."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = line_starts(text)
        # per line: cumulative UTF-8 byte counts of its characters, None for an ASCII line
        self._byte_ends: dict[int, list[int] | None] = {}

    def line_start(self, lineno: int) -> int:
        return self.starts[lineno - 1]

    def next_line_start(self, lineno: int) -> int:
        """Where the line after `lineno` begins (the end of the text after the last line)."""
        return self.starts[lineno] if lineno < len(self.starts) else len(self.text)

    def offset(self, lineno: int, col_bytes: int) -> int:
        return self.line_start(lineno) + self._chars(lineno, col_bytes)

    def span(self, node: ast.AST) -> tuple[int, int]:
        start = self.offset(node.lineno, node.col_offset)  # type: ignore[attr-defined]
        end = self.offset(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]
        return start, end

    def _chars(self, lineno: int, col_bytes: int) -> int:
        """How many characters of the line its first `col_bytes` UTF-8 bytes are."""
        if lineno not in self._byte_ends:  # once per line: long lines stay linear
            line = self.text[self.line_start(lineno) : self.next_line_start(lineno)]
            ascii_ = line.isascii()
            self._byte_ends[lineno] = (
                None if ascii_ else list(itertools.accumulate(len(c.encode()) for c in line))
            )
        ends = self._byte_ends[lineno]
        if ends is None or col_bytes == 0:
            return col_bytes
        return bisect.bisect_left(ends, col_bytes) + 1


class WorkbookFileError(EngineError):
    """A workbook file that cannot be loaded; names the file, line and column."""

    def __init__(self, path: str, line: int | None, col: int | None, message: str) -> None:
        self.path, self.line, self.col, self.message = path, line, col, message
        where = path if line is None else f"{path}:{line}:{col or 1}"
        super().__init__(f"{where}: {message}")


class WorkbookChangedError(WorkbookFileError):
    """A save refused because someone else changed the file since we read it: writing would
    silently drop their edit. Reload the file, or save to another file."""


@dataclass
class Entry:
    """One top-level `name = formula` statement in the file."""

    name: str
    formula: str
    value_span: tuple[int, int]  # character offsets of the formula text
    line: int
    col: int
    parenthesised: bool  # the formula is inside brackets: it may span lines as it is
    # What deleting the cell removes: the statement incl. a following docstring.
    stmt_span: tuple[int, int] = (0, 0)


@dataclass
class ParsedFile:
    doc: str = ""
    cells: list[tuple[CellSpec, int, int]] = field(default_factory=list)
    templates: list[tuple[Template, int, int]] = field(default_factory=list)
    entries: dict[str, Entry] = field(default_factory=dict)
    # "prefix.name" of each cell inside a `with block(...)` → its line and column.
    template_lines: dict[str, tuple[int, int]] = field(default_factory=dict)
    # Function cells (`def`), with their line and column, and where their text sits.
    functions: list[tuple[FunctionSpec, int, int]] = field(default_factory=list)
    function_entries: dict[str, FunctionEntry] = field(default_factory=dict)


@dataclass
class FunctionEntry:
    """One top-level `def` in the file."""

    name: str
    source: str
    span: tuple[int, int]  # the def statement's text (a redefinition replaces it)
    stmt_span: tuple[int, int]  # what deleting it removes, a docstring after it included
    line: int


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
    # The version of `path` we read or wrote last (None: unknown); a save over a file that
    # is no longer this version is refused.
    identity: FileIdentity | None = None


class SavedWorkbook(Protocol):
    """What saving reads from a workbook (a `Workbook` is one)."""

    doc: str
    document: WorkbookDocument | None

    def __contains__(self, name: str) -> bool: ...
    def cells(self) -> list[str]: ...
    def cell(self, name: str) -> Cell: ...
    def overrides(self) -> dict[str, str]: ...
    def templates(self) -> list[Template]: ...
    def functions(self) -> list[str]: ...
    def function(self, name: str) -> FunctionSpec: ...


# ---------------------------------------------------------------------------------------
# Parsing


def read_text(path: str) -> tuple[str, bool, FileIdentity]:
    """The file's text, whether it had a UTF-8 BOM, and the identity of the version read.
    Never blocks: a FIFO, device or folder is refused at once."""
    try:
        data, identity = read_bytes_with_identity(path, MAX_FILE_BYTES, what="workbook file")
    except UnsafeFileError as exc:
        raise WorkbookFileError(path, None, None, unreadable_reason(exc, path)) from None
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
    return text, bom, identity


def unreadable_reason(exc: UnsafeFileError, path: str) -> str:
    """The error without its leading file name (WorkbookFileError puts it back)."""
    message = str(exc)
    return message.removeprefix(f"{path}: ")


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
        self.pos = Positions(text)
        self.template_lines: dict[str, tuple[int, int]] = {}

    def error(self, node: ast.AST, message: str) -> WorkbookFileError:
        return WorkbookFileError(
            self.path, getattr(node, "lineno", None), getattr(node, "col_offset", 0) + 1, message
        )

    def parse(self, tree: ast.Module) -> ParsedFile:
        result = ParsedFile()
        body = list(tree.body)
        if body and _is_docstring(body[0]):
            result.doc = _docstring(body.pop(0))
        last: tuple[CellSpec | FunctionSpec, ast.stmt] | None = None
        for index, stmt in enumerate(body):
            if _is_docstring(stmt):
                if last is None:
                    raise self.error(stmt, "a docstring must follow a cell definition")
                if isinstance(last[0], FunctionSpec):
                    if last[0].doc:
                        raise self.error(stmt, f"function {last[0].name!r} already has a docstring")
                    last[0].outer_doc = True
                last[0].doc = _docstring(stmt)
                last = None
                continue
            if isinstance(stmt, ast.With):
                result.templates.append((self.template(stmt), stmt.lineno, stmt.col_offset + 1))
                last = None
                continue
            if isinstance(stmt, ast.FunctionDef):
                last = self.function(stmt, body, index, result)
                continue
            spec, entry = self.cell(stmt)
            if STEP in spec.hints:
                raise self.error(stmt, _STEP_OUTSIDE)
            if spec.name in result.function_entries:
                raise self.error(stmt, f"{spec.name!r} is defined twice (a function cell)")
            if spec.name in result.entries:
                first = result.entries[spec.name]
                raise self.error(
                    stmt, f"{spec.name!r} is defined twice (first at line {first.line})"
                )
            entry.stmt_span = self._stmt_span(body, index)
            result.cells.append((spec, stmt.lineno, stmt.col_offset + 1))
            result.entries[spec.name] = entry
            last = (spec, stmt)
        result.template_lines = self.template_lines
        return result

    def function(
        self, stmt: ast.FunctionDef, body: list[ast.stmt], index: int, result: ParsedFile
    ) -> tuple[FunctionSpec, ast.stmt]:
        """A top-level `def`: a function cell."""
        first = stmt.decorator_list[0] if stmt.decorator_list else stmt
        start = self.pos.offset(first.lineno, first.col_offset)
        end = self.pos.offset(stmt.end_lineno, stmt.end_col_offset)  # type: ignore[arg-type]
        source = self.text[start:end]
        try:
            spec = read_function(stmt, self.text_of, source)
        except FunctionDefError as exc:
            raise WorkbookFileError(self.path, exc.line, exc.col, exc.message) from None
        if spec.name in result.function_entries or spec.name in result.entries:
            raise self.error(stmt, f"{spec.name!r} is defined twice")
        result.functions.append((spec, stmt.lineno, stmt.col_offset + 1))
        result.function_entries[spec.name] = FunctionEntry(
            spec.name, source, (start, end), self._stmt_span(body, index), stmt.lineno
        )
        return spec, stmt

    def text_of(self, node: ast.AST) -> str:
        start, end = self.pos.span(node)
        return self.text[start:end]

    def _stmt_span(self, body: list[ast.stmt], index: int) -> tuple[int, int]:
        """What deleting the cell at body[index] removes: the statement and its docstring,
        as whole lines when nothing else is written on them, else only its own text (and
        the `;` that joins it to a neighbour) — never another statement."""
        stop = index + 2 if index + 1 < len(body) and _is_docstring(body[index + 1]) else index + 1
        first, last = body[index], body[stop - 1]
        before = body[index - 1] if index > 0 else None
        after = body[stop] if stop < len(body) else None
        start = self.pos.offset(first.lineno, first.col_offset)
        end = self.pos.offset(last.end_lineno, last.end_col_offset)  # type: ignore[arg-type]
        if after is not None and after.lineno == last.end_lineno:
            return start, self.pos.offset(after.lineno, after.col_offset)
        if before is not None and before.end_lineno == first.lineno:
            return self.pos.offset(before.end_lineno, before.end_col_offset), end  # type: ignore[arg-type]
        return self.pos.line_start(first.lineno), self.pos.next_line_start(last.end_lineno)  # type: ignore[arg-type]

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
        start, end = self.pos.span(value)
        formula = self.text[start:end]
        entry = Entry(
            name, formula, (start, end), stmt.lineno, stmt.col_offset + 1, self._parenthesised(stmt)
        )
        return CellSpec(name, formula, "", hints), entry

    def _parenthesised(self, stmt: ast.Assign | ast.AnnAssign) -> bool:
        """Whether brackets of the statement itself enclose the formula. Between the target
        (or annotation) and the formula there are only `=`, `(`, spaces, `\\` and comments,
        so a `(` outside the comments is such a bracket."""
        left = stmt.annotation if isinstance(stmt, ast.AnnAssign) else stmt.targets[0]
        start = self.pos.offset(left.end_lineno, left.end_col_offset)  # type: ignore[arg-type]
        between = self.text[start : self.pos.span(stmt.value)[0]]  # type: ignore[arg-type]
        return "(" in re.sub(r"#[^\r\n]*", "", between)

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
            if kw.arg == "title" and not _is_title(hints["title"]):
                raise self.error(
                    kw.value, f"a section title is one line of at most {MAX_TITLE} characters"
                )
            if kw.arg == STEP and not _is_step_mark(hints[STEP]):
                raise self.error(
                    kw.value,
                    'a step is marked `cell(step=True, ...)`, or `step="q"` for one part '
                    "of a step shared by consecutive cells",
                )
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


def _is_title(value: Any) -> bool:
    # A section title labels a line of the TUI's tree and the export's Index: a stranger's
    # workbook must not fill the screen with one.
    return isinstance(value, str) and 0 < len(value) <= MAX_TITLE and value.isprintable()


def _is_step_mark(value: Any) -> bool:
    """True (a step of its own) or a short name suffix (one part of a shared step)."""
    return value is True or (isinstance(value, str) and bool(_STEP_SUFFIX.fullmatch(value)))


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
