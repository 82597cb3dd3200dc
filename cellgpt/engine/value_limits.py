"""How big a cell's value is to anything that walks it: the one size/shape guard every display
path (CLI JSON/CSV/table, `Workbook.table`, the TUI, the export) calls before walking a value,
and a bounded preview for where a glimpse is the natural answer.

A value may be hostile: a list nested 100,000 deep (repr and json recurse), a list of 10**7
references to one 10**7-item list (tiny in memory, 10**14 items to print), a 100 MB string, a
0 x 10**9 array (no numbers, but a billion labels). `measure` walks iteratively, visits each
occurrence (printing does too) and stops as soon as a limit is passed, so it costs at most
about `max_items` steps whatever the value.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from cellgpt.engine.errors import LimitError

MAX_SHOWN_ITEMS = 10**7  # numbers/items a printed or tabled value may hold
MAX_SHOWN_NESTED = 10**6  # lists/tuples/dicts inside one value (each costs a Python step)
MAX_SHOWN_DEPTH = 30  # nesting of lists/dicts (numpy itself stops at 64 dimensions)
MAX_SHOWN_CHARS = 2**24  # characters of text (strings, bytes, dict keys) in one value
MAX_TABLE_COLUMNS = 2**17  # pandas' repr slows to minutes on millions of columns
# Python refuses to print integers past this many digits (int max str digits): check bits.
MAX_INT_BITS = int(sys.get_int_max_str_digits() * math.log2(10)) - 8 or 2**20

_LEAVES = (str, bytes, int, float, bool, complex, type(None), np.generic)
_CONTAINERS = (list, tuple, dict, np.ndarray)


class ValueTooLarge(LimitError):
    """A value too big to walk for a display. `reason` says what is too big ("100,000,000
    values"); callers add the cell name and what to do instead."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class Limits:
    items: int = MAX_SHOWN_ITEMS
    depth: int = MAX_SHOWN_DEPTH
    chars: int = MAX_SHOWN_CHARS
    nested: int = MAX_SHOWN_NESTED


SHOWN = Limits()
SMALL = Limits(
    items=20_000, depth=20, chars=200_000, nested=5_000
)  # repr of such a value is instant


def array_items(arr: np.ndarray) -> int:
    """Items an array costs to print or table: its numbers plus its rows and columns (a
    0 x 10**9 array has no numbers but a billion column labels; 10**9 x 0 a billion rows)."""
    if arr.ndim == 0:
        return 1
    return max(int(arr.size), math.prod(arr.shape[:-1]), int(arr.shape[-1]))


def _leaf_cost(x: Any) -> tuple[int, int]:
    """(items, characters) of one non-container."""
    if isinstance(x, str | bytes | bytearray):
        return 1, len(x)
    if isinstance(x, int) and not isinstance(x, bool) and x.bit_length() > MAX_INT_BITS:
        raise ValueTooLarge(f"an integer of {x.bit_length():,} bits")
    return 1, 0


def _flat_cost(x: list[Any] | tuple[Any, ...]) -> tuple[int, int] | None:
    """A list of plain scalars or strings, costed at C speed (no Python loop per item)."""
    types = set(map(type, x))
    if not types <= {int, float, bool, type(None), str}:
        return None
    chars = sum(map(len, filter(lambda v: isinstance(v, str), x))) if str in types else 0
    if int in types and _widest_int(x, types) > MAX_INT_BITS:
        raise ValueTooLarge(f"an integer of more than {MAX_INT_BITS:,} bits")
    return len(x), chars


def _widest_int(x: list[Any] | tuple[Any, ...], types: set[type]) -> int:
    ints = x if types == {int} else [v for v in x if type(v) is int]
    return max(map(int.bit_length, ints), default=0)


def _children(x: Any) -> Any:
    if isinstance(x, dict):
        return (v for pair in x.items() for v in pair)
    if isinstance(x, np.ndarray):
        return x.flat  # only object arrays get here
    return x


def measure(value: Any, limits: Limits = SHOWN) -> int:
    """Items `value` holds (each occurrence of a shared sub-list counts), raising
    ValueTooLarge as soon as it passes a limit of items, depth or characters. Containers
    are walked through a stack of iterators: memory grows with depth, never with size."""
    items = chars = nested = 0
    stack: list[tuple[Iterator[Any], int]] = [(iter([value]), 0)]
    while stack:
        it, depth = stack[-1]
        x = next(it, _END)
        if x is _END:
            stack.pop()
            continue
        if isinstance(x, np.ndarray) and x.dtype != object:
            n, c = array_items(x), 0
        elif isinstance(x, _CONTAINERS):
            if depth >= limits.depth:
                raise ValueTooLarge(f"lists nested more than {limits.depth} deep")
            # Every child costs at least one item: a long container fails before its walk.
            if items + (x.size if isinstance(x, np.ndarray) else len(x)) > limits.items:
                raise ValueTooLarge(f"more than {limits.items:,} values")
            flat = _flat_cost(x) if isinstance(x, list | tuple) else None
            if flat is None:
                nested += 1
                if nested > limits.nested:
                    raise ValueTooLarge(f"more than {limits.nested:,} nested lists")
                stack.append((iter(_children(x)), depth + 1))
                continue
            n, c = flat
        else:
            n, c = _leaf_cost(x)
        items, chars = items + n, chars + c
        if items > limits.items:
            shown = f"{items:,}" if len(stack) == 1 else f"more than {limits.items:,}"
            raise ValueTooLarge(f"{shown} values")
        if chars > limits.chars:
            raise ValueTooLarge(f"more than {limits.chars:,} characters of text")
    return items


_END = object()


def fits(value: Any, limits: Limits = SMALL) -> bool:
    try:
        measure(value, limits)
    except ValueTooLarge:
        return False
    return True


def check_shown(name: str, value: Any, what: str, instead: str = "") -> None:
    """Raise ValueTooLarge with a message naming the cell, what was refused and what to do:
    'h3.x: 100,000,000 values — too large to print as JSON; use --format npy --out FILE'."""
    try:
        measure(value)
    except ValueTooLarge as exc:
        tail = f"; {instead}" if instead else ""
        raise ValueTooLarge(f"{name}: {exc.reason} — too large to {what}{tail}") from None


# ---------------------------------------------------------------------- bounded previews
def preview(value: Any, max_chars: int = 300) -> str:
    """repr(value) when that is cheap; otherwise a repr-like text cut at `max_chars` (ending
    in ' …'), built lazily so that neither depth nor size matters."""
    if fits(value):
        text = _safe_repr(value)
    else:
        text = ""
        for piece in _pieces(value, max_chars):
            text += piece
            if len(text) > max_chars:
                break
    return text if len(text) <= max_chars else text[:max_chars] + " …"


def _safe_repr(x: Any) -> str:
    try:
        return repr(x)
    except Exception as exc:  # a repr that fails (or recurses) must not take a display down
        return f"<{type(x).__name__}: cannot show ({type(exc).__name__})>"


def _leaf_text(x: Any, max_chars: int) -> str:
    if isinstance(x, str | bytes | bytearray) and len(x) > max_chars:
        return _safe_repr(x[:max_chars])
    if isinstance(x, int) and not isinstance(x, bool) and x.bit_length() > MAX_INT_BITS:
        return f"<integer of {x.bit_length():,} bits>"
    if isinstance(x, np.ndarray) and x.dtype != object:
        return _safe_repr(x)  # numpy summarises big arrays itself
    return _safe_repr(x)[: max_chars + 1]


_OPEN = {list: ("[", "]"), tuple: ("(", ")"), dict: ("{", "}")}


def _pieces(value: Any, max_chars: int) -> Iterator[str]:
    """repr's text as a stream of pieces, walked with an explicit stack (no recursion)."""
    stack: list[Any] = [iter([value])]
    closers: list[str] = [""]
    while stack:
        for x in stack[-1]:
            if isinstance(x, _Token):
                yield x.text
                continue
            if isinstance(x, np.ndarray) and x.dtype == object:
                yield "array("
                x = x.tolist() if x.size <= 1000 else list(x.flat[:1000])
                closers.append(", dtype=object)")
                stack.append(iter([x]))
                break
            kind = next((k for k in _OPEN if isinstance(x, k)), None)
            if kind is None:
                yield _leaf_text(x, max_chars)
                continue
            opening, closing = _OPEN[kind]
            yield opening
            closers.append(closing)
            stack.append(_separated(x))
            break
        else:
            stack.pop()
            yield closers.pop()


@dataclass(frozen=True)
class _Token:
    text: str


def _separated(x: Any) -> Iterator[Any]:
    items = x.items() if isinstance(x, dict) else ((None, v) for v in x)
    for i, (key, item) in enumerate(items):
        if i:
            yield _Token(", ")
        if isinstance(x, dict):
            yield key
            yield _Token(": ")
        yield item
