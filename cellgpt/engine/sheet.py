"""The sheet: every cell, its aliases, the dependency graph and the run-state store, and the
structural edits on them (define, alias, remove, replace a formula).

Structural problems (syntax, unknown names, duplicates, cycles) are refused before anything
changes, so valid cells are never disturbed. An edit marks the cell and everything downstream
stale; recomputing is the runner's job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from cellgpt.engine.cells import Cell, CellSpec, check_cell_name
from cellgpt.engine.errors import (
    CycleError,
    DefinitionError,
    DuplicateNameError,
    UnknownNameError,
)
from cellgpt.engine.formula_compile import Evaluator, compile_formula
from cellgpt.engine.formula_parse import Formula, parse_formula
from cellgpt.engine.functions import FunctionLibrary
from cellgpt.engine.grad_functions import name_arguments
from cellgpt.engine.graph import DependencyGraph
from cellgpt.engine.limits import DEFAULT_LIMITS, Limits
from cellgpt.engine.store import MISSING, Status, ValueStore

Listener = Callable[[str], None]


class Sheet:
    """The tables every collaborator of a workbook shares. They are created once and only
    ever changed in place, so collaborators may hold them directly."""

    def __init__(self, library: FunctionLibrary, limits: Limits = DEFAULT_LIMITS) -> None:
        self.library = library
        self.limits = limits  # the budgets cells run under (the user may replace them)
        self.functions = library.impls()
        self.graph = DependencyGraph()
        self.cells: dict[str, Cell] = {}
        self.store = ValueStore()
        self.aliases: dict[str, str] = {}
        self.evictable: set[str] = set()  # cells with the `evict` hint
        self.listeners: list[Listener] = []
        self.user_functions: dict[str, Any] = {}  # function cells (user_functions.py)
        # Bumped by every change to a cell's formula, the cells or the aliases, for caches of
        # what the formulas say (fusion.ChainFinder).
        self.formula_version = 0
        # Every change announced to the listeners (and every extender set), counted; and the
        # last invalidation as (cell, count before, count after): how a replay of row-append
        # steps (replay.py) knows that nothing but its growing input changed since.
        self.changes = 0
        self.last_invalidation: tuple[str, int, int] | None = None

    # ------------------------------------------------------------------ names
    def resolve(self, name: str) -> str:
        target = self.aliases.get(name, name)
        if target not in self.cells:
            raise KeyError(f"no cell named {name!r}")
        return target

    def __contains__(self, name: str) -> bool:
        return self.aliases.get(name, name) in self.cells

    def notify(self, name: str) -> None:
        self.changes += 1
        for listener in self.listeners:
            listener(name)

    # ------------------------------------------------------------------ definitions
    def define_many(self, specs: Iterable[CellSpec], *, template: str | None = None) -> None:
        """Add several cells at once; they may reference each other in any order."""
        specs = list(specs)
        self.check_room(len(specs))
        parsed: dict[str, tuple[CellSpec, Formula]] = {}
        for spec in specs:
            check_cell_name(spec.name)
            self.check_not_library_name(spec.name, "cell")
            if spec.name in parsed or spec.name in self.cells or spec.name in self.aliases:
                raise DuplicateNameError(f"{spec.name!r} is defined twice")
            parsed[spec.name] = (spec, parse_formula(spec.formula, cell=spec.name))
        known = set(self.cells) | set(parsed)
        refs: dict[str, tuple[str, ...]] = {}
        for name, (_, formula) in parsed.items():
            refs[name] = self.check_names(name, formula, known)
        order = _order_new_cells(refs)
        for name in order:
            spec, formula = parsed[name]
            self._install(spec, formula, refs[name], template=template)
        for name in order:
            self._register_aliases(self.cells[name])

    def check_room(self, new_cells: int) -> None:
        """Refuse cells past the workbook's cell budget (blocks count once per instance)."""
        limit = self.limits.max_cells
        if len(self.cells) + new_cells > limit:
            raise DefinitionError(
                f"{len(self.cells) + new_cells:,} cells would pass the workbook's budget of "
                f"{limit:,} cells (Limits.max_cells)"
            )

    def check_not_library_name(self, name: str, what: str) -> None:
        """A cell or alias named like a library function or constant would shadow it (or be
        shadowed by it) in every formula: refuse it where names are defined."""
        if name in self.library.functions:
            raise DefinitionError(f"{what} {name!r}: the name of a library function")
        if name in self.library.constants:
            raise DefinitionError(f"{what} {name!r}: the name of a library constant")
        if name in self.user_functions:
            raise DefinitionError(f"{what} {name!r}: the name of a function cell")

    def check_names(self, cell: str, formula: Formula, known: set[str]) -> tuple[str, ...]:
        """The cells a formula reads (aliases resolved); refuses unknown names and functions."""
        for fname in formula.functions:
            if fname not in self.functions:
                raise UnknownNameError(f"cell {cell!r}: unknown function {fname!r}")
        refs: list[str] = []
        for name in formula.names:
            target = self.aliases.get(name, name)
            if target in known:
                refs.append(target)
            elif name in self.library.constants:
                continue
            else:
                hint = ""
                base = name.rsplit(".", 1)[0]
                if "." in name and (base in known or base in self.aliases):
                    hint = " (attribute access is not allowed; only dotted cell names)"
                raise UnknownNameError(f"cell {cell!r}: unknown name {name!r}{hint}")
        return tuple(dict.fromkeys(refs))

    def _compile(self, formula: Formula) -> Evaluator:
        # Cells are installed after the cells they read, so every reference resolves here.
        def resolve(name: str) -> tuple[str, Any]:
            target = self.aliases.get(name, name)
            if target in self.cells:
                return ("ref", target)
            return ("const", self.library.constants[name])

        def cell_named(name: str) -> str | None:
            target = self.aliases.get(name, name)
            return target if target in self.cells else None

        # grad(loss, w1) is handed the cells' names, not their values (grad_functions.py)
        return compile_formula(name_arguments(formula, cell_named), resolve, self.functions)

    def _install(
        self, spec: CellSpec, formula: Formula, refs: tuple[str, ...], *, template: str | None
    ) -> None:
        evaluator = self._compile(formula)
        cell = Cell(
            spec.name,
            spec.formula,
            formula,
            evaluator,
            refs,
            spec.doc,
            dict(spec.hints),
            template=template,
        )
        self.graph.add(spec.name, refs)
        self.cells[spec.name] = cell
        self.formula_version += 1
        self.store.add(spec.name)
        if cell.hints.get("evict"):
            self.evictable.add(spec.name)
        self.notify(spec.name)

    def _register_aliases(self, cell: Cell) -> None:
        aliases = cell.hints.get("alias", ())
        for alias in (aliases,) if isinstance(aliases, str) else aliases:
            self.alias(alias, cell.name)

    def alias(self, alias: str, target: str) -> None:
        """Make `alias` another name for the cell `target` (lookups only)."""
        self.check_not_library_name(alias, "alias")
        if alias in self.cells or (alias in self.aliases and self.aliases[alias] != target):
            raise DuplicateNameError(f"alias {alias!r} is already a name")
        if target not in self.cells:
            raise UnknownNameError(f"alias {alias!r}: unknown cell {target!r}")
        self.aliases[alias] = target
        self.formula_version += 1

    def remove(self, name: str) -> None:
        """Delete a cell nobody reads."""
        name = self.resolve(name)
        children = self.graph.children(name)
        if children:
            raise DefinitionError(f"cannot remove {name!r}: read by {', '.join(sorted(children))}")
        self.graph.remove(name)
        del self.cells[name]
        self.store.remove(name)
        self.evictable.discard(name)
        for alias in [a for a, t in self.aliases.items() if t == name]:
            del self.aliases[alias]
        self.formula_version += 1
        self.notify(name)

    def replace_formula(self, name: str, text: str) -> None:
        """Give an existing cell new formula text; refuses (changing nothing) on any problem."""
        cell = self.cells[name]
        formula = parse_formula(text, cell=name)
        refs = self.check_names(name, formula, set(self.cells))
        cycle = self.graph.find_cycle(name, refs)
        if cycle:
            raise CycleError(cycle)
        evaluator = self._compile(formula)
        self.graph.set_parents(name, refs)
        was_input = cell.formula is None or cell.formula.is_literal
        cell.source, cell.formula, cell.evaluator, cell.refs = text, formula, evaluator, refs
        cell.input_value = MISSING
        if not (was_input and formula.is_literal):  # a new input value changes no formula
            self.formula_version += 1  # shape (generation sets one per token)
        self.invalidate(name)

    # ------------------------------------------------------------------ staleness
    def invalidate(self, name: str) -> None:
        """Mark a cell and everything downstream stale. Pinned cells stop the wave: their value
        does not depend on their inputs."""
        before = self.changes
        states, cells, children = self.store.states, self.cells, self.graph.children
        stale = Status.STALE
        root = states[name]
        root.status, root.tail = stale, None
        changed = [name]
        stack = list(children(name))  # generation walks ~400 cells per token: a tight loop
        while stack:
            n = stack.pop()
            state = states[n]
            if state.status is stale:
                continue  # already stale, and so is everything after it: nothing to walk
            state.status, state.tail = stale, None
            changed.append(n)
            if not cells[n].pinned:
                stack.extend(children(n))
        for n in changed:
            self.notify(n)
        self.last_invalidation = (name, before, self.changes)


def _order_new_cells(refs: dict[str, tuple[str, ...]]) -> list[str]:
    """Order new cells so each comes after the new cells it reads; refuse cycles."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = visiting, 2 = done
    for root in refs:
        if state.get(root) == 2:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = []
        while stack:
            node, i = stack.pop()
            if i == 0:
                if state.get(node) == 2:
                    continue
                state[node] = 1
                path.append(node)
            deps = [r for r in refs[node] if r in refs]
            if i < len(deps):
                stack.append((node, i + 1))
                dep = deps[i]
                if state.get(dep) == 1:
                    cycle = [*path[path.index(dep) :], dep]
                    raise CycleError(cycle)
                if state.get(dep) != 2:
                    stack.append((dep, 0))
            else:
                state[node] = 2
                path.pop()
                order.append(node)
    return order
