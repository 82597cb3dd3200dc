"""load_watch: the machine counts as quiet only with two readings that show other processes
using less than a quarter of a core; a busy loop beside us makes it busy."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from cellgpt.engine import load_watch


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    monkeypatch.setattr(load_watch, "_state", {"at": -1.0, "quiet": False})
    monkeypatch.setattr(load_watch, "_last", None)


def _reading_after(seconds: float) -> bool:
    time.sleep(seconds)
    load_watch._state["at"] = -1.0  # take a new reading now
    return load_watch.machine_is_quiet()


def test_the_first_reading_is_never_quiet():
    assert load_watch.machine_is_quiet() is False


def test_a_busy_loop_beside_us_is_seen():
    load_watch.machine_is_quiet()
    loop = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # let it start
        load_watch._state["at"] = -1.0
        load_watch.machine_is_quiet()
        assert _reading_after(0.5) is False
    finally:
        loop.kill()
        loop.wait()


def test_our_own_work_does_not_count_as_another_process():
    load_watch.machine_is_quiet()
    end = time.monotonic() + 0.5
    while time.monotonic() < end:  # we are busy; nobody else is (or this box is loaded)
        pass
    load_watch._state["at"] = -1.0
    quiet = load_watch.machine_is_quiet()
    others = _others_now()
    assert quiet or others >= load_watch.OTHERS_LIMIT


def _others_now() -> float:
    """Cores used by other processes over a short window, measured the same way."""
    b0, o0, t0 = load_watch._system_busy_seconds(), load_watch._own_seconds(), time.monotonic()
    time.sleep(0.3)
    b1, o1, t1 = load_watch._system_busy_seconds(), load_watch._own_seconds(), time.monotonic()
    assert b0 is not None and b1 is not None
    return ((b1 - b0) - (o1 - o0)) / (t1 - t0)


def test_without_proc_stat_it_is_never_quiet(monkeypatch):
    monkeypatch.setattr(load_watch, "_system_busy_seconds", lambda: None)
    assert load_watch.machine_is_quiet() is False
    assert _reading_after(0.3) is False
