"""Export to .xlsx: values mode round-trips, formulas mode recomputed by LibreOffice headless
equals the engine at every stage, text never becomes a formula, Excel's limits hold.

The LibreOffice tests need `soffice` (Debian: libreoffice-calc-nogui; .ci/run installs it).
They fail, never skip, when it is missing.
"""

from __future__ import annotations

import math
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from openpyxl import load_workbook

import cellgpt
from cellgpt.api import full_library
from cellgpt.engine import Workbook, core
from cellgpt.engine import load_workbook as load_workbook_file
from cellgpt.export.excel_forms import elementwise
from cellgpt.export.front_sheets import SAME_AS_CELLGPT
from cellgpt.export.layout import (
    MAX_COLS,
    MAX_DATA_ROWS,
    SheetNames,
    place,
    wants_transpose,
)
from cellgpt.export.recalc import read_array, recalculate
from cellgpt.export.sheetio import clean_text
from cellgpt.export.xlexpr import MASKED_VALUE, num, op
from cellgpt.export.xlsx import ExportReport, export_workbook
from cellgpt.weights.floatfmt import format_float32_shortest

REPO = Path(__file__).resolve().parents[2]
GPT2 = REPO / "workbooks" / "gpt2.py"
# Text that spreadsheets love to execute: it must arrive as plain strings.
NASTY_PROMPT = '=1+1 @SUM(A1) =HYPERLINK("x")'


# ---------------------------------------------------------------------------- helpers
def float64_reference(model: Any, prompt: str, held: dict[str, Any] | None = None) -> Workbook:
    """The same workbook computed in float64 from the parameters exactly as the sheet holds
    them (shortest float32 text read as float64). LibreOffice computes in float64, so this is
    the fair reference for a 1e-6 comparison; the float32 engine differs by ~1e-5 on logits
    only because of its own rounding (reported separately). `held`: cells the sheet holds as
    float32 values from the engine (no Excel form, e.g. a gradient), pinned the same way, so
    that the formulas reading them start from the sheet's numbers too."""
    library = full_library()
    # The Excel formulas use exact constants (SQRT(2/PI()), 0.044715); the engine rounds them
    # to float32 (a 3e-8 relative change). Same math, float64 constants:
    library.register("gelu", _gelu64, rows=core["gelu"].rows)
    wb = load_workbook_file(GPT2, library, {"model": str(model), "prompt": prompt})
    for name in wb.cells():
        if wb.cell(name).hints.get("kind") == "param":
            value = np.asarray(wb[name])
            text = format_float32_shortest(value)
            wb.pin(name, np.array(text, dtype=np.float64).reshape(value.shape))
    for name, value in (held or {}).items():
        if not isinstance(value, np.ndarray | np.floating):
            continue  # a table or text: no number a formula reads
        array = np.asarray(value)
        if array.dtype == np.float32 and name in wb.cells():
            text = format_float32_shortest(array.reshape(-1))
            wb.pin(name, np.array(text, dtype=np.float64).reshape(array.shape))
    wb.run()
    assert np.asarray(wb.value("logits")).dtype == np.float64, (
        "the engine no longer computes in float64 when given float64 parameters"
    )
    return wb


def _gelu64(x: Any) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def engine_as_sheet(value: Any) -> np.ndarray:
    """The engine's numbers the way the sheet shows them (-inf → the finite mask value)."""
    arr = np.asarray(value, dtype=np.float64)
    return np.where(np.isneginf(arr), MASKED_VALUE, arr)


