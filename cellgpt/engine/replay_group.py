"""Replay groups: consecutive one-row steps of a generated token computed by one kernel.

A generated token runs ~200 cells, each on one new row; the numbers are cheap (bar the
products) and most of each cell's time is the engine's way of running a formula: reading
its inputs' new rows, the closure tree, the checks (replay.py). GPT-2's block is seventeen
such cells in a fixed order. A `ReplayGroup`, registered by a library beside its functions,
names such a run of cells by formula shape (patterns in the formula language whose UPPERCASE
names are placeholders, as fusion.py's chains do) and gives a kernel that computes the
same new rows with the same library functions, one cell after the other, handing each to
`step` — which stores it exactly as a replayed cell is stored (AppendReplay.commit) and
returns what a reader of the whole cell sees.

It applies only while every member still has its formula and the row-append shape the
group declares (which inputs are read whole, which cut to their new rows), so an edit of
any member's formula turns it off for that block. If anything does not fit at run time,
the members not yet stored run the ordinary replayed way (and, failing that, the generic
way, which gives a failing cell its error). The kernel must compute exactly what each
member's formula would (tests compare every cell, bit for bit, with the generic path).
"""

from __future__ import annotations

import ast
import contextlib
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from cellgpt.engine.append import new_rows_of
from cellgpt.engine.formula_parse import BIN_OPS
from cellgpt.engine.fusion import match, named_patterns
from cellgpt.engine.limits import BINOP_GUARDS, check_broadcast

if TYPE_CHECKING:
    from cellgpt.engine.replay import AppendReplay, _Fast


@dataclass(frozen=True)
class ReplayGroup:
    """`cells`: "PLACEHOLDER = formula" of the members in evaluation order; `whole`: the
    members' inputs they read whole (the rest of a member's growing inputs are cut to their
    new rows); `inputs`: the placeholders the kernel takes after `step` and `calls`;
    `kernel(step, calls, *inputs)` gets an external input that grew as its new rows and any
    other as its value, and calls `step(new_rows)` once per member, in order."""

    name: str
    cells: tuple[str, ...]
    whole: frozenset[str]
    inputs: tuple[str, ...]
    kernel: Callable[..., None]

    @functools.cached_property
    def patterns(self) -> list[tuple[str, ast.AST]]:
        return named_patterns(self.cells)


class Calls:
    """What the kernel calls in place of a formula's parts: the library's functions as the
    formulas call them (budget charged first), and a formula's operators with their
    guards. `calls.matmul(a, b)`, `calls.op(ast.Add, a, b)`."""

    def __init__(self, functions: Mapping[str, Callable[..., Any]]) -> None:
        # plain attributes: a kernel makes ~25 calls a block, each looked up by name
        self.__dict__.update((k, f) for k, f in functions.items() if not hasattr(Calls, k))

    @staticmethod
    def op(kind: type[ast.operator], a: Any, b: Any) -> Any:
        """`a <op> b` as a compiled formula computes it (the same values: a formula may
        add into its own temporary, which changes the memory, not the numbers)."""
        BINOP_GUARDS.get(kind, check_broadcast)(a, b)
        return BIN_OPS[kind](a, b)


@dataclass
class _Group:
    """A matched group: its members' compiled steps and where each kernel input comes from
    (("cut", state, axis, ndim) for an input that grew, ("fixed", value) otherwise)."""

    group: ReplayGroup
    members: tuple[_Fast, ...]
    sources: tuple[tuple[Any, ...], ...]


def find_groups(
    steps: list[Any],
    groups: Sequence[ReplayGroup],
    formula_of: Callable[[str], ast.AST | None],
    resolve: Callable[[str], str | None],
    fast_type: type,
) -> list[Any]:
    """`steps` with every run of `_Fast` steps that matches a group replaced by one
    `_Group` (the rest as they are)."""
    if not groups:
        return steps
    out: list[Any] = []
    i = 0
    while i < len(steps):
        found = None
        for group in groups:
            window = steps[i : i + len(group.cells)]
            if len(window) == len(group.cells) and all(type(s) is fast_type for s in window):
                found = _match(group, window, formula_of, resolve)
                if found is not None:
                    break
        if found is None:
            out.append(steps[i])
            i += 1
        else:
            out.append(found)
            i += len(found.members)
    return out


