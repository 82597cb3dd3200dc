"""Replaying row-append steps: generation without re-deciding, per token, what each cell does.

Generating a token sets the growing input (`generated`) and runs the cells after it; in the
generic path (runner.py) every cell then works out again which inputs grew and from how many
rows, asks its extender whether it can compute just the new rows, checks shapes, builds its
environment and bookkeeping: ~40 µs per cell, ~230 cells per token, plus planning. Yet from one
token to the next every cell does the same thing.

So, inside `Runner.replay_appends(root)`, the engine records one *cycle* (the runs between two
settings of `root`, nothing else happening in between) as segments, one per run: for each cell
in evaluation order, whether it computed just its new rows as a tail (an evicted cell), joined
them onto its previous value, or ran the plain way. Later cycles replay that: the new-rows
cells go straight to their formula with their inputs' new rows in precomputed slots, and the
rest run through the generic `_evaluate` as before. Every cell's state ends exactly as the
generic path leaves it (value, tail, version, appended_from, input_versions, runs, evictions),
so `wb.value`, the TUI and a later edit see no difference.

When does a replay stand? The recording is kept only while nothing but the expected happens:
the sheet counts every change it announces (`Sheet.changes`: each notify, each set_extender),
and a cycle may be replayed only if the changes since the last run are exactly one
invalidation of `root`. Any edit, pin, formula change, extender change, restored or evicted
value, or run of another cell drops the recording (the generic path then records afresh).
A library may also register *replay groups* (replay_group.py): a run of new-rows cells
with given formulas (GPT-2's block) is then computed by one kernel that calls the same
functions and stores each cell's rows through the same `commit` as a single cell.

Within a replay, each new-rows cell still checks what its shortcut relies on — its inputs
grew from the same row count, its previous value or tail is where it expects, the shapes
line up — and otherwise runs the generic way; the cells after it then check again.
"""

from __future__ import annotations

import ast
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from cellgpt.engine.append import (
    RowExtender,
    RowTail,
    _joins,
    count_rows,
    has_ndim,
    join_rows,
    keep_for_compare,
    new_rows_of,
)
from cellgpt.engine.limits import SCALARS, value_bytes
from cellgpt.engine.replay_group import Calls, _Group, find_groups, run_group
from cellgpt.engine.store import MISSING, CellState, Status

if TYPE_CHECKING:
    from cellgpt.engine.runner import Runner

enabled = True  # a switch for measuring the generic path against the replay (benchmarks)

PLAIN, TAIL, EXTEND = "plain", "tail", "extend"


@dataclass
class Recording:
    """What the generic path did in one run: (cell, kind, grown inputs) in order, the cells
    it evicted, and whether anything happened that a replay cannot repeat."""

    target: str
    steps: list[tuple[str, str, frozenset[str]]] = field(default_factory=list)
    evicted: list[str] = field(default_factory=list)
    unrepeatable: bool = False


@dataclass
class _Fast:
    """A new-rows cell, compiled: its state, formula and input slots."""

    name: str
    state: CellState
    evaluator: Any
    tail: bool  # an evicted cell that keeps its new rows as a tail (else: joins them)
    grown: tuple[CellState, ...]
    cuts: tuple[tuple[str, CellState, int, int | None], ...]  # name, state, axis, ndim
    wholes: tuple[tuple[str, CellState, int | None], ...]
    fixed: tuple[tuple[str, Any], ...]  # values that do not change while the replay stands
    refs: tuple[tuple[str, CellState], ...]
    axis: int
    pad: float | None
    out_ndim: int | None


@dataclass
class _Alias:
    """A cell whose formula is another cell's name (`resid_pre = prev`): it takes that
    value as is, and passes its appended rows on."""

    name: str
    state: CellState
    ref: str
    ref_state: CellState


@dataclass
class _Segment:
    target: str
    steps: list[_Fast | _Alias | _Group | str]  # a cell name: run it the generic way
    evicted: list[str]
    cells: int = 0  # cells the steps evaluate (a group evaluates several)