def check_formulas_against_libreoffice(
    model: Any, prompt: str, tmp: Path, on_demand: bool = False
) -> dict[str, float]:
    """`on_demand`: logits_all (an on-demand cell) as formulas too; else it is values."""
    wb = cellgpt.open(GPT2, model=str(model), prompt=prompt)
    report = export_workbook(
        wb, tmp / "model.xlsx", mode="formulas", on_demand=on_demand, capacity=None
    )
    formula_cells = [e for e in report.plan.entries if e.how == "formula"]
    names = {e.name for e in formula_cells}
    # Every computing cell from the embedding on is a formula (on-demand ones when asked).
    stages = ["wte_rows", "wpe_rows", "embed", "ln_f.scale", "ln_f.normalized", "ln_f"]
    stages += ["predicted", "logits", "probs"] + (["logits_all"] if on_demand else [])
    for stage in stages:
        assert stage in names, stage
    n_layer = int(wb["n_layer"])
    block = ["ln_1.scale", "ln_1.normalized", "ln_1", "qkv", "q", "k", "v", "attn.scores"]
    block += ["attn.pattern", "attn.z", "attn.out", "resid_mid", "ln_2.scale", "ln_2.normalized"]
    block += ["ln_2", "mlp.fc", "mlp.gelu", "mlp.out", "resid_post"]
    for i in range(n_layer):
        assert {f"h{i}.{c}" for c in block} <= names
    assert "next_token" in names
    # Logits: vocab down the rows, positions across (50257 > 16384 columns).
    logits_all = report.plan.entry("logits_all")
    assert logits_all is not None and logits_all.placement is not None
    assert logits_all.placement.transposed
    if not on_demand:  # the exported prompt's numbers, labelled as such in the Index
        assert logits_all.how == "values" and "--on-demand" in logits_all.note
        np.testing.assert_array_equal(logits_all.value, wb["logits_all"])

    out = recalculate(report.path, tmp / "recalculated")
    book = load_workbook(out, data_only=True, read_only=True)
    # Cells without an Excel form are written as the float32 engine's values: the formulas
    # after them (grad_x_input reads embed_grad) start from those numbers in both.
    held = {e.name: e.value for e in report.plan.entries if e.how == "values"}
    ref64 = float64_reference(model, prompt, held)
    worst64, worst32 = 0.0, 0.0
    for entry in formula_cells:
        shape = np.asarray(entry.value).shape
        got = read_array(book, entry.placement, shape)
        assert np.isfinite(got).all(), f"{entry.name}: LibreOffice gave errors"
        d64 = float(np.max(np.abs(got - engine_as_sheet(ref64[entry.name]))))
        d32 = float(np.max(np.abs(got - engine_as_sheet(entry.value))))
        assert d64 <= 1e-6, f"{entry.name}: max |Δ| {d64:.3g} against the float64 engine"
        worst64, worst32 = max(worst64, d64), max(worst32, d32)
    # The float32 engine itself: within its own rounding (logits ~1e-5 on 12 blocks).
    assert worst32 <= 1e-4
    summary = {row[0]: row[1] for row in book["Summary"].iter_rows(values_only=True) if row}
    assert summary["next token id (this workbook's formula)"] == int(wb["next_token"])
    assert summary["next token id (cellgpt engine)"] == int(wb["next_token"])
    assert summary[SAME_AS_CELLGPT] == "yes"
    assert summary["its probability (this workbook)"] == pytest.approx(
        float(np.asarray(wb["probs"])[int(wb["next_token"])]), abs=1e-6
    )
    assert summary["prompt"] == prompt
    print(f"\n{model}: max |Δ| vs float64 engine {worst64:.2e}, vs float32 engine {worst32:.2e}")
    return {"float64": worst64, "float32": worst32}


# ---------------------------------------------------------------------------- formulas mode
def test_formulas_bundled_model_recalculated_by_libreoffice(tmp_path: Path) -> None:
    check_formulas_against_libreoffice("gpt2-mini", "ROMEO: =1+1", tmp_path, on_demand=True)


def test_formulas_tiny_hf_model_recalculated_by_libreoffice(
    params_tiny_dir: Path, tmp_path: Path
) -> None:
    check_formulas_against_libreoffice(params_tiny_dir, NASTY_PROMPT[:14], tmp_path)


