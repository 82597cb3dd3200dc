"""Row and column labels for a cell's value, taken from the cells its display hints name
(e.g. `rows="tokens"`), or from the vocabulary when an axis is vocabulary-sized."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cellgpt.engine.value_limits import SMALL, fits, preview
from cellgpt.gpt2.cells import WorkbookCells
from cellgpt.tokenizer import display
from cellgpt.tokenizer.display import token_text

Labeler = Callable[[int], str]

# One meaning per mark in the TUI: · is a space at a token's edge (as the tokenizer shows it);
# a non-breaking space, which would look like a space or like nothing, gets its own mark.
NBSP_MARK = "⍽"


def visible(text: str) -> str:
    """Token text as the TUI shows it: `display.visible`, plus a visible mark for a
    non-breaking space and \\uNNNN for other invisible characters."""
    text = display.visible(text)
    if text.isprintable():  # C speed: nearly every token
        return text
    return "".join(_shown(ch) for ch in text)


def _shown(ch: str) -> str:
    if ch == "\xa0":
        return NBSP_MARK
    if ch.isprintable():
        return ch
    code = ord(ch)
    return (
        f"\\x{code:02x}"
        if code < 0x100
        else f"\\u{code:04x}"
        if code <= 0xFFFF
        else f"\\U{code:08x}"
    )


def hint_values(wb: Any, hint: Any) -> list[Any] | tuple[Any, ...] | None:
    """The items of the cell or library constant a display hint names, or None."""
    if not isinstance(hint, str) or not hint:
        return None
    labels: Any = None
    constants = getattr(getattr(wb, "library", None), "constants", {})
    if hint in constants:
        labels = constants[hint]
    elif hint in wb:
        labels = wb.value(hint)  # never runs anything: the UI thread must not compute
    return labels if isinstance(labels, list | tuple) else None


def from_hint(wb: Any, hint: Any, n: int) -> Labeler | None:
    """Labels from a cell or library constant named by a hint, if it has exactly n items."""
    labels = hint_values(wb, hint)
    if labels is None or len(labels) != n:
        return None
    return lambda i: visible(label_text(labels[i]))  # lazily: only visible rows are asked


LABEL_CHARS = 200  # no label needs more: the grid shows at most ~20 characters


def label_text(x: Any) -> str:
    """str(x), bounded: a giant or deeply nested label item is cut, never walked whole."""
    if isinstance(x, str):
        return x[:LABEL_CHARS]
    return str(x)[:LABEL_CHARS] if fits(x, SMALL) else preview(x, LABEL_CHARS)


def vocabulary(wb: Any, n: int, *, with_id: bool = True) -> Labeler | None:
    """`id token` labels when n is the vocabulary size of the workbook's tokenizer."""
    tok = WorkbookCells(wb).tokenizer
    if tok is None or getattr(tok, "vocab_size", None) != n or not hasattr(tok, "token_bytes"):
        return None
    width = len(str(n - 1))

    def label(i: int) -> str:  # built lazily: only visible rows are ever asked for
        text = token_text(tok.token_bytes(i))  # as the vocab table shows it
        return f"{i:>{width}} {text}" if with_id else text

    return label


def numbered(labels: Labeler) -> Labeler:
    """`i label`, so row numbers stay visible next to token texts."""
    return lambda i: f"{i} {labels(i)}"


def for_axis(wb: Any, hint: Any, n: int, *, rows: bool = True) -> Labeler:
    """The best labels for an axis of length n: hint cell, vocabulary, or plain indices.
    Row labels carry the index; column labels are kept short (they share a narrow header)."""
    hinted = from_hint(wb, hint, n)
    if hinted is not None:
        return numbered(hinted) if rows else hinted
    return vocabulary(wb, n, with_id=rows) or str


def is_vocabulary(wb: Any, n: int) -> bool:
    return vocabulary(wb, n) is not None
