"""Writing workbook files: render a workbook back to text, changing only the spans of
formulas that changed (new cells and overrides are appended), and save it atomically (a temp
file in the same folder, then os.replace), never over a file that changed since it was read.
Reading and parsing are in workbook_file.py.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import itertools
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cellgpt.engine.function_def import FunctionSpec
from cellgpt.engine.safe_files import FileIdentity, UnsafeFileError, read_bytes_with_identity
from cellgpt.engine.templates import Template
from cellgpt.engine.workbook_file import (
    MAX_FILE_BYTES,
    ParsedFile,
    SavedWorkbook,
    WorkbookChangedError,
    WorkbookDocument,
    WorkbookFileError,
    has_line_break,
    line_starts,
    newline_of,
    parse_text,
    unreadable_reason,
)

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
        if cell.hints.get("generated"):  # remade on load (grad_cells.py)
            continue
        additions.append(_statement(name, cell.source, cell.doc, cell.hints))
    for name, formula in overrides.items():
        if name not in entries:
            additions.append(_statement(name, formula, "", {}))
    edits += _function_edits(wb, wb.document.parsed)
    for name in _functions(wb):
        if name not in wb.document.parsed.function_entries:
            additions.append(_function_text(wb.function(name)))
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    if additions:
        newline = newline_of(text)  # a file with \r or \r\n endings keeps them
        if text and not text.endswith(("\n", "\r")):
            text += newline
        text += "".join(additions).replace("\n", newline)
    return text


def _functions(wb: SavedWorkbook) -> list[str]:
    return wb.functions()


def _function_edits(wb: SavedWorkbook, parsed: ParsedFile) -> list[tuple[int, int, str]]:
    """A redefined function's `def` text is replaced, a removed one's statement deleted."""
    edits: list[tuple[int, int, str]] = []
    current = set(_functions(wb))
    for name, entry in parsed.function_entries.items():
        if name not in current:
            edits.append((*entry.stmt_span, ""))
        elif wb.function(name).source != entry.source:
            edits.append((*entry.span, wb.function(name).source.strip()))
    return edits


def _function_text(spec: FunctionSpec) -> str:
    text = spec.source.strip() + "\n"
    if spec.outer_doc and spec.doc:
        text += _string_literal(spec.doc) + "\n"
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
    out = [f"{_string_literal(wb.doc)}\n\n"] if wb.doc else []
    out += [_function_text(wb.function(name)) for name in _functions(wb)]
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
    body = [f"    {_string_literal(t.doc)}\n"] if t.doc else []
    for spec in t.cells:
        statement = _statement(spec.name, spec.formula, spec.doc, spec.hints)
        body.append("".join("    " + line for line in _lines(statement)))
    return head + "".join(body or ["    pass\n"])


def _lines(text: str) -> list[str]:
    """The lines of the text with their endings, split where the tokenizer splits."""
    starts = line_starts(text)
    return [text[a:b] for a, b in itertools.pairwise([*starts, len(text)]) if a < b]


def _fit(formula: str, parenthesised: bool) -> str:
    return formula if parenthesised or not has_line_break(formula) else f"(\n    {formula}\n)"


def _string_literal(text: str) -> str:
    """A docstring as written: triple-quoted when that reads back as the same text, else
    repr (a backslash, a \r, or quotes at the end would change it or break the file)."""
    plain = '"""' not in text and "\\" not in text and "\r" not in text
    if plain and not text.endswith('"'):
        return f'"""{text}"""'
    return repr(text)


def _statement(name: str, formula: str, doc: str, hints: Mapping[str, Any]) -> str:
    shown = {k: v for k, v in hints.items() if k != "block"}
    annotation = ""
    if shown:
        annotation = ": cell(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"
    line = f"{name}{annotation} = {_fit(formula, False)}\n"
    if doc:
        line += _string_literal(doc) + "\n"
    return line


