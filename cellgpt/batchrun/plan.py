"""Which cells a batch of prompts can compute together, and which per prompt.

A batch runs the workbook once with `token_ids` pinned to a [prompts, tokens] matrix (every
prompt of a batch has the same length: no padding) and `n_tokens` pinned to that length.
Each cell reading such a *batched* value then gets a leading prompt axis, which is right
only for formulas whose functions treat a leading axis as "more of the same" (matmul with
the batched operand first, the row-wise kernels, the attention functions, element-wise
operators). That is decided from the formula's syntax tree; a formula that indexes,
reduces or otherwise looks at a batched value as a whole is a *tail* cell, computed per
prompt from the batched cells it reads (pinned in a one-prompt workbook). A few functions
have a batch variant (`last_row` → the last row of each prompt) that the formula is
rewritten to use.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from cellgpt.engine.formula_parse import dotted_name
from cellgpt.gpt2.cells import N_TOKENS, TOKEN_IDS

# Functions for which a leading batch axis on every batched argument means "more of the
# same": row-wise along the last axis, element-wise, or the [batch, head, ...] attention
# functions of gpt2/functions.py.
GENERIC = frozenset(
    {
        "normalize",
        "norm_scale",
        "layer_norm",
        "softmax_last",
        "gelu",
        "relu",
        "exp",
        "log",
        "tanh",
        "sqrt",
        "abs",
        "split_heads",
        "merge_heads",
        "attention_scores",
    }
)
# Functions right when only their first argument is batched (a @ W, W[ids]→ first is table).
FIRST_ONLY = frozenset({"matmul"})
SECOND_ONLY = frozenset({"embed_tokens"})  # wte[ids]: the ids carry the batch axis
# Batch variants: the formula is rewritten to call these (registered by gpt2.batched).
VARIANTS = {"last_row": "batch_last_row"}


@dataclass
class Plan:
    """`batched`: cells computed once per batch (values have a leading prompt axis);
    `rewrites`: new formulas for some of them; `tail`: token-dependent cells computed per
    prompt; `frontier`: batched cells that tail cells read (pinned per prompt)."""

    batched: set[str] = field(default_factory=set)
    rewrites: dict[str, str] = field(default_factory=dict)
    tail: set[str] = field(default_factory=set)
    frontier: set[str] = field(default_factory=set)


def make_plan(wb: Any, need: set[str]) -> Plan:
    """Classify the token-dependent cells that the `need` cells depend on."""
    plan = Plan()
    deps = wb.descendants(TOKEN_IDS)
    relevant = {c for c in need if c in deps}
    for c in list(relevant):
        relevant |= wb.ancestors(c) & deps
    order = [c for c in _topological(wb, deps) if c in relevant]
    plan.batched.add(TOKEN_IDS)
    for name in order:
        if name == N_TOKENS:
            continue  # pinned: one length per batch
        precedents = set(wb.precedents(name))
        if precedents & plan.tail:
            plan.tail.add(name)
            continue
        batched_in = precedents & plan.batched
        if not batched_in:
            continue  # the same for every prompt of a batch (e.g. positions(wpe, n_tokens))
        cell = wb.cell(name)
        rewritten = _batch_formula(cell.source, batched_in) if cell.formula is not None else None
        if rewritten is None:
            plan.tail.add(name)
            continue
        plan.batched.add(name)
        if rewritten != cell.source:
            plan.rewrites[name] = rewritten
    for name in plan.tail:
        plan.frontier |= set(wb.precedents(name)) & plan.batched
    plan.frontier.discard(TOKEN_IDS)  # a one-prompt workbook tokenizes its own prompt
    return plan


def _topological(wb: Any, names: set[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []

    def visit(name: str) -> None:
        stack = [(name, False)]
        while stack:
            n, done = stack.pop()
            if done:
                out.append(n)
                continue
            if n in seen:
                continue
            seen.add(n)
            stack.append((n, True))
            stack.extend((p, False) for p in wb.precedents(n) if p in names and p not in seen)

    for n in sorted(names):
        visit(n)
    return out


def _batch_formula(source: str | None, batched: set[str]) -> str | None:
    """The formula to use with a leading prompt axis on the `batched` names, or None if the
    formula cannot take one."""
    if source is None:
        return None
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError:
        return None
    checker = _Checker(batched)
    if not checker.ok(tree.body):
        return None
    if not checker.renamed:
        return source
    return ast.unparse(_Rename(checker.renamed).visit(tree))


class _Checker:
    def __init__(self, batched: set[str]) -> None:
        self.batched = batched
        self.renamed: dict[str, str] = {}

    def carries(self, node: ast.AST) -> bool:
        """Does this expression read a batched cell?"""
        return bool(_names(node) & self.batched)

    def ok(self, node: ast.AST) -> bool:
        if not self.carries(node):
            return True
        name = dotted_name(node) if isinstance(node, ast.Name | ast.Attribute) else None
        if name is not None:
            return name in self.batched
        if isinstance(node, ast.BinOp) and not isinstance(node.op, ast.MatMult):
            return self.ok(node.left) and self.ok(node.right)
        if isinstance(node, ast.BinOp):  # a @ b: like matmul
            return self.ok(node.left) and (not self.carries(node.right) or self._both(node))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            return self.ok(node.operand)
        if isinstance(node, ast.Call):
            return self._call(node)
        return False  # subscripts, comparisons, literals of batched values...

    def _both(self, node: ast.BinOp) -> bool:
        return self.carries(node.left) and self.ok(node.right)

    def _call(self, node: ast.Call) -> bool:
        fn = dotted_name(node.func) if isinstance(node.func, ast.Name | ast.Attribute) else None
        args = list(node.args) + [k.value for k in node.keywords]
        if fn is None or not all(self.ok(a) for a in args):
            return False
        carried = [self.carries(a) for a in node.args]
        if any(self.carries(k.value) for k in node.keywords):
            return False
        if fn in GENERIC or (fn == "softmax" and not node.keywords and len(node.args) == 1):
            return True
        if fn in FIRST_ONLY and len(carried) == 2:
            return carried[0]
        if fn in SECOND_ONLY and len(carried) == 2:
            return not carried[0]
        if fn in VARIANTS and len(carried) == 1:
            self.renamed[fn] = VARIANTS[fn]
            return True
        return False


def _names(node: ast.AST) -> set[str]:
    """The whole dotted names an expression reads (`ln_1.weight`, not also `ln_1`)."""
    name = dotted_name(node) if isinstance(node, ast.Name | ast.Attribute) else None
    if name is not None:
        return {name}
    found: set[str] = set()
    for child in ast.iter_child_nodes(node):
        if isinstance(node, ast.Call) and child is node.func:
            continue
        found |= _names(child)
    return found


class _Rename(ast.NodeTransformer):
    def __init__(self, names: dict[str, str]) -> None:
        self.names = names

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.func, ast.Name) and node.func.id in self.names:
            node.func = ast.Name(self.names[node.func.id], ast.Load())
        return node
