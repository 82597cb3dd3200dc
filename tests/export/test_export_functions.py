"""Function cells in the .xlsx export: calls are spelled out (LibreOffice 7.4 has no LAMBDA),
and LibreOffice's own recalculation of them equals numpy written by hand; with `excel365`
they become LAMBDA defined names that formulas call by name.

Needs `soffice` (fails, never skips, without it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from openpyxl import load_workbook

from cellgpt.api import full_library
from cellgpt.cli import main as cli_main
from cellgpt.engine import Workbook
from cellgpt.export.recalc import read_array, recalculate
from cellgpt.export.xlsx import export_workbook

X = [[1.5, -2.0, 3.25], [0.5, 4.0, -1.0]]
W = [0.5, 2.0, -1.0]
M1 = [[1.0, -1.0, 0.5, 2.0], [0.25, 1.0, -2.0, 0.0], [1.0, 1.0, 1.0, -1.0]]


def _workbook() -> Workbook:
    wb = Workbook(full_library())
    wb.define_function(
        'def rms_norm(x, w, eps=1e-5):\n    """RMSNorm."""\n'
        "    return x / sqrt(mean(x * x, axis=-1, keepdims=True) + eps) * w"
    )
    wb.define_function("def lin(a, m, b): return matmul(a, m) + b")
    wb.define_function("def relu_mlp(a, m1, b1, m2, b2): return lin(relu(lin(a, m1, b1)), m2, b2)")
    wb.define("x", f"array({X})")
    wb.define("w", f"array({W})")
    wb.define("m1", f"array({M1})")
    wb.define("b1", "array([0.5, -0.5, 0.0, 1.0])")
    wb.define("m2", "transpose(m1)")
    wb.define("y", "rms_norm(x, w)")
    wb.define("z", "relu_mlp(y, m1, b1, m2, w) + rms_norm(x, 1.0, eps=0.1)")
    return wb


def _numpy() -> dict[str, np.ndarray]:
    """The same cells in float64 numpy, by hand."""
    x, w, m1 = np.array(X), np.array(W), np.array(M1)
    b1 = np.array([0.5, -0.5, 0.0, 1.0])

    def rms(a: np.ndarray, g: Any, eps: float) -> np.ndarray:
        return a / np.sqrt((a * a).mean(axis=-1, keepdims=True) + eps) * g

    y = rms(x, w, 1e-5)
    z = np.maximum(y @ m1 + b1, 0) @ m1.T + w + rms(x, 1.0, 0.1)
    return {"y": y, "z": z}


def _formulas(path: Path) -> dict[str, str]:
    """The first formula of each sheet."""
    found: dict[str, str] = {}
    for ws in load_workbook(path).worksheets:
        for row in ws.iter_rows():
            for c in row:
                text = getattr(c.value, "text", c.value)
                if isinstance(text, str) and text.startswith("=") and ws.title not in found:
                    found[ws.title] = text
    return found


def test_calls_are_spelled_out_and_libreoffice_recomputes_them(tmp_path: Path) -> None:
    wb = _workbook()
    report = export_workbook(wb, tmp_path / "f.xlsx", mode="formulas")
    how = {e.name: e.how for e in report.plan.entries}
    assert how["y"] == how["z"] == "formula"
    formulas = _formulas(report.path)
    assert "SQRT(" in formulas["y"] and "rms_norm" not in formulas["y"]
    assert "MMULT(" in formulas["z"] and "relu_mlp" not in formulas["z"]
    assert not report.plan.lambdas
    book = load_workbook(recalculate(report.path, tmp_path / "lo"), data_only=True, read_only=True)
    expected = _numpy()
    for name in ("y", "z"):
        entry = report.plan.entry(name)
        assert entry is not None and entry.placement is not None
        got = read_array(book, entry.placement, expected[name].shape)
        np.testing.assert_allclose(got, expected[name], rtol=1e-9, atol=1e-9)  # LibreOffice
        np.testing.assert_allclose(wb[name], expected[name], rtol=1e-5, atol=1e-5)  # engine


def test_formulas_too_long_or_exploding_once_spelled_out_are_values(tmp_path: Path) -> None:
    wb = _workbook()
    wb.define_function("def d(a): return a * 1.25 + a * 0.75 - a")
    wb.define_function("def dd(a): return d(d(d(d(a))))")
    wb.define("long", "dd(d(d(d(x))))")  # 3**7 copies of x spelled out: ~7,600 parts
    wb.define("bomb", "dd(dd(dd(dd(dd(x)))))")  # 3**20 copies: never built
    report = export_workbook(wb, tmp_path / "f.xlsx", mode="formulas")
    long, bomb = report.plan.entry("long"), report.plan.entry("bomb")
    assert long is not None and long.how == "values"
    assert "longer than Excel's 8,192 characters" in long.note
    assert bomb is not None and bomb.how == "values" and "more than 20,000 parts" in bomb.note
    np.testing.assert_allclose(wb["bomb"], wb["x"], rtol=1e-5)  # the engine evaluates it once


def test_excel365_writes_lambda_names_and_calls_them(tmp_path: Path) -> None:
    wb = _workbook()
    # rows of 4 (not 3) translate `mean` differently: this call is spelled out instead
    wb.define("t", "rms_norm(m1, 1.0)")
    report = export_workbook(wb, tmp_path / "f.xlsx", mode="formulas", excel365=True)
    made = {m.name: m.text for m in report.plan.lambdas}
    assert set(made) == {"rms_norm", "lin", "relu_mlp"}
    assert made["rms_norm"].startswith("_xlfn.LAMBDA(_xlpm.x,_xlpm.w,_xlpm.eps,")
    assert "_xlpm.x*_xlpm.x" in made["rms_norm"] and "SQRT(" in made["rms_norm"]
    # `m1` reads as a cell reference in Excel: the parameter is renamed
    assert "_xlpm.cell_m1" in made["relu_mlp"] and "lin(" in made["relu_mlp"]
    book = load_workbook(report.path)
    for name, text in made.items():
        assert book.defined_names[name].attr_text == text
    formulas = _formulas(report.path)
    assert formulas["y"] == "=rms_norm(x,w,1E-05)"
    assert formulas["z"].startswith("=(relu_mlp(y,")
    assert "SQRT(" in formulas["t"] and "rms_norm" not in formulas["t"]


def test_excel365_needs_formulas_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(["export", str(tmp_path / "a.xlsx"), "--excel365", "--model", "gpt2-mini"])
    assert code != 0
    assert "--excel365 needs --mode formulas" in capsys.readouterr().err


def test_gpt2_variants_block_recomputed_by_libreoffice(tmp_path: Path) -> None:
    """The worked example's swapped block 0 (RMSNorm, ReLU MLP) exports as live formulas and
    LibreOffice's recalculation matches the engine (float32 engine vs float64 sheet)."""
    import cellgpt

    wb = cellgpt.open("gpt2_variants", prompt="Mike is quick.")
    report = export_workbook(wb, tmp_path / "v.xlsx", mode="formulas", cells=["embed", "h0.*"])
    book = load_workbook(recalculate(report.path, tmp_path / "lo"), data_only=True, read_only=True)
    for name in ("h0.ln_1", "h0.ln_2", "h0.mlp.out", "h0.resid_post"):
        entry = report.plan.entry(name)
        assert entry is not None and entry.how == "formula" and entry.placement is not None
        value = np.asarray(entry.value, dtype=np.float64)
        got = read_array(book, entry.placement, value.shape)
        np.testing.assert_allclose(got, value, atol=1e-5, err_msg=name)


def test_a_lambda_applied_to_its_arguments_is_the_recalculated_spelled_out_formula(
    tmp_path: Path,
) -> None:
    """No Excel here to run a LAMBDA: instead, its body with the call's arguments put in for
    its parameters must be exactly the spelled-out formula LibreOffice recomputed above."""
    wb = _workbook()
    spelled = _formulas(export_workbook(wb, tmp_path / "a.xlsx", mode="formulas").path)
    report = export_workbook(wb, tmp_path / "b.xlsx", mode="formulas", excel365=True)
    rms = next(m for m in report.plan.lambdas if m.name == "rms_norm")
    applied = rms.body
    for param, arg in zip(rms.params, ("x", "w", "1E-05"), strict=True):
        applied = applied.replace(param, arg)
    assert "=" + applied == spelled["y"]
