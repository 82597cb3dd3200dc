"""Colour scales for the matrix grid: a diverging blue-white-red scale centred at 0, scaled
by a robust maximum so one outlier does not wash out every other cell."""

from __future__ import annotations

import numpy as np
from rich.color import Color
from rich.style import Style

LEVELS = 12  # shades on each side of zero
NONFINITE = 2 * LEVELS + 1  # code used for nan / ±inf cells
SAMPLE = 100_000  # values looked at to estimate the scale

_BLUE = (33, 102, 172)
_WHITE = (247, 247, 247)
_RED = (178, 24, 43)


def robust_max(values: np.ndarray, *, percentile: float = 99.0) -> float:
    """The `percentile` of |x| over (a strided sample of) the finite values; never 0."""
    flat = np.asarray(values).reshape(-1)
    if flat.size > SAMPLE:  # a strided sample reads memory in order (fast on memory maps)
        flat = flat[:: flat.size // SAMPLE]
    flat = np.abs(flat.astype(np.float64, copy=False))
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return 1.0
    vmax = float(np.percentile(flat, percentile))
    if vmax <= 0:
        vmax = float(flat.max())
    return vmax if vmax > 0 else 1.0


def levels(block: np.ndarray, vmax: float) -> np.ndarray:
    """Shade codes in [-LEVELS, LEVELS] for each value; NONFINITE for nan/inf."""
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = np.asarray(block, dtype=np.float64) / vmax
        codes = np.rint(np.clip(scaled, -1.0, 1.0) * LEVELS)
    codes[~np.isfinite(scaled)] = NONFINITE
    return codes.astype(np.int16)


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> Color:
    return Color.from_rgb(*(round(x + (y - x) * t) for x, y in zip(a, b, strict=True)))


def _build_styles() -> dict[int, Style]:
    styles: dict[int, Style] = {}
    for code in range(-LEVELS, LEVELS + 1):
        t = abs(code) / LEVELS
        end = _RED if code > 0 else _BLUE
        # Dark shades need light text to stay readable.
        fg = Color.from_rgb(255, 255, 255) if t > 0.55 else Color.from_rgb(20, 20, 20)
        styles[code] = Style(bgcolor=_mix(_WHITE, end, t), color=fg)
    styles[NONFINITE] = Style(
        bgcolor=Color.from_rgb(90, 90, 90), color=Color.from_rgb(200, 200, 200)
    )
    return styles


STYLES = _build_styles()
CURSOR_STYLE = Style(bgcolor=Color.from_rgb(255, 215, 0), color=Color.from_rgb(0, 0, 0), bold=True)


def style_for(code: int) -> Style:
    """The cell style for a shade code from `levels`."""
    return STYLES[int(code)]
