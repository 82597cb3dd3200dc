"""Where the panes go for a terminal size. The value grid always gets most of the width: on a
wide screen the tree and the details sit either side of it; on a medium one the details move
under it; on a narrow one only the tree stays beside it and the details are a toggle (`d`),
shown in place of the tree. `t` and `d` override the automatic choice until the next one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Where = Literal["right", "bottom", "hidden"]

WIDE = 160  # at least this many columns: tree | value | details
MEDIUM = 100  # at least this many: tree | value, details under the value
TALL = 30  # the details go under the value only when the screen has this many lines
BOTTOM_ROWS = 14  # lines of the details strip under the value


@dataclass(frozen=True)
class Plan:
    tree: int  # width of the tree, 0 when hidden
    info: Where  # where the details and the top-k panel go
    info_size: int  # their width (right) or height (bottom)


def plan(width: int, height: int, *, tree: bool | None = None, info: bool | None = None) -> Plan:
    """The layout for a screen of `width` × `height`; `tree`/`info` are the user's toggles
    (None: automatic)."""
    if width >= WIDE:  # shares of the width, capped: the value keeps over half of it
        tree_w = min(34, width * 18 // 100)
        side = min(54, width * 26 // 100)
        shown: Where = "right" if info is not False else "hidden"
        return Plan(tree_w if tree is not False else 0, shown, side)
    tree_w = 26 if width >= MEDIUM else 22
    if width >= MEDIUM and height >= TALL:
        where: Where = "bottom" if info is not False else "hidden"
        return Plan(tree_w if tree is not False else 0, where, min(BOTTOM_ROWS, height // 3))
    # Room for one side pane: the details when asked for, else the tree.
    side = min(44, width // 2)
    if info:
        return Plan(tree_w if tree else 0, "right", side)
    return Plan(tree_w if tree is not False else 0, "hidden", side)
