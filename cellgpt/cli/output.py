"""Writing a file the user named (`--out FILE`, `export OUT.xlsx`): exactly that path, through a
temporary file in the same folder and os.replace, so a failure leaves neither a partial file
nor a temporary one; never onto a file the command is reading (the workbook, the model's
files), a folder, a FIFO or a device. Every OS error becomes one UserError naming the file."""

from __future__ import annotations

import argparse
import contextlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from cellgpt.cli import UserError

Writer = Callable[[IO[bytes]], None]


def check_target(path: str | os.PathLike[str], protected: Iterable[Path] = ()) -> Path:
    """The output path, refused (UserError) when it cannot or must not be replaced."""
    out = Path(path)
    try:
        st = os.stat(out)  # follows links: a link to the workbook is the workbook
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None
    if st is not None:
        _check_kind(out, st)
        _check_not_read(out, st, protected)
    if not out.parent.is_dir():  # a typo in the folder must not create folders
        raise UserError(f"cannot write {out}: the folder does not exist ({out.parent})")
    return out


def _check_kind(out: Path, st: os.stat_result) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise UserError(f"cannot write {out}: it is a folder; give a file name")
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"cannot write {out}: not a regular file (a FIFO, device or socket)")


def _check_not_read(out: Path, st: os.stat_result, protected: Iterable[Path]) -> None:
    for path in protected:
        with contextlib.suppress(OSError):
            other = os.stat(path)
            if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
                raise UserError(f"refusing to write {out}: it is {path}, which this command reads")


def model_files(folder: Path | None) -> list[Path]:
    """The files of a model folder (its weights, config and vocabulary)."""
    if folder is None or not folder.is_dir():
        return []
    with contextlib.suppress(OSError):
        return [p for p in folder.iterdir() if p.is_file()]
    return []


def files_read(args: argparse.Namespace, wb: Any) -> list[Path]:
    """The files a command reads (the workbook, the model's files): never an output."""
    from cellgpt.cli.common import chosen_model, workbook_path
    from cellgpt.gpt2 import cells
    from cellgpt.locations import NotFoundError, resolve_model

    files = [workbook_path(args)]
    for model in (chosen_model(args), wb.value(cells.MODEL) if cells.MODEL in wb else None):
        if isinstance(model, str | os.PathLike):
            with contextlib.suppress(NotFoundError, OSError):
                files += model_files(resolve_model(model))
    return files


def write_atomic(
    path: str | os.PathLike[str], write: Writer, protected: Iterable[Path] = ()
) -> None:
    """Write `path` with `write(handle)`: checked, then temp file + os.replace."""
    out = check_target(path, list(protected))
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 is not what a user expects
        os.replace(tmp, out)
        tmp = None
    except OSError as exc:
        # strerror, not str(exc): the exception may name the hidden temporary file.
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