def save_workbook(wb: SavedWorkbook, path: str | os.PathLike[str] | None = None) -> None:
    """Write atomically; the previous file stays intact if anything fails. Without a path,
    to the document's `save_path` if it has one, else back to the file it was loaded from.
    Raises WorkbookChangedError, writing nothing, when that file changed since we read it."""
    document = wb.document
    target = _target(document, path)
    if document is not None:
        _refuse_if_changed(document, target)
    text = render_text(wb)
    parsed = parse_text(text, target)  # never write a file we could not load back
    _check_cells(wb, parsed, target)  # ... nor one whose cells say anything else
    bom = bool(document and document.bom)
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")
    if document is not None and document.save_path and target == document.save_path:
        with contextlib.suppress(OSError):  # a failure to create it is reported by the write
            os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    try:
        identity = atomic_write(target, data)
    except OSError as exc:
        if exc.errno is None:
            raise
        # The raw error names the hidden temp file; say which file could not be written.
        raise WorkbookFileError(target, None, None, f"cannot write: {exc.strerror}") from None
    wb.document = WorkbookDocument(target, text, bom, parsed, identity=identity)


def _target(document: WorkbookDocument | None, path: str | os.PathLike[str] | None) -> str:
    if path is not None:
        return os.fspath(path)
    if document is not None:
        return document.save_path or document.path
    raise WorkbookFileError("<workbook>", None, None, "no file name to save to")


def _refuse_if_changed(document: WorkbookDocument, target: str) -> None:
    """Refuse to overwrite the document's own file when it is no longer the version we read
    (or, for a first save to `save_path`, when someone created that file meanwhile). Another
    file (save-as) is the user's explicit choice and is never refused."""
    own = _same_file(target, document.path)
    first_copy = bool(document.save_path) and _same_file(target, document.save_path or "")
    if not (own or first_copy) or not os.path.lexists(target):
        return  # another file, or deleted meanwhile: writing it loses nobody's edit
    if own and document.identity is None:
        return  # a document made without reading its file: nothing to compare with
    known = document.identity if own else None  # a first copy must not exist yet
    try:
        _, current = read_bytes_with_identity(target, MAX_FILE_BYTES, what="workbook file")
    except UnsafeFileError as exc:
        raise WorkbookChangedError(
            target, None, None, f"not saved: {unreadable_reason(exc, target)}"
        ) from None
    # Same bytes (even rewritten, with a new inode or mtime) means no edit can be lost.
    if known is None or (current.size, current.sha256) != (known.size, known.sha256):
        raise WorkbookChangedError(
            target,
            None,
            None,
            "not saved: the file changed on disk since it was opened (another program or "
            "window saved it); reload it, or save as another file",
        )


def _same_file(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _check_cells(wb: SavedWorkbook, parsed: ParsedFile, target: str) -> None:
    """The file's top-level cells must be exactly the workbook's, formula for formula (by
    meaning: comments and spacing may differ)."""
    expected = {
        name: wb.cell(name).source
        for name in wb.cells()
        if wb.cell(name).template is None
        and wb.cell(name).source is not None
        and not wb.cell(name).hints.get("generated")  # remade on load (grad_cells.py)
    }
    expected.update(wb.overrides())
    written = {name: entry.formula for name, entry in parsed.entries.items()}
    functions = {name: _def_meaning(wb.function(name).source) for name in _functions(wb)}
    written_functions = {n: _def_meaning(e.source) for n, e in parsed.function_entries.items()}
    if (
        expected.keys() != written.keys()
        or any(
            _meaning(written[n]) != _meaning(f)
            for n, f in expected.items()  # type: ignore[arg-type]
        )
        or functions != written_functions
    ):
        raise WorkbookFileError(
            target, None, None, "not saved: the file would not say what the workbook says"
        )


def _meaning(formula: str) -> str:
    try:
        return ast.dump(ast.parse(formula, mode="eval"))
    except SyntaxError:
        try:  # a formula written over several lines inside the statement's brackets
            return ast.dump(ast.parse(f"(\n{formula}\n)", mode="eval"))
        except SyntaxError:
            return f"unparsable {formula!r}"


def _def_meaning(source: str) -> str:
    try:
        return ast.dump(ast.parse(source.strip()))
    except SyntaxError:
        return f"unparsable {source!r}"


def atomic_write(path: str, data: bytes) -> FileIdentity:
    """Write through a temp file in the same folder and os.replace; returns the identity of
    the new file (taken from the temp file, which becomes it)."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + Path(path).name + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
            st = os.fstat(fh.fileno())
        with contextlib.suppress(OSError):
            os.chmod(tmp, os.stat(path).st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    digest = hashlib.sha256(data).hexdigest()
    return FileIdentity(st.st_dev, st.st_ino, len(data), st.st_mtime_ns, digest)
