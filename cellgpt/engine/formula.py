"""The formula language: a restricted subset of Python expression syntax.

A formula is parsed and checked once (`formula_parse.py`), then compiled into a tree of
closures (`formula_compile.py`); `limits.py` holds what a formula may ask of the machine. This
module is the public face of the three.
"""

from cellgpt.engine.formula_compile import Env, Evaluator, compile_formula
from cellgpt.engine.formula_parse import (
    Formula,
    NameRef,
    OffsetMap,
    Span,
    dotted_name,
    error_from,
    parse_formula,
)
from cellgpt.engine.limits import (
    MAX_DEPTH,
    MAX_ELEMENTS,
    MAX_FORMULA_CHARS,
    MAX_MATMUL_FLOPS,
    MAX_NODES,
    MAX_POW_BITS,
    MAX_SEQUENCE,
    check_elements,
    check_index,
    check_matmul_shapes,
    count_items,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_ELEMENTS",
    "MAX_FORMULA_CHARS",
    "MAX_MATMUL_FLOPS",
    "MAX_NODES",
    "MAX_POW_BITS",
    "MAX_SEQUENCE",
    "Env",
    "Evaluator",
    "Formula",
    "NameRef",
    "OffsetMap",
    "Span",
    "check_elements",
    "check_index",
    "check_matmul_shapes",
    "compile_formula",
    "count_items",
    "dotted_name",
    "error_from",
    "parse_formula",
]
