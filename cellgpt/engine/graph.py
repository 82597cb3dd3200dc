"""The dependency graph: which cell reads which. Pure topology, no values.

Every node has an insertion index; topological orders break ties by it, so the order is
deterministic and follows the order in which cells were defined (the file order).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from cellgpt.engine.errors import CycleError, DuplicateNameError


class DependencyGraph:
    def __init__(self) -> None:
        self._parents: dict[str, tuple[str, ...]] = {}
        self._children: dict[str, set[str]] = {}
        self._index: dict[str, int] = {}
        self._next_index = 0

    # --- structure -----------------------------------------------------------------
    def __contains__(self, name: str) -> bool:
        return name in self._parents

    def __len__(self) -> int:
        return len(self._parents)

    def names(self) -> list[str]:
        return sorted(self._parents, key=self._index.__getitem__)

    def parents(self, name: str) -> tuple[str, ...]:
        return self._parents[name]

    def children(self, name: str) -> set[str]:
        return self._children[name]

    def index(self, name: str) -> int:
        return self._index[name]

    def add(self, name: str, parents: Iterable[str]) -> None:
        """Add a node. Parents must exist; a name may be added once."""
        if name in self._parents:
            raise DuplicateNameError(f"{name!r} is already defined")
        parents = tuple(dict.fromkeys(parents))
        if name in parents:
            raise CycleError([name, name])
        self._parents[name] = parents
        self._children[name] = set()
        self._index[name] = self._next_index
        self._next_index += 1
        for p in parents:
            self._children[p].add(name)

    def set_parents(self, name: str, parents: Iterable[str]) -> None:
        """Re-wire a node's inputs; refuses (changing nothing) if that would close a cycle."""
        parents = tuple(dict.fromkeys(parents))
        cycle = self.find_cycle(name, parents)
        if cycle:
            raise CycleError(cycle)
        for p in self._parents[name]:
            self._children[p].discard(name)
        self._parents[name] = parents
        for p in parents:
            self._children[p].add(name)

    def remove(self, name: str) -> None:
        """Remove a node; its children must be removed or re-wired by the caller first."""
        for p in self._parents.pop(name):
            self._children[p].discard(name)
        for child in self._children.pop(name):
            self._parents[child] = tuple(p for p in self._parents[child] if p != name)
        del self._index[name]

    def find_cycle(self, name: str, parents: Iterable[str]) -> list[str] | None:
        """If `name` read from `parents`, would a cycle form? Return it (name ... name)."""
        for start in parents:
            if start == name:
                return [name, name]
            path = self._path(name, start)
            if path is not None:
                # name -> ... -> start along children edges, and start -> name is the new edge
                return [*path, name]
        return None

    def _path(self, source: str, target: str) -> list[str] | None:
        """A path source -> ... -> target following child edges, or None."""
        stack = [(source, iter(sorted(self._children.get(source, ()))))]
        seen = {source}
        trail = [source]
        while stack:
            _node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                trail.pop()
                continue
            if nxt == target:
                return [*trail, nxt]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, iter(sorted(self._children[nxt]))))
                trail.append(nxt)
        return None

    # --- queries -------------------------------------------------------------------
    def ancestors(self, name: str) -> set[str]:
        seen: set[str] = set()
        stack = list(self._parents[name])
        while stack:
            n = stack.pop()
            if n not in seen:
                seen.add(n)
                stack.extend(self._parents[n])
        return seen

    def descendants(self, name: str) -> set[str]:
        seen: set[str] = set()
        stack = list(self._children[name])
        while stack:
            n = stack.pop()
            if n not in seen:
                seen.add(n)
                stack.extend(self._children[n])
        return seen

    def topo_order(self, subset: Iterable[str] | None = None) -> list[str]:
        """Kahn's algorithm restricted to `subset` (all nodes when None); ties broken by
        definition order."""
        nodes = set(self._parents) if subset is None else set(subset)
        indegree = {n: sum(1 for p in self._parents[n] if p in nodes) for n in nodes}
        heap = [(self._index[n], n) for n, d in indegree.items() if d == 0]
        heapq.heapify(heap)
        order: list[str] = []
        while heap:
            _, n = heapq.heappop(heap)
            order.append(n)
            for c in self._children[n]:
                if c in indegree:
                    indegree[c] -= 1
                    if indegree[c] == 0:
                        heapq.heappush(heap, (self._index[c], c))
        if len(order) != len(nodes):  # cannot happen: cycles are refused on insertion
            raise CycleError(sorted(nodes - set(order)))
        return order
