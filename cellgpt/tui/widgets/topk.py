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


def render_top_k(rows: list[tuple[Any, ...]], previous: list[tuple[Any, ...]] | None) -> Text:
    """One line per candidate: token, probability, bar, and rank change (▲/▼/new)."""
    out = Text()
    if not rows:
        return Text("no prediction yet", style="dim")
    top = max(float(r[2]) for r in rows) or 1.0
    before = {int(r[0]): i for i, r in enumerate(previous or [])}
    width = min(16, max(len(visible(str(r[1]))) for r in rows) + 2)
    for rank, (token_id, token, prob, _logit) in enumerate(rows):
        label = f"'{visible(str(token))}'"
        out.append(f"{label[:width]:<{width}} ", style="bold" if rank == 0 else "")
        out.append(f"{percent(float(prob)):>7} ", style="cyan")
        out.append(bar(float(prob) / top), style="green" if rank == 0 else "blue")
        if previous is not None:
            was = before.get(int(token_id))
            if was is None:
                out.append(" new", style="bold yellow")
            elif was > rank:
                out.append(f" ▲{was - rank}", style="green")
            elif was < rank:
                out.append(f" ▼{rank - was}", style="red")
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
    """Call `show(top_k, stale=...)`; it remembers the previous list to show rank changes."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._current: list[tuple[Any, ...]] | None = None
        self._previous: list[tuple[Any, ...]] | None = None

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
        body = render_top_k(self._current or [], self._previous)
        if stale:
            body.stylize("dim")
        self.update(body)
