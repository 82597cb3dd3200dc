"""Gradient cells in exports: the small ones (loss, attributions) like any cell; the
parameter-sized grad.* cells only with --with-params or when named, as parameters are."""

from __future__ import annotations

import cellgpt
from cellgpt.export.plan import select


def test_parameter_gradients_are_exported_like_parameters():
    wb = cellgpt.open("gpt2", prompt="Mike is quick.")
    grads = [n for n in wb.cells() if n.startswith("grad.")]
    assert len(grads) == 4 + 12 * wb["n_layer"]
    for mode in ("values", "formulas"):
        chosen = select(wb, None, mode, with_params=False)
        assert not set(grads) & set(chosen)
        assert {"loss", "saliency", "grad_x_input", "embed_grad"} <= set(chosen)
        assert set(grads) <= set(select(wb, None, mode, with_params=True))
    assert select(wb, ["grad.wte"], "values", with_params=False) == ["grad.wte"]
