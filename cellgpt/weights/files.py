"""Reading the files of a model folder, which may come from a stranger: through
`engine.safe_files` (never blocks on a FIFO or device, regular files only, a byte cap
counted while reading), and JSON whose nesting cannot exhaust the stack.

The caps are far above any real GPT-2 file and far below what would hurt: a config.json is
a few hundred bytes, GPT-2's encoder.json 1 MB, a CSV table at most `csv_cap(shape)`.
"""

from __future__ import annotations

import io
import json
import os
from typing import Any

from cellgpt.engine.safe_files import UnsafeFileError, open_checked, read_bytes
from cellgpt.weights.errors import ParamsError

CONFIG_CAP = 1 << 20  # config.json, tokenizer_config.json, a safetensors index
TOKENIZER_FILE_CAP = 64 << 20  # encoder.json / vocab.bpe (GPT-2's: 1 MB and 0.5 MB)
MANIFEST_CAP = 16 << 20  # the cache manifest: one short entry per tensor
CHECKPOINT_CAP = 64 << 30  # a safetensors / pytorch_model.bin file (memory-mapped)
# The shortest text of a float32 is at most 15 characters ("-1.2345678e-38") plus a
# separator; 40 per number leaves room for other writers' spellings (padding, CRLF).
CSV_BYTES_PER_NUMBER = 40
CSV_SLACK = 4096

__all__ = ["UnsafeFileError", "csv_cap", "open_regular", "parse_json", "read_json"]


def csv_cap(count: int) -> int:
    """The most bytes a CSV table of `count` numbers may take."""
    return count * CSV_BYTES_PER_NUMBER + CSV_SLACK


def parse_json(data: bytes, where: str) -> Any:
    """JSON from bytes; a ParamsError naming `where` for bad UTF-8, bad JSON, or nesting
    too deep for the parser (`[[[[...` a hundred thousand deep)."""
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ParamsError(f"{where}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ParamsError(f"{where}: not valid JSON ({exc})") from None
    except RecursionError:
        raise ParamsError(f"{where}: JSON nested too deeply") from None


def read_json(
    path: str | os.PathLike[str], cap: int, *, what: str = "file", follow_links: bool = True
) -> Any:
    """A JSON file read safely (see module doc); UnsafeFileError or ParamsError name it."""
    data = read_bytes(path, cap, what=what, follow_links=follow_links)
    return parse_json(data, os.fspath(path))


class _CappedReader(io.RawIOBase):
    """A file descriptor read as a stream that fails past `cap` bytes (a file that grows
    while we read it), so a parser can stream a big table without holding it twice."""

    def __init__(self, fd: int, name: str, cap: int, what: str) -> None:
        self._fd, self.name, self._cap, self._what, self._read = fd, name, cap, what, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return os.lseek(self._fd, offset, whence)

    def tell(self) -> int:
        return os.lseek(self._fd, 0, os.SEEK_CUR)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        chunk = os.read(self._fd, len(view))
        self._read += len(chunk)
        if self._read > self._cap:
            raise UnsafeFileError(
                f"{self.name}: {self._what} is over the limit of {self._cap:,} bytes"
            )
        view[: len(chunk)] = chunk
        return len(chunk)

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


def open_regular(
    path: str | os.PathLike[str], cap: int, *, what: str = "file", follow_links: bool = True
) -> io.BufferedReader:
    """A buffered binary stream of a regular file of at most `cap` bytes, opened without
    blocking (a FIFO or device is refused at once, naming the file)."""
    name = os.fspath(path)
    fd, _ = open_checked(name, cap, what=what, follow_links=follow_links)
    return io.BufferedReader(_CappedReader(fd, name, cap, what), buffer_size=1 << 20)
