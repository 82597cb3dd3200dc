"""Recalculate an .xlsx with LibreOffice headless, and read exported arrays back.

LibreOffice ignores fullCalcOnLoad by default and would show cached values; a private
profile with OOXMLRecalcMode=0 ("always recalculate") makes it compute every formula on
load. Converting xlsx → xlsx then stores the freshly computed values, which openpyxl reads.
Each run gets its own profile directory so parallel runs do not clash.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cellgpt.export.layout import DATA_COL0, DATA_ROW0, Placement

_PROFILE = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry"
 xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="OOXMLRecalcMode" oor:op="fuse"><value>0</value></prop></item>
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="ODFRecalcMode" oor:op="fuse"><value>0</value></prop></item>
</oor:items>
"""


class RecalcError(RuntimeError):
    """LibreOffice is missing, failed or timed out."""


def soffice_path() -> str:
    for name in ("soffice", "libreoffice"):
        found = shutil.which(name)
        if found:
            return found
    raise RecalcError(
        "LibreOffice (soffice) is not installed: apt-get install libreoffice-calc-nogui"
    )


def recalculate(
    src: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    timeout: float = 600,
    prefix: Sequence[str] = (),
) -> Path:
    """LibreOffice opens `src`, recomputes every formula and saves a copy in `out_dir`.
    `prefix`: a command run in front of soffice (a benchmark's `/usr/bin/time -v`)."""
    return recalculate_all([src], out_dir, timeout, prefix)[0]


def recalculate_all(
    srcs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    timeout: float = 600,
    prefix: Sequence[str] = (),
    convert_to: str = "xlsx:Calc MS Excel 2007 XML",
) -> list[Path]:
    """`recalculate` for several files in one LibreOffice run (it starts once).
    `convert_to`: LibreOffice's target (e.g. "png": a picture of each file's active sheet)."""
    soffice = soffice_path()
    paths = [Path(src).resolve() for src in srcs]
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cellgpt-lo-") as profile:
        user = Path(profile) / "user"
        user.mkdir()
        (user / "registrymodifications.xcu").write_text(_PROFILE)
        cmd = [
            *prefix,
            soffice,
            f"-env:UserInstallation={Path(profile).as_uri()}",
            "--headless",
            "--norestore",
            "--nolockcheck",
            "--convert-to",
            convert_to,
            "--outdir",
            str(out_dir),
            *map(str, paths),
        ]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RecalcError(f"LibreOffice did not finish within {timeout:.0f} s") from None
    suffix = "." + convert_to.split(":")[0]
    outs = [out_dir / (src.stem + suffix) for src in paths]
    if done.returncode != 0 or not all(out.exists() for out in outs):
        raise RecalcError(
            f"LibreOffice failed (exit {done.returncode}): {(done.stderr or done.stdout).strip()}"
        )
    return outs


def read_array(book: object, placement: Placement, shape: tuple[int, ...]) -> np.ndarray:
    """The numbers of one exported array, from an openpyxl workbook (data_only), in the
    engine's shape. Text cells (nan/inf, errors) read as NaN."""
    parts = []
    for part in placement.parts:
        ws = book[part.sheet]  # type: ignore[index]
        stored_cols = placement.stored[1]
        rows = ws.iter_rows(
            min_row=DATA_ROW0 + 1,
            max_row=DATA_ROW0 + part.n_rows,
            min_col=DATA_COL0 + 1,
            max_col=DATA_COL0 + stored_cols,
            values_only=True,
        )
        parts.append(np.array([[_number(v) for v in row] for row in rows], dtype=np.float64))
    stored = np.concatenate(parts, axis=0)
    logical = stored.T if placement.transposed else stored
    return logical.reshape(shape)


def _number(v: object) -> float:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return float("nan")
    return float("nan")
