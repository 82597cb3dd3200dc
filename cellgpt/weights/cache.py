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
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cellgpt.locations import cache_dir

MANIFEST = "manifest.json"
_FORMAT = 1
_EDGE = 64 * 1024


def cheap_hash(path: str | os.PathLike[str]) -> str:
    """blake2b of the size and the first and last 64 KB: catches edits that keep the size
    and mtime (rare) and truncation, at a fixed cost per file."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        digest.update(size.to_bytes(8, "little"))
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
        self.entries: dict[str, dict[str, Any]] = self._read_manifest()
        self.writable = self._probe_writable() if create else _could_write(self.dir)

    def npy_path(self, name: str) -> Path:
        return self.dir / f"{name}.npy"

    def _read_manifest(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads((self.dir / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            return {}
        entries = data.get("entries")
        return entries if isinstance(entries, dict) else {}

    def _probe_writable(self) -> bool:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
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
        path = self.npy_path(name)
        try:
            if os.path.getsize(path) != entry.get("npy_size"):
                return None
            if cheap_hash(path) != entry.get("npy_hash"):
                return None
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        if array.shape != tuple(shape) or array.dtype != np.dtype("<f4"):
            return None
        if not array.flags.c_contiguous:
            return None
        return array.view(np.ndarray)  # plain ndarray view, still backed by the map

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
