"""The workbook: cells + dependency graph + value store.

Lazy by default: an edit marks the cell and its descendants stale; `run(name)` recomputes the
stale ancestors of `name` and then `name`; `run()` recomputes everything stale. Structural
problems (syntax, unknown names, duplicates, cycles) are refused before anything changes, so
valid cells are never disturbed. Run-time problems live in the failing cell; its dependents are
"blocked by" it and nothing else is affected.

Evictable cells (hint `evict=True`: big intermediates that are cheap to recompute) give their
value up as soon as every cell that reads them is up to date; they stay FRESH, and reading one
(`run(name)`, `wb[name]`, `table`) recomputes it from its kept inputs without touching the
cells after it. The formula must be deterministic (the same inputs give the same value).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from cellgpt.engine.append import Extender, RowTail, keep_for_compare, prefix_rows
from cellgpt.engine.errors import (
    CellError,
    CellEvalError,
    CycleError,
    DefinitionError,
    DuplicateNameError,
    EngineError,
    ErrorInfo,
    FormulaError,
    UnknownNameError,
)
from cellgpt.engine.formula import Evaluator, Formula, compile_formula, parse_formula
from cellgpt.engine.functions import FunctionLibrary, core
from cellgpt.engine.graph import DependencyGraph
from cellgpt.engine.store import MISSING, CellState, Status, ValueStore

if TYPE_CHECKING:
    import pandas as pd

    from cellgpt.engine.io import WorkbookDocument

Listener = Callable[[str], None]


class RunCancelled(EngineError):
    """A run stopped early because its cancel callback said so."""


@dataclass
class CellSpec:
    """What a workbook file (or a caller) says about one cell, before it is registered."""

    name: str
    formula: str
    doc: str = ""
    hints: dict[str, Any] = field(default_factory=dict)


@dataclass
class Template:
    """A block of cells written once and instantiated `count` times: instance i's cells are
    named `{prefix}{i}.{local}`. Inside the template, `prev` is the previous instance's
    `output` cell (the `input` cell for instance 0) and `i` is the instance number. The last
    instance's output is exposed as the cell `{prefix}.out`."""

    prefix: str
    count: str
    input: str
    output: str
    cells: list[CellSpec]
    doc: str = ""
    prev_name: str = "prev"
    index_name: str = "i"
    instances: int = -1  # -1: not instantiated yet

    @property
    def out_name(self) -> str:
        return f"{self.prefix}.out"

    def instance_name(self, i: int, local: str) -> str:
        return f"{self.prefix}{i}.{local}"


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


