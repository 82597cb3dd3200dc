"""The formula language: a restricted subset of Python expression syntax.

A formula is parsed with `ast` (never `eval`/`exec`), checked against a whitelist of node
types, and compiled once into a tree of closures. References to other cells are found
statically: a bare name (`tokens`) or a dotted name (`h3.attn.pattern`). Calls may only target
functions registered in a `FunctionLibrary`. Everything else (attribute access, dunder names,
lambda, comprehensions, walrus, starred arguments, f-strings, ...) is refused with a message
naming the construct and its position.
"""

from __future__ import annotations

import ast
import math
import operator
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cellgpt.engine.errors import (
    CellEvalError,
    ForbiddenConstructError,
    FormulaError,
    FormulaSyntaxError,
    LimitError,
)

# Limits that keep a hostile formula from eating the machine.
MAX_FORMULA_CHARS = 20_000
MAX_NODES = 5_000
MAX_DEPTH = 64
MAX_ELEMENTS = 2**28  # largest array a formula may create (1 GiB of float32)
MAX_SEQUENCE = 10**7  # longest str/list a formula may build by repetition
MAX_POW_BITS = 64_000  # largest integer a ** b (or a * b) may produce
# Most multiply-adds one matrix product may cost: GPT-2 small's logits for 1024 tokens take
# 2**35.2, while zeros((2**14, 2**14)) @ itself (2**42) would hold a cell for hours.
MAX_MATMUL_FLOPS = 2**38

Span = tuple[int, int]
Env = Mapping[str, Any]
Evaluator = Callable[[Env], Any]

