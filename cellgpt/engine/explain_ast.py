"""The formula's syntax as Evaluate Formula walks it: which sub-expressions a node evaluates
(in the compiled formula's order), what to call its operation, and which are literals."""

from __future__ import annotations

import ast


def is_literal(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        return isinstance(node.operand, ast.Constant) and type(node.operand.value) in (int, float)
    if isinstance(node, ast.Tuple | ast.List):
        return all(is_literal(e) for e in node.elts)  # [1, 2, 3]: one constant, not 3
    return False


def operands(node: ast.AST) -> list[ast.AST]:
    """A node's sub-expressions, in the order the compiled formula evaluates them."""
    if isinstance(node, ast.BinOp):
        return [node.left, node.right]
    if isinstance(node, ast.UnaryOp):
        return [node.operand]
    if isinstance(node, ast.Compare):
        return [node.left, *node.comparators]
    if isinstance(node, ast.Call):
        return [*node.args, *(kw.value for kw in node.keywords)]
    if isinstance(node, ast.Subscript):
        return [node.value, node.slice]
    if isinstance(node, ast.Slice):
        return [p for p in (node.lower, node.upper, node.step) if p is not None]
    if isinstance(node, ast.Tuple | ast.List):
        return list(node.elts)
    if isinstance(node, ast.Dict):
        return [x for pair in zip(node.keys, node.values, strict=True) for x in pair]  # type: ignore[misc]
    return []


_SYMBOLS = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
    ast.MatMult: "@",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.USub: "-x",
    ast.UAdd: "+x",
    ast.Not: "not",
    ast.Invert: "~",
    ast.And: "and",
    ast.Or: "or",
}


def op_name(node: ast.AST) -> str:
    if isinstance(node, ast.Call):
        return f"{node.func.id}()"  # type: ignore[attr-defined]
    if isinstance(node, ast.BinOp | ast.UnaryOp | ast.BoolOp):
        return _SYMBOLS.get(type(node.op), type(node.op).__name__)
    if isinstance(node, ast.Compare):
        return "compare"
    if isinstance(node, ast.Subscript):
        return "[]"
    if isinstance(node, ast.IfExp):
        return "if"
    return type(node).__name__.lower()
