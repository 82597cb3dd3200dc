"""Is another process using the CPU right now? For choosing how to thread small products.

OpenBLAS's own threads split a matrix-vector product (a generated token's rows) or a product
of a few rows 1.7-2x better than our one-chunk-per-core split on a quiet machine, but their
fine-grained synchronisation collapses when another process holds a core (a one-row product
was 20x slower under one busy loop). So the kernels use BLAS threads only while the machine
is quiet: less than a quarter of a core was used by other processes over the last ~0.25 s,
measured from /proc/stat (every process's CPU time, steal included) minus our own. Cheap:
one reading per interval. Off Linux (no /proc/stat) the answer is always "not quiet".
"""

from __future__ import annotations

import os
import threading
import time

INTERVAL = 0.25  # seconds between readings
OTHERS_LIMIT = 0.25  # cores used by other processes above which the machine is busy
MIN_SPAN = 0.1  # seconds: a shorter span between two readings measures only tick noise

_lock = threading.Lock()
_state: dict[str, float | bool] = {"at": -1.0, "quiet": False}
_last: tuple[float, float, float] | None = None  # (monotonic, system busy s, own cpu s)


def _system_busy_seconds() -> float | None:
    """Busy CPU seconds of the whole machine since boot (all cores), or None."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = handle.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 9:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system


def machine_is_quiet() -> bool:
    """True if other processes used less than OTHERS_LIMIT cores lately (cached for
    INTERVAL seconds). False until two readings at least MIN_SPAN apart exist (the first is
    taken at import), and whenever /proc/stat is missing."""
    global _last
    now = time.monotonic()
    if now - float(_state["at"]) < INTERVAL:
        return bool(_state["quiet"])
    with _lock:
        if now - float(_state["at"]) < INTERVAL:
            return bool(_state["quiet"])
        busy = _system_busy_seconds()
        quiet = False
        if busy is not None:
            own = _own_seconds()
            if _last is not None and now - _last[0] < MIN_SPAN:
                # Too short to tell (clock ticks are 10 ms): "busy" until MIN_SPAN is up.
                _state["at"], _state["quiet"] = _last[0] + MIN_SPAN - INTERVAL, False
                return False
            if _last is not None:
                others = (busy - _last[1]) - (own - _last[2])
                quiet = others / (now - _last[0]) < OTHERS_LIMIT
            _last = (now, busy, own)
        _state["at"], _state["quiet"] = now, quiet
        return quiet


def prime() -> None:
    """Take the first reading now (at import), so that the first question, typically after
    the weights have loaded, already has a span to measure: a short `cellgpt run` would
    otherwise spend its first INTERVAL on the path for a busy machine."""
    global _last
    busy = _system_busy_seconds()
    if busy is not None:
        with _lock:
            _last = (time.monotonic(), busy, _own_seconds())


prime()