class Workbook:
    def __init__(self, library: FunctionLibrary | None = None, *, doc: str = "") -> None:
        self.library = library or core
        self.doc = doc
        self._functions = self.library.impls()
        self._graph = DependencyGraph()
        self._cells: dict[str, Cell] = {}
        self._store = ValueStore()
        self._aliases: dict[str, str] = {}
        self._templates: dict[str, Template] = {}
        self._overrides: dict[
            str, str
        ] = {}  # instance cell -> formula that replaces the template's
        self._listeners: list[Listener] = []
        self.document: WorkbookDocument | None = None
        self.evaluations = 0  # total cell evaluations, for tests and benchmarks
        self._evictable: set[str] = set()  # cells with the `evict` hint

    # ------------------------------------------------------------------ definitions
    def define(
        self, name: str, formula: str, *, doc: str = "", hints: Mapping[str, Any] | None = None
    ) -> None:
        """Add one cell. Raises (changing nothing) on a bad formula, unknown name or duplicate."""
        self.define_many([CellSpec(name, formula, doc, dict(hints or {}))])

    def define_many(self, specs: Iterable[CellSpec], *, template: str | None = None) -> None:
        """Add several cells at once; they may reference each other in any order."""
        specs = list(specs)
        parsed: dict[str, tuple[CellSpec, Formula]] = {}
        for spec in specs:
            _check_cell_name(spec.name)
            if spec.name in parsed or spec.name in self._cells or spec.name in self._aliases:
                raise DuplicateNameError(f"{spec.name!r} is defined twice")
            parsed[spec.name] = (spec, parse_formula(spec.formula, cell=spec.name))
        known = set(self._cells) | set(parsed)
        refs: dict[str, tuple[str, ...]] = {}
        for name, (_, formula) in parsed.items():
            refs[name] = self._check_names(name, formula, known)
        order = _order_new_cells(refs)
        for name in order:
            spec, formula = parsed[name]
            self._install(spec, formula, refs[name], template=template)
        for name in order:
            self._register_aliases(self._cells[name])

    def _check_names(self, cell: str, formula: Formula, known: set[str]) -> tuple[str, ...]:
        for fname in formula.functions:
            if fname not in self._functions:
                raise UnknownNameError(f"cell {cell!r}: unknown function {fname!r}")
        refs: list[str] = []
        for name in formula.names:
            target = self._aliases.get(name, name)
            if target in known:
                refs.append(target)
            elif name in self.library.constants:
                continue
            else:
                hint = ""
                base = name.rsplit(".", 1)[0]
                if "." in name and (base in known or base in self._aliases):
                    hint = " (attribute access is not allowed; only dotted cell names)"
                raise UnknownNameError(f"cell {cell!r}: unknown name {name!r}{hint}")
        return tuple(dict.fromkeys(refs))

    def _compile(self, formula: Formula) -> Evaluator:
        # Cells are installed after the cells they read, so every reference resolves here.
        def resolve(name: str) -> tuple[str, Any]:
            target = self._aliases.get(name, name)
            if target in self._cells:
                return ("ref", target)
            return ("const", self.library.constants[name])

        return compile_formula(formula, resolve, self._functions)

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
        self._graph.add(spec.name, refs)
        self._cells[spec.name] = cell
        self._store.add(spec.name)
        if cell.hints.get("evict"):
            self._evictable.add(spec.name)
        self._notify(spec.name)

    def _register_aliases(self, cell: Cell) -> None:
        aliases = cell.hints.get("alias", ())
        for alias in (aliases,) if isinstance(aliases, str) else aliases:
            self.alias(alias, cell.name)

    def alias(self, alias: str, target: str) -> None:
        """Make `alias` another name for the cell `target` (lookups only)."""
        if alias in self._cells or (alias in self._aliases and self._aliases[alias] != target):
            raise DuplicateNameError(f"alias {alias!r} is already a name")
        if target not in self._cells:
            raise UnknownNameError(f"alias {alias!r}: unknown cell {target!r}")
        self._aliases[alias] = target

    def remove(self, name: str) -> None:
        """Delete a cell nobody reads."""
        name = self.resolve(name)
        children = self._graph.children(name)
        if children:
            raise DefinitionError(f"cannot remove {name!r}: read by {', '.join(sorted(children))}")
        self._graph.remove(name)
        del self._cells[name]
        self._store.remove(name)
        self._evictable.discard(name)
        for alias in [a for a, t in self._aliases.items() if t == name]:
            del self._aliases[alias]
        self._notify(name)

    def set_formula(self, name: str, text: str) -> None:
        """Replace a cell's formula. On any problem the old formula stays and nothing changes."""
        name = self.resolve(name)
        cell = self._cells[name]
        if cell.template is not None and cell.template_source is None:
            raise DefinitionError(f"{name!r} is wired by its block template and cannot be edited")
        self._replace_formula(name, text)
        if cell.template is not None:
            if text == cell.template_source:
                self._overrides.pop(name, None)
            else:
                self._overrides[name] = text

    def _replace_formula(self, name: str, text: str) -> None:
        cell = self._cells[name]
        formula = parse_formula(text, cell=name)
        refs = self._check_names(name, formula, set(self._cells))
        cycle = self._graph.find_cycle(name, refs)
        if cycle:
            raise CycleError(cycle)
        evaluator = self._compile(formula)
        self._graph.set_parents(name, refs)
        cell.source, cell.formula, cell.evaluator, cell.refs = text, formula, evaluator, refs
        cell.input_value = MISSING
        self._invalidate(name)

    def reset_formula(self, name: str) -> None:
        """Drop a block instance's own formula and go back to the template's."""
        name = self.resolve(name)
        cell = self._cells[name]
        if cell.template_source is None:
            raise DefinitionError(f"{name!r} is not part of a block template")
        self.set_formula(name, cell.template_source)

    def set(self, name: str, value: Any) -> None:
        """Give an input cell a new value."""
        name = self.resolve(name)
        cell = self._cells[name]
        if not cell.is_input:
            raise DefinitionError(
                f"{name!r} is computed by a formula; use set_formula() to change it or pin() to fix its value"
            )
        literal = _literal_text(value)
        if literal is not None:
            self.set_formula(name, literal)
            return
        cell.source, cell.formula, cell.evaluator = None, None, None
        cell.input_value = value
        self._invalidate(name)

    def pin(self, name: str, value: Any = MISSING) -> None:
        """Fix a cell's value (an ablation, a patched activation) without losing its formula.
        With no value, pin the current one."""
        name = self.resolve(name)
        cell = self._cells[name]
        if value is MISSING:
            value = self.run(name)
        cell.pinned, cell.pin_value = True, value
        self._invalidate(name)

    def unpin(self, name: str) -> None:
        name = self.resolve(name)
        cell = self._cells[name]
        cell.pinned, cell.pin_value = False, MISSING
        self._invalidate(name)

    def set_extender(self, name: str, extender: Extender | None) -> None:
        """Give a cell a row-append variant of its current formula (see append.py), used when
        its inputs only gained rows. Editing the formula drops it."""
        cell = self._cells[self.resolve(name)]
        cell.extender, cell.extender_source = extender, cell.source if extender else None

    def extender(self, name: str) -> Extender | None:
        """The cell's row-append variant, if one is registered for its current formula."""
        cell = self._cells[self.resolve(name)]
        return cell.extender if cell.extender_source == cell.source else None

    # ------------------------------------------------------------------ templates
    def define_template(self, template: Template) -> None:
        """Register a block template; it is instantiated as soon as its count is known."""
        if template.prefix in self._templates:
            raise DuplicateNameError(f"block {template.prefix!r} is defined twice")
        for ref, what in ((template.count, "count"), (template.input, "input")):
            if ref not in self:
                raise UnknownNameError(f"block {template.prefix!r}: unknown {what} cell {ref!r}")
        locals_ = [c.name for c in template.cells]
        if template.output not in locals_:
            raise UnknownNameError(
                f"block {template.prefix!r}: output {template.output!r} is not one of its cells"
            )
        # Check every template formula once, in template scope, before anything is added.
        scope = set(locals_) | {template.prev_name, template.index_name} | set(self._cells)
        for spec in template.cells:
            _check_cell_name(spec.name)
            formula = parse_formula(spec.formula, cell=f"{template.prefix}.{spec.name}")
            for fname in formula.functions:
                if fname not in self._functions:
                    raise UnknownNameError(
                        f"cell {template.prefix + '.' + spec.name!r}: unknown function {fname!r}"
                    )
            for ref in formula.names:
                if (
                    ref not in scope
                    and self._aliases.get(ref) not in self._cells
                    and ref not in self.library.constants
                ):
                    raise UnknownNameError(
                        f"cell {template.prefix + '.' + spec.name!r}: unknown name {ref!r}"
                    )
        self._templates[template.prefix] = template
        self.define(
            template.out_name, template.count, doc=f"Output of the last {template.prefix} block."
        )
        self._cells[template.out_name].template = template.prefix
        self._sync_template(template)

    def template_refs(self, template: Template) -> set[str]:
        """Names a template reads from outside itself (its count, input and globals)."""
        from cellgpt.engine.formula import parse_formula as parse

        local = {c.name for c in template.cells} | {template.prev_name, template.index_name}
        refs = {template.count, template.input}
        for spec in template.cells:
            refs |= {n for n in parse(spec.formula, cell=spec.name).names if n not in local}
        return {r for r in refs if r not in self.library.constants}

    def templates(self) -> list[Template]:
        return list(self._templates.values())

    def _sync_template(self, template: Template) -> bool:
        """Make the number of instances match the count cell. True if the structure changed."""
        count_state = self._store[self.resolve(template.count)]
        if count_state.status not in (Status.FRESH, Status.PINNED):
            try:
                self._run_plan(self._plan(self.resolve(template.count)), None, None, sync=False)
            except RunCancelled:
                return False
            count_state = self._store[self.resolve(template.count)]
        value = count_state.value if count_state.status in (Status.FRESH, Status.PINNED) else None
        if not _is_count(value):
            if value is not None:
                count_state.status = Status.ERROR
                count_state.error = ErrorInfo(
                    "eval",
                    f"block {template.prefix!r} needs a whole number of blocks (0-4096), got {value!r}",
                )
            return False
        n = int(value)
        if n == template.instances:
            return False
        old = max(template.instances, 0)
        for i in range(n, old):  # fewer blocks: drop from the end
            self._check_removable(template, i)
        # Detach the output cell while instances come and go, then point it at the last one.
        self._replace_formula(template.out_name, template.input)
        for i in range(old - 1, n - 1, -1):
            names = {template.instance_name(i, s.name) for s in template.cells}
            for name in reversed(self._graph.topo_order(names)):
                self.remove(name)
        for i in range(old, n):
            self._instantiate(template, i)
        if n > 0:
            self._replace_formula(template.out_name, template.instance_name(n - 1, template.output))
        template.instances = n
        return True

    def _check_removable(self, template: Template, i: int) -> None:
        names = {template.instance_name(i, s.name) for s in template.cells}
        for name in names:
            outside = self._graph.children(name) - names - {template.out_name}
            outside = {c for c in outside if self._cells[c].template != template.prefix}
            if outside:
                raise DefinitionError(
                    f"cannot drop block {template.prefix}{i}: {sorted(outside)[0]!r} reads {name!r}"
                )

    def _instantiate(self, template: Template, i: int) -> None:
        prev = template.input if i == 0 else template.instance_name(i - 1, template.output)
        mapping = {s.name: template.instance_name(i, s.name) for s in template.cells}
        mapping[template.prev_name] = prev
        mapping[template.index_name] = str(i)
        specs: list[CellSpec] = []
        generated: dict[str, str] = {}
        for spec in template.cells:
            name = mapping[spec.name]
            text = parse_formula(spec.formula, cell=name).rename(mapping)
            generated[name] = text
            hints = dict(spec.hints)
            if "alias" in hints:
                aliases = (hints["alias"],) if isinstance(hints["alias"], str) else hints["alias"]
                hints["alias"] = tuple(_fill_alias(a, i, template.prefix) for a in aliases)
            hints.setdefault("block", f"{template.prefix}{i}")
            specs.append(CellSpec(name, text, spec.doc, hints))
        self.define_many(specs, template=template.prefix)
        for name, text in generated.items():
            self._cells[name].template_source = text
        for name in generated:
            if name in self._overrides:
                self._replace_formula(name, self._overrides[name])

    def set_override(self, name: str, formula: str) -> None:
        """Give one block instance its own formula (applied now, or when it is instantiated)."""
        if name in self._cells:
            self.set_formula(name, formula)
        else:  # applied when the block instance is created
            parse_formula(formula, cell=name)
            self._overrides[name] = formula

    def overrides(self) -> dict[str, str]:
        return dict(self._overrides)

    # ------------------------------------------------------------------ running
    def run(
        self,
        name: str | None = None,
        *,
        progress: Callable[[int, int, str], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> Any:
        """Recompute what is stale: the ancestors of `name` and `name` itself, or with no name
        every stale cell. Returns the value of `name` (raises CellError if it failed)."""
        target = self.resolve(name) if name is not None else None
        ran = False
        try:
            while True:
                plan = self._plan(target)
                ran = ran or bool(plan)
                if not self._run_plan(plan, progress, cancel, sync=True, keep=target):
                    break
        finally:
            if ran:  # drop what is no longer needed (not the value asked for)
                self._evict_done(list(self._evictable), keep=target)
        if target is None:
            return None
        return self._value_or_raise(target)

    def rerun(self, name: str) -> Any:
        """Recompute one cell from its inputs' current values, even if it is fresh."""
        name = self.resolve(name)
        for parent in self._plan(name):
            if parent != name:
                self._evaluate(parent)
        self._invalidate(name)
        self._evaluate(name)
        self._evict_done(list(self._evictable), keep=name)
        return self._value_or_raise(name)

    def run_all(self, **kwargs: Any) -> None:
        self.run(None, **kwargs)

    def __getitem__(self, name: str) -> Any:
        return self.run(name)

    def _value_or_raise(self, name: str) -> Any:
        state = self._store[name]
        if state.status in (Status.ERROR, Status.BLOCKED):
            error = state.error or ErrorInfo("eval", "failed")
            root = self._store[error.blocked_by].error if error.blocked_by else None
            if root is not None:  # say why the blocker failed, not just who it is
                error = ErrorInfo(
                    "blocked", f"{error.message}: {root.message}", blocked_by=error.blocked_by
                )
            raise CellError(name, error)
        cell = self._cells[name]
        if cell.pinned:
            return cell.pin_value
        if state.evicted:
            self._restore(name)
            return self._value_or_raise(name)
        return state.value

    def _plan(self, target: str | None) -> list[str]:
        """The stale cells `target` needs, in evaluation order. A fresh cell's ancestors are
        all fresh (an edit invalidates everything downstream), so the search stops there."""
        if target is None:
            return [n for n in self._graph.topo_order() if self._store[n].status == Status.STALE]
        needed: set[str] = set()
        stack = [target]
        while stack:
            name = stack.pop()
            if name in needed or self._store[name].status != Status.STALE:
                continue
            needed.add(name)
            stack.extend(self._graph.parents(name))
        if len(needed) <= 1:
            return list(needed)
        return self._graph.topo_order(needed)

    def _run_plan(
        self,
        plan: list[str],
        progress: Callable[[int, int, str], None] | None,
        cancel: Callable[[], bool] | None,
        *,
        sync: bool,
        keep: str | None = None,
    ) -> bool:
        """Evaluate cells in order; returns True if a template changed shape mid-way (the
        caller must plan again). Evictable inputs are dropped as soon as their readers are
        done (so at most a few are held at once), except `keep`."""
        counts = {self.resolve(t.count): t for t in self._templates.values()} if sync else {}
        for done, name in enumerate(plan):
            if cancel is not None and cancel():
                raise RunCancelled(f"run cancelled before {name!r}")
            if progress is not None:
                progress(done, len(plan), name)
            self._evaluate(name)
            if self._evictable:
                self._evict_done(self._graph.parents(name), keep=keep)
            template = counts.get(name)
            if template is not None and self._sync_template(template):
                return True
        if progress is not None:
            progress(len(plan), len(plan), "")
        return False

    def _evaluate(self, name: str) -> None:
        cell = self._cells[name]
        state = self._store[name]
        state.runs += 1
        self.evaluations += 1
        if cell.pinned:
            self._store_value(state, cell.pin_value, 0.0, Status.PINNED)
            state.appended_from = state.input_versions = None
            return
        blocker = self._blocker(cell)
        if blocker is not None:
            state.status, state.value = Status.BLOCKED, MISSING
            state.appended_from = state.input_versions = state.tail = None
            state.evicted = False
            state.error = ErrorInfo("blocked", f"blocked by {blocker}", blocked_by=blocker)
            self._notify(name)
            return
        prev, grown = state.value, self._grown_inputs(cell, state)
        if grown is None and not keep_for_compare(prev):
            prev = MISSING
        evicted = state.evicted
        state.value, state.tail = MISSING, None  # free the stale value (unless needed) first
        state.status = Status.RUNNING
        self._notify(name)
        # Extenders that know RowTail may get an evicted input's new rows instead of its value.
        tails = grown is not None and hasattr(cell.extender, "new_rows")
        start = time.perf_counter()
        try:
            env = {ref: self._input(ref, tails=tails) for ref in cell.refs}
            if evicted and grown is not None:
                # No previous value to extend: keep just the new rows, for the cells after it.
                tail = self._new_rows(cell, env, grown)
                if tail is not None:
                    self._store_tail(name, tail, grown, time.perf_counter() - start)
                    return
            value = self._extend(cell, prev, env, grown)
            if value is not None:
                appended = min(grown.values(), default=0) if grown else None
            else:
                if tails:  # the formula needs whole values
                    env = {ref: self._input(ref, tails=False) for ref in cell.refs}
                value = cell.input_value if cell.evaluator is None else cell.evaluator(env)
                appended = self._appended_rows(state, prev, value, env)
        except CellEvalError as exc:
            self._fail(state, name, ErrorInfo("eval", exc.message, exc.span))
            return
        except CellError as exc:  # an evicted input could not be recomputed
            state.status, state.value = Status.BLOCKED, MISSING
            state.appended_from = state.input_versions = None
            state.evicted = False
            state.error = ErrorInfo("blocked", f"blocked by {exc.name}", blocked_by=exc.name)
            self._notify(name)
            return
        except MemoryError:
            self._fail(state, name, ErrorInfo("eval", "out of memory"))
            return
        except Exception as exc:  # a library function bug: still the cell's problem only
            self._fail(state, name, ErrorInfo("eval", f"{type(exc).__name__}: {exc}"))
            return
        self._store_value(state, value, time.perf_counter() - start, Status.FRESH)
        state.appended_from = appended
        state.input_versions = {ref: self._store[ref].version for ref in cell.refs}
        self._notify(name)

    def _appended_rows(
        self, state: CellState, prev: Any, value: Any, env: dict[str, Any]
    ) -> int | None:
        """How many leading rows of `value` equal the previous value's (None: unknown)."""
        if prev is MISSING:
            return None
        seen = state.input_versions or {}
        for ref, ref_value in env.items():  # `x = y`: the input's record, without comparing
            if ref_value is value and seen.get(ref) == self._store[ref].version - 1:
                return self._store[ref].appended_from
        return prefix_rows(prev, value)

    def _grown_inputs(self, cell: Cell, state: CellState) -> dict[str, int] | None:
        """{input: rows it had} for the inputs that changed since this cell's value was
        computed, if each changed exactly once and only by appending rows; else None."""
        if cell.extender is None or cell.extender_source != cell.source or cell.pinned:
            return None
        if (state.value is MISSING and not state.evicted) or state.input_versions is None:
            return None
        grown: dict[str, int] = {}
        for ref in cell.refs:
            ref_state = self._store[ref]
            seen = state.input_versions.get(ref)
            if ref_state.version == seen:
                continue
            if seen is None or ref_state.version != seen + 1 or ref_state.appended_from is None:
                return None
            grown[ref] = ref_state.appended_from
        return grown or None

    def _extend(
        self, cell: Cell, prev: Any, env: dict[str, Any], grown: dict[str, int] | None
    ) -> Any:
        """The value from the cell's row-append variant, or None (use the formula)."""
        if grown is None or cell.extender is None or cell.evaluator is None or prev is MISSING:
            return None
        try:
            return cell.extender(prev, env, grown, cell.evaluator)
        except (ValueError, IndexError, TypeError):  # shapes did not line up: recompute
            return None

    def _current(self, name: str) -> Any:
        cell = self._cells[name]
        return cell.pin_value if cell.pinned else self._store[name].value

    # ------------------------------------------------------------------ evictable cells
    def _input(self, name: str, *, tails: bool = False) -> Any:
        """An input's value for a reader, recomputing it if it was evicted (with `tails`, an
        evicted input's kept new rows, if any, stand in for it)."""
        state = self._store[name]
        if state.evicted and not self._cells[name].pinned:
            if tails and state.tail is not None:
                return state.tail
            self._restore(name)
        return self._current(name)

    def _restore(self, name: str) -> None:
        """Recompute an evicted value from its inputs. Same inputs and a deterministic formula
        give the same value, so its version stays and the cells after it stay fresh."""
        cell, state = self._cells[name], self._store[name]
        state.runs += 1
        self.evaluations += 1
        try:
            env = {ref: self._input(ref) for ref in cell.refs}
            value = cell.input_value if cell.evaluator is None else cell.evaluator(env)
        except CellError:
            raise
        except Exception as exc:  # e.g. out of memory: the cell fails, its readers go stale
            message = exc.message if isinstance(exc, CellEvalError) else f"{type(exc).__name__}"
            error = ErrorInfo("eval", f"recomputing the dropped value: {message}")
            for child in self._graph.children(name):
                self._invalidate(child)
            self._fail(state, name, error)
            raise CellError(name, error) from exc
        if isinstance(value, np.ndarray) and value.flags.writeable:
            value.flags.writeable = False
        state.value, state.tail, state.evicted = value, None, False
        self._notify(name)

    def _new_rows(self, cell: Cell, env: dict[str, Any], grown: dict[str, int]) -> RowTail | None:
        """Just the new rows of an evicted cell whose inputs only grew, or None."""
        new_rows = getattr(cell.extender, "new_rows", None)
        if new_rows is None or cell.evaluator is None:
            return None
        try:
            return new_rows(env, grown, cell.evaluator)
        except (ValueError, IndexError, TypeError):  # shapes did not line up: recompute
            return None

    def _store_tail(self, name: str, tail: RowTail, grown: dict[str, int], seconds: float) -> None:
        """An evicted cell whose inputs only grew: it keeps just its new rows (still FRESH)."""
        state = self._store[name]
        if isinstance(tail.rows, np.ndarray) and tail.rows.flags.writeable:
            tail.rows.flags.writeable = False
        self._store_value(state, MISSING, seconds, Status.FRESH)
        state.evicted, state.tail = True, tail
        state.appended_from = min(grown.values())
        state.input_versions = {ref: self._store[ref].version for ref in self._cells[name].refs}
        self._notify(name)

    def _evict_done(self, names: Iterable[str], *, keep: str | None) -> None:
        """Drop the values of evictable cells among `names` whose readers are all up to date."""
        for name in names:
            if name not in self._evictable or name == keep or self._cells[name].pinned:
                continue
            state = self._store[name]
            if state.status != Status.FRESH or (state.value is MISSING and state.tail is None):
                continue
            children = self._graph.children(name)
            if all(self._store[c].status in (Status.FRESH, Status.PINNED) for c in children):
                state.value, state.tail, state.evicted = MISSING, None, True
                self._notify(name)

    def evicted(self) -> list[str]:
        """Cells whose value was dropped to save memory (reading one recomputes it)."""
        return [n for n in self.cells() if n in self._evictable and self._store[n].evicted]

    def _store_value(self, state: CellState, value: Any, duration: float, status: Status) -> None:
        if isinstance(value, np.ndarray) and value.flags.writeable:
            value.flags.writeable = False  # a cell's value is shared with its readers
        state.value, state.status, state.error = value, status, None
        state.evicted, state.tail = False, None
        state.duration = duration
        state.version += 1

    def _fail(self, state: CellState, name: str, error: ErrorInfo) -> None:
        state.status, state.error, state.value = Status.ERROR, error, MISSING
        state.appended_from = state.input_versions = state.tail = None
        state.evicted = False
        self._notify(name)

    def _blocker(self, cell: Cell) -> str | None:
        for ref in cell.refs:
            st = self._store[ref]
            if st.status == Status.ERROR:
                return ref
            if st.status == Status.BLOCKED:
                return st.error.blocked_by if st.error and st.error.blocked_by else ref
        return None

    def _invalidate(self, name: str) -> None:
        """Mark a cell and everything downstream stale. Pinned cells stop the wave: their value
        does not depend on their inputs."""
        stack = [name]
        seen: set[str] = set()
        changed: list[str] = []
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            state = self._store[n]
            if n != name and state.status == Status.STALE:
                continue  # already stale, and so is everything after it: nothing to walk
            state.status, state.tail = Status.STALE, None
            changed.append(n)
            if n != name and self._cells[n].pinned:
                continue
            stack.extend(self._graph.children(n))
        for n in changed:
            self._notify(n)

    # ------------------------------------------------------------------ queries
    def resolve(self, name: str) -> str:
        target = self._aliases.get(name, name)
        if target not in self._cells:
            raise KeyError(f"no cell named {name!r}")
        return target

    def __contains__(self, name: str) -> bool:
        return self._aliases.get(name, name) in self._cells

    def cells(self) -> list[str]:
        """All cell names, in a deterministic dependency order (definition order on ties)."""
        return self._graph.topo_order()

    def aliases(self, name: str | None = None) -> dict[str, str]:
        if name is None:
            return dict(self._aliases)
        target = self.resolve(name)
        return {a: t for a, t in self._aliases.items() if t == target}

    def cell(self, name: str) -> Cell:
        return self._cells[self.resolve(name)]

    def status(self, name: str) -> Status:
        return self._store[self.resolve(name)].status

    def state(self, name: str) -> CellState:
        return self._store[self.resolve(name)]

    def value(self, name: str, default: Any = None) -> Any:
        """The current value without running anything (may be stale); default if none."""
        name = self.resolve(name)
        value = self._current(name)
        return default if value is MISSING else value

    def precedents(self, name: str) -> tuple[str, ...]:
        return self._graph.parents(self.resolve(name))

    def dependents(self, name: str) -> tuple[str, ...]:
        name = self.resolve(name)
        return tuple(sorted(self._graph.children(name), key=self._graph.index))

    def descendants(self, name: str) -> set[str]:
        return self._graph.descendants(self.resolve(name))

    def ancestors(self, name: str) -> set[str]:
        return self._graph.ancestors(self.resolve(name))

    def stale(self) -> list[str]:
        return [n for n in self.cells() if self._store[n].status == Status.STALE]

    def info(self, name: str) -> CellInfo:
        name = self.resolve(name)
        cell, state = self._cells[name], self._store[name]
        shown = CellState(value=self._current(name))
        return CellInfo(
            name=name,
            formula=cell.source,
            doc=cell.doc,
            hints=dict(cell.hints),
            status=state.status,
            error=state.error,
            shape=shown.shape,
            dtype=shown.dtype,
            duration=state.duration,
            version=state.version,
            runs=state.runs,
            pinned=cell.pinned,
            is_input=cell.is_input,
            template=cell.template,
            overridden=cell.overridden,
            precedents=self.precedents(name),
            dependents=self.dependents(name),
            evicted=state.evicted and state.status == Status.FRESH and not cell.pinned,
        )

    def table(self, name: str) -> pd.DataFrame:
        """The cell's value as a DataFrame, labelled by the cells its hints name."""
        import pandas as pd

        name = self.resolve(name)
        value = self.run(name)
        cell = self._cells[name]
        arr = value if isinstance(value, np.ndarray) else np.asarray(value, dtype=object)
        if arr.ndim == 0:
            arr = arr.reshape(1, 1)
        elif arr.ndim == 1:
            arr = arr.reshape(-1, 1)
        elif arr.ndim > 2:
            arr = arr.reshape(-1, arr.shape[-1])
        index = self._labels(cell.hints.get("rows"), arr.shape[0])
        columns = self._labels(cell.hints.get("cols"), arr.shape[1])
        return pd.DataFrame(arr, index=index, columns=columns)

    def _labels(self, label_cell: str | None, n: int) -> list[Any] | None:
        """Labels from the cell (or library constant) a display hint names."""
        if label_cell in self.library.constants:
            labels = list(self.library.constants[label_cell])
        elif label_cell and label_cell in self:
            labels = list(self.run(label_cell))
        else:
            return None
        if len(labels) != n:
            return None
        # Repeated labels (the same token twice) are made unique by position.
        return [f"{i}:{lab}" for i, lab in enumerate(labels)] if len(set(labels)) != n else labels

    # ------------------------------------------------------------------ events
    def subscribe(self, listener: Listener) -> None:
        """Call `listener(name)` whenever a cell's status, value or formula changes."""
        self._listeners.append(listener)

    def _notify(self, name: str) -> None:
        for listener in self._listeners:
            listener(name)

    # ------------------------------------------------------------------ files
    def save(self, path: str | None = None) -> None:
        """Write the workbook file atomically (only edited spans differ from the original)."""
        from cellgpt.engine.io import save_workbook

        save_workbook(self, path)


def _check_cell_name(name: str) -> None:
    parts = name.split(".")
    if not name or not all(p.isidentifier() for p in parts) or "__" in name:
        raise DefinitionError(f"invalid cell name {name!r}: use identifiers joined by dots")


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


def _literal_text(value: Any) -> str | None:
    """Formula text for a plain Python literal value, or None if it is not one."""
    if isinstance(value, bool | int | float | str | type(None)):
        text = repr(value)
    elif isinstance(value, list | tuple) and len(value) <= 10_000:
        if not all(isinstance(v, bool | int | float | str | type(None)) for v in value):
            return None
        text = repr(value)
    else:
        return None
    if text in ("inf", "-inf", "nan"):
        return None
    try:
        return text if parse_formula(text).is_literal else None
    except FormulaError:
        return None


def _is_count(value: Any) -> bool:
    return (
        isinstance(value, int | np.integer)
        and not isinstance(value, bool)
        and 0 <= int(value) <= 4096
    )


def _fill_alias(alias: str, i: int, prefix: str) -> str:
    """A block alias with its `{i}` and `{prefix}` placeholders filled in. Plain replacement,
    never str.format: an alias from a shared file could otherwise say `{i.__class__}`."""
    return alias.replace("{i}", str(i)).replace("{prefix}", prefix)
