"""Fixtures shared by the export tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import cellgpt
from cellgpt.export.xlsx import ExportReport, export_workbook
from tests.export.test_export import GPT2

TINY_PROMPT = "ab cd"
TINY_CAPACITY = 8


@pytest.fixture(scope="session")
def tiny_formulas_export(
    params_tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Any, ExportReport]:
    """The tiny real-vocab model on "ab cd", exported in formulas mode with capacity 8, and
    its workbook: written once for the tests that edit the file and let LibreOffice
    recalculate it (copy before editing: `type_into` writes a new file; leave the workbook
    as it is)."""
    wb = cellgpt.open(GPT2, model=str(params_tiny_dir), prompt=TINY_PROMPT)
    out = tmp_path_factory.mktemp("tiny_formulas") / "tiny.xlsx"
    return wb, export_workbook(wb, out, mode="formulas", capacity=TINY_CAPACITY)
