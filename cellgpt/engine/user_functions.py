"""Function cells: functions a workbook defines in the formula language (like Excel's LAMBDA
in the Name Manager), callable from any formula like a library function.

A function sees only its parameters, library constants and functions (library ones and other
function cells): a body that reads a cell is refused, so a function's result depends on its
arguments alone and the dependency graph stays cell-to-cell. Recursion (direct or through
other functions) is refused when a function is defined, and so are call chains deeper than
MAX_CALL_DEPTH and bodies whose full inlined expansion passes MAX_INLINED_NODES (f(x) =
g(g(x)) nested 30 deep would be 2**30 calls). Each body is compiled once into the same
closures as cell formulas, so every run-time budget (time, bytes, cost per library call)
applies inside calls, charged to the calling cell.

Redefining a function keeps its callable object (callers' compiled formulas hold it) and
swaps what it runs; every cell that calls it, directly or through other functions, goes stale.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from cellgpt.engine.errors import CellEvalError, DefinitionError, DuplicateNameError
from cellgpt.engine.formula_compile import Evaluator, compile_formula
from cellgpt.engine.function_def import FunctionSpec
from cellgpt.engine.limits import MAX_DEPTH, check_time

if TYPE_CHECKING:
    from cellgpt.engine.sheet import Sheet

MAX_CALL_DEPTH = 16  # function cells calling function cells, innermost counted as 1
MAX_INLINED_NODES = 20_000  # expression nodes of a body with every call expanded
# Nesting of a body with every call expanded: evaluation recurses once per level, and a cell's
# own formula (MAX_DEPTH) comes on top; 16 functions each nested 60 deep would pass Python's
# recursion limit.
MAX_EXPANDED_DEPTH = 2 * MAX_DEPTH
MAX_FUNCTIONS = 10_000  # function cells of one workbook (a file of a million tiny defs)


class UserFunction:
    """The callable a formula's compiled call holds; redefinition swaps its insides."""

    def __init__(self, spec: FunctionSpec, evaluator: Evaluator) -> None:
        self.spec, self.evaluator = spec, evaluator

    @property
    def name(self) -> str:
        return self.spec.name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        env = self.bind(args, kwargs)
        check_time()
        try:
            return self.evaluator(env)
        except CellEvalError as exc:
            # The span is inside the body's text, not the caller's formula: name the body
            # part in the message and let the caller point at its call.
            if exc.span is not None and not exc.message.startswith("in "):
                start, end = exc.span
                exc.message = f"in {self.name}(), at `{self.spec.body[start:end]}`: {exc.message}"
            elif not exc.message.startswith("in "):
                exc.message = f"in {self.name}(): {exc.message}"
            exc.args = (exc.message,)
            exc.span = None
            raise

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        params = self.spec.params
        if len(args) > len(params):
            raise TypeError(
                f"{self.spec.signature()} takes {len(params)} arguments, got {len(args)}"
            )
        env = dict(zip(params, args, strict=False))
        for key, value in kwargs.items():
            if key not in params:
                raise TypeError(f"{self.spec.signature()} has no parameter {key!r}")
            if key in env:
                raise TypeError(f"{self.spec.signature()}: {key!r} given twice")
            env[key] = value
        for param in params:
            if param not in env:
                if param not in self.spec.defaults:
                    raise TypeError(f"{self.spec.signature()}: missing argument {param!r}")
                env[param] = self.spec.defaults[param]
        return env


