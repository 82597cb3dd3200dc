"""Reading untrusted files: FIFOs, devices and folders fail at once with a clear error, the byte
cap counts what was read, links can be refused, and the identity tells two versions apart."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from cellgpt.engine.safe_files import (
    UnsafeFileError,
    read_bytes,
    read_bytes_with_identity,
    regular_file_size,
)


@pytest.mark.parametrize(
    ("special", "why"),
    [("/dev/zero", "a device"), ("/dev/urandom", "a device"), ("/dev/null", "a device")],
)
def test_devices_are_refused_at_once(special: str, why: str) -> None:
    start = time.monotonic()
    with pytest.raises(UnsafeFileError, match=why):
        read_bytes(special, 1 << 20, what="config.json")
    assert time.monotonic() - start < 1


def test_a_fifo_never_blocks(tmp_path: Path) -> None:
    fifo = tmp_path / "workbook.py"
    os.mkfifo(fifo)
    start = time.monotonic()
    with pytest.raises(UnsafeFileError, match=r"workbook\.py: workbook file is a pipe"):
        read_bytes(fifo, 1000, what="workbook file")
    assert time.monotonic() - start < 1
    with pytest.raises(UnsafeFileError, match="pipe"):
        regular_file_size(fifo)


def test_folders_missing_files_and_the_cap(tmp_path: Path) -> None:
    with pytest.raises(UnsafeFileError, match="a folder"):
        read_bytes(tmp_path, 10)
    with pytest.raises(UnsafeFileError, match="cannot read"):
        read_bytes(tmp_path / "missing", 10)
    big = tmp_path / "big.csv"
    big.write_bytes(b"1," * 100)
    with pytest.raises(UnsafeFileError, match="200 bytes; the limit is 199"):
        read_bytes(big, 199)
    assert read_bytes(big, 200) == b"1," * 100


def test_links_can_be_refused(tmp_path: Path) -> None:
    target = tmp_path / "real.json"
    target.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    assert read_bytes(link, 10) == b"{}"
    with pytest.raises(UnsafeFileError, match="symbolic link"):
        read_bytes(link, 10, follow_links=False)


def test_identity_changes_with_the_content(tmp_path: Path) -> None:
    path = tmp_path / "w.py"
    path.write_text("a = 1\n")
    _, first = read_bytes_with_identity(path, 100)
    _, same = read_bytes_with_identity(path, 100)
    assert first == same
    path.write_text("a = 2\n")  # same size, maybe the same mtime: the hash still differs
    _, second = read_bytes_with_identity(path, 100)
    assert second != first and second.sha256 != first.sha256
