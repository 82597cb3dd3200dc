"""`cellgpt run --profile`: where a run's time went, from the durations the engine records for
every cell it evaluates (`CellState.duration`, the cell's last evaluation).

Lines are grouped like the model reads: loading (weights, tokenizer, config and parameter
cells), the tokenize and embed cells one by one, the block steps 1–16 each summed over the
blocks (a step is the cells answering to `h{i}.step{n}`, see cellgpt/engine/steps.py), block
cells that are not a step, the output cells one by one, and the rest (inputs, small values).
Percentages are of the sum of all lines, so they add up to 100.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cellgpt.engine.steps import step_number

LOAD = "load"  # kind="model" / kind="param" cells
STEP = "step"
BLOCK = "block"  # block cells that are not a step (e.g. ln_1.scale)
OTHER = "other"
STAGES = ("tokenize", "embed")  # `stage` hints listed one cell per line, before the blocks
AFTER_BLOCKS = ("output",)
_ORDER = [LOAD, *STAGES, STEP, BLOCK, *AFTER_BLOCKS, OTHER]


@dataclass
class Line:
    group: str  # LOAD, a stage, STEP, BLOCK or OTHER
    label: str  # "qkv", "q k v", "logits", ...
    seconds: float = 0.0
    cells: int = 0
    step: int | None = None
    fused_into: str | None = None  # skipped: computed inside this cell's fused kernel


@dataclass
class Profile:
    lines: list[Line]
    wall: float | None = None  # seconds the run took, engine bookkeeping included
    what: str = ""  # e.g. "the prompt's pass (8 tokens)"

    @property
    def total(self) -> float:
        return sum(line.seconds for line in self.lines)

    @property
    def cells(self) -> int:
        return sum(line.cells for line in self.lines)

    def percent(self, line: Line) -> float:
        total = self.total
        return 100.0 * line.seconds / total if total > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "cells_run": self.cells,
            "cell_ms": self.total * 1e3,
            "wall_ms": None if self.wall is None else self.wall * 1e3,
            "lines": [
                {
                    "group": line.group,
                    "step": line.step,
                    "label": line.label,
                    "cells": line.cells,
                    "ms": line.seconds * 1e3,
                    "percent": self.percent(line),
                    "fused_into": line.fused_into,
                }
                for line in self.lines
            ],
        }

    def text(self) -> str:
        wall = "" if self.wall is None else f" of {self.wall * 1e3:.1f} ms wall"
        out = [
            f"profile of {self.what}: {self.cells} cells ran, "
            f"{self.total * 1e3:.1f} ms in cells{wall}"
        ]
        fused: dict[str, list[str]] = {}
        for line in self.lines:
            head = f"step {line.step:2d}" if line.step is not None else line.group
            many = f"{line.cells} cell" + ("s" if line.cells != 1 else "")
            mark = " *" if line.fused_into else ""
            out.append(
                f"  {head:<9} {line.label:<26} {many:>10} {line.seconds * 1e3:9.2f} ms "
                f"{self.percent(line):6.1f}%{mark}"
            )
            if line.fused_into:
                fused.setdefault(line.fused_into, []).append(line.label)
        out.append(f"  {'total':<9} {'':<26} {self.cells:>4} cells {self.total * 1e3:9.2f} ms")
        for reader, labels in fused.items():
            out.append(
                f"  * {' and '.join(labels)}: computed inside {reader}'s fused kernel (time "
                f"counted there); reading a skipped cell computes it"
            )
        return "\n".join(out)


class Recorder:
    """What ran since the last `take()` and how long each cell took (its last evaluation)."""

    def __init__(self, wb: Any) -> None:
        self.wb = wb
        self._runs: dict[str, int] = {}

    def take(self) -> dict[str, float]:
        ran: dict[str, float] = {}
        for name in self.wb.cells():
            state = self.wb.state(name)
            if state.runs != self._runs.get(name, 0):
                ran[name] = state.duration
                self._runs[name] = state.runs
        return ran


def add(into: dict[str, float], more: Mapping[str, float]) -> None:
    """Sum per-cell seconds over several passes (e.g. every generated token's)."""
    for name, seconds in more.items():
        into[name] = into.get(name, 0.0) + seconds


def profile(
    wb: Any, seconds: Mapping[str, float], *, wall: float | None = None, what: str = ""
) -> Profile:
    """Group per-cell seconds (cell name → seconds) into the profile's lines."""
    lines: dict[tuple[str, Any], Line] = {}
    for name in _ordered(wb, seconds):
        group, key, label, step = _classify(name, wb.cell(name).hints)
        line = lines.setdefault((group, key), Line(group, label, step=step))
        if group == STEP and label not in line.label.split():  # q, k, v share step 5
            line.label = f"{line.label} {label}"
        line.seconds += seconds[name]
        line.cells += 1
        reader = getattr(wb.state(name), "fused_into", None)
        if reader:
            block = wb.cell(reader).hints.get("block")
            line.fused_into = reader[len(block) + 1 :] if block else reader
    rank = {group: i for i, group in enumerate(_ORDER)}
    ordered = sorted(
        lines.values(),
        key=lambda line: (rank.get(line.group, len(_ORDER)), line.step or 0),
    )  # within a group: first seen (sorted is stable), steps by number
    return Profile(ordered, wall=wall, what=what)


def _ordered(wb: Any, names: Iterable[str]) -> list[str]:
    wanted = set(names)
    return [name for name in wb.cells() if name in wanted]


def _classify(name: str, hints: Mapping[str, Any]) -> tuple[str, Any, str, int | None]:
    """(group, key within the group, label, step number) of one cell."""
    if hints.get("kind") in ("model", "param"):
        return LOAD, None, "weights, params, tokenizer", None
    aliases = hints.get("alias") or ()
    block = hints.get("block")
    local = name[len(block) + 1 :] if block and name.startswith(f"{block}.") else name
    step = step_number((aliases,) if isinstance(aliases, str) else tuple(aliases))
    if step is not None:
        return STEP, step, local, step
    if block:
        return BLOCK, local, local, None
    stage = hints.get("stage")
    if isinstance(stage, str) and stage:
        return stage, name, name, None
    return OTHER, None, "inputs and small values", None
