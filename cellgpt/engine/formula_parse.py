"""Parsing and checking formulas: a restricted subset of Python expression syntax.

A formula is parsed with `ast` (never `eval`/`exec`) and checked against a whitelist of node
types. References to other cells are found statically: a bare name (`tokens`) or a dotted
name (`h3.attn.pattern`). Calls may only target functions by their bare name (the workbook
checks them against its library). Everything else (attribute access, dunder names, lambda,
comprehensions, walrus, starred arguments, f-strings, ...) is refused with a message naming
the construct and its position.
"""

from __future__ import annotations

import ast
import operator
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cellgpt.engine.errors import ForbiddenConstructError, FormulaError, FormulaSyntaxError
from cellgpt.engine.limits import MAX_DEPTH, MAX_FORMULA_CHARS, MAX_NODES

Span = tuple[int, int]

# The operators of the language and what they mean (the compiler applies them).
BIN_OPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.MatMult: operator.matmul,
    ast.BitAnd: operator.and_,
    ast.BitOr: operator.or_,
    ast.BitXor: operator.xor,
}
UNARY_OPS: dict[type, Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
    ast.Not: operator.not_,
    ast.Invert: operator.invert,
}
CMP_OPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_ALLOWED_CONSTANTS = (int, float, complex, str, bool, type(None), type(Ellipsis))

# Friendly names for refused constructs.
_REFUSED: dict[type, str] = {
    ast.Lambda: "lambda",
    ast.ListComp: "list comprehension",
    ast.SetComp: "set comprehension",
    ast.DictComp: "dict comprehension",
    ast.GeneratorExp: "generator expression",
    ast.NamedExpr: "assignment expression (:=)",
    ast.Starred: "starred expression (*x)",
    ast.JoinedStr: "f-string",
    ast.FormattedValue: "f-string",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.Set: "set literal",
}


@dataclass(frozen=True)
class NameRef:
    """One occurrence of a (possibly dotted) name in a formula."""

    name: str
    span: Span


@dataclass
class Formula:
    """A parsed, validated formula. `names` are the non-function names it mentions (cell
    references or library constants, decided by the workbook); `functions` the called ones."""

    text: str
    tree: ast.Expression
    names: tuple[str, ...]
    functions: tuple[str, ...]
    occurrences: list[NameRef] = field(repr=False)
    is_literal: bool = False
    _offsets: OffsetMap = field(repr=False, default=None)  # type: ignore[assignment]

    def span_of(self, node: ast.AST) -> Span:
        return self._offsets.span(node)

    def rename(self, mapping: Mapping[str, str]) -> str:
        """Return the formula text with every reference in `mapping` replaced; everything
        else (spacing, comments inside parentheses) is kept as written."""
        pieces: list[str] = []
        last = 0
        for occ in sorted(self.occurrences, key=lambda o: o.span):
            if occ.name in mapping:
                start, end = occ.span
                pieces.append(self.text[last:start])
                pieces.append(mapping[occ.name])
                last = end
        pieces.append(self.text[last:])
        return "".join(pieces)


class OffsetMap:
    """Translates ast (line, UTF-8 byte column) positions into character offsets."""

    def __init__(self, source: str, shift_first_line: int) -> None:
        self._lines = source.splitlines(keepends=True) or [""]
        self._starts: list[int] = []
        pos = 0
        for line in self._lines:
            self._starts.append(pos)
            pos += len(line)
        self._shift = shift_first_line

    def offset(self, lineno: int, col_bytes: int) -> int:
        line = self._lines[lineno - 1]
        col = len(line.encode("utf-8")[:col_bytes].decode("utf-8", errors="ignore"))
        off = self._starts[lineno - 1] + col
        return off - self._shift

    def span(self, node: ast.AST) -> Span:
        start = self.offset(node.lineno, node.col_offset)  # type: ignore[attr-defined]
        end = self.offset(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]
        return (max(start, 0), max(end, 0))


