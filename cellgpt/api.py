"""The Python API for notebooks and scripts: `cellgpt.open(path, model=..., prompt=...)`."""

from __future__ import annotations

import os
from typing import Any

from cellgpt.engine import FunctionLibrary, Workbook, core, load_workbook


def full_library() -> FunctionLibrary:
    """The core library plus every domain package's functions that is installed."""
    library = core.copy()
    try:
        from cellgpt.gpt2.functions import register as register_gpt2
    except ModuleNotFoundError as exc:  # the GPT-2 layer is optional for generic workbooks
        if exc.name != "cellgpt.gpt2.functions":
            raise
    else:
        register_gpt2(library)
    return library


def open(path: str | os.PathLike[str], **inputs: Any) -> Workbook:
    """Load a workbook file, setting the given input cells (e.g. model=..., prompt=...)."""
    return load_workbook(path, full_library(), inputs)