class FunctionCells:
    """The workbook's function cells; shares the sheet's tables (`sheet.user_functions`, the
    `sheet.functions` table formulas are compiled against)."""

    def __init__(self, sheet: Sheet) -> None:
        self.sheet = sheet
        self.table: dict[str, UserFunction] = sheet.user_functions
        self._later_cells: set[str] = set()

    # ------------------------------------------------------------------ queries
    def names(self) -> list[str]:
        return list(self.table)

    def spec(self, name: str) -> FunctionSpec:
        if name not in self.table:
            raise KeyError(f"no function cell named {name!r}")
        return self.table[name].spec

    def callers(self, names: Iterable[str]) -> tuple[set[str], set[str]]:
        """The functions and cells that call any of `names`, directly or through other
        function cells: (functions, cells)."""
        funcs = set(names)
        changed = True
        while changed:  # a handful of functions: a fixpoint is simplest
            changed = False
            for fname, fn in self.table.items():
                if fname not in funcs and funcs & set(fn.spec.formula.functions):
                    funcs.add(fname)
                    changed = True
        cells = {
            n for n, c in self.sheet.cells.items() if c.formula and funcs & set(c.formula.functions)
        }
        return funcs - set(names), cells

    # ------------------------------------------------------------------ edits
    def define_many(self, specs: Iterable[FunctionSpec], cell_names: Iterable[str] = ()) -> None:
        """Add functions (they may call each other in any order); refuses all on any problem.
        `cell_names`: cells still to come (a file's), so that reading one is named as such."""
        specs = list(specs)
        self._later_cells = set(cell_names)
        try:
            self._define_many(specs)
        finally:
            self._later_cells = set()

    def _define_many(self, specs: list[FunctionSpec]) -> None:
        if len(self.table) + len(specs) > MAX_FUNCTIONS:
            raise DefinitionError(
                f"{len(self.table) + len(specs):,} function cells would pass the limit of "
                f"{MAX_FUNCTIONS:,}"
            )
        seen: set[str] = set()
        for spec in specs:
            self._check_name(spec.name)
            if spec.name in seen:
                raise DuplicateNameError(f"function {spec.name!r} is defined twice")
            seen.add(spec.name)
        proposed = {**{n: f.spec for n, f in self.table.items()}, **{s.name: s for s in specs}}
        for spec in specs:
            self._check_body(spec, proposed)
        _check_calls(proposed)
        for spec in _callee_first(specs, proposed):
            fn = UserFunction(spec, lambda env: None)
            self.table[spec.name] = fn
            self.sheet.functions[spec.name] = fn
            fn.evaluator = self._compile(spec)
        self.sheet.formula_version += 1

    def redefine(self, name: str, spec: FunctionSpec) -> None:
        """Replace a function's definition (same name); callers go stale."""
        if name not in self.table:
            raise KeyError(f"no function cell named {name!r}")
        if spec.name != name:
            raise DefinitionError(
                f"function {name!r}: a new definition must keep the name (got {spec.name!r})"
            )
        old = self.table[name].spec
        if not spec.doc and old.outer_doc:  # the file's docstring after the def stays
            spec.doc, spec.outer_doc = old.doc, True
        proposed = {**{n: f.spec for n, f in self.table.items()}, name: spec}
        self._check_body(spec, proposed)
        _check_calls(proposed)
        fn = self.table[name]
        fn.spec, fn.evaluator = spec, self._compile(spec)
        self.sheet.formula_version += 1
        self._invalidate_callers(name)

    def remove(self, name: str) -> None:
        """Delete a function nobody calls."""
        funcs, cells = self.callers([name])
        direct = sorted(n for n in funcs | cells if name in self._called_by(n))
        if direct:
            raise DefinitionError(f"cannot remove function {name!r}: called by {', '.join(direct)}")
        del self.table[name]
        del self.sheet.functions[name]
        self.sheet.formula_version += 1

    # ------------------------------------------------------------------ checks
    def _called_by(self, name: str) -> tuple[str, ...]:
        if name in self.table:
            return self.table[name].spec.formula.functions
        formula = self.sheet.cells[name].formula
        return formula.functions if formula else ()

    def _check_name(self, name: str) -> None:
        library = self.sheet.library
        what = f"function {name!r}"
        if not name.isidentifier() or "__" in name:
            raise DefinitionError(f"{what}: not a valid name")
        if name in library.functions:
            raise DefinitionError(f"{what}: the name of a library function (pick another name)")
        if name in library.constants:
            raise DefinitionError(f"{what}: the name of a library constant")
        if name in self.sheet.cells or name in self.sheet.aliases:
            raise DuplicateNameError(f"{what}: already the name of a cell")
        if name in self.table:
            raise DuplicateNameError(f"{what} is defined twice (edit it to change its definition)")

    def _check_body(self, spec: FunctionSpec, proposed: dict[str, FunctionSpec]) -> None:
        library, what = self.sheet.library, f"function {spec.name!r}"
        for param in spec.params:
            if param in library.functions or param in library.constants or param in proposed:
                raise DefinitionError(
                    f"{what}: parameter {param!r} would hide the function or constant of "
                    "that name; rename the parameter"
                )
        for fname in spec.formula.functions:
            if fname not in library.functions and fname not in proposed:
                raise DefinitionError(f"{what}: unknown function {fname!r}")
        for name in spec.formula.names:
            if name in spec.params or name in library.constants:
                continue
            if name in self.sheet or name in self._later_cells or name.split(".")[0] in spec.params:
                hint = (
                    "attribute access is not allowed"
                    if name.split(".")[0] in spec.params
                    else f"reads the cell {name!r}: a function sees only its parameters "
                    "(pass the cell as an argument)"
                )
                raise DefinitionError(f"{what}: {hint}")
            raise DefinitionError(f"{what}: unknown name {name!r} (not a parameter)")

    def _compile(self, spec: FunctionSpec) -> Evaluator:
        constants, params = self.sheet.library.constants, set(spec.params)

        def resolve(name: str) -> tuple[str, Any]:
            return ("ref", name) if name in params else ("const", constants[name])

        return compile_formula(spec.formula, resolve, self.sheet.functions)

    def _invalidate_callers(self, name: str) -> None:
        _, cells = self.callers([name])
        for cell in sorted(cells, key=self.sheet.graph.index):
            # a row-append variant was derived from the old body (row_derive.py)
            self.sheet.cells[cell].extender = None
            self.sheet.cells[cell].extender_source = None
            self.sheet.invalidate(cell)