def dotted_name(node: ast.AST) -> str | None:
    """`a.b.c` as a string when the node is a pure attribute chain on a name, else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def parse_formula(text: str, *, cell: str | None = None) -> Formula:
    """Parse and validate formula text. Raises FormulaError (never anything else)."""
    if not isinstance(text, str):
        raise FormulaSyntaxError("formula must be text", cell=cell)
    if len(text) > MAX_FORMULA_CHARS:
        raise FormulaSyntaxError(
            f"formula is {len(text)} characters long; the limit is {MAX_FORMULA_CHARS}",
            cell=cell,
        )
    if not text.strip():
        raise FormulaSyntaxError("formula is empty", cell=cell)
    tree, offsets = _parse_expression(text, cell)
    if _int_list(tree.body):  # token ids (generation sets a longer list per token)
        return Formula(
            text=text,
            tree=tree,
            names=(),
            functions=(),
            occurrences=[],
            is_literal=True,
            _offsets=offsets,
        )
    checker = _Checker(text, offsets, cell)
    checker.refuse_dunders(tree)
    checker.visit(tree.body, depth=0)
    names = tuple(dict.fromkeys(o.name for o in checker.occurrences))
    return Formula(
        text=text,
        tree=tree,
        names=names,
        functions=tuple(dict.fromkeys(checker.functions)),
        occurrences=checker.occurrences,
        is_literal=checker.is_literal,
        _offsets=offsets,
    )


def _int_list(body: ast.AST) -> bool:
    """A list of whole-number constants within the size limit: no names, calls or operators
    to check, nothing the walk below could refuse (it counts one part per number), so it
    is not walked: generation's token ids grow by one per token."""
    return (
        type(body) is ast.List
        and len(body.elts) < MAX_NODES
        and all(type(e) is ast.Constant and type(e.value) is int for e in body.elts)
    )


def _parse_expression(text: str, cell: str | None) -> tuple[ast.Expression, OffsetMap]:
    # The parser warns about odd escapes ('\_') on stderr; a formula is not source code.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _parse_quietly(text, cell)


def _parse_quietly(text: str, cell: str | None) -> tuple[ast.Expression, OffsetMap]:
    try:
        return ast.parse(text, mode="eval"), OffsetMap(text, 0)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as first:
        if "\n" in text and isinstance(first, SyntaxError):
            # A multi-line formula taken from inside parentheses in a workbook file.
            try:
                wrapped = "(" + text + "\n)"
                return ast.parse(wrapped, mode="eval"), OffsetMap(wrapped, 1)
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                pass
        raise _syntax_error(first, text, cell) from None


def _syntax_error(exc: BaseException, text: str, cell: str | None) -> FormulaSyntaxError:
    if isinstance(exc, SyntaxError):
        msg = exc.msg or "invalid syntax"
        span = None
        if exc.lineno and exc.offset:
            lines = text.splitlines(keepends=True)
            if 0 < exc.lineno <= len(lines):
                start = sum(len(s) for s in lines[: exc.lineno - 1]) + max(exc.offset - 1, 0)
                span = (min(start, len(text)), min(start + 1, len(text)))
                col = exc.offset
                msg = f"syntax error at line {exc.lineno}, column {col}: {msg}"
        return FormulaSyntaxError(msg, cell=cell, span=span)
    if isinstance(exc, RecursionError | MemoryError):
        return FormulaSyntaxError("formula is nested too deeply", cell=cell)
    if isinstance(exc, UnicodeError) and isinstance(exc.object, str):
        # A lone surrogate (from a bad paste or a broken file) cannot be source text.
        bad = exc.object[exc.start]
        return FormulaSyntaxError(
            f"syntax error at column {exc.start + 1}: invalid character U+{ord(bad):04X}",
            cell=cell,
            span=(exc.start, exc.start + 1),
        )
    return FormulaSyntaxError(f"cannot parse formula: {exc}", cell=cell)


