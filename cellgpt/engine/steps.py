"""Step aliases numbered in definition order, so that nobody numbers them by hand.

    with block("h", count=n, input=x, output="b", steps="h{i}.step", first_step=0):
        a: cell(step=True) = prev + 1       # also answers to h{i}.step0
        b: cell(step=True) = a * 2          # h{i}.step1

A block that declares `steps` gives each of its cells marked `step=True` the alias
`{steps}{n}`, n counting up from `first_step` in the order the cells are written. One step
may be several cells: consecutive cells marked with a suffix (`step="q"`, `step="k"`, ...)
share one number and answer to `{steps}{n}.{suffix}`; the first of them also answers to the
plain `{steps}{n}` (the original spreadsheet's step 5 is q, k and v together):

        q: cell(step="q") = ...             # h{i}.step5.q, and h{i}.step5
        k: cell(step="k") = ...             # h{i}.step5.k

The alias goes first among the cell's aliases and the `step` hint is dropped, so the rest of
the engine (instantiation, look-ups, saving a workbook built in code) only ever sees ordinary
aliases.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Protocol

STEP = "step"  # the cell hint: cell(step=True)
STEPS = "steps"  # block(...) keyword: the alias pattern, e.g. "h{i}.step"
FIRST_STEP = "first_step"  # block(...) keyword: the first step's number (default 0)
_STEP_ALIAS = re.compile(r"step(\d+)(?:\.([A-Za-z_]\w*))?")


class _Spec(Protocol):  # a CellSpec; only its hints matter here
    hints: dict[str, Any]


def number_steps(cells: Sequence[_Spec], pattern: str, first: int = 0) -> None:
    """Replace each `step` hint of `cells` (a block's cells, in file order) by its step
    alias(es), numbered from `first`."""
    number = first - 1
    group: set[str] | None = None  # suffixes of the shared step being written, if any
    for spec in cells:
        step = spec.hints.pop(STEP, False)
        if step is True:
            number, group = number + 1, None
            names: tuple[str, ...] = (f"{pattern}{number}",)
        elif isinstance(step, str) and step:
            if group is None or step in group:
                number, group = number + 1, set()
            names = (f"{pattern}{number}.{step}",)
            if not group:  # the group's first cell also answers to the plain step
                names = (f"{pattern}{number}", *names)
            group.add(step)
        else:
            if step:
                raise ValueError(f"step= takes True or a suffix such as 'q', not {step!r}")
            continue
        spec.hints["alias"] = (*names, *alias_tuple(spec.hints.get("alias")))


def alias_tuple(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """A cell's `alias` hint (one name, several, or none) as a tuple."""
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def step_number(aliases: str | Sequence[str] | None) -> int | None:
    """The step number a cell answers to (`h3.step5.q` → 5), from its `alias` hint; None if
    it is not a step. For display: a block's steps pattern ends in "step" by convention."""
    for alias in alias_tuple(aliases):
        m = _STEP_ALIAS.search(alias)
        if m is not None and m.end() == len(alias):
            return int(m.group(1))
    return None