class AppendReplay:
    """The recording and replaying of one growing input's cycles (see the module doc)."""

    def __init__(self, runner: Runner, root: str) -> None:
        self.runner, self.root = runner, root
        self.sheet = runner._sheet
        self.mark = self.sheet.changes  # the sheet's change count after the last run we saw
        self.program: list[_Segment] | None = None
        self.pos = 0  # the next segment of the program
        self.recording: list[Recording] | None = None
        self.replays = 0  # segments replayed, for tests and benchmarks
        self._group_calls: Calls | None = None

    # ------------------------------------------------------------------ the state machine
    def before_run(self, target: str) -> str | None:
        """'replay', 'record' or None (run plainly) for a run of `target` about to start."""
        sheet = self.sheet
        if sheet.changes != self.mark:
            last = sheet.last_invalidation
            if last == (self.root, self.mark, sheet.changes):  # only the root was set: a cycle
                if self.recording is not None:
                    self.program = self._compile(self.recording)
                    self.recording = None
                if self.program is None:
                    self.recording = []
                self.pos = 0
            else:
                self.drop()
            self.mark = sheet.changes
        program = self.program
        if program is not None and self.pos < len(program) and program[self.pos].target == target:
            return "replay"
        if self.recording is not None:
            return "record"
        return None

    def after_run(self, mode: str | None, recording: Recording | None) -> None:
        if mode is None and self.sheet.changes != self.mark:
            self.drop()  # something ran that the program does not know about
        if recording is not None and self.recording is not None and recording.steps:
            self.recording.append(recording)
        self.mark = self.sheet.changes

    def drop(self) -> None:
        self.program, self.recording, self.pos = None, None, 0

    # ------------------------------------------------------------------ compiling
    def _compile(self, recordings: list[Recording]) -> list[_Segment] | None:
        if not recordings or any(r.unrepeatable for r in recordings):
            return None
        segments = []
        runner = self.runner
        groups = self.sheet.library.replay_groups
        # the library's functions as the formulas call them, for the groups' kernels
        self._group_calls = Calls(self.sheet.functions) if groups else None
        for rec in recordings:
            steps: list[_Fast | _Alias | _Group | str] = []
            for name, kind, grown in rec.steps:
                step = self._fast(name, kind, grown) if kind != PLAIN else self._alias(name)
                steps.append(step if step is not None else name)
            steps = find_groups(steps, groups, self._formula_body, runner._cell_named, _Fast)
            segments.append(_Segment(rec.target, steps, rec.evicted, len(rec.steps)))
        return segments

    def _formula_body(self, name: str) -> ast.AST | None:
        cell = self.runner._cells[name]
        return cell.formula.tree.body if cell.formula is not None else None

    def _alias(self, name: str) -> _Alias | None:
        runner = self.runner
        cell = runner._cells[name]
        body = cell.formula.tree.body if cell.formula is not None else None
        if not isinstance(body, ast.Name | ast.Attribute) or len(cell.refs) != 1:
            return None
        if cell.pinned or cell.evaluator is None:
            return None
        (ref,) = cell.refs
        return _Alias(name, runner._store[name], ref, runner._store[ref])

    def _fast(self, name: str, kind: str, grown: frozenset[str]) -> _Fast | None:
        """The compiled new-rows step, or None (run it the generic way)."""
        runner = self.runner
        cell, state = runner._cells[name], runner._store[name]
        ext = cell.extender
        if not isinstance(ext, RowExtender) or cell.evaluator is None or cell.pinned:
            return None
        cut, whole = dict(ext.cut), ext.whole
        if set(cut) != set(grown) - whole or not whole <= grown:
            return None
        ndims: dict[str, int] = dict(getattr(ext, "ndims", {}) or {})
        fixed, slots = [], []
        for ref in cell.refs:
            ref_state = runner._store[ref]
            slots.append((ref, ref_state))
            if ref in grown:
                continue
            if ref_state.evicted and not runner._cells[ref].pinned:
                return None  # read by restoring it: the generic way
            fixed.append((ref, runner.current(ref)))
        return _Fast(
            name,
            state,
            cell.evaluator,
            kind == TAIL,
            tuple(runner._store[ref] for ref in grown),
            tuple((ref, runner._store[ref], axis, ndims.get(ref)) for ref, axis in cut.items()),
            tuple((ref, runner._store[ref], ndims.get(ref)) for ref in whole),
            tuple(fixed),
            tuple(slots),
            ext.axis,
            ext.pad,
            getattr(ext, "out_ndim", None),
        )

    # ------------------------------------------------------------------ replaying
    def replay(self, target: str) -> None:
        """Run the next segment of the program (its target is `target`)."""
        segment = self.program[self.pos]  # type: ignore[index]
        self.pos += 1
        self.replays += 1
        runner = self.runner
        runner._begin()
        generic = False
        evaluations = runner.evaluations
        try:
            for step in segment.steps:
                kind = type(step)
                if kind is str:
                    runner._evaluate(step)
                    status = runner._store[step].status
                    if status is not Status.FRESH and status is not Status.PINNED:
                        generic = True
                elif kind is _Group:
                    done = run_group(self, step, self._group_calls)
                    for member in step.members[done:]:  # what did not fit: one by one
                        if not self._run_fast(member):
                            runner._evaluate(member.name)
                            generic = True
                elif not (self._run_fast(step) if kind is _Fast else self._run_alias(step)):
                    runner._evaluate(step.name)
                    generic = True
        finally:
            runner._deadline.at = float("inf")
        if runner.evaluations - evaluations != segment.cells:
            generic = True  # a dropped value was recomputed on the way (_restore)
        if generic:  # the generic run's last step: drop what no reader still needs
            runner._evict_done(list(runner._evictable), keep=target)
        else:
            for name in segment.evicted:
                state = runner._store[name]
                if state.value is not MISSING or state.tail is not None:
                    state.value, state.tail, state.evicted = MISSING, None, True
                    if state.nbytes:
                        runner._store.account(state, 0)
                    runner._notify(name)

    def _run_alias(self, step: _Alias) -> bool:
        """`x = y` as the generic path runs it (y's value; y's appended rows when x's last
        value was computed from y's previous one); False: run it the generic way."""
        runner, state, ref_state = self.runner, step.state, step.ref_state
        if ref_state.status is not Status.FRESH or ref_state.evicted:
            return False
        if runner._cells[step.ref].pinned or not keep_for_compare(state.value):
            return False
        seen = state.input_versions
        version = ref_state.version
        if seen is None or seen.get(step.ref) != version - 1:
            return False
        value = ref_state.value
        nbytes = 0 if type(value) in SCALARS else value_bytes(value, (value,))
        store = runner._store
        if nbytes and store.total_bytes - state.nbytes + nbytes > runner._store_limit:
            return False
        state.runs += 1
        runner.evaluations += 1
        runner._pending_bytes = nbytes
        runner._store_value(state, value, 0.0, Status.FRESH)
        state.appended_from = ref_state.appended_from
        state.input_versions = {step.ref: version}
        runner._notify(step.name)
        return True

    def _run_fast(self, step: _Fast) -> bool:
        """Compute one cell's new rows as the generic path would; False: nothing changed,
        run it the generic way."""
        old = self._rows_before(step)
        if old is None or not self._ready(step, old):
            return False
        local: dict[str, Any] = dict(step.fixed)
        count = -1
        for ref, ref_state, cut_axis, ndim in step.cuts:
            rows = new_rows_of(ref_state, old, cut_axis, ndim)
            if rows is None:
                return False
            n = rows.shape[cut_axis] if type(rows) is np.ndarray else count_rows(rows, cut_axis)
            if n is None or (count >= 0 and n != count):
                return False
            count = n
            local[ref] = rows
        for ref, ref_state, ndim in step.wholes:
            value = ref_state.value
            if ref_state.evicted or value is MISSING:
                return False
            if ndim is not None and not has_ndim(value, ndim):
                return False
            local[ref] = value
        runner = self.runner
        start = time.perf_counter()
        runner._deadline.at = start + runner._seconds
        try:
            new = step.evaluator(local)
        except Exception:  # the generic way gives the cell its error
            return False
        return self.commit(step, new, old, count, local.values(), start) is not None

    @staticmethod
    def _rows_before(step: _Fast) -> int | None:
        """How many rows every grown input had before (all the same), or None."""
        old = -1
        for grown in step.grown:
            rows_before = grown.appended_from
            if rows_before is None or (old >= 0 and rows_before != old):
                return None
            old = rows_before
        return None if old < 0 else old

    @staticmethod
    def _ready(step: _Fast, old: int) -> bool:
        """The cell is where its shortcut expects it: dropped (a tail), or holding exactly
        the `old` rows to join onto."""
        state = step.state
        if step.tail:
            return state.evicted
        prev = state.value
        if state.evicted or type(prev) is not np.ndarray or prev.ndim <= step.axis:
            return False
        if prev.shape[step.axis] != old:
            return False
        return step.out_ndim is None or prev.ndim == step.out_ndim

    def commit(self, step: _Fast, new: Any, old: int, count: int, inputs: Any, start: float) -> Any:
        """Store a cell's new rows as the generic path would: kept as its tail, or joined
        onto its value. Returns what readers of the whole cell now see (the tail's rows or
        the joined value), or None: the rows do not fit, nothing changed."""
        axis = step.axis
        if type(new) is not np.ndarray or new.ndim <= axis or new.shape[axis] != count:
            return None
        if step.out_ndim is not None and new.ndim != step.out_ndim:
            return None
        runner, state = self.runner, step.state
        if step.tail:
            if new.flags.writeable:
                new.flags.writeable = False
            state.runs += 1
            runner.evaluations += 1
            runner._store_value(state, MISSING, time.perf_counter() - start, Status.FRESH)
            state.evicted, state.tail = True, RowTail(new, old, axis)
            value = new
        else:
            prev = state.value
            if not _joins(prev, new, axis, step.pad):
                return None
            try:
                value = join_rows(prev, new, axis, step.pad)
            except (ValueError, IndexError, TypeError):
                return None
            nbytes = 0 if type(value) in SCALARS else value_bytes(value, inputs)
            store = runner._store
            if nbytes and store.total_bytes - state.nbytes + nbytes > runner._store_limit:
                return None  # the generic way fails it with the budget's message
            state.runs += 1
            runner.evaluations += 1
            runner._pending_bytes = nbytes
            runner._store_value(state, value, time.perf_counter() - start, Status.FRESH)
        state.appended_from = old
        state.input_versions = {ref: s.version for ref, s in step.refs}
        runner._notify(step.name)
        return value


@contextmanager
def replaying(runner: Runner, root: str) -> Iterator[AppendReplay | None]:
    """Record and replay the cycles of appends to the input `root` while inside."""
    if not enabled or runner._replay is not None:
        yield runner._replay
        return
    replay = AppendReplay(runner, root)
    runner._replay = replay
    try:
        yield replay
    finally:
        runner._replay = None
