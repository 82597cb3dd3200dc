"""The Python API for notebooks and scripts: `cellgpt.open("gpt2", model=..., prompt=...)`."""

from __future__ import annotations

import os
from typing import Any

from cellgpt.engine import FunctionLibrary, Workbook, core, load_workbook


def full_library() -> FunctionLibrary:
    """The core library plus the GPT-2 and tokenizer-workbench functions."""
    # Imported here so that `import cellgpt.engine` alone never loads the GPT-2 layer.
    from cellgpt.gpt2.functions import register as register_gpt2
    from cellgpt.tokenizer.functions import register as register_tokenizer

    return register_tokenizer(register_gpt2(core.copy()))


def open(workbook: str | os.PathLike[str] = "gpt2", **inputs: Any) -> Workbook:
    """Load a workbook, setting the given input cells (e.g. model=..., prompt=...).

    `workbook` is a name (`gpt2`, `tokenizer`, `word_analogy`, ...: your workbook folder
    first, then the bundled ones) or a path to a workbook file."""
    from cellgpt.locations import resolve_workbook

    return load_workbook(resolve_workbook(workbook), full_library(), inputs)
