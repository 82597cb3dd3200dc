"""The Python API for notebooks and scripts: `cellgpt.open("gpt2", model=..., prompt=...)`."""

from __future__ import annotations

import os
from typing import Any

from cellgpt.engine import FunctionLibrary, Workbook, core, load_workbook


def full_library() -> FunctionLibrary:
    """The core library plus the GPT-2, embedding-explorer and tokenizer-workbench functions."""
    # Imported here so that `import cellgpt.engine` alone never loads the GPT-2 layer.
    from cellgpt.gpt2.embeddings import register as register_embeddings
    from cellgpt.gpt2.functions import register as register_gpt2
    from cellgpt.tokenizer.functions import register as register_tokenizer

    return register_tokenizer(register_embeddings(register_gpt2(core.copy())))


def _granting_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    """The caller's inputs, with a model folder the caller gave as a path granted to the
    workbook (its formulas may name only models by name, or folders the user granted)."""
    from cellgpt.locations import grant_user_model

    if "model" in inputs:
        inputs = {**inputs, "model": grant_user_model(inputs["model"])}
    return inputs


def open(workbook: str | os.PathLike[str] = "gpt2", **inputs: Any) -> Workbook:
    """Load a workbook, setting the given input cells (e.g. model=..., prompt=...).

    `workbook` is a name (`gpt2`, `tokenizer`, `word_analogy`, ...: your workbook folder
    first, then the bundled ones) or a path to a workbook file. A bundled workbook opened by
    name is never overwritten: `wb.save()` writes your copy into your workbook folder, where
    the same name finds it from then on."""
    from cellgpt.locations import bundled_dir, resolve_workbook, user_workbooks_dir

    path = resolve_workbook(workbook)
    inputs = _granting_inputs(inputs)
    wb = load_workbook(path, full_library(), inputs)
    by_name = not os.path.isfile(os.fspath(workbook))
    if by_name and wb.document is not None and path.is_relative_to(bundled_dir("workbooks")):
        wb.document.save_path = str(user_workbooks_dir() / path.name)
    return wb


def generate(
    wb: Workbook,
    n_new: int,
    *,
    greedy: bool = True,
    stop_at_eot: bool = False,
    on_token: Any = None,
) -> list[int]:
    """Append up to `n_new` tokens to the workbook's `generated` cell and return their ids:
    greedy (`next_token`) or sampled (`sample`: temperature, top-k, top-p, seed). Each step
    computes only the new token's rows. Stops at the context length, or at <|endoftext|>
    with `stop_at_eot`; `on_token(id)` is called after each token.

        wb = cellgpt.open("gpt2", prompt="ROMEO:")
        ids = cellgpt.generate(wb, 20)
        wb["generated"] == ids
    """
    from cellgpt.gpt2.generate import generate as run

    return run(wb, n_new, greedy=greedy, stop_at_eot=stop_at_eot, on_token=on_token)


def batch(workbook: str | os.PathLike[str] = "gpt2", *args: Any, **kwargs: Any) -> Any:
    """Cells of a workbook over many prompts, equal-length prompts computed together: a
    DataFrame, an iterator of shards, or a folder of Parquet/.npy files (see
    cellgpt.batchrun.batch for the options).

        df = cellgpt.batch("gpt2", ["ROMEO:", "JULIET:"], cells=["next_text"])
    """
    from cellgpt.batchrun import batch as run

    return run(workbook, *args, **kwargs)
