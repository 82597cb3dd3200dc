"""Binary cache of parsed CSV tables: `NAME.npy` files plus a `manifest.json`, in a folder
of the per-user cache directory keyed by the CSV folder's identity (its real path, device and
inode). Never inside the model folder: that may be read-only (site-packages) or shared.

The CSVs stay the source of truth. The manifest records, per tensor, the CSV's size,
mtime_ns and a cheap content hash (first and last 64 KB), and the .npy's size and hash.
A cached tensor is used only if all of that still matches and the .npy opens with the
expected shape and dtype; anything else (edited CSV, truncated or corrupt .npy, a
different model) means "rebuild from CSV". Files are written atomically, and a cache
directory we cannot write to simply means running without a cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from cellgpt.engine.safe_files import regular_file_size
from cellgpt.locations import cache_dir
from cellgpt.weights.files import CHECKPOINT_CAP, MANIFEST_CAP, open_regular, read_json

MANIFEST = "manifest.json"
_FORMAT = 1
_EDGE = 64 * 1024


def cheap_hash(path: str | os.PathLike[str], *, follow_links: bool = True) -> str:
    """blake2b of the size and the first and last 64 KB: catches edits that keep the size
    and mtime (rare) and truncation, at a fixed cost per file. Regular files only."""
    with open_regular(path, CHECKPOINT_CAP, follow_links=follow_links) as handle:
        return _edges_hash(handle)


def _edges_hash(handle: BinaryIO) -> str:
    digest = hashlib.blake2b(digest_size=16)
    size = os.fstat(handle.fileno()).st_size
    digest.update(size.to_bytes(8, "little"))
    handle.seek(0)
    digest.update(handle.read(_EDGE))
    if size > _EDGE:
        handle.seek(max(_EDGE, size - _EDGE))
        digest.update(handle.read(_EDGE))
    return digest.hexdigest()


@dataclass(frozen=True)
class CsvStamp:
    """What identifies one version of a CSV file."""

    size: int
    mtime_ns: int
    hash: str
    # The file itself, not just its text: a .cache shipped inside a shared folder (tar keeps
    # mtimes) would otherwise be trusted, skipping the CSV's finiteness checks.
    inode: int = 0

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> CsvStamp:
        regular_file_size(path, what="table")  # a FIFO or device: refused, never opened
        st = os.stat(path)
        return cls(st.st_size, st.st_mtime_ns, cheap_hash(path), st.st_ino)


def cache_dir_for(folder: str | os.PathLike[str]) -> Path:
    """The cache folder of one parameter folder: `<cache dir>/weights/<name>-<identity>`."""
    real = Path(os.path.realpath(folder))
    st = os.stat(real)
    identity = hashlib.blake2b(
        f"{real}\0{st.st_dev}\0{st.st_ino}".encode("utf-8", "surrogateescape"), digest_size=8
    ).hexdigest()
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in real.name)[:40]
    return cache_dir() / "weights" / f"{safe}-{identity}"


class ParamCache:
    """The binary cache of one parameter folder."""

    def __init__(self, folder: str | os.PathLike[str], *, create: bool = True) -> None:
        """`create=False` only inspects: no cache folder is made, no write is tried."""
        self.dir = cache_dir_for(folder)
        self.safe = _own_folders(self.dir, create=create)
        self.entries: dict[str, dict[str, Any]] = self._read_manifest()
        if create:
            self.writable = self.safe and self._probe_writable()
        else:
            self.writable = _could_write(self.dir)

    def npy_path(self, name: str) -> Path:
        return self.dir / f"{name}.npy"

    def _read_manifest(self) -> dict[str, dict[str, Any]]:
        if not self.safe:
            return {}
        try:
            data = read_json(self.dir / MANIFEST, MANIFEST_CAP, follow_links=False)
        except (OSError, ValueError):  # missing, a link, not regular, too big, bad JSON
            return {}
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            return {}
        entries = data.get("entries")
        return entries if isinstance(entries, dict) else {}

    def _probe_writable(self) -> bool:
        try:
            with tempfile.TemporaryFile(dir=self.dir):
                pass
        except OSError:
            return False
        return True

    def lookup(self, name: str, shape: tuple[int, ...], stamp: CsvStamp) -> np.ndarray | None:
        """The cached tensor as a read-only memory map, or None if it cannot be trusted."""
        entry = self.entries.get(name)
        if not isinstance(entry, dict):
            return None
        expected = {
            "csv_size": stamp.size,
            "csv_mtime_ns": stamp.mtime_ns,
            "csv_hash": stamp.hash,
            "csv_inode": stamp.inode,
            "shape": list(shape),
        }
        if any(entry.get(key) != value for key, value in expected.items()):
            return None
        if not self.safe:
            return None
        try:
            array = _map_npy(self.npy_path(name), entry)
        except (OSError, ValueError, EOFError):
            return None
        if array is None or array.shape != tuple(shape) or array.dtype != np.dtype("<f4"):
            return None
        return array

    def record(
        self, name: str, shape: tuple[int, ...], stamp: CsvStamp, npy: dict[str, Any]
    ) -> None:
        self.entries[name] = {
            "csv_size": stamp.size,
            "csv_mtime_ns": stamp.mtime_ns,
            "csv_hash": stamp.hash,
            "csv_inode": stamp.inode,
            "shape": list(shape),
            **npy,
        }

    def save_manifest(self) -> None:
        """Merge our entries into the manifest on disk (another process may have added
        some meanwhile) and write it atomically."""
        merged = {**self._read_manifest(), **self.entries}
        text = json.dumps({"format": _FORMAT, "entries": merged}, indent=1, sort_keys=True)
        atomic_write_bytes(self.dir / MANIFEST, text.encode("utf-8"))

    def state(self, names: list[str]) -> dict[str, int]:
        """How many of `names` have a manifest entry and a .npy file (no validation)."""
        present = sum(1 for n in names if n in self.entries and self.npy_path(n).exists())
        return {"entries": present, "total": len(names)}


def _map_npy(path: Path, entry: dict[str, Any]) -> np.ndarray | None:
    """The .npy as a read-only map, if it is a regular file (never a link) whose size and
    hash match the manifest entry. Checked and mapped through one open descriptor."""
    with open_regular(path, CHECKPOINT_CAP, what="cache file", follow_links=False) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size != entry.get("npy_size") or _edges_hash(handle) != entry.get("npy_hash"):
            return None
        handle.seek(0)
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
        if fortran or dtype != np.dtype("<f4"):
            return None
        if not shape or int(np.prod(shape)) == 0:  # nothing to map (mmap refuses 0 bytes)
            empty = np.zeros(shape, dtype=dtype)
            empty.flags.writeable = False
            return empty
        mapped = np.memmap(handle, dtype=dtype, mode="r", offset=handle.tell(), shape=shape)
    return mapped.view(np.ndarray)  # plain ndarray view, still backed by the map


def _own_folders(folder: Path, *, create: bool) -> bool:
    """Whether the cache root, its `weights` folder and `folder` are real folders, not
    links (a link there could point anywhere). With `create`, a link or file planted at
    one of them is removed (the link itself, never what it points to) and a real folder
    made in its place."""
    root = cache_dir()
    levels = [root, root / "weights", folder]
    for level in levels:
        if _is_real_dir(level):
            continue
        if not create:
            return not os.path.lexists(level)  # missing: nothing to read, nothing unsafe
        try:
            if os.path.lexists(level):
                os.unlink(level)  # a link or stray file: ours to replace, never followed
            level.mkdir(mode=0o700, parents=level == root, exist_ok=True)
        except OSError:
            return False
        if not _is_real_dir(level):
            return False
    return True


def _is_real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _could_write(folder: Path) -> bool:
    """Whether `folder` exists writable or could be created (without creating it)."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            return candidate.is_dir() and os.access(candidate, os.W_OK)
    return False


def atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_npy(path: Path, array: np.ndarray) -> dict[str, Any]:
    """Save little-endian float32 .npy atomically; returns its manifest fields."""
    data = np.ascontiguousarray(array, dtype="<f4")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.lib.format.write_array(handle, data, allow_pickle=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return {"npy_size": os.path.getsize(path), "npy_hash": cheap_hash(path)}
