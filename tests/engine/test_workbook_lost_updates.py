"""No lost updates: a save over a workbook file that someone else changed since we read it is
refused (naming the file), writing nothing; save-as to another file always works, and after a
save the remembered version is the one we wrote."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cellgpt.engine import WorkbookFileError, load_workbook
from cellgpt.engine.workbook_file import WorkbookChangedError

TEXT = "a = 1\nb = a + 1  # keep\n"


def workbook_file(tmp_path: Path, text: str = TEXT) -> Path:
    path = tmp_path / "wb.py"
    path.write_bytes(text.encode())
    return path


def test_the_second_of_two_editors_is_refused(tmp_path: Path) -> None:
    path = workbook_file(tmp_path)
    first, second = load_workbook(path), load_workbook(path)
    first.set_formula("b", "a + 10")
    first.save()
    second.set_formula("a", "5")
    with pytest.raises(WorkbookChangedError) as info:
        second.save()
    assert isinstance(info.value, WorkbookFileError) and str(info.value).startswith(str(path))
    assert "changed on disk" in str(info.value)
    assert path.read_bytes() == TEXT.replace("a + 1", "a + 10").encode()  # first's edit kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wb.py"]  # no temp file left


def test_a_change_by_another_process_is_seen(tmp_path: Path) -> None:
    path = workbook_file(tmp_path)
    wb = load_workbook(path)
    wb.set_formula("a", "2")
    script = (
        f"import pathlib; p = pathlib.Path({str(path)!r}); p.write_text(p.read_text() + 'c = 3\\n')"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    changed = path.read_bytes()
    with pytest.raises(WorkbookChangedError):
        wb.save()
    assert path.read_bytes() == changed


def test_save_as_always_works_and_becomes_the_remembered_file(tmp_path: Path) -> None:
    path = workbook_file(tmp_path)
    wb = load_workbook(path)
    path.write_bytes(b"a = 7\n")  # changed behind our back
    wb.set_formula("a", "3")
    copy = tmp_path / "copy.py"
    wb.save(copy)
    assert copy.read_bytes() == TEXT.replace("a = 1", "a = 3").encode()
    assert path.read_bytes() == b"a = 7\n"
    wb.set_formula("a", "4")
    wb.save()  # now to the copy, which is ours
    assert copy.read_bytes() == TEXT.replace("a = 1", "a = 4").encode()
    copy.write_bytes(b"a = 8\n")
    with pytest.raises(WorkbookChangedError, match=r"copy\.py"):
        wb.save()


def test_repeated_saves_and_harmless_rewrites_are_allowed(tmp_path: Path) -> None:
    path = workbook_file(tmp_path)
    wb = load_workbook(path)
    for value in range(3):  # each save remembers the file it wrote
        wb.set_formula("a", str(value))
        wb.save()
    same = path.read_bytes()
    path.unlink()
    path.write_bytes(same)  # the same bytes in a new file: nobody's edit to lose
    os.utime(path, ns=(1, 1))
    wb.set_formula("a", "9")
    wb.save()
    assert path.read_bytes() == same.replace(b"a = 2", b"a = 9")


def test_a_deleted_file_is_written_again(tmp_path: Path) -> None:
    path = workbook_file(tmp_path)
    wb = load_workbook(path)
    path.unlink()
    wb.save()
    assert path.read_bytes() == TEXT.encode()


def test_a_file_replaced_by_a_folder_or_fifo_is_refused(tmp_path: Path) -> None:
    path = workbook_file(tmp_path)
    wb = load_workbook(path)
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(WorkbookChangedError, match="pipe"):
        wb.save()  # at once: never waits for a writer


def test_a_first_copy_of_a_shipped_workbook_is_not_written_over_anothers(
    tmp_path: Path,
) -> None:
    shipped = workbook_file(tmp_path)
    mine = tmp_path / "user" / "wb.py"
    first, second = load_workbook(shipped), load_workbook(shipped)
    for wb in (first, second):
        assert wb.document is not None
        wb.document.save_path = str(mine)
    first.set_formula("a", "2")
    first.save()  # creates the user's folder and copy
    assert mine.read_bytes() == TEXT.replace("a = 1", "a = 2").encode()
    second.set_formula("a", "3")
    with pytest.raises(WorkbookChangedError, match=r"user/wb\.py"):
        second.save()
    first.set_formula("a", "4")
    first.save()  # the copy is first's own file now
    assert mine.read_bytes() == TEXT.replace("a = 1", "a = 4").encode()
    assert shipped.read_bytes() == TEXT.encode()
