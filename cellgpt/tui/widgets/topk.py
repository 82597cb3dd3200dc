"""The next-token panel: the top-k candidates with probability bars, and how each one moved
since the previous prediction (so an edit's effect is visible at a glance)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from cellgpt.tui.labels import label_text, visible

BAR = 18  # cells for the longest bar
_EIGHTHS = " ▏▎▍▌▋▊▉█"


def bar(fraction: float, width: int = BAR) -> str:
    """A horizontal bar with 1/8-cell resolution."""
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    full, part = divmod(eighths, 8)
    return ("█" * full + (_EIGHTHS[part] if part else "")).ljust(width)


def percent(p: float) -> str:
    """Probabilities as percentages, keeping 3 significant digits for tiny ones."""
    return f"{p:.2%}" if p >= 0.001 else f"{p * 100:.4f}%"


def delta_text(delta: float) -> str:
    """A change in probability in percentage points, e.g. "+2.31pp"."""
    points = delta * 100
    if abs(points) >= 0.005:
        return f"{points:+.2f}pp"
    # tiny probabilities (a small model) move by less: keep two significant digits
    return f"{points:+.2g}pp" if abs(points) >= 5e-7 else "±0pp"


def render_top_k(
    rows: list[tuple[Any, ...]], previous: list[tuple[Any, ...]] | None, width: int = 0
) -> Text:
    """One line per candidate: token, probability, bar, and — after an edit — the rank
    change (▲/▼/new) and the change in probability (Δp, in percentage points)."""
    out = Text()
    if not rows:
        return Text("no prediction yet", style="dim")
    top = max(float(r[2]) for r in rows) or 1.0
    before = {int(r[0]): (i, float(r[2])) for i, r in enumerate(previous or [])}
    label_w = min(16, max(len(visible(str(r[1]))) for r in rows) + 2)
    changes = 15 if previous is not None else 0  # " ▲12" and " -0.0012pp"
    bar_w = max(4, min(BAR, width - label_w - 9 - changes)) if width else BAR
    if previous is not None:
        out.append(f"{'':<{label_w}} {'p':>7} {'':<{bar_w}} rank     Δp\n", style="dim")
    for rank, (token_id, token, prob, _logit) in enumerate(rows):
        label = f"'{visible(str(token))}'"
        out.append(f"{label[:label_w]:<{label_w}} ", style="bold" if rank == 0 else "")
        out.append(f"{percent(float(prob)):>7} ", style="cyan")
        out.append(bar(float(prob) / top, bar_w), style="green" if rank == 0 else "blue")
        if previous is not None:
            was = before.get(int(token_id))
            if was is None:
                out.append(f" {'new':>4}", style="bold yellow")
                out.append(f" {'':>9}")
            else:
                moved = was[0] - rank
                mark = f"▲{moved}" if moved > 0 else f"▼{-moved}" if moved < 0 else "="
                style = "green" if moved > 0 else "red" if moved < 0 else "dim"
                out.append(f" {mark:>4}", style=style)
                delta = float(prob) - was[1]
                style = "green" if delta > 5e-5 else "red" if delta < -5e-5 else "dim"
                out.append(f" {delta_text(delta):>9}", style=style)
        out.append("\n")
    out.rstrip()
    return out


MAX_ROWS = 100  # candidates listed; a panel never needs more


def _candidates(rows: Any) -> list[tuple[Any, ...]] | None:
    """The (id, token, prob, logit) rows of a top_k value, or None when it is not such a list
    (a workbook may define top_k as anything)."""
    if not isinstance(rows, list | tuple):
        return None
    out = []
    for row in rows[:MAX_ROWS]:
        if not (isinstance(row, list | tuple) and len(row) == 4):
            return None
        token_id, token, prob, logit = row
        try:
            out.append((int(token_id), label_text(token), float(prob), float(logit)))
        except (TypeError, ValueError, OverflowError):
            return None
    return out


class TopKPanel(Static):
    """Call `show(top_k, stale=...)`; it remembers the previous list to show how ranks and
    probabilities moved."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._current: list[tuple[Any, ...]] | None = None
        self._previous: list[tuple[Any, ...]] | None = None
        self._stale = False

    def best(self) -> tuple[str, float] | None:
        """The top candidate (token, probability), if any."""
        return (str(self._current[0][1]), float(self._current[0][2])) if self._current else None

    def _text_width(self) -> int:
        return self.content_size.width or 0

    def on_resize(self) -> None:
        if self._current is not None:  # the bars follow the panel's width
            body = render_top_k(self._current, self._previous, self._text_width())
            if self._stale:
                body.stylize("dim")
            self.update(body)

    def show(self, rows: Any, *, stale: bool = False, next_text: Any = None) -> None:
        rows = _candidates(rows)
        next_text = label_text(next_text) if next_text is not None else None
        if rows is not None and rows != self._current:
            if self._current is not None:
                self._previous = self._current
            self._current = rows
        title = "next token"
        if next_text is not None:
            title += f": '{visible(next_text)}'"
        if stale:
            title += "  (stale — R runs)"
        self.border_title = title
        self._stale = stale
        body = render_top_k(self._current or [], self._previous, self._text_width())
        if stale:
            body.stylize("dim")
        self.update(body)
