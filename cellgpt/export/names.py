"""Defined names for the exported ranges, so formulas read `MMULT(h0_ln_1, h0_attn_c_attn_w)`
rather than `MMULT('h0.ln_1'!$B$2:$BM$7, 'h0.attn.c_attn.weight'!$B$2:$GK$65)`.

Parameter tables follow the original spreadsheet's style (`model_wte`, `h0_attn_c_attn_w`);
every other cell is its dotted name with underscores (`h0.attn.pattern` → `h0_attn_pattern`).
A name Excel would read as a cell reference (`ab12`, `R1C1`) or that is taken gets a prefix
or a suffix.
"""

from __future__ import annotations

import re

MAX_NAME = 255
_CELL_REF = re.compile(r"^[A-Za-z]{1,3}[0-9]+$")
_R1C1 = re.compile(r"^[RrCc]$|^[Rr][0-9]*[Cc][0-9]*$|^[RrCc][0-9]+$")
_BAD = re.compile(r"[^A-Za-z0-9_.]")
_SHORT = {"weight": "w", "bias": "b"}


def wanted_name(cell: str, is_param: bool) -> str:
    """The defined name a cell would like (before uniqueness)."""
    parts = cell.split(".")
    if is_param:
        parts = [_SHORT.get(p, p) for p in parts]
        if not re.fullmatch(r"h[0-9]+", parts[0]):
            parts = ["model", *parts]  # whole-model tables, as the original names them
    name = _BAD.sub("_", "_".join(parts))
    if not name or not (name[0].isalpha() or name[0] == "_"):
        name = "_" + name
    if _CELL_REF.match(name) or _R1C1.match(name):
        name = "cell_" + name
    return name[:MAX_NAME]


class DefinedNames:
    """Unique names (Excel compares names without case)."""

    def __init__(self) -> None:
        self._used: set[str] = set()

    def make(self, cell: str, is_param: bool) -> str:
        base = wanted_name(cell, is_param)
        name, n = base, 1
        while name.lower() in self._used:
            n += 1
            name = f"{base[: MAX_NAME - 5]}_{n}"
        self._used.add(name.lower())
        return name
