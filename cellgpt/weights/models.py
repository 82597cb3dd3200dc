"""Loading a model's parameters by name or folder, once per process (reloaded when a file
in the folder changes)."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

from cellgpt.engine import mkl_blas
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
            _load_product_library()
        return _params[folder][1]


def _load_product_library() -> None:
    """Load MKL (when installed) with the weights: its first use loads the library and checks
    it (~60-80 ms once per process), which `run --profile` would otherwise count to the
    first product cell (h0.qkv: 60% of a short prompt's time on the bundled model)."""
    # A wrong CELLGPT_BLAS is left to the first product cell, whose error names the variable.
    with contextlib.suppress(mkl_blas.MklUnavailable):
        mkl_blas.get()
