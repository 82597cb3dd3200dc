"""Reading untrusted files: FIFOs, devices and folders fail at once with a clear error, the byte
cap counts what was read, links can be refused, and the identity tells two versions apart."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from cellgpt.engine.safe_files import (
    UnsafeFileError,
    read_bytes,
    read_bytes_with_identity,
    regular_file_size,
)


def _refused_without_reading(monkeypatch, call: Callable[[], object]) -> UnsafeFileError:
    """Run `call` in a thread that must come back (a blocking open or read of a pipe would
    never return: the guard turns that into a failure, not a hung test run), with os.read
    spied on: a refused file is judged by its stat alone, never read."""
    reads: list[int] = []
    real_read = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: reads.append(fd) or real_read(fd, n))
    outcome: list[BaseException | object] = []

    def attempt() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # handed back to the test
            outcome.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "the call blocked (a pipe or device was opened for reading)"
    assert reads == [], "the special file was read"
    assert isinstance(outcome[0], UnsafeFileError), outcome
    return outcome[0]


@pytest.mark.parametrize(
    ("special", "why"),
    [("/dev/zero", "a device"), ("/dev/urandom", "a device"), ("/dev/null", "a device")],
)
def test_devices_are_refused_at_once(special: str, why: str, monkeypatch) -> None:
    error = _refused_without_reading(
        monkeypatch, lambda: read_bytes(special, 1 << 20, what="config.json")
    )
    assert why in str(error)


def test_a_fifo_never_blocks(tmp_path: Path, monkeypatch) -> None:
    fifo = tmp_path / "workbook.py"
    os.mkfifo(fifo)
    error = _refused_without_reading(
        monkeypatch, lambda: read_bytes(fifo, 1000, what="workbook file")
    )
    assert re.search(r"workbook\.py: workbook file is a pipe", str(error))
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
