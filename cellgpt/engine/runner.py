"""Running cells: lazy recalculation of what is stale, evictable cells and row-append steps.

An edit marks the cell and its descendants stale (see `sheet.py`); `run(name)` recomputes the
stale ancestors of `name` and then `name`; `run()` recomputes everything stale. Run-time
problems live in the failing cell; its dependents are "blocked by" it and nothing else is
affected.

Evictable cells (hint `evict=True`: big intermediates that are cheap to recompute) give their
value up as soon as every cell that reads them is up to date; they stay FRESH, and reading one
recomputes it from its kept inputs without touching the cells after it. The formula must be
deterministic (the same inputs give the same value).

Row-append steps: when a cell's inputs only gained rows since its last value, its extender
(see `append.py`) may extend that value instead of recomputing it; every evaluation records
how many leading rows stayed the same, for the cells after it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from cellgpt.engine.append import RowTail, keep_for_compare, prefix_rows, shared_prefix
from cellgpt.engine.cells import Cell
from cellgpt.engine.errors import CellError, CellEvalError, ErrorInfo, RunCancelled
from cellgpt.engine.formula_parse import Formula
from cellgpt.engine.fusion import Chain, ChainFinder
from cellgpt.engine.grad_functions import NAME_ARGUMENTS as GRADIENT_CALLS
from cellgpt.engine.limits import SCALARS, budget, value_bytes
from cellgpt.engine.replay import EXTEND, PLAIN, TAIL, AppendReplay, Recording, replaying
from cellgpt.engine.sheet import Sheet
from cellgpt.engine.store import MISSING, CellState, Status

GRADIENT_FUNCTIONS = frozenset(GRADIENT_CALLS)  # grad, grads, fit, at
Progress = Callable[[int, int, str], None]
Cancel = Callable[[], bool]
# {count cell: re-shape its block}; the callback returns True if cells came or went.
Watch = Mapping[str, Callable[[], bool]]


class Runner:
    def __init__(self, sheet: Sheet) -> None:
        # The sheet's tables, held directly: the per-cell loop reads them at every step.
        self._cells = sheet.cells
        self._store = sheet.store
        self._graph = sheet.graph
        self._evictable = sheet.evictable
        self._notify = sheet.notify
        self._invalidate = sheet.invalidate
        self._sheet = sheet  # for its limits, which the user may replace at any time
        self._seconds = math.inf  # the per-cell time budget of the current run
        self._deadline = budget.deadline
        self._pending_bytes = 0  # bytes of the value about to be stored (already checked)
        self._store_limit = sheet.limits.store_bytes
        self.evaluations = 0  # total cell evaluations, for tests and benchmarks
        self._chains = ChainFinder(sheet.library.fusions, self._cell_named)
        self._replay: AppendReplay | None = None  # while generating (replay.py)
        self._recording: Recording | None = None  # what the current run does, for a replay

    def _cell_named(self, name: str) -> str | None:
        target = self._sheet.aliases.get(name, name)
        return target if target in self._cells else None

    def _formula(self, name: str) -> Formula | None:
        cell = self._cells.get(name)
        return cell.formula if cell is not None else None

    # ------------------------------------------------------------------ running
    def run(
        self,
        target: str | None,
        progress: Progress | None = None,
        cancel: Cancel | None = None,
        watch: Watch | None = None,
    ) -> Any:
        """Recompute what is stale: the ancestors of `target` and `target` itself, or with
        None every stale cell. Returns the value of `target` (raises CellError if it failed)."""
        replay = self._replay
        if replay is not None and target is not None and progress is None and cancel is None:
            self._run_replaying(replay, target, watch)
            return self.value_or_raise(target)
        self._run(target, progress, cancel, watch)
        if target is None:
            return None
        return self.value_or_raise(target)

    def replay_appends(self, root: str) -> Any:
        """A context in which runs after appends to the input `root` replay the steps the
        first such run took (see replay.py)."""
        return replaying(self, root)

    def _run_replaying(self, replay: AppendReplay, target: str, watch: Watch | None) -> None:
        mode = replay.before_run(target)
        recording = Recording(target) if mode == "record" else None
        try:
            if mode == "replay":
                replay.replay(target)
            else:
                self._recording = recording
                try:
                    self._run(target, None, None, watch)
                finally:
                    self._recording = None
        except BaseException:
            replay.drop()
            raise
        replay.after_run(mode, recording)

    def _run(
        self,
        target: str | None,
        progress: Progress | None,
        cancel: Cancel | None,
        watch: Watch | None,
    ) -> None:
        ran = False
        try:
            while True:
                plan = self.plan(target)
                ran = ran or bool(plan)
                if not self.run_plan(plan, progress, cancel, watch=watch, keep=target):
                    break
        finally:
            if ran:  # drop what is no longer needed (not the value asked for)
                self._evict_done(list(self._evictable), keep=target)

    def rerun(self, name: str) -> Any:
        """Recompute one cell from its inputs' current values, even if it is fresh."""
        self._begin()
        try:
            for parent in self.plan(name):
                if parent != name:
                    self._evaluate(parent)
            self._invalidate(name)
            self._evaluate(name)
        finally:
            self._deadline.at = math.inf
        self._evict_done(list(self._evictable), keep=name)
        return self.value_or_raise(name)

    def value_or_raise(self, name: str) -> Any:
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
            return self.value_or_raise(name)
        return state.value

    def current(self, name: str) -> Any:
        """The value readers see now (the pin, if pinned), without running anything."""
        cell = self._cells[name]
        return cell.pin_value if cell.pinned else self._store[name].value

    def plan(self, target: str | None) -> list[str]:
        """The stale cells `target` needs, in evaluation order. A fresh cell's ancestors are
        all fresh (an edit invalidates everything downstream), so the search stops there."""
        if target is None:
            return self._plan_all()
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

    def _plan_all(self) -> list[str]:
        """Every stale cell, except on-demand ones (`cell(on_demand=True)`: computed when
        asked for by name, e.g. every position's logits or the gradients) and the cells
        that would need one of those computed first."""
        plan: list[str] = []
        waiting: set[str] = set()
        for name in self._graph.topo_order():
            if self._store[name].status != Status.STALE:
                continue
            if self._cells[name].hints.get("on_demand") or not waiting.isdisjoint(
                self._graph.parents(name)
            ):
                waiting.add(name)
            else:
                plan.append(name)
        return plan

    def run_plan(
        self,
        plan: list[str],
        progress: Progress | None,
        cancel: Cancel | None,
        *,
        watch: Watch | None = None,
        keep: str | None = None,
    ) -> bool:
        """Evaluate cells in order; returns True if a watched count cell changed its block's
        shape mid-way (the caller must plan again). Evictable inputs are dropped as soon as
        their readers are done (so at most a few are held at once), except `keep`."""
        counts = watch or {}
        hold = self._activations_for_gradients(plan)
        chains = self._fusable_chains(plan, keep, hold) if self._chains else {}
        if hold and self._recording is not None:
            self._recording.unrepeatable = True
        deferred = {link for chain in chains.values() for link in chain.links}
        self._begin()
        try:
            for done, name in enumerate(plan):
                if cancel is not None and cancel():
                    raise RunCancelled(f"run cancelled before {name!r}")
                if progress is not None:
                    progress(done, len(plan), name)
                if name in deferred:  # computed with its chain's reader (or just before it)
                    continue
                chain = chains.get(name)
                if chain is not None and not self._evaluate_chain(chain):
                    for link in chain.links:  # the plain way, one cell after the other
                        self._evaluate(link)
                        if self._evictable:
                            self._evict_done(self._graph.parents(link), keep=keep, hold=hold)
                if chain is None or self._store[name].status == Status.STALE:
                    self._evaluate(name)
                if self._evictable:
                    self._evict_done(self._graph.parents(name), keep=keep, hold=hold)
                reshape = counts.get(name)
                if reshape is not None and reshape():
                    if self._recording is not None:
                        self._recording.unrepeatable = True
                    return True
        finally:
            self._deadline.at = math.inf  # formulas evaluated outside a run have no deadline
        if progress is not None:
            progress(len(plan), len(plan), "")
        return False

    # ------------------------------------------------------------------ fused chains
    def _activations_for_gradients(self, plan: list[str]) -> set[str]:
        """Evictable cells a gradient cell of this plan reads back (grad_functions.py): kept
        until the run ends, so the backward pass finds them instead of recomputing them."""
        hold: set[str] = set()
        if not self._evictable:
            return hold
        for name in plan:
            formula = self._formula(name)
            if formula is not None and not GRADIENT_FUNCTIONS.isdisjoint(formula.functions):
                hold |= self._graph.ancestors(name) & self._evictable
        return hold

    def _fusable_chains(
        self, plan: list[str], keep: str | None, hold: set[str] | None = None
    ) -> dict[str, Chain]:
        """{reader: chain} for the chains in `plan` whose links nobody else needs: each is
        evictable, unpinned, not the cell asked for, stale, and read only by the next cell
        of its chain. Links wait for their reader's turn, when the inputs are all fresh."""
        in_plan = set(plan)
        chains: dict[str, Chain] = {}
        for name in plan:
            chain = self._chains.chain(name, self._formula, self._sheet.formula_version)
            if chain is None or self._cells[name].pinned:
                continue
            after = (*chain.links[1:], name)
            if all(
                link in in_plan
                and link != keep
                and link in self._evictable
                and link not in (hold or ())
                and not self._cells[link].pinned
                and self._graph.children(link) == {reader}
                for link, reader in zip(chain.links, after, strict=True)
            ):
                chains[name] = chain
        return chains

    def _evaluate_chain(self, chain: Chain) -> bool:
        """Compute the chain's reader with its fused kernel; its links become FRESH and
        evicted. False (nothing changed) when the plain way must run instead: a row-append
        step, a failed input, or any problem in the fused kernel (the plain way then gives
        the right cell its error)."""
        first = chain.links[0]
        if self._grown_inputs(self._cells[first], self._store[first]) is not None:
            return False  # extending the links' rows is cheaper than recomputing them
        members = (*chain.links, chain.reader)
        for member in members:
            blocker = self._blocker(self._cells[member])
            if blocker is not None and blocker not in members:
                return False
        state = self._store[chain.reader]
        prev = state.value if keep_for_compare(state.value) else MISSING
        start = time.perf_counter()
        self._deadline.at = start + self._seconds
        try:
            args = [
                self._input(n) if n in self._cells else self._sheet.library.constants[n]
                for n in chain.inputs
            ]
            value = chain.fusion.fused(*args)
            nbytes = value_bytes(value, args)
        except Exception:  # any failure: the plain way gives the right cell its error
            return False
        if self._store.total_bytes + nbytes > self._store_limit:
            return False
        for link in chain.links:
            link_state = self._store[link]
            link_state.runs += 1
            self._store_value(link_state, MISSING, 0.0, Status.FRESH)
            link_state.evicted, link_state.fused_into = True, chain.reader
            link_state.appended_from = None
            link_state.input_versions = self._input_versions(self._cells[link])
            self._notify(link)
        state.runs += 1
        self.evaluations += 1
        if self._recording is not None:
            self._recording.unrepeatable = True  # fused: not a row-append step
        self._pending_bytes = nbytes
        self._store_value(state, value, time.perf_counter() - start, Status.FRESH)
        reader = self._cells[chain.reader]
        seen = state.input_versions or {}
        rewritten = prev is MISSING or self._rewritten_inputs(reader.refs, seen)
        state.appended_from = None if rewritten else prefix_rows(prev, value)
        state.input_versions = self._input_versions(reader)
        self._notify(chain.reader)
        return True

    def _begin(self) -> None:
        """Make the workbook's limits the ones this thread's cells run under."""
        limits = self._sheet.limits
        budget.limits = limits
        self._deadline = budget.deadline  # this thread's
        self._seconds = limits.cell_seconds
        self._store_limit = limits.store_bytes

    def _evaluate(self, name: str) -> None:
        cell = self._cells[name]
        state = self._store[name]
        state.runs += 1
        self.evaluations += 1
        recording = self._recording
        if recording is not None:
            recording.steps.append((name, PLAIN, frozenset()))
        if cell.pinned:
            self._store_value(state, cell.pin_value, 0.0, Status.PINNED)
            state.appended_from = state.input_versions = None
            return
        blocker = self._blocker(cell)
        if blocker is not None:
            state.status, state.value = Status.BLOCKED, MISSING
            self._store.account(state, 0)
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
        if state.nbytes:
            self._store.account(state, 0)
        state.status = Status.RUNNING
        self._notify(name)
        # Extenders that know RowTail may get an evicted input's new rows instead of its value.
        tails = grown is not None and hasattr(cell.extender, "new_rows")
        start = time.perf_counter()
        self._deadline.at = start + self._seconds
        try:
            env = {ref: self._input(ref, tails=tails) for ref in cell.refs}
            if evicted and grown is not None:
                # No previous value to extend: keep just the new rows, for the cells after it.
                tail = self._new_rows(cell, env, grown)
                if tail is not None:
                    self._store_tail(name, tail, grown, time.perf_counter() - start)
                    if recording is not None:
                        recording.steps[-1] = (name, TAIL, frozenset(grown))
                    return
            value = self._extend(cell, prev, env, grown)
            if value is not None:
                appended = min(grown.values(), default=0) if grown else None
                if recording is not None and grown:
                    recording.steps[-1] = (name, EXTEND, frozenset(grown))
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
            self._store.account(state, 0)
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
        nbytes = 0 if type(value) in SCALARS else value_bytes(value, env.values())
        if nbytes and self._store.total_bytes + nbytes > self._store_limit:
            self._fail(state, name, ErrorInfo("eval", self._over_store_budget(nbytes)))
            return
        self._pending_bytes = nbytes
        self._store_value(state, value, time.perf_counter() - start, Status.FRESH)
        state.appended_from = appended
        state.input_versions = self._input_versions(cell)
        self._notify(name)

    def _over_store_budget(self, nbytes: int) -> str:
        # Many cells that each pass the per-operation limits must not add up without bound.
        return (
            f"over the workbook memory budget: this value takes {nbytes:,} bytes and the "
            f"other cells' values {self._store.total_bytes:,}; the limit is "
            f"{self._store_limit:,} bytes (Limits.store_bytes)"
        )

    def _store_value(self, state: CellState, value: Any, duration: float, status: Status) -> None:
        if isinstance(value, np.ndarray) and value.flags.writeable:
            value.flags.writeable = False  # a cell's value is shared with its readers
        nbytes = self._pending_bytes if value is not MISSING else 0
        if nbytes != state.nbytes:
            self._store.account(state, nbytes)
        self._pending_bytes = 0
        state.value, state.status, state.error = value, status, None
        state.evicted, state.tail, state.fused_into = False, None, None
        state.duration = duration
        state.version += 1

    def _fail(self, state: CellState, name: str, error: ErrorInfo) -> None:
        state.status, state.error, state.value = Status.ERROR, error, MISSING
        self._store.account(state, 0)
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

    # ------------------------------------------------------------------ row-append steps
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
        shared = shared_prefix(prev, value)  # the same read-only memory, one row longer
        if shared is not None:
            return shared
        if self._rewritten_inputs(env, seen):
            return None
        return prefix_rows(prev, value)

    def _input_versions(self, cell: Cell) -> dict[str, int]:
        """The versions of the inputs a value is computed from (see _grown_inputs)."""
        return {ref: self._store[ref].version for ref in cell.refs}

    def _rewritten_inputs(self, refs: Iterable[str], seen: dict[str, int]) -> bool:
        """Every input that changed is a computed cell whose new value was not its old one
        with rows appended: then this value is no such extension either (in all but freak
        cases, which only cost a full recompute later), and comparing it with the previous
        value row by row (~1 ms per million numbers) is skipped. Values the user sets are
        always compared: a prompt that grew must be found to have grown."""
        changed = [ref for ref in refs if seen.get(ref) != self._store[ref].version]
        return bool(changed) and all(
            self._store[ref].appended_from is None and not self._cells[ref].is_input
            for ref in changed
        )

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
        state.input_versions = self._input_versions(self._cells[name])
        self._notify(name)

    # ------------------------------------------------------------------ evictable cells
    def evicted(self) -> list[str]:
        """Cells whose value was dropped to save memory (reading one recomputes it)."""
        return [
            n for n in self._graph.topo_order() if n in self._evictable and self._store[n].evicted
        ]

    def _input(self, name: str, *, tails: bool = False) -> Any:
        """An input's value for a reader, recomputing it if it was evicted (with `tails`, an
        evicted input's kept new rows, if any, stand in for it)."""
        state = self._store[name]
        if state.evicted and not self._cells[name].pinned:
            if tails and state.tail is not None:
                return state.tail
            self._restore(name)
        return self.current(name)

    def _restore(self, name: str) -> None:
        """Recompute an evicted value from its inputs. Same inputs and a deterministic formula
        give the same value, so its version stays and the cells after it stay fresh."""
        cell, state = self._cells[name], self._store[name]
        state.runs += 1
        self.evaluations += 1
        deadline = budget.deadline
        reader_deadline = deadline.at  # the reader's own budget resumes afterwards
        deadline.at = time.perf_counter() + self._seconds
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
        finally:
            deadline.at = reader_deadline
        if isinstance(value, np.ndarray) and value.flags.writeable:
            value.flags.writeable = False
        state.value, state.tail, state.evicted = value, None, False
        state.fused_into = None
        self._store.account(state, value_bytes(value, env.values()))
        self._notify(name)

    def _evict_done(
        self, names: Iterable[str], *, keep: str | None, hold: set[str] | None = None
    ) -> None:
        """Drop the values of evictable cells among `names` whose readers are all up to date
        (not those in `hold`)."""
        for name in names:
            if name not in self._evictable or name == keep or self._cells[name].pinned:
                continue
            if hold and name in hold:
                continue
            state = self._store[name]
            if state.status != Status.FRESH or (state.value is MISSING and state.tail is None):
                continue
            children = self._graph.children(name)
            if all(self._store[c].status in (Status.FRESH, Status.PINNED) for c in children):
                state.value, state.tail, state.evicted = MISSING, None, True
                self._store.account(state, 0)
                self._notify(name)
                if self._recording is not None:
                    self._recording.evicted.append(name)
