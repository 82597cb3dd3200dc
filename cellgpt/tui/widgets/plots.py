"""Small text plots above a cell's value, asked for by display hints:

- `plot="versus target"`: the cell and the cell `target` as two series over the cells' rows
  (x from the `rows` hint's cell when it holds numbers), e.g. the parabola and the curve a
  network fitted to it;
- `bars=True`: one signed bar per row with the row's label, e.g. a saliency per prompt token.

A loss history (any 1-D vector) already gets the value pane's sparkline.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.text import Text

from cellgpt.tui.labels import for_axis

WIDTH, HEIGHT = 60, 12
BAR = 24
_EIGHTHS = " ▏▎▍▌▋▊▉█"
_LEVELS = "▁▂▃▄▅▆▇█"


def spark_text(values: list[float], width: int = 24) -> str:
    """The last `width` values as one line of block characters (low ▁ … high █)."""
    tail = np.asarray(values[-width:], dtype=np.float64)
    tail = tail[np.isfinite(tail)]
    if tail.size == 0:
        return ""
    low, span = tail.min(), np.ptp(tail)
    if span == 0:
        return _LEVELS[0] * tail.size
    steps = np.round((tail - low) / span * (len(_LEVELS) - 1)).astype(int)
    return "".join(_LEVELS[i] for i in steps)


def render(wb: Any, info: Any, value: Any) -> Text | None:
    """The plot a cell's hints ask for, or None."""
    hints = info.hints
    if not isinstance(value, np.ndarray) or value.ndim != 1 or value.size == 0:
        return None
    plot = hints.get("plot")
    if isinstance(plot, str) and plot.startswith("versus "):
        other_name = plot.split(" ", 1)[1].strip()
        other = wb.value(other_name) if other_name in wb else None
        if not isinstance(other, np.ndarray) or other.shape != value.shape:
            return None
        rows = hints.get("rows")
        xs = wb.value(rows) if isinstance(rows, str) and rows in wb else None
        if not isinstance(xs, np.ndarray) or xs.shape != value.shape:
            xs = np.arange(value.size)
        return versus(xs, {other_name: other, info.name: value})
    if hints.get("bars"):
        label = for_axis(wb, hints.get("rows"), value.shape[0], rows=False)
        return bars([label(i) for i in range(value.shape[0])], value)
    return None


def versus(
    xs: np.ndarray, series: dict[str, np.ndarray], width: int = WIDTH, height: int = HEIGHT
) -> Text:
    """Several series over the same x as points on a character grid (later series on top),
    with the y range on the left and a legend below."""
    marks = ["·", "●", "+", "x"]
    styles = ["dim", "bold cyan", "yellow", "magenta"]
    xs = np.asarray(xs, dtype=np.float64)
    ys = [np.asarray(s, dtype=np.float64) for s in series.values()]
    finite = np.concatenate([y[np.isfinite(y)] for y in ys] or [np.zeros(1)])
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    hi = hi if hi > lo else lo + 1.0
    x_lo, x_hi = float(xs.min()), float(xs.max())
    x_hi = x_hi if x_hi > x_lo else x_lo + 1.0
    canvas: list[list[tuple[str, str]]] = [[(" ", "")] * width for _ in range(height)]
    for k, y in enumerate(ys):
        for xv, yv in zip(xs, y, strict=True):
            if not np.isfinite(yv):
                continue
            col = round((xv - x_lo) / (x_hi - x_lo) * (width - 1))
            row = height - 1 - round((yv - lo) / (hi - lo) * (height - 1))
            canvas[row][col] = (marks[k % len(marks)], styles[k % len(styles)])
    out = Text()
    for r, line in enumerate(canvas):
        axis = f"{hi:8.3g} ┤" if r == 0 else f"{lo:8.3g} ┤" if r == height - 1 else "         │"
        out.append(axis, style="dim")
        for ch, style in line:
            out.append(ch, style=style)
        out.append("\n")
    out.append(f"         └{'─' * width}\n", style="dim")
    out.append(f"          {x_lo:<10.3g}{'':{max(0, width - 20)}}{x_hi:>10.3g}\n", style="dim")
    for k, name in enumerate(series):
        out.append(f"  {marks[k % len(marks)]} {name}", style=styles[k % len(styles)])
    return out


def bars(labels: list[str], values: np.ndarray, width: int = BAR) -> Text:
    """One line per row: its label, its value and a bar as long as |value| relative to the
    largest, green for positive and red for negative."""
    values = np.asarray(values, dtype=np.float64)
    top = float(np.max(np.abs(values[np.isfinite(values)]), initial=0.0)) or 1.0
    label_w = min(16, max((len(s) for s in labels), default=1))
    out = Text()
    for label, v in zip(labels, values, strict=True):
        out.append(f"{label[:label_w]:>{label_w}} ", style="bold")
        out.append(f"{v:+10.4g} ")
        out.append(
            _bar(abs(v) / top if np.isfinite(v) else 0.0, width), "green" if v >= 0 else "red"
        )
        out.append("\n")
    return out


def _bar(fraction: float, width: int) -> str:
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    full, part = divmod(eighths, 8)
    return "█" * full + (_EIGHTHS[part] if part else "")