def _match(
    group: ReplayGroup,
    members: list[_Fast],
    formula_of: Callable[[str], ast.AST | None],
    resolve: Callable[[str], str | None],
) -> _Group | None:
    binds: dict[str, str] = {}
    for (placeholder, pattern), member in zip(group.patterns, members, strict=True):
        body = formula_of(member.name)
        if body is None or binds.setdefault(placeholder, member.name) != member.name:
            return None
        if not match(pattern, body, binds):
            return None
    cells = {binds[p]: p for p, _ in group.patterns}
    # Each member's row-append shape must be the one the kernel assumes: its inputs that
    # are members of the group and declared whole are read whole, every other grown input
    # is cut to its new rows.
    for member in members:
        wholes = {ref for ref, _, _ in member.wholes}
        if any(cells.get(ref) not in group.whole for ref in wholes):
            return None
        if any(cells.get(ref) in group.whole for ref, *_ in member.cuts):
            return None
        if cells[member.name] in group.whole and member.tail:
            return None  # read whole, so it must keep its value (not only a tail)
    sources = []
    inside = {id(member.state) for member in members}
    outside = {id(state) for member in members for state in member.grown} - inside
    for placeholder in group.inputs:
        name = binds.get(placeholder)
        if name is None or name in cells:
            return None
        source = _source(resolve(name) or name, members)
        if source is None:
            return None
        sources.append(source)
    if outside != {id(source[1]) for source in sources if source[0] == "cut"}:
        return None  # a grown input from outside that the kernel would not be given
    return _Group(group, tuple(members), tuple(sources))


def _source(name: str, members: list[_Fast]) -> tuple[Any, ...] | None:
    """Where the kernel's input `name` comes from: cut to its new rows by the members that
    read it (all alike), or a value fixed while the replay stands; None if the members
    disagree or read it whole."""
    if any(ref == name for member in members for ref, _, _ in member.wholes):
        return None
    cuts = [cut for member in members for cut in member.cuts if cut[0] == name]
    if cuts:
        _, state, axis, ndim = cuts[0]
        if any(c[1] is not state or c[2] != axis or c[3] != ndim for c in cuts):
            return None
        return ("cut", state, axis, ndim)
    for member in members:
        for ref, value in member.fixed:
            if ref == name:
                return ("fixed", value)
    return None


class _Stop(Exception):
    """A member's rows did not fit: the rest of the group runs the ordinary way."""


def run_group(replay: AppendReplay, compiled: _Group, calls: Calls) -> int:
    """Run the group's kernel; returns how many members it stored (all of them, unless
    something did not fit: the caller runs the others the ordinary way)."""
    members = compiled.members
    # Every input from outside the group that grew, grew from the same row count (the
    # members inside grow as the kernel stores them).
    grown = [source[1].appended_from for source in compiled.sources if source[0] == "cut"]
    old = grown[0] if grown else None
    if old is None or any(rows != old for rows in grown):
        return 0
    if not all(replay._ready(m, old) for m in members):
        return 0
    inputs: list[Any] = []
    count = -1
    for source in compiled.sources:
        if source[0] == "fixed":
            inputs.append(source[1])
            continue
        _, state, axis, ndim = source
        rows = new_rows_of(state, old, axis, ndim)
        if type(rows) is not np.ndarray or (count >= 0 and rows.shape[axis] != count):
            return 0
        count = rows.shape[axis]
        inputs.append(rows)
    if count < 0:
        return 0
    runner = replay.runner
    done = 0
    start = time.perf_counter()
    runner._deadline.at = start + runner._seconds

    def step(new: Any) -> Any:
        nonlocal done, start
        if done >= len(members):
            raise _Stop
        value = replay.commit(members[done], new, old, count, (), start)
        if value is None:
            raise _Stop
        done += 1
        start = time.perf_counter()
        runner._deadline.at = start + runner._seconds  # the next member's own budget
        return value

    # _Stop, or a member's formula would fail: the ordinary way then says so
    with contextlib.suppress(Exception):
        compiled.group.kernel(step, calls, *inputs)
    return done