class _Checker:
    """Walks the tree once: refuses anything off the whitelist, records names and calls."""

    def __init__(self, text: str, offsets: OffsetMap, cell: str | None) -> None:
        self.text = text
        self.offsets = offsets
        self.cell = cell
        self.occurrences: list[NameRef] = []
        self.functions: list[str] = []
        self.nodes = 0
        self.is_literal = True

    def refuse(self, node: ast.AST, what: str) -> ForbiddenConstructError:
        span = self.offsets.span(node) if hasattr(node, "lineno") else None
        where = f" at column {span[0] + 1}" if span else ""
        return ForbiddenConstructError(
            f"{what} is not allowed in a formula{where}", cell=self.cell, span=span
        )

    def refuse_dunders(self, tree: ast.AST) -> None:
        """Escape attempts all walk through dunder names: name them first, wherever they are."""
        for node in ast.walk(tree):
            ident = (
                getattr(node, "id", None)
                or getattr(node, "attr", None)
                or getattr(node, "arg", None)
            )
            if isinstance(ident, str):
                self.check_identifier(node, ident)

    def check_identifier(self, node: ast.AST, ident: str) -> None:
        if "__" in ident:
            raise self.refuse(node, f"the name {ident!r} (double underscores)")

    def visit(self, node: ast.AST, depth: int) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise FormulaSyntaxError(f"formula has more than {MAX_NODES} parts", cell=self.cell)
        if depth > MAX_DEPTH:
            raise FormulaSyntaxError(
                f"formula is nested more than {MAX_DEPTH} deep", cell=self.cell
            )
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            what = _REFUSED.get(type(node), f"the construct {type(node).__name__}")
            raise self.refuse(node, what)
        method(node, depth + 1)

    def visit_Constant(self, node: ast.Constant, depth: int) -> None:
        if not isinstance(node.value, _ALLOWED_CONSTANTS):
            raise self.refuse(node, f"a {type(node.value).__name__} literal")

    def visit_Name(self, node: ast.Name, depth: int) -> None:
        self.check_identifier(node, node.id)
        self.is_literal = False
        self.occurrences.append(NameRef(node.id, self.offsets.span(node)))

    def visit_Attribute(self, node: ast.Attribute, depth: int) -> None:
        name = dotted_name(node)
        if name is None:
            raise self.refuse(node, f"attribute access '.{node.attr}'")
        for part in name.split("."):
            self.check_identifier(node, part)
        self.is_literal = False
        self.occurrences.append(NameRef(name, self.offsets.span(node)))

    def visit_BinOp(self, node: ast.BinOp, depth: int) -> None:
        if type(node.op) not in BIN_OPS:
            raise self.refuse(node, f"the operator {type(node.op).__name__}")
        self.is_literal = self.is_literal and isinstance(node.op, ast.Add | ast.Sub)
        self.visit(node.left, depth)
        self.visit(node.right, depth)

    def visit_UnaryOp(self, node: ast.UnaryOp, depth: int) -> None:
        self.visit(node.operand, depth)

    def visit_BoolOp(self, node: ast.BoolOp, depth: int) -> None:
        self.is_literal = False
        for value in node.values:
            self.visit(value, depth)

    def visit_Compare(self, node: ast.Compare, depth: int) -> None:
        self.is_literal = False
        for op in node.ops:
            if type(op) not in CMP_OPS:
                raise self.refuse(node, f"the comparison {type(op).__name__}")
        self.visit(node.left, depth)
        for comp in node.comparators:
            self.visit(comp, depth)

    def visit_IfExp(self, node: ast.IfExp, depth: int) -> None:
        self.is_literal = False
        for child in (node.test, node.body, node.orelse):
            self.visit(child, depth)

    def visit_Call(self, node: ast.Call, depth: int) -> None:
        self.is_literal = False
        if not isinstance(node.func, ast.Name):
            raise self.refuse(node, "calling anything but a library function by its name")
        self.check_identifier(node.func, node.func.id)
        self.functions.append(node.func.id)
        for arg in node.args:
            self.visit(arg, depth)
        for kw in node.keywords:
            if kw.arg is None:
                raise self.refuse(node, "keyword unpacking (**kwargs)")
            self.check_identifier(node, kw.arg)
            self.visit(kw.value, depth)

    def visit_Subscript(self, node: ast.Subscript, depth: int) -> None:
        self.is_literal = False
        self.visit(node.value, depth)
        self.visit(node.slice, depth)

    def visit_Slice(self, node: ast.Slice, depth: int) -> None:
        for part in (node.lower, node.upper, node.step):
            if part is not None:
                self.visit(part, depth)

    def visit_Tuple(self, node: ast.Tuple, depth: int) -> None:
        for elt in node.elts:
            self.visit(elt, depth)

    visit_List = visit_Tuple

    def visit_Dict(self, node: ast.Dict, depth: int) -> None:
        for key, value in zip(node.keys, node.values, strict=True):
            if key is None:
                raise self.refuse(node, "dict unpacking (**d)")
            self.visit(key, depth)
            self.visit(value, depth)


def error_from(exc: BaseException, cell: str) -> FormulaError:
    """Attach the cell name to a FormulaError raised without one."""
    if isinstance(exc, FormulaError):
        return exc.with_cell(cell)
    return FormulaError(str(exc), cell=cell)
