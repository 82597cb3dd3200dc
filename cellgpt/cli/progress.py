"""Progress of a long command (export, import, download, building the weights cache) on
stderr. In a terminal: one bar redrawn in place. Piped or in a log (CI, `2> log`): a plain
line every few seconds, so a long step is never silent and the log is not flooded."""

from __future__ import annotations

import sys
import time
from typing import TextIO

LOG_EVERY = 3.0  # seconds between lines when stderr is not a terminal
REDRAW_EVERY = 0.1  # seconds between redraws of the bar in a terminal


class Progress:
    """A callback `(done, total, what)`; `unit` says what is counted ("bytes" shows MB and
    MB/s). Call `close()` at the end (it ends the bar's line)."""

    def __init__(
        self,
        label: str,
        *,
        unit: str = "bytes",
        stream: TextIO | None = None,
        tty: bool | None = None,
        every: float = LOG_EVERY,
        width: int = 30,
        delay: float = 0.0,
        rate: bool = False,
    ) -> None:
        self.label = label
        self.unit = unit
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.every = every
        self.width = width
        self.delay = delay  # silent for work that ends sooner (a load from the cache)
        self.rate = rate  # counted units: also show units/s and the time left
        self.start = time.monotonic()
        self.last = -float("inf")
        self.last_done = 0
        self.drawn = False
        self.finished = False

    def __call__(self, done: int, total: int, what: str) -> None:
        now = time.monotonic()
        if now - self.start < self.delay:
            return
        if done < self.last_done:  # a new phase (e.g. verifying after writing) starts over
            self._end_line()
            self.finished = False
            self.last = -float("inf")
        self.last_done = done
        final = total > 0 and done >= total
        if final and self.finished:
            return
        if not final and now - self.last < (REDRAW_EVERY if self.tty else self.every):
            return
        self.last = now
        self.finished = final
        frac = done / total if total else 1.0
        if self.tty:
            filled = int(frac * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            amount = self._amount(done, now, total if self.rate else None)
            self.stream.write(f"\r{self.label} [{bar}] {frac:4.0%} {amount} {what[:28]:<28}")
            self.drawn = True
        else:
            self.stream.write(f"{self.label}: {frac:.0%} {self._amount(done, now, total)} {what}\n")
        self.stream.flush()

    def _amount(self, done: int, now: float, total: int | None = None) -> str:
        elapsed = max(now - self.start, 1e-9)
        if self.unit == "bytes":
            of = f"/{total / 1e6:,.1f}" if total is not None else ""
            return f"{done / 1e6:,.1f}{of} MB {done / elapsed / 1e6:6.1f} MB/s"
        of = f"/{total:,}" if total is not None else ""
        if not self.rate:
            return f"{done:,}{of} {self.unit}"
        per_s = done / elapsed
        left = ""
        if total and per_s > 0:
            left = f" ETA {max(total - done, 0) / per_s:,.0f}s"
        return f"{done:,}{of} {self.unit} {per_s:,.1f} {self.unit}/s{left}"

    def note(self, text: str) -> None:
        """A line of its own (a phase without a count, e.g. 'verifying')."""
        self._end_line()
        self.stream.write(f"{self.label}: {text}\n")
        self.stream.flush()

    def _end_line(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False

    def close(self) -> None:
        self._end_line()