def test_on_demand_cells_are_values_unless_asked_for(tmp_path: Path) -> None:
    """logits_all (cell(on_demand=True)) is the costliest recalculation: values by default,
    labelled in the Index; formulas when named in `cells` or with `on_demand`."""
    wb = cellgpt.open(GPT2, model="gpt2-mini", prompt="ROMEO:")
    plain = export_workbook(wb, tmp_path / "a.xlsx", mode="formulas")
    entry = plain.plan.entry("logits_all")
    assert entry is not None and entry.how == "values" and entry.note.startswith("on demand")
    index = load_workbook(plain.path, read_only=True)["Index"]
    row = next(r for r in index.iter_rows(values_only=True) if r[0] == "logits_all")
    assert "--on-demand" in row[6]
    named = export_workbook(wb, tmp_path / "b.xlsx", mode="formulas", cells=["logits_all"])
    assert named.plan.entry("logits_all").how == "formula"
    some = export_workbook(wb, tmp_path / "c.xlsx", mode="formulas", cells=["logits"])
    assert some.plan.entry("logits_all") is None
    flagged = export_workbook(wb, tmp_path / "d.xlsx", mode="formulas", on_demand=True)
    assert flagged.plan.entry("logits_all").how == "formula"


def test_cli_on_demand_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cellgpt.cli import main

    out = tmp_path / "o.xlsx"
    assert main(["export", str(out), "ROMEO:", "--mode", "formulas", "--quiet"]) == 0
    assert "as values (on demand; --on-demand for formulas): logits_all" in capsys.readouterr().out
    args = ["export", str(out), "ROMEO:", "--mode", "formulas", "--quiet", "--on-demand"]
    assert main(args) == 0
    assert "on demand" not in capsys.readouterr().out


def test_generic_workbook_formulas_and_fallback_to_values(tmp_path: Path) -> None:
    """A function registered with an Excel form exports as a formula with no special case;
    one without an Excel form is exported as values and listed as such in the Index."""
    library = core.copy()
    library.register(
        "triple", lambda a: np.asarray(a) * 3, excel=elementwise(lambda x: op(x, "*", num(3)))
    )
    library.register("mystery", lambda a: np.asarray(a)[::-1].copy())
    wb = Workbook(library)
    wb.define("x", "array([[1.5, -2.0, 3.25], [0.5, 4.0, -1.0]])")
    wb.define("y", "triple(x) + exp(x) / 2")
    wb.define("z", "mystery(y)")
    wb.define("s", "sum(y)")
    report = export_workbook(wb, tmp_path / "g.xlsx", mode="formulas")
    how = {e.name: (e.how, e.note) for e in report.plan.entries}
    assert how["y"][0] == "formula" and how["s"][0] == "formula"
    assert how["z"][0] == "values" and "mystery() has no Excel form" in how["z"][1]
    index = load_workbook(report.path, read_only=True)["Index"]
    listed = {r[0]: r[6] for r in index.iter_rows(values_only=True) if len(r) > 6}
    assert "no Excel form" in listed["z"]
    book = load_workbook(recalculate(report.path, tmp_path / "lo"), data_only=True, read_only=True)
    for name in ("y", "s"):
        e = report.plan.entry(name)
        got = read_array(book, e.placement, np.asarray(e.value).shape)
        np.testing.assert_allclose(got, np.asarray(e.value, dtype=np.float64), atol=1e-6)


# ---------------------------------------------------------------------------- values mode
@pytest.fixture(scope="module")
def values_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workbook, ExportReport]:
    wb = cellgpt.open(GPT2, model="gpt2-mini", prompt=NASTY_PROMPT)
    path = tmp_path_factory.mktemp("values") / "values.xlsx"
    return wb, export_workbook(wb, path, mode="values")


