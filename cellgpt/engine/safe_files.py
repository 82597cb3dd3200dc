"""Reading files that may come from a stranger: never block, only regular files, and a byte cap
that counts what was actually read.

A path can name a FIFO (open() would wait forever for a writer), a device (/dev/zero never
ends, /dev/urandom neither), a directory, or a file that grows while we read it. Every reader
of untrusted files goes through `read_bytes`, which opens with O_NONBLOCK, checks the opened
file (not the path, which may change in between) is a regular file, and stops at the cap.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass

_CHUNK = 1 << 20


class UnsafeFileError(OSError):
    """A file that cannot be read safely: not a regular file, too big, or unreadable. The
    message names the file and says why."""


@dataclass(frozen=True)
class FileIdentity:
    """What identifies the version of a file we read: device, inode, size, mtime and a hash
    of its bytes. Two equal identities mean nobody changed the file in between."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    sha256: str


def read_bytes(
    path: str | os.PathLike[str], cap: int, *, what: str = "file", follow_links: bool = True
) -> bytes:
    """The whole file, if it is a regular file of at most `cap` bytes (counted while reading).

    Raises UnsafeFileError naming the path: for a FIFO, device, socket or directory at once
    (never blocks), for more than `cap` bytes, or for any OS error. With `follow_links=False`
    a symbolic link is refused too."""
    data, _ = read_bytes_with_identity(path, cap, what=what, follow_links=follow_links)
    return data


def read_bytes_with_identity(
    path: str | os.PathLike[str], cap: int, *, what: str = "file", follow_links: bool = True
) -> tuple[bytes, FileIdentity]:
    """`read_bytes`, plus the identity of the version that was read."""
    name = os.fspath(path)
    fd, st = open_checked(name, cap, what=what, follow_links=follow_links)
    try:
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = os.read(fd, min(_CHUNK, cap + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > cap:  # grew while we read it
                raise UnsafeFileError(f"{name}: {what} is over the limit of {cap:,} bytes")
    except UnsafeFileError:
        raise
    except OSError as exc:
        raise UnsafeFileError(f"{name}: cannot read {what}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    identity = FileIdentity(
        st.st_dev, st.st_ino, len(data), st.st_mtime_ns, hashlib.sha256(data).hexdigest()
    )
    return data, identity


def open_checked(
    path: str | os.PathLike[str], cap: int, *, what: str = "file", follow_links: bool = True
) -> tuple[int, os.stat_result]:
    """An open descriptor (O_NONBLOCK) of a regular file of at most `cap` bytes, and its
    stat; the caller closes it. The checks look at the opened file, not the path, which may
    change in between. UnsafeFileError names the file otherwise (the descriptor is closed)."""
    name = os.fspath(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    if not follow_links:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(name, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_links:
            raise UnsafeFileError(f"{name}: {what} is a symbolic link; refused") from None
        raise UnsafeFileError(f"{name}: cannot read {what}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFileError(f"{name}: {what} is {_kind(st.st_mode)}, not a regular file")
        if st.st_size > cap:
            raise UnsafeFileError(f"{name}: {what} is {st.st_size:,} bytes; the limit is {cap:,}")
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def regular_file_size(path: str | os.PathLike[str], *, what: str = "file") -> int:
    """The size of a regular file (stat, never opens it); UnsafeFileError for anything else."""
    name = os.fspath(path)
    try:
        st = os.stat(name)
    except OSError as exc:
        raise UnsafeFileError(f"{name}: cannot read {what}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFileError(f"{name}: {what} is {_kind(st.st_mode)}, not a regular file")
    return st.st_size


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"
