"""Loading a model's parameters by name or folder, once per process (reloaded when a file
in the folder changes)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from cellgpt.locations import DEFAULT_MODEL, ModelNotFoundError, resolve_model
from cellgpt.weights.params import Params, Progress, load_params

__all__ = ["DEFAULT_MODEL", "ModelNotFoundError", "folder_stamp", "load_model_params"]

_lock = threading.Lock()
_params: dict[Path, tuple[float, Params]] = {}


def folder_stamp(folder: Path) -> float:
    """Changes when any file in the folder changes (so edited CSVs are picked up)."""
    return max((p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()), default=0)


def load_model_params(model: str | os.PathLike[str], *, progress: Progress | None = None) -> Params:
    """The parameters of a model (a name on the search path or a folder). `progress` hears
    about a load that reads files (not about one answered from this process's memory)."""
    folder = resolve_model(model)
    stamp = folder_stamp(folder)
    with _lock:
        cached = _params.get(folder)
        if cached is None or cached[0] != stamp:
            _params[folder] = (stamp, load_params(folder, progress=progress))
        return _params[folder][1]