def test_index_lists_course_steps_sections_and_aliases(
    values_export: tuple[Workbook, ExportReport],
) -> None:
    _, report = values_export
    index = load_workbook(report.path, read_only=True)["Index"]
    rows = list(index.iter_rows(values_only=True))
    assert rows[0][:3] == ("cell", "step", "section") and rows[0][-1] == "also named"
    by_cell = {r[0]: r for r in rows[2:] if len(r) > 2 and r[0]}  # not the notes
    assert by_cell["h0.ln_1.normalized"][1] == 2
    assert by_cell["h3.resid_post"][1] == 16
    assert by_cell["h0.k"][1] == 5 and "h0.step5.k" in by_cell["h0.k"][-1]
    assert by_cell["h0.ln_1.scale"][1] is None  # TL's hook_scale, not one of the 16 steps
    assert "blocks.0.ln1.hook_normalized" in by_cell["h0.ln_1.normalized"][-1]
    sections = {r[2]: r[0] for r in by_cell.values() if r[2]}
    assert sections["Token embeddings"] == "wte_rows"
    assert sections["Position embeddings"] == "wpe_rows"
    assert sections["Final layer norm"] == "ln_f.normalized"
    assert sections["Predicted embedding"] == "predicted"
    assert sections["Predicted token"] == "next_token"


def test_values_round_trip(values_export: tuple[Workbook, ExportReport]) -> None:
    _, report = values_export
    book = load_workbook(report.path, read_only=True)
    checked = 0
    for entry in report.plan.entries:
        if entry.kind != "array":
            continue
        value = np.asarray(entry.value)
        got = read_array(book, entry.placement, value.shape)
        finite = np.isfinite(value)
        # Shortest float32 text reads back to exactly the same float32.
        assert np.array_equal(got[finite].astype(value.dtype), value[finite]), entry.name
        checked += 1
    assert checked > 100
    # Parameters are left out unless asked for.
    assert report.plan.entry("wte") is None
    assert report.plan.entry("h0.attn.c_attn.weight") is None


def test_values_sheets_with_pandas(values_export: tuple[Workbook, ExportReport]) -> None:
    import pandas as pd

    wb, report = values_export
    frame = pd.read_excel(report.path, sheet_name="h3.attn.pattern", index_col=0)
    pattern = np.asarray(wb["h3.attn.pattern"])
    np.testing.assert_array_equal(
        frame.to_numpy(np.float32), pattern.reshape(-1, pattern.shape[-1])
    )
    ln = pd.read_excel(report.path, sheet_name="ln_f", index_col=0)
    assert list(ln.index) == wb["tokens"]  # token strings as row headers, never formulas
    np.testing.assert_array_equal(ln.to_numpy(np.float32), wb["ln_f"])


def test_text_is_never_a_formula(values_export: tuple[Workbook, ExportReport]) -> None:
    wb, report = values_export
    tokens = wb["tokens"]
    assert any(t.startswith("=") for t in tokens) and any("@" in t for t in tokens)
    book = load_workbook(report.path)  # not data_only: formulas would show as formulas
    for sheet in ("tokens", "ln_f", "words"):
        for row in book[sheet].iter_rows():
            for cell in row:
                if isinstance(cell.value, str):
                    assert cell.data_type == "s", (sheet, cell.coordinate, cell.value)
    labels = [book["ln_f"].cell(row=r + 2, column=1).value for r in range(len(tokens))]
    assert labels == tokens
    assert book["prompt"]["B2"].value == NASTY_PROMPT
    index = book["Index"]
    assert index["A1"].value == "cell"
    assert index["D3"].data_type == "f" and "HYPERLINK" in index["D3"].value


