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


def test_our_own_work_does_not_count_as_another_process(monkeypatch):
    # Scripted readings (a real busy loop of ours would race with whatever else this box
    # runs): the machine's busy seconds grow exactly as ours do, then by a core more.
    clock = {"now": 100.0, "busy": 5000.0, "own": 10.0}
    monkeypatch.setattr(load_watch.time, "monotonic", lambda: clock["now"])
    monkeypatch.setattr(load_watch, "_system_busy_seconds", lambda: clock["busy"])
    monkeypatch.setattr(load_watch, "_own_seconds", lambda: clock["own"])

    def advance(seconds: float, ours: float, others: float) -> bool:
        clock["now"] += seconds
        clock["own"] += ours
        clock["busy"] += ours + others
        return load_watch.machine_is_quiet()

    assert load_watch.machine_is_quiet() is False  # the first reading
    assert advance(0.5, ours=0.95, others=0.0) is True  # two cores of work, all ours
    assert advance(0.5, ours=0.95, others=0.05) is True  # a little noise is still quiet
    assert advance(0.5, ours=0.2, others=0.4) is False  # another process: 0.8 of a core
    assert advance(0.1, ours=0.0, others=0.0) is False  # within INTERVAL: the cached answer


def test_without_proc_stat_it_is_never_quiet(monkeypatch):
    monkeypatch.setattr(load_watch, "_system_busy_seconds", lambda: None)
    assert load_watch.machine_is_quiet() is False
    assert _reading_after(0.3) is False


def test_the_first_reading_is_taken_at_import_so_the_first_question_can_be_quiet(monkeypatch):
    """A short `cellgpt run` asks first right after loading the weights: with a reading taken
    at import it gets an answer then, not "busy" for its whole first INTERVAL."""
    clock = {"now": 100.0, "busy": 5000.0, "own": 10.0}
    monkeypatch.setattr(load_watch.time, "monotonic", lambda: clock["now"])
    monkeypatch.setattr(load_watch, "_system_busy_seconds", lambda: clock["busy"])
    monkeypatch.setattr(load_watch, "_own_seconds", lambda: clock["own"])
    load_watch.prime()
    clock["now"] += load_watch.MIN_SPAN / 2  # too soon: not enough ticks to tell
    assert load_watch.machine_is_quiet() is False
    clock["now"] += load_watch.MIN_SPAN / 4
    clock["busy"] += 5.0  # another process's work in between: still not asked again
    assert load_watch.machine_is_quiet() is False
    clock["busy"] -= 5.0
    clock["now"] += 1.0  # loading the weights: all ours
    clock["own"] += 1.9
    clock["busy"] += 1.9
    assert load_watch.machine_is_quiet() is True
