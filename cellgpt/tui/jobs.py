"""Long work (load, run, generate, export) in a thread worker, one job at a time, with
progress and cancellation. The worker never touches widgets: everything it reports travels to
the UI thread as messages (`post_message` is Textual's thread-safe hand-off)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from textual.message import Message
from textual.message_pump import MessagePump

from cellgpt.engine import RunCancelled

PROGRESS_INTERVAL = 0.05  # seconds between progress messages (the UI needs ~20 per second)


@dataclass
class JobResult:
    title: str
    value: Any = None
    error: BaseException | None = None
    cancelled: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and not self.cancelled


class JobProgress(Message):
    def __init__(self, title: str, done: int, total: int | None, cell: str) -> None:
        super().__init__()
        self.title, self.done, self.total, self.cell = title, done, total, cell


class JobFinished(Message):
    def __init__(self, result: JobResult, on_done: Callable[[JobResult], None] | None) -> None:
        super().__init__()
        self.result, self.on_done = result, on_done


class CellsChanged(Message):
    """Some cells changed status or value; the names are collected by `ChangeBridge`."""


class JobContext:
    """What a job's function gets: `cancelled()` for `wb.run(cancel=...)` and `progress`."""

    def __init__(self, title: str, target: MessagePump, event: threading.Event) -> None:
        self.title = title
        self._target = target
        self._event = event
        self._last = 0.0

    def cancelled(self) -> bool:
        return self._event.is_set()

    def progress(self, done: int, total: int | None, cell: str = "") -> None:
        now = time.monotonic()
        if done == total or now - self._last >= PROGRESS_INTERVAL:
            self._last = now
            self._target.post_message(JobProgress(self.title, done, total, cell))


class JobRunner:
    """Starts jobs on `owner` (a widget or app); refuses a second job while one runs."""

    def __init__(self, owner: Any) -> None:
        self._owner = owner
        self._cancel = threading.Event()
        self.title: str | None = None

    @property
    def busy(self) -> bool:
        return self.title is not None

    def start(
        self,
        title: str,
        work: Callable[[JobContext], Any],
        on_done: Callable[[JobResult], None] | None = None,
    ) -> bool:
        if self.busy:
            return False
        self.title = title
        self._cancel = threading.Event()
        ctx = JobContext(title, self._owner, self._cancel)
        owner = self._owner

        def body() -> None:
            start = time.perf_counter()
            result = JobResult(title)
            try:
                result.value = work(ctx)
            except RunCancelled:
                result.cancelled = True
            except Exception as exc:  # reported in the UI; the app keeps running
                result.error = exc
            result.seconds = time.perf_counter() - start
            owner.post_message(JobFinished(result, on_done))

        owner.run_worker(body, name=title, group="job", thread=True, exit_on_error=False)
        return True

    def cancel(self) -> bool:
        """Ask the running job to stop at the next cell boundary."""
        if not self.busy:
            return False
        self._cancel.set()
        return True

    def finished(self) -> None:
        """Called on the UI thread once the JobFinished message is handled."""
        self.title = None


class ChangeBridge:
    """Collects cell names from the workbook's listener (any thread) and posts one
    `CellsChanged` per batch, so a run of 500 cells does not flood the UI."""

    def __init__(self, target: MessagePump) -> None:
        self._target = target
        self._lock = threading.Lock()
        self._pending: set[str] = set()
        self._posted = False

    def __call__(self, name: str) -> None:
        with self._lock:
            self._pending.add(name)
            if self._posted:
                return
            self._posted = True
        self._target.post_message(CellsChanged())

    def drain(self) -> set[str]:
        with self._lock:
            names, self._pending, self._posted = self._pending, set(), False
        return names
