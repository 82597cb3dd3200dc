"""Per-cell run state, kept apart from the graph: value, status, error, timing, version."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from cellgpt.engine.errors import ErrorInfo


class Status(StrEnum):
    FRESH = "fresh"
    STALE = "stale"
    ERROR = "error"
    BLOCKED = "blocked"
    RUNNING = "running"
    PINNED = "pinned"

    def __str__(self) -> str:
        return self.value


MISSING: Any = object()


@dataclass
class CellState:
    status: Status = Status.STALE
    value: Any = MISSING
    error: ErrorInfo | None = None
    duration: float = 0.0  # seconds of the last evaluation
    version: int = 0  # bumps each time a new value is stored
    runs: int = 0  # evaluations attempted
    # Row-append tracking (see append.py): leading rows unchanged since the previous value
    # (None: unknown or changed), and the versions of the inputs this value was computed from.
    appended_from: int | None = None
    input_versions: dict[str, int] | None = None
    # Evictable cells (hint `evict`): True once the value was dropped to save memory. The
    # cell stays FRESH; reading it recomputes the value from its inputs. `tail` may hold just
    # the rows its last row-append step added (an append.RowTail), for the cells after it.
    evicted: bool = False
    tail: Any = None
    # A cell the runner skipped because a fused kernel computed its reader (fusion.py): that
    # reader's name. The cell is FRESH and evicted; reading it computes it.
    fused_into: str | None = None
    nbytes: int = 0  # bytes the value counts against the workbook's budget (limits.py)

    @property
    def has_value(self) -> bool:
        return self.value is not MISSING

    @property
    def shape(self) -> tuple[int, ...] | None:
        v = self.value
        if isinstance(v, np.ndarray | np.generic):
            return tuple(v.shape)
        if isinstance(v, list | tuple | str):
            return (len(v),)
        return None

    @property
    def dtype(self) -> str | None:
        v = self.value
        if isinstance(v, np.ndarray | np.generic):
            return str(v.dtype)
        if v is MISSING:
            return None
        return type(v).__name__


class ValueStore:
    def __init__(self) -> None:
        self._states: dict[str, CellState] = {}
        self.states = self._states  # read-only use: {name: state}, for tight loops
        self.total_bytes = 0  # of every live value, for the workbook-wide budget

    def account(self, state: CellState, nbytes: int) -> None:
        """Record how many bytes `state`'s value now counts (0 once it is dropped)."""
        self.total_bytes += nbytes - state.nbytes
        state.nbytes = nbytes

    def add(self, name: str) -> CellState:
        state = self._states[name] = CellState()
        return state

    def remove(self, name: str) -> None:
        state = self._states.pop(name, None)
        if state is not None:
            self.account(state, 0)

    def __getitem__(self, name: str) -> CellState:
        return self._states[name]

    def __contains__(self, name: str) -> bool:
        return name in self._states
