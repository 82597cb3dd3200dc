"""Row-wise reductions in the formulas export: each row's softmax max, layer-norm mean and
variance live in helper columns (once per row), embeddings are INDEX lookups, and values
mode writes masked scores as the formulas' mask number. Recalculated by LibreOffice headless
(fails, never skips, without soffice)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from openpyxl import load_workbook

from cellgpt.api import full_library
from cellgpt.engine import Workbook, core
from cellgpt.export.recalc import read_array, recalculate
from cellgpt.export.xlexpr import MASKED_VALUE
from cellgpt.export.xlsx import ExportReport, export_workbook
from cellgpt.weights.floatfmt import format_float32_shortest

# Row 1 sits 2000 below row 0: with one max for the whole block its exps underflow to 0 and
# the softmax is 0/0. Row 3 is a large offset with a small spread (layer norm's hard case).
FAR = "[[1000.0, 999.0, 998.0], [-1000.0, -1001.0, -1003.0], [0.5, 0.25, 0.0], [1e6, 1e6 + 1, 1e6 - 2]]"
HEADS = "[[[3.0, 1.0], [-900.0, -901.0]], [[0.0, -1.0], [2.0, 2.5]]]"


def _rows_workbook() -> Workbook:
    wb = Workbook(full_library())
    wb.define("x", f"array({FAR})")
    wb.define("heads", f"array({HEADS})")
    wb.define("g", "array([1.5, -0.5, 2.0])")
    wb.define("b", "array([0.1, 0.2, 0.3])")
    wb.define("p", "softmax(x)")
    wb.define("p_expr", "softmax(x * 0.5)")  # not a range: each row's max through INDEX
    wb.define("p_heads", "softmax(heads)")
    wb.define("ln", "layer_norm(x, g, b)")
    wb.define("nz", "normalize(x, 1e-5)")
    wb.define("sc", "norm_scale(x, 1e-5)")
    wb.define("row_max", "amax(x, axis=-1)")
    wb.define("row_min", "amin(x * 2, axis=-1, keepdims=True)")
    wb.define("row_mean", "mean(x, axis=-1)")
    wb.define("wte", "random_normal((7, 4), 3)")
    wb.define("ids", "[3, 0, 6, 3]")
    wb.define("emb", "embed_tokens(wte, ids)")
    return wb


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _normalize(x: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(((x - mean) ** 2).mean(axis=-1, keepdims=True) + 1e-5)


def _float64_values(wb: Workbook) -> dict[str, np.ndarray]:
    """What each cell is in float64 (the engine computes in float32, which row 3's offset of
    1e6 defeats; LibreOffice computes in float64)."""
    x, heads = np.array(eval(FAR)), np.array(eval(HEADS))
    # the sheet holds parameters as shortest float32 text, which LibreOffice reads as float64
    g, b, wte = (
        np.array(format_float32_shortest(wb[n]), float).reshape(np.shape(wb[n]))
        for n in ("g", "b", "wte")
    )
    x_centred = x - x.mean(axis=-1, keepdims=True)
    return {
        "p": _softmax(x),
        "p_expr": _softmax(x * 0.5),
        "p_heads": _softmax(heads),
        "ln": _normalize(x) * g + b,
        "nz": _normalize(x),
        "sc": np.sqrt((x_centred**2).mean(axis=-1) + 1e-5),
        "emb": wte[[3, 0, 6, 3]],
        "row_max": x.max(axis=-1),
        "row_min": (x * 2).min(axis=-1, keepdims=True),
        "row_mean": x.mean(axis=-1),
    }


@pytest.fixture(scope="module")
def rows_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[ExportReport, Path]:
    tmp = tmp_path_factory.mktemp("rows")
    report = export_workbook(_rows_workbook(), tmp / "rows.xlsx", mode="formulas")
    return report, recalculate(report.path, tmp / "lo")


def test_row_reductions_recalculated_by_libreoffice(
    rows_export: tuple[ExportReport, Path],
) -> None:
    report, out = rows_export
    book = load_workbook(out, data_only=True)
    wb = _rows_workbook()
    for name, want in _float64_values(wb).items():
        entry = report.plan.entry(name)
        assert entry is not None and entry.how == "formula", (name, entry and entry.note)
        got = read_array(book, entry.placement, want.shape)
        assert np.isfinite(got).all(), f"{name}: LibreOffice gave errors {got}"
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, err_msg=name)
    # The far row is a real distribution, not 0/0.
    p = read_array(book, report.plan.entry("p").placement, (4, 3))
    assert p[1].sum() == pytest.approx(1.0) and p[1, 0] > 0.7


def test_reductions_are_computed_once_per_row_in_helper_columns(
    rows_export: tuple[ExportReport, Path],
) -> None:
    report, _ = rows_export
    book = load_workbook(report.path)  # the formulas as written
    ln = book["ln"]
    assert [ln.cell(1, c).value for c in (6, 7)] == ["row mean", "row variance"]
    body = ln["B2"].value.text
    assert "MMULT" not in body and "'ln'!$F$2:$F$5" in body  # mean read, not recomputed
    p = book["p"]
    assert [p.cell(1, c).value for c in (6, 7)] == ["row max", "sum of exp"]
    assert [p.cell(r, 6).value.text for r in (2, 3)] == [
        "=MAX('x'!$B$2:$D$2)",
        "=MAX('x'!$B$3:$D$3)",
    ]
    emb = book["emb"]
    formulas = [emb.cell(r, 2).value.text for r in range(2, 6)]
    assert all(f.startswith("=INDEX(wte,") and "MMULT" not in f for f in formulas), formulas
    assert "'ids'!" in formulas[0]  # follows the id on the sheet


def test_values_mode_writes_masked_scores_as_the_mask_number(tmp_path: Path) -> None:
    wb = Workbook(core.copy())
    wb.define("scores", "array([[0.5, -inf], [0.25, 1.0]])")
    report = export_workbook(wb, tmp_path / "v.xlsx")
    sheet = load_workbook(report.path)["scores"]
    cells = [sheet.cell(r, c) for r in (2, 3) for c in (2, 3)]
    assert [c.value for c in cells] == [0.5, MASKED_VALUE, 0.25, 1.0]
    assert all(c.data_type == "n" for c in cells)
