"""The timing protocol every cellgpt-vs-PyTorch benchmark shares (issue #14, "Speed, measured
fairly"):

- all timed sides run in one process, interleaved: round r runs them in the given order when r
  is even and in reverse when it is odd (A B, B A, ...), so neither side always goes first;
- before each side, an idle pause (PAUSE seconds) so the BLAS / OpenMP worker threads of the
  side before have stopped spinning and parked;
- the headline is the median of the per-round ratios (the rounds share one input and nearly
  one machine state), next to each side's own median;
- the load average is printed before and after, the other processes' runnable tasks are
  sampled during the pauses, and a busy machine is warned about (`--strict`: exit 1), since
  PyTorch's 2-thread mode collapses when a core is taken and the ratio then flatters us;
- `--busy` measures on purpose under one background busy loop (`yes > /dev/null`).
"""

from __future__ import annotations

import argparse
import glob
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

# Measured with GPT-2-small shapes at 64 tokens on the 2-core dev VM: PyTorch (2 threads) right
# after the numpy reference forward took 150 ms with no pause, 100 ms after 0.05 s, 72 ms after
# 0.1 s, 0.3 s or 1 s (medians of 6): OpenBLAS's workers spin for about 0.1 s after their last
# call and take the cores from torch's threads meanwhile. 0.3 s leaves a margin.
PAUSE = 0.3
LOAD_LIMIT = 1.5  # 1-min load average above which a run is not "quiet" (2 cores)
# Mean runnable tasks of other processes seen during the pauses above which a run is busy: a
# 6-token run that saw 0.42 had torch (2 threads) at 101 ms instead of 39 ms.
BACKGROUND_LIMIT = 0.2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pause", type=float, default=PAUSE, help=f"idle seconds before each side ({PAUSE})"
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 if the machine was busy (not with --busy)"
    )
    parser.add_argument(
        "--busy",
        action="store_true",
        help="measure under one background busy loop (`yes > /dev/null`), on purpose",
    )


@dataclass
class Side:
    """One timed side of a round. `setup` runs untimed before the pause (e.g. setting torch's
    thread count, resetting the workbook's generated tokens)."""

    run: Callable[[], Any]
    setup: Callable[[], None] | None = None


@dataclass
class Measured:
    """What a side returns when it times itself (e.g. the median of its tokens, leaving out
    its warm-up): run_rounds keeps `seconds` instead of the side's wall time."""

    seconds: float
    output: Any


@dataclass
class Rounds:
    """Seconds per side per kept round, in round order (every side has one entry per round)."""

    times: dict[str, list[float]] = field(default_factory=dict)

    def median(self, side: str) -> float:
        return statistics.median(self.times[side])

    def ratio(self, a: str, b: str) -> float:
        """Median over rounds of a's time / b's time in the same round."""
        return statistics.median(x / y for x, y in zip(self.times[a], self.times[b], strict=True))


class Machine:
    """The load the benchmark ran under: load averages before and after, and the other
    processes' runnable tasks sampled during the idle pauses (when ours all sleep)."""

    def __init__(self, busy: bool = False) -> None:
        self.busy = busy
        self.before = os.getloadavg()
        self.samples: list[int] = []

    def sample(self) -> None:
        self.samples.append(other_runnable())

    def pause(self, seconds: float) -> None:
        """Sleep while BLAS/OpenMP workers park; sample the other processes at the end."""
        if seconds > 0:
            time.sleep(seconds)
        self.sample()

    @property
    def background(self) -> float:
        return statistics.fmean(self.samples) if self.samples else float("nan")

    def busy_reasons(self) -> list[str]:
        reasons = []
        if self.before[0] > LOAD_LIMIT:
            reasons.append(f"1-min load average {self.before[0]:.2f} > {LOAD_LIMIT} before")
        if self.samples and self.background > BACKGROUND_LIMIT:
            reasons.append(
                f"other processes' runnable tasks averaged {self.background:.2f} "
                f"> {BACKGROUND_LIMIT} during the pauses"
            )
        return reasons

    def report(self, strict: bool) -> int:
        """Print the load summary; the exit status (1 if --strict and the machine was busy)."""
        after = os.getloadavg()
        seen = f"{self.background:.2f} (max {max(self.samples)})" if self.samples else "n/a"
        print(
            f"load average before {fmt_load(self.before)}, after {fmt_load(after)} (after "
            f"includes this benchmark's own threads); other runnable tasks during the pauses: "
            f"mean {seen}" + ("; one `yes` busy loop ran on purpose (--busy)" if self.busy else "")
        )
        reasons = self.busy_reasons()
        if not reasons or self.busy:
            return 0
        print(
            "WARNING: the machine was not quiet (" + "; ".join(reasons) + "): PyTorch's "
            "threads lose a core to the other work, so these ratios favour cellgpt. Re-run "
            "when `uptime` shows a load below 1.5.",
            file=sys.stderr,
        )
        return 1 if strict else 0


def fmt_load(load: tuple[float, float, float]) -> str:
    return " ".join(f"{x:.2f}" for x in load)


def other_runnable() -> int:
    """Runnable tasks on the machine right now, less this process's own runnable threads (the
    reading one; after the pause no worker should be: checked, BLAS spins ~0.1 s)."""
    with open("/proc/loadavg", encoding="ascii") as handle:
        running = int(handle.read().split()[3].split("/")[0])
    own = 0
    for stat in glob.glob("/proc/self/task/*/stat"):
        try:
            with open(stat, encoding="ascii", errors="replace") as handle:
                own += handle.read().rsplit(")", 1)[1].split()[0] == "R"
        except OSError:  # the thread ended meanwhile
            continue
    return max(0, running - max(own, 1))


@contextmanager
def busy_loop(enabled: bool) -> Iterator[None]:
    """With `enabled`, one `yes > /dev/null` for the duration (stopped on the way out)."""
    if not enabled:
        yield
        return
    proc = subprocess.Popen(["yes"], stdout=subprocess.DEVNULL)
    try:
        time.sleep(1.0)  # let it take its core before anything is timed
        yield
    finally:
        proc.terminate()
        proc.wait()


def run_rounds(
    make_round: Callable[[int], Mapping[str, Side]],
    rounds: int,
    machine: Machine,
    *,
    pause: float = PAUSE,
    warmup: int = 1,
    check: Callable[[dict[str, Any]], None] | None = None,
) -> Rounds:
    """`warmup` + `rounds` rounds; make_round(r) gives that round's sides (same input for all).
    Warm-up rounds are run and checked but not kept. check(outputs) sees every round."""
    result = Rounds()
    for r in range(warmup + rounds):
        sides = make_round(r)
        order = list(sides) if r % 2 == 0 else list(reversed(list(sides)))
        outputs: dict[str, Any] = {}
        for name in order:
            side = sides[name]
            if side.setup is not None:
                side.setup()
            machine.pause(pause)
            start = time.perf_counter()
            outputs[name] = side.run()
            seconds = time.perf_counter() - start
            if isinstance(outputs[name], Measured):
                seconds, outputs[name] = outputs[name].seconds, outputs[name].output
            if r >= warmup:
                result.times.setdefault(name, []).append(seconds)
        if check is not None:
            check(outputs)
    return result
