"""File names typed into the TUI: `~` expanded, relative names taken from one stated folder
(the folder the TUI was started in), and the reasons a write there would fail, checked before
anything is written so the dialog can say so."""

from __future__ import annotations

import os
from pathlib import Path


def base_folder() -> Path:
    """Where relative file names go: the folder the TUI was started in."""
    return Path.cwd()


def resolve(text: str, base: Path | None = None) -> Path:
    """The path a typed name means (`~` expanded, relative to `base`)."""
    path = Path(os.path.expanduser(text.strip()))
    return path if path.is_absolute() else (base or base_folder()) / path


def write_problem(path: Path) -> str | None:
    """Why writing `path` would fail (None: it looks writable). Its folder must exist: a typo
    must not create a tree of folders."""
    if not path.name:
        return "give a file name"
    if path.is_dir():
        return f"{path} is a folder; give a file name"
    folder = path.parent
    if not folder.is_dir():
        return f"the folder {folder} does not exist"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"the folder {folder} is not writable"
    if path.exists() and not os.access(path, os.W_OK):
        return f"{path} is read-only"
    return None


def shown(path: Path) -> str:
    """A path as the user may type it back: under the home folder as `~/...`."""
    home = Path.home()
    try:
        return "~/" + str(path.relative_to(home)) if path != home else "~"
    except ValueError:
        return str(path)
