"""The Python API for notebooks and scripts: `cellgpt.open(path, model=..., prompt=...)`."""

from __future__ import annotations

import os
from typing import Any

from cellgpt.engine import FunctionLibrary, Workbook, core, load_workbook


def full_library() -> FunctionLibrary:
    """The core library plus the GPT-2 and tokenizer-workbench functions."""
    # Imported here so that `import cellgpt.engine` alone never loads the GPT-2 layer.
    from cellgpt.gpt2.functions import register as register_gpt2
    from cellgpt.gpt2.tokenizer_functions import register as register_tokenizer

    return register_tokenizer(register_gpt2(core.copy()))


def open(path: str | os.PathLike[str], **inputs: Any) -> Workbook:
    """Load a workbook file, setting the given input cells (e.g. model=..., prompt=...)."""
    return load_workbook(path, full_library(), inputs)
