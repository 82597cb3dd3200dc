"""Export a workbook and take PNG pictures of some of its sheets with LibreOffice headless.

Usage:
    python scripts/screenshots.py OUT_DIR                       # Summary, attention, a block
    python scripts/screenshots.py docs/images --sheets Summary h0.attn.pattern
    python scripts/screenshots.py /tmp/shots --prompt "To be or" --capacity 8 --layout cells

Each picture is the first printed page of the sheet, recalculated by LibreOffice: what a
user sees on opening the file (see cellgpt/export/screenshots.py). Needs soffice and the
`screenshots` extra (pypdfium2).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cellgpt
from cellgpt.export.screenshots import render_sheets
from cellgpt.export.xlsx import export_workbook

REPO = Path(__file__).resolve().parents[1]
SHEETS = ["Summary", "h0.attn.pattern", "h0.mlp.fc"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out_dir", help="folder for the PNG files (created if missing)")
    p.add_argument("--model", default="gpt2-mini")
    p.add_argument("--prompt", default="ROMEO: I")
    p.add_argument("--capacity", type=int, default=8, help="token rows per sheet")
    p.add_argument("--layout", choices=["arrays", "cells"], default="arrays")
    p.add_argument("--sheets", nargs="+", default=SHEETS, metavar="SHEET")
    args = p.parse_args(argv)
    wb = cellgpt.open(REPO / "workbooks" / "gpt2.py", model=args.model, prompt=args.prompt)
    with tempfile.TemporaryDirectory(prefix="cellgpt-shots-") as tmp:
        report = export_workbook(
            wb,
            Path(tmp) / "workbook.xlsx",
            mode="formulas",
            capacity=args.capacity,
            layout=args.layout,
        )
        for png in render_sheets(report.path, args.sheets, args.out_dir):
            print(png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
