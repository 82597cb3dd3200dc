"""Pictures of exported sheets: LibreOffice headless prints a sheet of an .xlsx, and the
first page becomes a PNG.

LibreOffice's own PNG export needs its Draw components, which the headless Calc package
(libreoffice-calc-nogui, what the tests install) lacks; its PDF export is there. So each
sheet to show gets a copy of the file in which every other sheet is hidden (hidden sheets
are not printed, their formulas still compute) and which prints gridlines and the row and
column headings, like the screen. One LibreOffice run converts every copy to PDF,
recalculating on load (recalc.py's profile); pypdfium2 (PDFium, the `screenshots` extra)
draws the first page, the white margin is cut and the pixels are written as a PNG.
"""

from __future__ import annotations

import os
import re
import struct
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cellgpt.export.recalc import RecalcError, recalculate_all

SCALE = 2.0  # PDF points to pixels: 144 dpi
MARGIN = 12  # pixels of white kept around the printed cells
_SHEET = re.compile(r"<sheet\b[^>]*/>")
_PRINT = '<printOptions gridLines="1" headings="1" />'
_PAGE = '<pageSetup orientation="landscape" paperSize="9" />'


def _attr(tag: str, name: str) -> str:
    found = re.search(rf'\b{name}="([^"]*)"', tag)
    return found.group(1) if found else ""


def _unescape(text: str) -> str:
    return (
        text.replace("&quot;", '"').replace("&apos;", "'").replace("&lt;", "<")
        .replace("&gt;", ">").replace("&amp;", "&")
    )  # fmt: skip


def sheet_names(xlsx: str | os.PathLike[str]) -> list[str]:
    """The sheet names of an .xlsx, in tab order."""
    with zipfile.ZipFile(xlsx) as z:
        xml = z.read("xl/workbook.xml").decode()
    return [_unescape(_attr(tag, "name")) for tag in _SHEET.findall(xml)]


def _sheet_file(z: zipfile.ZipFile, xml: str, sheet: str) -> str:
    """The part (xl/worksheets/sheetN.xml) holding `sheet`, through the workbook's rels."""
    tag = next(t for t in _SHEET.findall(xml) if _unescape(_attr(t, "name")) == sheet)
    rid = _attr(tag, "r:id")
    rels = z.read("xl/_rels/workbook.xml.rels").decode()
    rel = next(r for r in re.findall(r"<Relationship\b[^>]*/>", rels) if _attr(r, "Id") == rid)
    target = _attr(rel, "Target")
    return target.lstrip("/") if target.startswith("/") else "xl/" + target


def only_sheet(src: Path, dst: Path, sheet: str) -> None:
    """A copy of `src` that opens on `sheet` and prints only it, with gridlines and
    headings, in landscape."""
    names = sheet_names(src)
    if sheet not in names:
        shown = ", ".join(names[:12]) + (" …" if len(names) > 12 else "")
        raise ValueError(f"{src}: no sheet named {sheet!r} (it has {shown})")
    tab = names.index(sheet)
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        book = zin.read("xl/workbook.xml").decode()
        part = _sheet_file(zin, book, sheet)

        def visibility(m: re.Match[str]) -> str:
            tag = re.sub(r'\sstate="[^"]*"', "", m.group())
            hidden = _unescape(_attr(tag, "name")) != sheet
            return tag.replace("<sheet ", '<sheet state="hidden" ', 1) if hidden else tag

        book = _SHEET.sub(visibility, book)
        book = re.sub(r'\b(activeTab|firstSheet)="[0-9]+"', rf'\1="{tab}"', book)
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "xl/workbook.xml":
                data = book.encode()
            elif item.filename == part:
                data = _printed(data.decode()).encode()
            zout.writestr(item, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=1)


def _printed(xml: str) -> str:
    """Gridlines, headings and landscape in a worksheet's XML (schema order: printOptions
    and pageSetup sit around pageMargins)."""
    xml = re.sub(r"<printOptions\b[^>]*/>|<pageSetup\b[^>]*/>", "", xml)
    if "<pageMargins" in xml:
        xml = re.sub(r"(<pageMargins\b[^>]*/>)", rf"{_PRINT}\1{_PAGE}", xml, count=1)
    else:
        xml = xml.replace("</worksheet>", f"{_PRINT}{_PAGE}</worksheet>")
    return xml


def render_sheets(
    xlsx: str | os.PathLike[str],
    sheets: Sequence[str],
    out_dir: str | os.PathLike[str],
    timeout: float = 600,
) -> list[Path]:
    """PNG pictures of `sheets` of `xlsx`, recalculated, in one LibreOffice run:
    `out_dir`/<sheet>.png (characters a file name cannot hold become _)."""
    try:
        import pypdfium2
    except ImportError:
        raise RecalcError(
            "screenshots need pypdfium2: pip install 'cellgpt[screenshots]'"
        ) from None
    src, out = Path(xlsx), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pngs = []
    with tempfile.TemporaryDirectory(prefix="cellgpt-shots-") as tmp:
        copies = []
        for sheet in sheets:
            copy = Path(tmp) / f"{file_name(sheet)}.xlsx"
            only_sheet(src, copy, sheet)
            copies.append(copy)
        pdfs = recalculate_all(copies, Path(tmp) / "pdf", timeout, convert_to="pdf")
        for pdf_path in pdfs:
            pdf = pypdfium2.PdfDocument(pdf_path)
            try:
                bitmap = pdf[0].render(scale=SCALE, rev_byteorder=True)  # RGB(A)
                pixels = np.array(bitmap.to_numpy()[:, :, :3], dtype=np.uint8)
            finally:
                pdf.close()
            png = out / f"{pdf_path.stem}.png"
            write_png(png, trim(pixels))
            pngs.append(png)
    return pngs


def file_name(sheet: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", sheet)


def trim(pixels: np.ndarray, margin: int = MARGIN) -> np.ndarray:
    """The picture without the page's white border (keeping `margin` pixels of it)."""
    ink = np.argwhere((pixels < 250).any(axis=2))
    if ink.size == 0:
        return pixels
    (top, left), (bottom, right) = ink.min(axis=0), ink.max(axis=0)
    h, w = pixels.shape[:2]
    return pixels[
        max(0, top - margin) : min(h, bottom + margin + 1),
        max(0, left - margin) : min(w, right + margin + 1),
    ]


def write_png(path: Path, rgb: np.ndarray) -> None:
    """An 8-bit RGB PNG (scanlines unfiltered: on anti-aliased text PNG's Sub and Up
    filters came out larger)."""
    import zlib

    h, w, _ = rgb.shape
    rows = np.concatenate([np.zeros((h, 1), np.uint8), rgb.reshape(h, w * 3)], axis=1)

    def chunk(tag: bytes, data: bytes) -> bytes:
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows.tobytes(), 9))
        + chunk(b"IEND", b"")
    )