def test_formula_like_labels_stay_text(tmp_path: Path) -> None:
    labels = ["=1+1", '=HYPERLINK("x")', "@SUM(A1)", "+A1", "-2"]
    wb = Workbook(core.copy())
    wb.define("labels", repr(labels))
    wb.define("m", "ones((5, 2))", hints={"rows": "labels"})
    for mode in ("values", "formulas"):
        report = export_workbook(wb, tmp_path / f"{mode}.xlsx", mode=mode)
        book = load_workbook(report.path)
        for sheet in ("labels", "m"):
            column = [c for c in book[sheet]["A"][1:]] if sheet == "m" else book[sheet]["B"][1:]
            assert [c.value for c in column] == labels
            assert all(c.data_type == "s" for c in column)


def test_numbers_are_shortest_float32_text(values_export: tuple[Workbook, ExportReport]) -> None:
    wb, report = values_export
    book = load_workbook(report.path, read_only=True)
    sheet_files = dict(zip(book.sheetnames, range(1, len(book.sheetnames) + 1), strict=True))
    with zipfile.ZipFile(report.path) as z:
        xml = z.read(f"xl/worksheets/sheet{sheet_files['h0.mlp.fc']}.xml").decode()
    texts = re.findall(r'<c r="[A-Z]+\d+"(?: s="\d+")?><v>([^<]*)</v>', xml)
    expected = format_float32_shortest(np.asarray(wb["h0.mlp.fc"]))
    assert texts[: len(expected)] == expected


def test_with_params_adds_parameter_sheets(tmp_path: Path) -> None:
    wb = cellgpt.open(GPT2, model="gpt2-mini", prompt="ROMEO:")
    report = export_workbook(wb, tmp_path / "p.xlsx", with_params=True, cells=["wte", "h0.*"])
    entry = report.plan.entry("wte")
    assert entry is not None and entry.how == "parameter values"
    book = load_workbook(report.path, read_only=True)
    got = read_array(book, entry.placement, entry.value.shape)
    assert np.array_equal(got.astype(np.float32), entry.value)


# ---------------------------------------------------------------------------- layout and limits
def test_sheet_names_are_valid_unique_and_short() -> None:
    names = SheetNames()
    made = [
        names.make(n) for n in ["a" * 40, "a" * 40, "x[1]:y/z?", "index", "h11.attn.c_proj.weight"]
    ]
    assert len({m.lower() for m in made}) == len(made)
    assert all(len(m) <= 31 and not re.search(r"[\[\]:*?/\\]", m) for m in made)
    assert made[3].lower() != "index"  # the Index sheet keeps its name


def test_excel_limits_transpose_and_split() -> None:
    # Too wide: stored transposed (vocab × positions).
    assert wants_transpose((5, 50257), None)
    assert not wants_transpose((5, 768), 50257)
    assert wants_transpose((5, 2048), 2048)  # runs along the vocabulary
    p, _ = place((5, 50257), ["logits_all"], True)
    assert p.stored == (50257, 5)
    # Too tall: split over sheets, each within the row limit.
    rows = 2 * MAX_DATA_ROWS + 10
    p, n = place((rows, 4), ["a", "a (2)", "a (3)"], False)
    assert n == 3 and sum(part.n_rows for part in p.parts) == rows
    assert all(part.n_rows <= MAX_DATA_ROWS for part in p.parts)
    with pytest.raises(ValueError):
        place((MAX_COLS * 2, MAX_COLS * 2), ["x"], False)


def test_evicted_cells_are_exported(tmp_path: Path) -> None:
    wb = Workbook(core.copy())
    wb.define("x", "arange(6)")
    wb.define("big", "x * 2", hints={"evict": True})
    wb.define("y", "big + 1")
    wb.run()
    assert wb.state("big").evicted  # its value was dropped; the export recomputes it
    report = export_workbook(wb, tmp_path / "e.xlsx")
    entry = report.plan.entry("big")
    assert entry is not None and entry.kind == "array"
    got = read_array(load_workbook(report.path), entry.placement, (6,))
    np.testing.assert_array_equal(got, np.arange(6) * 2)


