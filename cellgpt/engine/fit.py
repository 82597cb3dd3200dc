"""Training loops inside the sandbox: `fit(loss, [w1, b1], lr, steps)` and `at(cell, fitted)`.

`fit` runs plain gradient descent: `steps` times, the gradient of the loss cell with respect
to the parameter cells (autodiff.py, through the cells' own formulas) at the current values,
then `w ← w − lr·g` for each. The loop is ours; every forward and backward step is the
workbook's formulas, under the cell's budgets. Its value is a table: the parameters' final
values and the loss before every step and after the last (`loss`, steps + 1 numbers). The
workbook's cells keep their values: `at(prediction, fitted)` is the cell `prediction`
computed with the fitted parameters instead (a what-if, like a spreadsheet's data table).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from cellgpt.engine.autodiff import Backward
from cellgpt.engine.errors import CellEvalError
from cellgpt.engine.limits import check_time
from cellgpt.engine.store import MISSING

MAX_STEPS = 1_000_000
Make = Callable[[Callable[[str], Any], Callable[[str], Any]], Backward]
# Told after every step: (steps done, steps in all, the loss before each step so far).
Watcher = Callable[[int, int, list[float]], None]
_watchers = threading.local()  # per thread: a run in the TUI's job thread is watched alone


@contextlib.contextmanager
def watching(watcher: Watcher) -> Iterator[None]:
    """Report every training step of `fit` run in this thread while the block runs (the TUI
    shows the loss as it falls). The watcher runs on the training thread: keep it cheap."""
    previous = getattr(_watchers, "current", None)
    _watchers.current = watcher
    try:
        yield
    finally:
        _watchers.current = previous


def fit(
    make: Make, read: Callable[[str], Any], loss: str, params: list[str], lr: float, steps: int
) -> dict[str, Any]:
    """Gradient descent on `params` (see the module's doc)."""
    if not isinstance(steps, int | np.integer) or not 0 <= steps <= MAX_STEPS:
        raise CellEvalError(f"fit(): steps must be a whole number from 0 to {MAX_STEPS:,}")
    if not np.isfinite(lr):
        raise CellEvalError("fit(): the learning rate must be a finite number")
    current = {p: np.array(read(p), copy=True) for p in params}
    for p, value in current.items():
        if value.dtype.kind != "f":
            raise CellEvalError(f"fit(): {p!r} is not an array of floating-point numbers")

    def read_current(name: str) -> Any:
        return current[name] if name in current else read(name)

    def not_held(name: str) -> Any:
        return MISSING  # every path cell follows the current parameters

    history: list[float] = []
    watcher = getattr(_watchers, "current", None)
    for done in range(1, int(steps) + 1):
        check_time()
        backward = make(read_current, not_held)
        grads = backward.gradients(loss, params)
        history.append(float(np.sum(backward.loss_value)))
        for p in params:
            step = np.asarray(grads[p] * lr, dtype=current[p].dtype)
            current[p] = current[p] - step
        if watcher is not None:
            watcher(done, int(steps), history)
    final = make(read_current, not_held).value_at(loss, params)
    history.append(float(np.sum(final)))
    return {"loss": np.array(history), "params": current}


def at(make: Make, read: Callable[[str], Any], target: str, table: Any, cells: Any) -> Any:
    """`target` computed with the values in `table` ({cell: value}) for those cells."""
    if not isinstance(table, dict) or not isinstance(table.get("params"), dict):
        raise CellEvalError("at(): the second argument must be a fit(...) cell")
    values = {k: v for k, v in table["params"].items() if k in cells and k != target}

    def read_table(name: str) -> Any:
        return values[name] if name in values else read(name)

    return make(read_table, lambda name: MISSING).value_at(target, list(values))
