"""Fused chains: a reader cell computed together with the evictable cells it reads through.

GPT-2's attention is three cells, `attn.scores` → `attn.pattern` → `attn.z`; the first two
are [heads, tokens, tokens] matrices (48 MiB each at 1024 tokens) that a forward pass only
needs on the way to `attn.z`. When both are evictable (dropped right after use anyway),
nobody else reads them and the run does not ask for them, the runner computes `attn.z` in
one kernel that never builds them, and leaves them FRESH and evicted: reading one later
recomputes it from its own formula, exactly as after an ordinary eviction.

A `Fusion` names its cells by formula shape: patterns in the formula language whose
UPPERCASE names are placeholders. It applies only while every cell still has that exact
formula, so a user's edit (an ablation of the pattern, say) turns it off for that block.
The fused function must return exactly what the chain would (tests check bit equality).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from cellgpt.engine.formula_parse import Formula, dotted_name, parse_formula


@dataclass(frozen=True)
class Fusion:
    """`links`: "NAME = formula" of the skipped cells in evaluation order; `reader`: the
    reader's formula; `fused(*inputs)` returns the reader's value from the placeholders
    named in `inputs` (cells or library constants)."""

    name: str
    links: tuple[str, ...]
    reader: str
    inputs: tuple[str, ...]
    fused: Callable[..., Any]

    def patterns(self) -> tuple[list[tuple[str, ast.AST]], ast.AST]:
        return named_patterns(self.links), parse_formula(self.reader).tree.body


def named_patterns(texts: Iterable[str]) -> list[tuple[str, ast.AST]]:
    """("NAME", parsed pattern) for each "NAME = formula" text."""
    patterns = []
    for text in texts:
        placeholder, formula = (part.strip() for part in text.split("=", 1))
        patterns.append((placeholder, parse_formula(formula).tree.body))
    return patterns


@dataclass(frozen=True)
class Chain:
    """One match: the link cells (evaluation order), the reader, the input names in the
    order `fused` takes them."""

    fusion: Fusion
    links: tuple[str, ...]
    reader: str
    inputs: tuple[str, ...]


def _is_placeholder(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name) and node.id.isupper():
        return node.id
    return None


def match(pattern: ast.AST, node: ast.AST, binds: dict[str, str]) -> bool:
    """Does `node` have the shape of `pattern`? Placeholders bind to (dotted) names, the
    same placeholder to the same name."""
    placeholder = _is_placeholder(pattern)
    if placeholder is not None:
        name = dotted_name(node) if isinstance(node, ast.Name | ast.Attribute) else None
        if name is None:
            return False
        return binds.setdefault(placeholder, name) == name
    if type(pattern) is not type(node):
        return False
    for field, expected in ast.iter_fields(pattern):
        if field == "ctx":
            continue
        found = getattr(node, field, None)
        if isinstance(expected, list):
            if not isinstance(found, list) or len(found) != len(expected):
                return False
            if not all(_match_item(e, f, binds) for e, f in zip(expected, found, strict=True)):
                return False
        elif not _match_item(expected, found, binds):
            return False
    return True


def _match_item(expected: Any, found: Any, binds: dict[str, str]) -> bool:
    if isinstance(expected, ast.AST):
        return isinstance(found, ast.AST) and match(expected, found, binds)
    return bool(expected == found)


class ChainFinder:
    """Finds the fusions' chains among a workbook's cells; remembers each reader's answer
    until the workbook's formulas change (`version`, Sheet.formula_version)."""

    def __init__(self, fusions: Iterable[Fusion], resolve: Callable[[str], str | None]) -> None:
        self._rules = [(f, *f.patterns()) for f in fusions]
        self._resolve = resolve  # a name in a formula → its cell, or None (a constant)
        self._memo: dict[str, Chain | None] = {}
        self._version: object = None

    def __bool__(self) -> bool:
        return bool(self._rules)

    def chain(
        self, reader: str, formula: Callable[[str], Formula | None], version: object = None
    ) -> Chain | None:
        """The chain that ends at `reader`, if its formulas (and its links') match a rule.
        `formula(cell)` is a cell's current parsed formula (None: no formula); answers are
        kept while `version` stays the same (None: never kept)."""
        if version is None or version != self._version:
            self._memo.clear()
            self._version = version
        elif reader in self._memo:
            return self._memo[reader]
        found = self._find(reader, formula)
        if version is not None:
            self._memo[reader] = found
        return found

    def _find(self, reader: str, formula: Callable[[str], Formula | None]) -> Chain | None:
        parsed = formula(reader)
        if parsed is None:
            return None
        for fusion, links, reader_pattern in self._rules:
            binds: dict[str, str] = {}
            if not match(reader_pattern, parsed.tree.body, binds):
                continue
            chain = self._links(fusion, links, reader, binds, formula)
            if chain is not None:
                return chain
        return None

    def _links(
        self,
        fusion: Fusion,
        links: list[tuple[str, ast.AST]],
        reader: str,
        binds: dict[str, str],
        formula: Callable[[str], Formula | None],
    ) -> Chain | None:
        cells: list[str] = []
        for placeholder, pattern in reversed(links):  # from the reader back to the first
            name = binds.get(placeholder)
            cell = self._resolve(name) if name else None
            parsed = formula(cell) if cell else None
            if parsed is None or not match(pattern, parsed.tree.body, binds):
                return None
            cells.append(cell)
        inputs = []
        for placeholder in fusion.inputs:
            name = binds.get(placeholder)
            if name is None:
                return None
            inputs.append(self._resolve(name) or name)
        return Chain(fusion, tuple(reversed(cells)), reader, tuple(inputs))