def test_gpt2_attention_scores_are_exported(
    values_export: tuple[Workbook, ExportReport],
) -> None:
    wb, report = values_export
    entry = report.plan.entry("h3.attn.scores")
    assert entry is not None and entry.kind == "array"
    np.testing.assert_array_equal(np.asarray(entry.value), wb["h3.attn.scores"])


def test_wide_array_written_transposed(tmp_path: Path) -> None:
    wb = Workbook(core.copy())
    wb.define("wide", "random_normal((3, 20000), 1)")
    report = export_workbook(wb, tmp_path / "w.xlsx")
    entry = report.plan.entry("wide")
    assert entry.placement.transposed
    book = load_workbook(report.path)
    assert book["wide"].max_column <= MAX_COLS and book["wide"].max_row == 20001
    got = read_array(book, entry.placement, (3, 20000))
    assert np.array_equal(got.astype(np.float32), wb["wide"])


def test_slow_path_writes_the_same_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the raw-XML fast path (e.g. openpyxl on lxml) numbers and labels are the same."""
    monkeypatch.setattr("cellgpt.export.sheetio._install_raw_rows", lambda ws: False)
    wb = Workbook(core.copy())
    wb.define("labels", repr(["=1+1", "b", "c"]))
    wb.define("m", "random_normal((3, 5), 2)", hints={"rows": "labels"})
    wb.define("masked", "array([1.5, -inf, nan])")  # -inf: the mask number; nan: text
    report = export_workbook(wb, tmp_path / "slow.xlsx")
    book = load_workbook(report.path)
    assert [c.value for c in book["masked"][2][1:4]] == [1.5, MASKED_VALUE, "nan"]
    entry = report.plan.entry("m")
    assert np.array_equal(read_array(book, entry.placement, (3, 5)).astype(np.float32), wb["m"])
    assert [c.value for c in book["m"]["A"][1:]] == ["=1+1", "b", "c"]
    assert book["m"]["A2"].data_type == "s"


def test_non_finite_numbers_are_text_but_minus_inf_is_the_mask(tmp_path: Path) -> None:
    wb = Workbook(core.copy())
    wb.define("masked", "array([[1.5, -inf, nan, inf]])")
    report = export_workbook(wb, tmp_path / "nf.xlsx")
    book = load_workbook(report.path)
    assert [c.value for c in book["masked"][2][1:5]] == [1.5, MASKED_VALUE, "nan", "inf"]
    got = read_array(book, report.plan.entry("masked").placement, (1, 4))
    np.testing.assert_array_equal(got, [[1.5, MASKED_VALUE, np.nan, np.inf]])


def test_clean_text_escapes_what_xml_cannot_hold() -> None:
    assert clean_text("a\x00b\x1b") == "a_x0000_b_x001B_"
    assert clean_text("_x0041_") == "_x005F_x0041_"
    assert len(clean_text("x" * 40_000)) == 32_767


# ---------------------------------------------------------------------------- CLI
def test_cli_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cellgpt.cli import main

    out = tmp_path / "cli.xlsx"
    assert main(["export", str(out), "ROMEO:", "--cells", "h0.*", "logits", "--quiet"]) == 0
    assert "wrote" in capsys.readouterr().out and out.exists()
    book = load_workbook(out, read_only=True)
    assert book.sheetnames[0] == "Index" and "h0.attn.pattern" in book.sheetnames
    assert main(["export", str(tmp_path / "x.xlsx"), "hi", "--cells", "nothing*"]) == 2
    assert main(["export", str(tmp_path / "x.csv"), "hi"]) == 2
    assert "error" in capsys.readouterr().err


def test_tui_export_hook_is_this_exporter(tmp_path: Path) -> None:
    from cellgpt.tui import controller

    assert controller.export_workbook is export_workbook
    wb = cellgpt.open(GPT2, model="gpt2-mini", prompt="ROMEO:")
    report = controller.export_workbook(wb, str(tmp_path / "tui.xlsx"))  # the TUI's call
    assert report.mode == "values" and report.path.exists()
