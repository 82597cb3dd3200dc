"""Function cells as Excel 365 LAMBDA defined names (`cellgpt export --excel365`).

Each function cell becomes a defined name `=_xlfn.LAMBDA(_xlpm.x, _xlpm.w, body)` and formulas
call it by name, as a user of the Name Manager would. The body is translated by the same
forms as any formula, with each parameter a whole-matrix leaf `_xlpm.name`; the shapes come
from the first call translated (a form may depend on them: an axis, a head count), so a later
call whose translation differs, or a call that needs helper columns, a static argument (text,
None) or a part of a matrix, is spelled out inline instead (as it always is without
--excel365: LibreOffice 7.4 has no LAMBDA).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cellgpt.export.names import DefinedNames, wanted_name
from cellgpt.export.xlarray import NoExcelForm


@dataclass(frozen=True)
class Lambda:
    name: str  # the defined name
    params: tuple[str, ...]  # `_xlpm.` names, in the function's order
    body: str

    @property
    def text(self) -> str:
        """The defined name's formula (no leading `=`)."""
        return f"_xlfn.LAMBDA({','.join(self.params)},{self.body})"


@dataclass
class Lambdas:
    """The LAMBDA names made while translating, one per function cell."""

    names: DefinedNames
    made: dict[str, Lambda] = field(default_factory=dict)

    def param(self, param: str) -> str:
        # Excel refuses LAMBDA parameters that read as cell references (`m1`, `r2c3`).
        return "_xlpm." + wanted_name(param, False)

    def register(self, function: str, params: tuple[str, ...], body: str) -> Lambda:
        """The LAMBDA for `function` with this body; NoExcelForm if it already has another
        one (a call with other shapes translated differently)."""
        known = self.made.get(function)
        if known is not None:
            if known.body != body:
                raise NoExcelForm(f"{function}() translates differently for these arguments")
            return known
        made = Lambda(self.names.make(function, False), tuple(map(self.param, params)), body)
        self.made[function] = made
        return made

    def all(self) -> list[Lambda]:
        return list(self.made.values())
