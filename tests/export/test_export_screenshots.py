"""Screenshots: LibreOffice headless renders the Summary, an attention sheet and a block
sheet of an exported workbook to PNG (cellgpt/export/screenshots.py). The pictures stay in
the pytest artefact folder (`screenshots` under the run's basetemp) to look at; decoded by
Pillow (independent of our PNG writer), each must show a table, not a blank page."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import cellgpt
from cellgpt.export.screenshots import render_sheets
from cellgpt.export.xlsx import export_workbook
from tests.export.test_export import GPT2
from tests.export.test_export_cells import one_block_mini

SHEETS = ["Summary", "h0.attn.pattern", "h0.mlp.fc"]


def test_screenshots_of_summary_attention_and_a_block(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    model = one_block_mini(tmp_path_factory.mktemp("shots_model") / "gpt2-mini-1")
    wb = cellgpt.open(GPT2, model=str(model), prompt="ROMEO: I")
    n = len(wb["tokens"])
    work = tmp_path_factory.mktemp("shots_xlsx")
    report = export_workbook(wb, work / "model.xlsx", mode="formulas", capacity=n + 2)
    out = tmp_path_factory.mktemp("screenshots", numbered=False)
    pngs = render_sheets(report.path, SHEETS, out)
    assert [p.name for p in pngs] == [f"{s}.png" for s in SHEETS]
    for png in pngs:
        with Image.open(png) as im:
            assert im.format == "PNG"
            pixels = np.asarray(im.convert("RGB"), dtype=np.int32)
        h, w, _ = pixels.shape
        assert w >= 400 and h >= 80, (png.name, w, h)  # a table, not a speck
        ink = (pixels < 200).any(axis=2)  # text and grid lines
        assert 0.01 < ink.mean() < 0.6, (png.name, ink.mean())
        assert ink[: h // 4].any() and ink[-h // 4 :].any(), png.name  # cells top to bottom
    # The attention pattern's colour scale: blue cells (and the grey padding rows).
    with Image.open(out / "h0.attn.pattern.png") as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.int32)
    blue = (rgb[:, :, 2] - rgb[:, :, 0]) > 60
    assert blue.mean() > 0.02, blue.mean()
    print(f"\nscreenshots in {out}")
