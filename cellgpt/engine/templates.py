"""Block templates: a block of cells written once and instantiated once per count.

Instance i's cells are named `{prefix}{i}.{local}`; inside the template `prev` is the previous
instance's output cell (the block's input for instance 0) and `i` the instance number. The
last instance's output is exposed as `{prefix}.out`. When the count cell's value changes,
instances are added or dropped from the end. One instance may be given its own formula (an
override); overrides outlive their instance, so a block that shrinks and grows back keeps them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cellgpt.engine.cells import CellSpec, check_cell_name
from cellgpt.engine.errors import (
    DefinitionError,
    DuplicateNameError,
    ErrorInfo,
    RunCancelled,
    UnknownNameError,
)
from cellgpt.engine.formula_parse import parse_formula
from cellgpt.engine.runner import Runner
from cellgpt.engine.sheet import Sheet
from cellgpt.engine.store import Status

MAX_INSTANCES = 4096


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


class Templates:
    """The workbook's block templates, their instances and the per-instance overrides."""

    def __init__(self, sheet: Sheet, runner: Runner) -> None:
        self._sheet = sheet
        self._runner = runner
        self._templates: dict[str, Template] = {}
        self._overrides: dict[str, str] = {}  # instance cell -> formula replacing the template's

    def define(self, template: Template) -> None:
        """Register a block template; it is instantiated as soon as its count is known."""
        sheet = self._sheet
        if template.prefix in self._templates:
            raise DuplicateNameError(f"block {template.prefix!r} is defined twice")
        for ref, what in ((template.count, "count"), (template.input, "input")):
            if ref not in sheet:
                raise UnknownNameError(f"block {template.prefix!r}: unknown {what} cell {ref!r}")
        locals_ = [c.name for c in template.cells]
        if template.output not in locals_:
            raise UnknownNameError(
                f"block {template.prefix!r}: output {template.output!r} is not one of its cells"
            )
        # Check every template formula once, in template scope, before anything is added.
        scope = set(locals_) | {template.prev_name, template.index_name} | set(sheet.cells)
        for spec in template.cells:
            check_cell_name(spec.name)
            formula = parse_formula(spec.formula, cell=f"{template.prefix}.{spec.name}")
            for fname in formula.functions:
                if fname not in sheet.functions:
                    raise UnknownNameError(
                        f"cell {template.prefix + '.' + spec.name!r}: unknown function {fname!r}"
                    )
            for ref in formula.names:
                if (
                    ref not in scope
                    and sheet.aliases.get(ref) not in sheet.cells
                    and ref not in sheet.library.constants
                ):
                    raise UnknownNameError(
                        f"cell {template.prefix + '.' + spec.name!r}: unknown name {ref!r}"
                    )
        self._templates[template.prefix] = template
        sheet.define_many(
            [
                CellSpec(
                    template.out_name,
                    template.count,
                    f"Output of the last {template.prefix} block.",
                )
            ]
        )
        sheet.cells[template.out_name].template = template.prefix
        self.sync(template)

    def refs(self, template: Template) -> set[str]:
        """Names a template reads from outside itself (its count, input and globals)."""
        local = {c.name for c in template.cells} | {template.prev_name, template.index_name}
        refs = {template.count, template.input}
        for spec in template.cells:
            refs |= {n for n in parse_formula(spec.formula, cell=spec.name).names if n not in local}
        return {r for r in refs if r not in self._sheet.library.constants}

    def all(self) -> list[Template]:
        return list(self._templates.values())

    def watch(self) -> dict[str, Callable[[], bool]]:
        """{count cell: re-shape its block}, for the runner to call after evaluating it."""
        resolve = self._sheet.resolve
        return {resolve(t.count): functools.partial(self.sync, t) for t in self._templates.values()}

    def sync(self, template: Template) -> bool:
        """Make the number of instances match the count cell. True if the structure changed."""
        sheet, runner = self._sheet, self._runner
        count_state = sheet.store[sheet.resolve(template.count)]
        if count_state.status not in (Status.FRESH, Status.PINNED):
            try:
                runner.run_plan(runner.plan(sheet.resolve(template.count)), None, None)
            except RunCancelled:
                return False
            count_state = sheet.store[sheet.resolve(template.count)]
        value = count_state.value if count_state.status in (Status.FRESH, Status.PINNED) else None
        if not _is_count(value):
            if value is not None:
                count_state.status = Status.ERROR
                count_state.error = ErrorInfo(
                    "eval",
                    f"block {template.prefix!r} needs a whole number of blocks "
                    f"(0-{MAX_INSTANCES}), got {value!r}",
                )
            return False
        n = int(value)
        if n == template.instances:
            return False
        grow = (n - max(template.instances, 0)) * len(template.cells)
        if grow > 0 and len(sheet.cells) + grow > sheet.limits.max_cells:
            count_state.status = Status.ERROR
            count_state.error = ErrorInfo(
                "eval",
                f"block {template.prefix!r}: {n:,} blocks would pass the workbook's budget of "
                f"{sheet.limits.max_cells:,} cells (Limits.max_cells)",
            )
            return False
        old = max(template.instances, 0)
        for i in range(n, old):  # fewer blocks: drop from the end
            self._check_removable(template, i)
        # Detach the output cell while instances come and go, then point it at the last one.
        sheet.replace_formula(template.out_name, template.input)
        for i in range(old - 1, n - 1, -1):
            names = {template.instance_name(i, s.name) for s in template.cells}
            for name in reversed(sheet.graph.topo_order(names)):
                sheet.remove(name)
        for i in range(old, n):
            self._instantiate(template, i)
        if n > 0:
            sheet.replace_formula(template.out_name, template.instance_name(n - 1, template.output))
        template.instances = n
        return True

    def _check_removable(self, template: Template, i: int) -> None:
        names = {template.instance_name(i, s.name) for s in template.cells}
        for name in names:
            outside = self._sheet.graph.children(name) - names - {template.out_name}
            outside = {c for c in outside if self._sheet.cells[c].template != template.prefix}
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
        self._sheet.define_many(specs, template=template.prefix)
        for name, text in generated.items():
            self._sheet.cells[name].template_source = text
        for name in generated:
            if name in self._overrides:
                self._sheet.replace_formula(name, self._overrides[name])

    # ------------------------------------------------------------------ overrides
    def set_formula(self, name: str, text: str) -> None:
        """Replace a cell's formula (`name` resolved), keeping block overrides in step: a
        block instance whose formula differs from its template's is an override."""
        cell = self._sheet.cells[name]
        if cell.template is not None and cell.template_source is None:
            raise DefinitionError(f"{name!r} is wired by its block template and cannot be edited")
        self._sheet.replace_formula(name, text)
        if cell.template is not None:
            if text == cell.template_source:
                self._overrides.pop(name, None)
            else:
                self._overrides[name] = text

    def set_override(self, name: str, formula: str) -> None:
        """Give one block instance its own formula (applied now, or when it is instantiated)."""
        if name in self._sheet.cells:
            self.set_formula(name, formula)
        else:  # applied when the block instance is created
            parse_formula(formula, cell=name)
            self._overrides[name] = formula

    def overrides(self) -> dict[str, str]:
        return dict(self._overrides)


def _is_count(value: Any) -> bool:
    return (
        isinstance(value, int | np.integer)
        and not isinstance(value, bool)
        and 0 <= int(value) <= MAX_INSTANCES
    )


def _fill_alias(alias: str, i: int, prefix: str) -> str:
    """A block alias with its `{i}` and `{prefix}` placeholders filled in. Plain replacement,
    never str.format: an alias from a shared file could otherwise say `{i.__class__}`."""
    return alias.replace("{i}", str(i)).replace("{prefix}", prefix)
