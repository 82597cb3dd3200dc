"""Function cells as written: `def name(params): return <formula>`, with an optional docstring.

A definition is parsed with `ast` (never executed) and held to a narrow shape: plain
parameters (defaults must be constants), no decorators or annotations, and a body that is
exactly one `return` of an expression in the ordinary formula language, which is checked by
the same whitelist as every cell formula (`formula_parse.py`). Which names the body may use is
the registry's business (`user_functions.py`); this module only reads the text.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cellgpt.engine.errors import DefinitionError, FormulaError
from cellgpt.engine.formula_parse import Formula, parse_formula
from cellgpt.engine.limits import MAX_FORMULA_CHARS

# A default must be a constant: evaluating anything else at definition time would be code.
_DEFAULT_TYPES = (int, float, str, bool, type(None))


class FunctionDefError(DefinitionError):
    """A function definition of the wrong shape; `line` is 1-based within the text parsed
    (a workbook file, or the source given to `define_function`)."""

    def __init__(self, message: str, line: int | None = None, col: int | None = None) -> None:
        self.message, self.line, self.col = message, line, col
        where = f"line {line}: " if line is not None else ""
        super().__init__(f"{where}{message}")


@dataclass
class FunctionSpec:
    """One function cell: its definition text and what was read from it."""

    name: str
    params: tuple[str, ...]
    defaults: dict[str, Any]
    body: str  # the text of the returned expression
    formula: Formula = field(repr=False)
    doc: str = ""
    source: str = ""  # the whole `def ...` text, as the user wrote it
    outer_doc: bool = False  # the doc is a string after the def in the file, not inside it

    def signature(self) -> str:
        parts = [p if p not in self.defaults else f"{p}={self.defaults[p]!r}" for p in self.params]
        return f"{self.name}({', '.join(parts)})"


def parse_function_source(source: str) -> FunctionSpec:
    """Read the text of one `def` (what `Workbook.define_function` is given)."""
    if not isinstance(source, str):
        raise FunctionDefError("a function definition must be text")
    if len(source) > MAX_FORMULA_CHARS:
        raise FunctionDefError(
            f"the definition is {len(source)} characters long; the limit is {MAX_FORMULA_CHARS}"
        )
    text = textwrap.dedent(source).strip()  # an indented triple-quoted string is fine
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(text)
    except SyntaxError as exc:
        raise FunctionDefError(f"syntax error: {exc.msg}", exc.lineno, exc.offset) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise FunctionDefError(f"cannot parse: {type(exc).__name__}") from None
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.FunctionDef):
        raise FunctionDefError("write exactly one `def name(params): return <formula>`", 1, 1)
    return read_function(tree.body[0], lambda node: ast.get_source_segment(text, node) or "", text)


def read_function(
    node: ast.FunctionDef, text_of: Callable[[ast.AST], str], source: str
) -> FunctionSpec:
    """Check one `def` node and read it. `text_of(node)` is a node's source text (so that
    multi-line bodies and non-ASCII text keep their exact spelling)."""
    name = node.name

    def fail(at: ast.AST, message: str) -> FunctionDefError:
        return FunctionDefError(
            f"function {name!r}: {message}",
            getattr(at, "lineno", None),
            getattr(at, "col_offset", 0) + 1,
        )

    if "__" in name:
        raise fail(node, "double underscores are not allowed in names")
    if node.decorator_list:
        raise fail(node.decorator_list[0], "decorators are not allowed")
    if node.returns is not None or getattr(node, "type_params", None):
        raise fail(node, "annotations and type parameters are not allowed")
    params, defaults = _params(node.args, fail)
    body = list(node.body)
    doc = ""
    if body and _is_docstring(body[0]) and len(body) > 1:
        doc = inspect.cleandoc(body.pop(0).value.value)  # type: ignore[attr-defined]
    if len(body) != 1 or not isinstance(body[0], ast.Return) or body[0].value is None:
        bad = next((s for s in body if not isinstance(s, ast.Return)), body[-1])
        raise fail(
            bad,
            "the body must be exactly one `return <formula>` (after an optional docstring), "
            f"not {_describe(bad) if not isinstance(bad, ast.Return) else 'a bare return'}",
        )
    expr = body[0].value
    # The statement's text after `return`: brackets around the expression are kept (the
    # expression node's own span leaves them out, and `(yield y)` needs them to be refused
    # as what it is).
    body_text = text_of(body[0]).removeprefix("return").strip()
    try:
        formula = parse_formula(body_text, cell=f"function {name}")
    except FormulaError as exc:
        raise fail(expr, exc.message) from None
    return FunctionSpec(name, params, defaults, body_text, formula, doc, source)


def _params(
    args: ast.arguments, fail: Callable[[ast.AST, str], FunctionDefError]
) -> tuple[tuple[str, ...], dict[str, Any]]:
    odd = [*args.posonlyargs, args.vararg, *args.kwonlyargs, args.kwarg]
    if any(a is not None for a in odd):
        raise fail(
            next(a for a in odd if a is not None),
            "only plain parameters are allowed: def f(x, w, eps=1e-5)",
        )
    names: list[str] = []
    for arg in args.args:
        if arg.annotation is not None:
            raise fail(arg, "annotations are not allowed")
        if "__" in arg.arg:
            raise fail(arg, f"parameter {arg.arg!r}: double underscores are not allowed")
        if arg.arg in names:
            raise fail(arg, f"parameter {arg.arg!r} is named twice")
        names.append(arg.arg)
    defaults: dict[str, Any] = {}
    for param, default in zip(names[len(names) - len(args.defaults) :], args.defaults, strict=True):
        defaults[param] = _constant(default, fail, param)
    return tuple(names), defaults


def _constant(node: ast.expr, fail: Callable[[ast.AST, str], FunctionDefError], param: str) -> Any:
    negative = isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub)
    inner = node.operand if negative else node  # type: ignore[attr-defined]
    if isinstance(inner, ast.Constant) and isinstance(inner.value, _DEFAULT_TYPES):
        value = inner.value
        if negative and isinstance(value, int | float) and not isinstance(value, bool):
            return -value
        if not negative:
            return value
    raise fail(
        node, f"the default of {param!r} must be a constant (a number, text, True/False/None)"
    )


def _is_docstring(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


def _describe(stmt: ast.stmt) -> str:
    names = {
        ast.Assign: "an assignment",
        ast.AugAssign: "an assignment",
        ast.AnnAssign: "an assignment",
        ast.If: "an if statement",
        ast.For: "a loop",
        ast.While: "a loop",
        ast.FunctionDef: "a nested function",
        ast.Import: "an import",
        ast.ImportFrom: "an import",
        ast.Expr: "a bare expression",
        ast.Try: "a try statement",
        ast.With: "a with statement",
        ast.Global: "a global statement",
        ast.Nonlocal: "a nonlocal statement",
        ast.Raise: "a raise statement",
        ast.Delete: "a del statement",
    }
    return names.get(type(stmt), f"a {type(stmt).__name__} statement")
