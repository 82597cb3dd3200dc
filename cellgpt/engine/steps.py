"""Step aliases numbered in definition order, so that nobody numbers them by hand.

    with block("h", count=n, input=x, output="b", steps="h{i}.step", first_step=0):
        a: cell(step=True) = prev + 1       # also answers to h{i}.step0
        b: cell(step=True) = a * 2          # h{i}.step1

A block that declares `steps` gives each of its cells marked `step=True` the alias
`{steps}{n}`, n counting up from `first_step` in the order the cells are written. The alias
goes first among the cell's aliases and the `step` hint is dropped, so the rest of the engine
(instantiation, look-ups, saving a workbook built in code) only ever sees ordinary aliases.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

STEP = "step"  # the cell hint: cell(step=True)
STEPS = "steps"  # block(...) keyword: the alias pattern, e.g. "h{i}.step"
FIRST_STEP = "first_step"  # block(...) keyword: the first step's number (default 0)


class _Spec(Protocol):  # a CellSpec; only its hints matter here
    hints: dict[str, Any]


def number_steps(cells: Sequence[_Spec], pattern: str, first: int = 0) -> None:
    """Replace each `step=True` hint of `cells` (a block's cells, in file order) by the alias
    `{pattern}{n}`, numbered from `first`."""
    number = first
    for spec in cells:
        if not spec.hints.pop(STEP, False):
            continue
        spec.hints["alias"] = (f"{pattern}{number}", *_aliases(spec.hints.get("alias")))
        number += 1


def _aliases(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)