_BIN_OPS: dict[type, Callable[[Any, Any], Any]] = {
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
_UNARY_OPS: dict[type, Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
    ast.Not: operator.not_,
    ast.Invert: operator.invert,
}
_CMP_OPS: dict[type, Callable[[Any, Any], Any]] = {
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

    def compile(
        self,
        resolve: Callable[[str], tuple[str, Any]],
        functions: Mapping[str, Callable[..., Any]],
    ) -> Evaluator:
        """Build the closure tree. `resolve(name)` answers ("ref", key) for a cell reference
        read from the env at run time, or ("const", value) for a library constant."""
        return _Compiler(self, resolve, functions).build(self.tree.body)


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
        if type(node.op) not in _BIN_OPS:
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
            if type(op) not in _CMP_OPS:
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


# ---------------------------------------------------------------------------------------
# Guards used at run time


def _shape(x: Any) -> tuple[int, ...] | None:
    return x.shape if isinstance(x, np.ndarray | np.generic) else None


def check_elements(count: int, what: str = "result") -> None:
    if count > MAX_ELEMENTS:
        # zeros((10**400,)): an exact count that long helps nobody.
        shown = f"{count:,}" if count < 10**15 else f"about 2**{count.bit_length() - 1}"
        raise LimitError(f"{what} would have {shown} elements; the limit is {MAX_ELEMENTS:,}")


def _check_broadcast(a: Any, b: Any) -> None:
    sa, sb = _shape(a), _shape(b)
    if sa is None or sb is None or sa == sb:
        return
    try:
        shape = np.broadcast_shapes(sa, sb)
    except ValueError:
        return  # numpy will raise its own clear shape error
    check_elements(int(np.prod(shape, dtype=np.float64)))


def check_matmul_shapes(sa: tuple[int, ...], sb: tuple[int, ...]) -> None:
    """Refuse a matrix product whose result or cost is beyond the limits (shapes only)."""
    if len(sa) < 1 or len(sb) < 1:
        return
    rows = sa[-2] if len(sa) >= 2 else 1
    cols = sb[-1] if len(sb) >= 2 else 1
    try:
        batch = np.broadcast_shapes(sa[:-2], sb[:-2])
    except ValueError:
        return
    outputs = math.prod(batch) * rows * cols
    check_elements(outputs)
    flops = outputs * sa[-1]
    if flops > MAX_MATMUL_FLOPS:
        raise LimitError(
            f"matrix product of shapes {sa} and {sb} would cost {flops:,} multiply-adds; "
            f"the limit is {MAX_MATMUL_FLOPS:,}"
        )


def _check_matmul(a: Any, b: Any) -> None:
    sa, sb = _shape(a), _shape(b)
    if sa is not None and sb is not None:
        check_matmul_shapes(sa, sb)


def _is_int(x: Any) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool)


_SEQUENCES = (str, list, tuple, bytes)


def _check_repeat(a: Any, b: Any) -> None:
    for seq, n in ((a, b), (b, a)):
        if isinstance(seq, _SEQUENCES) and _is_int(n) and len(seq) * int(n) > MAX_SEQUENCE:
            raise LimitError(
                f"repetition would build a sequence of {len(seq) * int(n):,} items; the limit is {MAX_SEQUENCE:,}"
            )


def _check_int_product(a: Any, b: Any) -> None:
    # Squaring a big integer from cell to cell doubles its size each time: bound every product.
    if isinstance(a, int) and isinstance(b, int) and a.bit_length() + b.bit_length() > MAX_POW_BITS:
        raise LimitError(
            f"the product of a {a.bit_length():,}-bit and a {b.bit_length():,}-bit integer "
            f"is too large to compute (limit {MAX_POW_BITS:,} bits)"
        )


def _check_mul(a: Any, b: Any) -> None:
    _check_repeat(a, b)
    _check_int_product(a, b)
    _check_broadcast(a, b)


def _check_add(a: Any, b: Any) -> None:
    # Concatenation doubles a string or list from cell to cell: bound every sum.
    if isinstance(a, _SEQUENCES) and isinstance(b, _SEQUENCES) and len(a) + len(b) > MAX_SEQUENCE:
        raise LimitError(
            f"joining would build a sequence of {len(a) + len(b):,} items; the limit is {MAX_SEQUENCE:,}"
        )
    _check_broadcast(a, b)


def _check_mod(a: Any, b: Any) -> None:
    # printf-style widths ('%*d' % (10**9, 1)) allocate without bound; formulas use text()/join().
    if isinstance(a, str | bytes):
        raise CellEvalError(
            "text formatting with % is not allowed in formulas; use text() or join()"
        )
    _check_broadcast(a, b)


def _check_pow(a: Any, b: Any) -> None:
    too_big = _is_int(a) and _is_int(b) and int(b) > 0 and abs(int(a)) > 1
    if too_big and int(b) * int(a).bit_length() > MAX_POW_BITS:
        raise LimitError(f"{a} ** {b} is too large to compute")


_CONTAINERS = (list, tuple, dict, np.ndarray)


def count_items(value: Any, limit: int = MAX_SEQUENCE, what: str = "value") -> int:
    """How many leaves nested lists/tuples/dicts hold (an array counts as its size), raising
    LimitError past `limit`. `[[0] * 10**7] * 10**7` is tiny in memory but 10**14 items to
    anything that walks it (numpy conversion, str(), ==), so walkers check first. A shared
    sub-list is walked once; the walk stops as soon as the limit is passed."""
    seen: dict[int, int] = {}
    total = 0

    def walk(x: Any) -> int:
        nonlocal total
        if isinstance(x, np.ndarray):
            n = int(x.size)
        elif isinstance(x, list | tuple | dict):
            key = id(x)
            if key in seen:
                n = seen[key]
            elif isinstance(x, list | tuple) and not any(
                issubclass(t, _CONTAINERS) for t in set(map(type, x))
            ):
                n = seen[key] = len(x)  # a flat list: type check at C speed, no Python loop
            else:
                seen[key] = 1  # provisional: a self-containing list counts once
                items = x.items() if isinstance(x, dict) else x
                n = 0
                for item in items:
                    n += walk(item)
                seen[key] = n
                return n
        else:
            n = 1
        total += n
        if total > limit:
            raise LimitError(f"{what} holds more than {limit:,} items (the limit)")
        return n

    walk(value)
    return total


def check_index(container: np.ndarray, key: Any) -> None:
    """Refuse fancy indexing (arrays or lists as indices) whose result would pass the element
    limit: `zeros((10, 2**20))[zeros(2**12, 'int64')]` reads 10 rows into 2**32 elements."""
    keys = key if isinstance(key, tuple) else (key,)
    if not any(isinstance(k, np.ndarray | list) for k in keys):
        return  # basic indexing returns a view
    shapes: list[tuple[int, ...]] = []
    width: list[int] = []  # how many container axes each key consumes
    for k in keys:
        if isinstance(k, list):
            count_items(k, what="an index")
            k = np.asarray(k)
        if isinstance(k, np.ndarray) and k.dtype == bool:
            shapes.append((int(np.count_nonzero(k)),))
            width.append(k.ndim)
        elif isinstance(k, np.ndarray):
            shapes.append(k.shape)
            width.append(1)
        else:
            width.append(0 if k is None or k is Ellipsis else 1)
    try:
        picked = math.prod(np.broadcast_shapes(*shapes))
    except ValueError:
        return  # numpy reports the shape mismatch itself
    # Axes taken by array keys are replaced by the broadcast index shape; the rest are kept
    # (at most whole): bound the result by picked * the kept axes.
    dims = list(container.shape)
    array_axes: list[int] = []
    pos = 0
    for n, (k, w) in enumerate(zip(keys, width, strict=True)):
        if k is Ellipsis:
            pos = len(dims) - sum(width[n + 1 :])
            continue
        if isinstance(k, np.ndarray | list):
            array_axes.extend(range(pos, pos + w))
        pos += w
    kept = math.prod(d for i, d in enumerate(dims) if i not in array_axes)
    check_elements(picked * kept, "indexing result")


def _check_compare(a: Any, b: Any) -> None:
    # Comparing two nested lists walks every leaf of both.
    for x in (a, b):
        if isinstance(x, list | tuple | dict):
            count_items(x, what="a compared value")
    _check_broadcast(a, b)


_GUARDS: dict[type, Callable[[Any, Any], None]] = {
    ast.Add: _check_add,
    ast.Mult: _check_mul,
    ast.Mod: _check_mod,
    ast.Pow: lambda a, b: (_check_pow(a, b), _check_broadcast(a, b)),  # type: ignore[dict-item]
    ast.MatMult: _check_matmul,
}


# ---------------------------------------------------------------------------------------
# Compilation to closures


class _Compiler:
    def __init__(
        self,
        formula: Formula,
        resolve: Callable[[str], tuple[str, Any]],
        functions: Mapping[str, Callable[..., Any]],
    ) -> None:
        self.formula = formula
        self.resolve = resolve
        self.functions = functions

    def build(self, node: ast.AST) -> Evaluator:
        return getattr(self, "build_" + type(node).__name__)(node)

    def _name(self, name: str) -> Evaluator:
        kind, key = self.resolve(name)
        if kind == "const":
            return lambda env: key
        return lambda env: env[key]

    def build_Constant(self, node: ast.Constant) -> Evaluator:
        value = node.value
        return lambda env: value

    def build_Name(self, node: ast.Name) -> Evaluator:
        return self._name(node.id)

    def build_Attribute(self, node: ast.Attribute) -> Evaluator:
        return self._name(dotted_name(node) or "")

    def build_BinOp(self, node: ast.BinOp) -> Evaluator:
        left, right = self.build(node.left), self.build(node.right)
        op = _BIN_OPS[type(node.op)]
        guard = _GUARDS.get(type(node.op), _check_broadcast)
        span = self.formula.span_of(node)

        def binop(env: Env) -> Any:
            a, b = left(env), right(env)
            try:
                guard(a, b)
                return op(a, b)
            except CellEvalError as exc:
                exc.span = exc.span or span
                raise
            except Exception as exc:
                raise CellEvalError(_describe(exc), span) from exc

        return binop

    def build_UnaryOp(self, node: ast.UnaryOp) -> Evaluator:
        operand = self.build(node.operand)
        op = _UNARY_OPS[type(node.op)]
        span = self.formula.span_of(node)

        def unary(env: Env) -> Any:
            value = operand(env)
            try:
                return op(value)
            except Exception as exc:
                raise CellEvalError(_describe(exc), span) from exc

        return unary

    def build_BoolOp(self, node: ast.BoolOp) -> Evaluator:
        values = [self.build(v) for v in node.values]
        is_and = isinstance(node.op, ast.And)

        def boolop(env: Env) -> Any:
            result: Any = None
            for value in values:
                result = value(env)
                if bool(result) != is_and:
                    return result
            return result

        return boolop

    def build_Compare(self, node: ast.Compare) -> Evaluator:
        left = self.build(node.left)
        ops = [_CMP_OPS[type(op)] for op in node.ops]
        comparators = [self.build(c) for c in node.comparators]
        span = self.formula.span_of(node)

        def compare(env: Env) -> Any:
            a = left(env)
            result: Any = True
            try:
                for op, comp in zip(ops, comparators, strict=True):
                    b = comp(env)
                    _check_compare(a, b)
                    result = op(a, b)
                    if len(ops) > 1 and not result:
                        return False
                    a = b
            except CellEvalError as exc:
                exc.span = exc.span or span
                raise
            except Exception as exc:
                raise CellEvalError(_describe(exc), span) from exc
            return result

        return compare

    def build_IfExp(self, node: ast.IfExp) -> Evaluator:
        test, body, orelse = self.build(node.test), self.build(node.body), self.build(node.orelse)
        return lambda env: body(env) if test(env) else orelse(env)

    def build_Call(self, node: ast.Call) -> Evaluator:
        assert isinstance(node.func, ast.Name)
        fname = node.func.id
        func = self.functions[fname]
        args = [self.build(a) for a in node.args]
        kwargs = [(kw.arg, self.build(kw.value)) for kw in node.keywords]
        span = self.formula.span_of(node)

        def call(env: Env) -> Any:
            arg_values = [a(env) for a in args]
            kw_values = {k: v(env) for k, v in kwargs}
            try:
                return func(*arg_values, **kw_values)
            except CellEvalError as exc:
                if exc.span is None:
                    exc.span = span
                raise
            except Exception as exc:
                raise CellEvalError(f"{fname}(): {_describe(exc)}", span) from exc

        return call

    def build_Subscript(self, node: ast.Subscript) -> Evaluator:
        value, index = self.build(node.value), self.build(node.slice)
        span = self.formula.span_of(node)

        def subscript(env: Env) -> Any:
            container, key = value(env), index(env)
            if isinstance(container, str | bytes | list | tuple | dict | np.ndarray | np.generic):
                try:
                    if isinstance(container, np.ndarray):
                        check_index(container, key)
                    return container[key]
                except CellEvalError as exc:
                    exc.span = exc.span or span
                    raise
                except Exception as exc:
                    raise CellEvalError(f"indexing: {_describe(exc)}", span) from exc
            raise CellEvalError(f"a {type(container).__name__} value cannot be indexed", span)

        return subscript

    def build_Slice(self, node: ast.Slice) -> Evaluator:
        parts = [
            self.build(p) if p is not None else None for p in (node.lower, node.upper, node.step)
        ]
        lo, hi, st = parts
        return lambda env: slice(
            lo(env) if lo else None, hi(env) if hi else None, st(env) if st else None
        )

    def build_Tuple(self, node: ast.Tuple) -> Evaluator:
        elts = [self.build(e) for e in node.elts]
        return lambda env: tuple(e(env) for e in elts)

    def build_List(self, node: ast.List) -> Evaluator:
        elts = [self.build(e) for e in node.elts]
        return lambda env: [e(env) for e in elts]

    def build_Dict(self, node: ast.Dict) -> Evaluator:
        pairs = [
            (self.build(k), self.build(v)) for k, v in zip(node.keys, node.values, strict=True)
        ]  # type: ignore[arg-type]
        return lambda env: {k(env): v(env) for k, v in pairs}


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, MemoryError):
        text = "out of memory"
    if isinstance(
        exc, ZeroDivisionError | OverflowError | TypeError | ValueError | IndexError | KeyError
    ):
        return f"{type(exc).__name__}: {text}"
    return text


def error_from(exc: BaseException, cell: str) -> FormulaError:
    """Attach the cell name to a FormulaError raised without one."""
    if isinstance(exc, FormulaError):
        return exc.with_cell(cell)
    return FormulaError(str(exc), cell=cell)
