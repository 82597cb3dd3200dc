"""Explain expansions: how a library function computes its result, written as named steps in
the formula language, so Evaluate Formula can show what a one-call cell such as
`layer_norm(x, w, b)` does inside (the mean, the centred input, the variance, ...).

An expansion only explains: the cell's value always comes from the library function itself.
Each step is `name = expression` over the function's parameters (by the names its Python
signature gives them) and earlier steps; the last step is the result, which Evaluate Formula
checks against the library's. Steps are parsed by the same restricted parser as formulas and
evaluated by the same evaluator, under the same budgets.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from cellgpt.engine.formula_parse import Formula, parse_formula


@dataclass(frozen=True)
class Expansion:
    steps: tuple[str, ...]  # "name = expression", in evaluation order

    @cached_property
    def parsed(self) -> tuple[tuple[str, Formula], ...]:
        """(name, formula) per step; raises FormulaError for a step that does not parse."""
        out = []
        for step in self.steps:
            name, _, text = step.partition("=")
            name, text = name.strip(), text.strip()
            if not name.isidentifier() or not text:
                raise ValueError(f"an expansion step must read `name = expression`: {step!r}")
            out.append((name, parse_formula(text, cell=name)))
        return tuple(out)


def steps(*lines: str) -> Expansion:
    return Expansion(tuple(lines))


_NORMALIZE = (
    "mu = mean(x, axis=-1, keepdims=True)",
    "centred = x - mu",
    "variance = mean(centred * centred, axis=-1, keepdims=True)",
    "scale = sqrt(variance + eps)",
    "normalized = centred / scale",
)

LAYER_NORM = steps(*_NORMALIZE, "out = normalized * gain + bias")
NORMALIZE = steps(*_NORMALIZE)
NORM_SCALE = steps(*_NORMALIZE[:4])
SOFTMAX = steps(
    "peak = amax(a, axis=axis, keepdims=True)",
    "shifted = a - peak",
    "exps = exp(shifted)",
    "total = sum(exps, axis=axis, keepdims=True)",
    "p = exps / total",
)
# Python numbers keep a float32 array float32 (numpy's rule for scalars), hence
# `(2 / pi) ** 0.5` rather than sqrt(2 / pi), which is a float64 array.
GELU = steps(
    "cube = x * x * x",
    "inner = (2 / pi) ** 0.5 * (x + 0.044715 * cube)",
    "t = tanh(inner)",
    "out = 0.5 * x * (1 + t)",
)

# {library function: its expansion}, registered with the core library (functions.py).
CORE: dict[str, Expansion] = {
    "layer_norm": LAYER_NORM,
    "normalize": NORMALIZE,
    "norm_scale": NORM_SCALE,
    "softmax": SOFTMAX,
    "gelu": GELU,
}