def _check_calls(specs: dict[str, FunctionSpec]) -> None:
    """Refuse recursion, deep call chains and bodies whose expansion is too big."""
    depth: dict[str, int] = {}
    size: dict[str, int] = {}
    nesting: dict[str, int] = {}
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in depth:
            return
        if name in visiting:
            loop = [*visiting[visiting.index(name) :], name]
            raise DefinitionError(
                f"function {loop[0]!r} calls itself ({' -> '.join(loop)}): recursion is not "
                "allowed in function cells"
            )
        visiting.append(name)
        spec = specs[name]
        calls = _user_calls(spec, specs)
        for callee in calls:
            visit(callee)
        visiting.pop()
        depth[name] = 1 + max((depth[c] for c in calls), default=0)
        size[name] = _node_count(spec) + sum(size[c] - 1 for c in calls)
        nesting[name] = _nesting(spec.formula.tree.body, nesting, specs)
        if nesting[name] > MAX_EXPANDED_DEPTH:
            raise DefinitionError(
                f"function {name!r}: its body nests {nesting[name]} deep with every call "
                f"spelled out; the limit is {MAX_EXPANDED_DEPTH}"
            )
        if depth[name] > MAX_CALL_DEPTH:
            raise DefinitionError(
                f"function {name!r}: calls nest {depth[name]} function cells deep; the limit "
                f"is {MAX_CALL_DEPTH}"
            )
        if size[name] > MAX_INLINED_NODES:
            shown = f"{size[name]:,}" if size[name] < 10**12 else "a huge number of"
            raise DefinitionError(
                f"function {name!r}: its body expands to {shown} parts with every call "
                f"spelled out; the limit is {MAX_INLINED_NODES:,}"
            )

    for name in specs:
        visit(name)


def _user_calls(spec: FunctionSpec, specs: dict[str, FunctionSpec]) -> list[str]:
    """Each call of a function cell in the body, once per call site."""
    return [
        n.func.id
        for n in ast.walk(spec.formula.tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in specs
    ]


def _nesting(node: ast.AST, known: dict[str, int], specs: dict[str, FunctionSpec]) -> int:
    """How deep evaluating `node` recurses, a call of a function cell counting as its body."""
    below = max((_nesting(c, known, specs) for c in ast.iter_child_nodes(node)), default=0)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in specs:
        below = max(below, known[node.func.id])
    return 1 + below


def _node_count(spec: FunctionSpec) -> int:
    return sum(isinstance(n, ast.expr) for n in ast.walk(spec.formula.tree.body))


def _callee_first(
    specs: list[FunctionSpec], proposed: dict[str, FunctionSpec]
) -> list[FunctionSpec]:
    # Calls are compiled against the callable objects, so callees must exist first; recursion
    # was refused, so this terminates.
    new = {s.name: s for s in specs}
    order: list[FunctionSpec] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in done or name not in new:
            return
        done.add(name)
        for callee in _user_calls(new[name], proposed):
            visit(callee)
        order.append(new[name])

    for spec in specs:
        visit(spec.name)
    return order
