"""The workbook: named formula cells with lazy recalculation, pins, per-cell errors and block
templates. `Workbook` is the public face; the work is done by small collaborators that share
one `Sheet` (cells, aliases, dependency graph, run state):

- `sheet.py`: structural edits (define, alias, remove, replace a formula), refused before
  anything changes when they are invalid; staleness propagation;
- `runner.py`: recomputing what is stale, evictable cells, row-append steps;
- `templates.py`: block templates, their instances and per-instance overrides;
- `tables.py`: a value as a labelled DataFrame;
- `workbook_file.py`: saving (loading is `loader.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from cellgpt.engine import stepping, tables
from cellgpt.engine.append import Extender
from cellgpt.engine.cells import Cell, CellInfo, CellSpec, literal_text
from cellgpt.engine.errors import DefinitionError
from cellgpt.engine.explain import Explanation, explain
from cellgpt.engine.function_def import FunctionSpec, parse_function_source
from cellgpt.engine.functions import FunctionLibrary, core
from cellgpt.engine.grad_functions import install as install_gradients
from cellgpt.engine.limits import DEFAULT_LIMITS, Limits
from cellgpt.engine.runner import Runner
from cellgpt.engine.sheet import Listener, Sheet
from cellgpt.engine.store import MISSING, CellState, Status
from cellgpt.engine.templates import Template, Templates
from cellgpt.engine.user_functions import FunctionCells
from cellgpt.engine.workbook_file import WorkbookDocument
from cellgpt.engine.workbook_save import save_workbook

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CellInfo", "CellSpec", "Template", "Workbook"]


class Workbook:
    def __init__(
        self,
        library: FunctionLibrary | None = None,
        *,
        doc: str = "",
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.library = library or core
        self.doc = doc
        self.document: WorkbookDocument | None = None  # the file it was loaded from / saved to
        self._sheet = Sheet(self.library, limits)
        self._runner = Runner(self._sheet)
        install_gradients(self._sheet, self._runner)  # grad(loss, w) reads this workbook's cells
        self._blocks = Templates(self._sheet, self._runner)
        self._functions = self._sheet.functions  # the table formulas are compiled against
        self._function_cells = FunctionCells(self._sheet)

    @property
    def limits(self) -> Limits:
        """The budgets cells run under (time per cell, bytes, cost, live values, cells)."""
        return self._sheet.limits

    @limits.setter
    def limits(self, limits: Limits) -> None:
        self._sheet.limits = limits
        self._sheet.changes += 1

    @property
    def evaluations(self) -> int:
        """Total cell evaluations, for tests and benchmarks."""
        return self._runner.evaluations

    # ------------------------------------------------------------------ definitions
    def define(
        self, name: str, formula: str, *, doc: str = "", hints: Mapping[str, Any] | None = None
    ) -> None:
        """Add one cell. Raises (changing nothing) on a bad formula, unknown name or duplicate."""
        self._sheet.define_many([CellSpec(name, formula, doc, dict(hints or {}))])

    def define_many(self, specs: Iterable[CellSpec], *, template: str | None = None) -> None:
        """Add several cells at once; they may reference each other in any order."""
        self._sheet.define_many(specs, template=template)

    def alias(self, alias: str, target: str) -> None:
        """Make `alias` another name for the cell `target` (lookups only)."""
        self._sheet.alias(alias, target)

    def remove(self, name: str) -> None:
        """Delete a cell nobody reads."""
        self._sheet.remove(name)

    def set_formula(self, name: str, text: str) -> None:
        """Replace a cell's formula. On any problem the old formula stays and nothing changes."""
        self._blocks.set_formula(self.resolve(name), text)

    def reset_formula(self, name: str) -> None:
        """Drop a block instance's own formula and go back to the template's."""
        cell = self.cell(name)
        if cell.template_source is None:
            raise DefinitionError(f"{cell.name!r} is not part of a block template")
        self.set_formula(cell.name, cell.template_source)

    def set(self, name: str, value: Any) -> None:
        """Give an input cell a new value."""
        cell = self.cell(name)
        if not cell.is_input:
            raise DefinitionError(
                f"{cell.name!r} is computed by a formula; use set_formula() to change it or pin() to fix its value"
            )
        literal = literal_text(value)
        if literal is not None:
            self.set_formula(cell.name, literal)
            return
        cell.source, cell.formula, cell.evaluator = None, None, None
        cell.input_value = value  # an input stays an input: no formula changed
        self._sheet.invalidate(cell.name)

    def pin(self, name: str, value: Any = MISSING) -> None:
        """Fix a cell's value (an ablation, a patched activation) without losing its formula.
        With no value, pin the current one."""
        cell = self.cell(name)
        if value is MISSING:
            value = self.run(cell.name)
        cell.pinned, cell.pin_value = True, value
        self._sheet.invalidate(cell.name)

    def unpin(self, name: str) -> None:
        cell = self.cell(name)
        cell.pinned, cell.pin_value = False, MISSING
        self._sheet.invalidate(cell.name)

    def set_extender(self, name: str, extender: Extender | None) -> None:
        """Give a cell a row-append variant of its current formula (see append.py), used when
        its inputs only gained rows. Editing the formula drops it."""
        cell = self.cell(name)
        cell.extender, cell.extender_source = extender, cell.source if extender else None
        self._sheet.changes += 1  # a recorded replay (replay.py) no longer stands

    def replay_appends(self, name: str) -> AbstractContextManager[Any]:
        """While inside, the runs that follow each append to the input `name` (generation)
        replay the steps the first such cycle took instead of re-planning every cell; any
        other change drops the replay (see replay.py). The values are the same either way."""
        return self._runner.replay_appends(self.resolve(name))

    def extender(self, name: str) -> Extender | None:
        """The cell's row-append variant, if one is registered for its current formula."""
        cell = self.cell(name)
        return cell.extender if cell.extender_source == cell.source else None

    # ------------------------------------------------------------------ function cells
    def define_function(self, source: str) -> str:
        """Add a function cell from its text, `def name(params): return <formula>` (an
        optional docstring first in the body); returns its name. Raises, changing nothing,
        on a bad definition, a taken name, recursion or a body that reads a cell."""
        spec = parse_function_source(source)
        self._function_cells.define_many([spec])
        return spec.name

    def define_functions(
        self, specs: Iterable[FunctionSpec], *, cell_names: Iterable[str] = ()
    ) -> None:
        """Add several parsed function cells at once (they may call each other);
        `cell_names` are cells still to be defined (a body reading one is named so)."""
        self._function_cells.define_many(specs, cell_names)

    def set_function(self, name: str, source: str) -> None:
        """Replace a function cell's definition (its name stays); every cell that calls it,
        directly or through other function cells, goes stale."""
        self._function_cells.redefine(name, parse_function_source(source))

    def remove_function(self, name: str) -> None:
        """Delete a function cell that no cell or function calls."""
        self._function_cells.remove(name)

    def functions(self) -> list[str]:
        """The names of the function cells, in definition order."""
        return self._function_cells.names()

    def function(self, name: str) -> FunctionSpec:
        """A function cell's definition: name, params, defaults, doc, body and source."""
        return self._function_cells.spec(name)

    def function_callers(self, name: str) -> set[str]:
        """The cells that call a function cell, directly or through other function cells
        (exactly those that go stale when it is redefined)."""
        self._function_cells.spec(name)
        return self._function_cells.callers([name])[1]

    # ------------------------------------------------------------------ templates
    def define_template(self, template: Template) -> None:
        """Register a block template; it is instantiated as soon as its count is known."""
        self._blocks.define(template)

    def template_refs(self, template: Template) -> set[str]:
        """Names a template reads from outside itself (its count, input and globals)."""
        return self._blocks.refs(template)

    def templates(self) -> list[Template]:
        return self._blocks.all()

    def set_override(self, name: str, formula: str) -> None:
        """Give one block instance its own formula (applied now, or when it is instantiated)."""
        self._blocks.set_override(name, formula)

    def overrides(self) -> dict[str, str]:
        return self._blocks.overrides()

    # ------------------------------------------------------------------ running
    def run(
        self,
        name: str | None = None,
        *,
        progress: Callable[[int, int, str], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> Any:
        """Recompute what is stale: the ancestors of `name` and `name` itself, or with no name
        every stale cell except on-demand ones (`cell(on_demand=True)`, such as GPT-2's
        `logits_all` and gradients: they run when named). Returns the value of `name`
        (raises CellError if it failed)."""
        target = self._sheet.resolve(name) if name is not None else None
        return self._runner.run(target, progress, cancel, self._blocks.watch())

    def rerun(self, name: str) -> Any:
        """Recompute one cell from its inputs' current values, even if it is fresh."""
        return self._runner.rerun(self._sheet.resolve(name))

    def run_all(self, **kwargs: Any) -> None:
        self.run(None, **kwargs)

    def __getitem__(self, name: str) -> Any:
        return self.run(name)

    # ------------------------------------------------------------------ stepping, explaining
    def next_step(self, target: str | None = None) -> str | None:
        """The stale cell a step would run next (topological order, toward `target`)."""
        return stepping.next_step(self, target)

    def step(self, target: str | None = None) -> stepping.Step | None:
        """Run just the next stale cell (toward `target`; see stepping.py); None when done."""
        return stepping.step(self, target)

    def explain(self, name: str, *, inline: Iterable[str] | None = None) -> Explanation:
        """The cell's formula as a tree of sub-expressions with their shapes, stats and
        previews, in evaluation order (see explain.py). Computes stale inputs first."""
        return explain(self, name, self._functions, inline=inline)

    def evicted(self) -> list[str]:
        """Cells whose value was dropped to save memory (reading one recomputes it)."""
        return self._runner.evicted()

    # ------------------------------------------------------------------ queries
    def resolve(self, name: str) -> str:
        return self._sheet.resolve(name)

    def __contains__(self, name: str) -> bool:
        return name in self._sheet

    def cells(self) -> list[str]:
        """All cell names, in a deterministic dependency order (definition order on ties)."""
        return self._sheet.graph.topo_order()

    def aliases(self, name: str | None = None) -> dict[str, str]:
        if name is None:
            return dict(self._sheet.aliases)
        target = self.resolve(name)
        return {a: t for a, t in self._sheet.aliases.items() if t == target}

    def cell(self, name: str) -> Cell:
        return self._sheet.cells[self.resolve(name)]

    def status(self, name: str) -> Status:
        return self._sheet.store[self.resolve(name)].status

    def state(self, name: str) -> CellState:
        return self._sheet.store[self.resolve(name)]

    def value(self, name: str, default: Any = None) -> Any:
        """The current value without running anything (may be stale); default if none."""
        value = self._runner.current(self.resolve(name))
        return default if value is MISSING else value

    def precedents(self, name: str) -> tuple[str, ...]:
        return self._sheet.graph.parents(self.resolve(name))

    def dependents(self, name: str) -> tuple[str, ...]:
        graph = self._sheet.graph
        return tuple(sorted(graph.children(self.resolve(name)), key=graph.index))

    def descendants(self, name: str) -> set[str]:
        return self._sheet.graph.descendants(self.resolve(name))

    def ancestors(self, name: str) -> set[str]:
        return self._sheet.graph.ancestors(self.resolve(name))

    def stale(self) -> list[str]:
        """Cells computed before whose inputs or formula changed since: their values are out
        of date. Cells never computed are `pending()`, not stale."""
        store = self._sheet.store
        return [n for n in self.cells() if store[n].status == Status.STALE and store[n].runs]

    def pending(self) -> list[str]:
        """Cells never computed yet: reading one, or `run()`, computes it."""
        store = self._sheet.store
        return [n for n in self.cells() if store[n].status == Status.STALE and not store[n].runs]

    def needs_run(self) -> list[str]:
        """Everything `run()` would compute: the stale cells and the pending ones."""
        store = self._sheet.store
        return [n for n in self.cells() if store[n].status == Status.STALE]

    def info(self, name: str) -> CellInfo:
        name = self.resolve(name)
        cell, state = self._sheet.cells[name], self._sheet.store[name]
        shown = CellState(value=self._runner.current(name))
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
        name = self.resolve(name)
        value = self.run(name)
        hints = self._sheet.cells[name].hints
        return tables.table(value, hints.get("rows"), hints.get("cols"), self._label_values)

    def _label_values(self, hint: str | None) -> Any:
        """The values of the cell (or library constant) a display hint names, or None."""
        if hint in self.library.constants:
            return self.library.constants[hint]
        if hint and hint in self:
            return self.run(hint)
        return None

    # ------------------------------------------------------------------ events and files
    def subscribe(self, listener: Listener) -> None:
        """Call `listener(name)` whenever a cell's status, value or formula changes."""
        self._sheet.listeners.append(listener)

    def save(self, path: str | None = None) -> None:
        """Write the workbook file atomically (only edited spans differ from the original)."""
        save_workbook(self, path)
