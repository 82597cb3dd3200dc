"""One worker's side of a batch run: tokenize prompts, and compute a shard of equal-length
prompts through the workbook with a leading prompt axis (see plan.py).

A worker holds two copies of the workbook: `single`, an ordinary one-prompt workbook that
tokenizes and computes the tail cells (a prompt at a time, its batched inputs pinned), and
`batched`, whose `token_ids` is pinned to the shard's [prompts, tokens] matrix. The model's
weights are loaded once per process (the weights cache is shared by both).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cellgpt.batchrun.plan import Plan, make_plan
from cellgpt.engine.errors import CellError
from cellgpt.gpt2.cells import CONFIG, MODEL, N_TOKENS, PROMPT, PROMPT_IDS, TOKEN_IDS, TOKENIZER

REDUCES = ("mean", "perplexity")
LOSS_CELLS = ("ln_f", "wte")  # perplexity: the final vectors and the (tied) output head


@dataclass(frozen=True)
class Setup:
    """What every worker needs to build its workbooks (picklable)."""

    workbook: str  # a resolved workbook file
    inputs: tuple[tuple[str, Any], ...]  # fixed inputs, e.g. (("model", "gpt2-mini"),)
    cells: tuple[str, ...]
    reduce: str | None = None
    truncate: int | None = None  # keep the first N tokens of each prompt


@dataclass
class Shard:
    """Prompts of one token length (and the same values of the per-row inputs that batched
    cells read), computed together. `rows`: each prompt's per-row inputs."""

    index: int
    prompt_ids: list[int]
    texts: list[str]
    token_ids: list[list[int]]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def row(self, i: int) -> dict[str, Any]:
        return self.rows[i] if self.rows else {}


@dataclass
class ShardResult:
    index: int
    prompt_ids: list[int]
    token_ids: list[list[int]]
    tokens: list[list[str]]
    values: dict[str, list[Any]]  # cell → one value per prompt (None where it failed)
    errors: dict[int, str]
    sums: dict[str, tuple[np.ndarray, int]] = field(default_factory=dict)  # --reduce mean
    losses: list[np.ndarray] | None = None  # --reduce perplexity: one row per prompt
    columns: dict[str, list[str]] = field(default_factory=dict)  # a table cell's column names


def _open(setup: Setup, batched: bool) -> Any:
    """The workbook as cellgpt.open loads it (the same library, a model folder granted)."""
    from cellgpt.engine import core, load_workbook
    from cellgpt.gpt2.batched import register_batched
    from cellgpt.gpt2.embeddings import register as register_embeddings
    from cellgpt.gpt2.functions import register as register_gpt2
    from cellgpt.locations import grant_user_model
    from cellgpt.tokenizer.functions import register as register_tokenizer

    library = register_tokenizer(register_embeddings(register_gpt2(core.copy())))
    if batched:
        register_batched(library)
    inputs = dict(setup.inputs)
    if MODEL in inputs:
        inputs[MODEL] = grant_user_model(inputs[MODEL])
    return load_workbook(setup.workbook, library, inputs)


class Evaluator:
    """A worker's two workbooks and the plan that splits the cells between them."""

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.single = _open(setup, batched=False)
        self.batched = _open(setup, batched=True)
        self.cells = [self.single.resolve(c) for c in setup.cells]
        need = set(self.cells) | (set(LOSS_CELLS) if setup.reduce == "perplexity" else set())
        self.plan: Plan = make_plan(self.batched, need)
        for name, formula in self.plan.rewrites.items():
            self.batched.set_formula(name, formula)
        self.n_ctx = self._n_ctx()
        self.read_by_batch: set[str] = set()
        for name in self.plan.batched:
            self.read_by_batch |= self.batched.ancestors(name)

    def batch_inputs(self, row: dict[str, Any]) -> dict[str, Any]:
        """The per-row inputs that batched cells read: prompts differing in them cannot share
        a batch (the others, e.g. a sampling temperature, are set prompt by prompt)."""
        return {k: v for k, v in row.items() if k in self.read_by_batch}

    def _n_ctx(self) -> int | None:
        try:
            return int(self.single[CONFIG]["n_ctx"])
        except (KeyError, CellError, TypeError):
            return None

    # ------------------------------------------------------------------ tokenizing
    def tokenize(self, text: str, row_inputs: dict[str, Any]) -> list[int]:
        """The prompt's token ids as the workbook reads them; raises ValueError for a prompt
        the model cannot read (empty, longer than the context)."""
        wb = self.single
        self._set_inputs(wb, {PROMPT: text, **row_inputs})
        if self.setup.truncate is not None:
            if wb.cell(PROMPT_IDS).pinned:
                wb.unpin(PROMPT_IDS)
            wb.pin(PROMPT_IDS, list(wb[PROMPT_IDS])[: self.setup.truncate])
        ids = [int(i) for i in wb[TOKEN_IDS]]
        if not ids:
            raise ValueError("the prompt is empty (no tokens)")
        if self.n_ctx is not None and len(ids) > self.n_ctx:
            raise ValueError(f"the prompt has {len(ids)} tokens; the model reads {self.n_ctx}")
        return ids

    @staticmethod
    def _set_inputs(wb: Any, inputs: dict[str, Any]) -> None:
        for name, value in inputs.items():
            if wb.cell(name).is_input:
                wb.set(name, value)
            else:
                raise ValueError(f"{name!r} is not an input cell of the workbook")

    def labels(self, ids: list[int]) -> list[str]:
        wb = self.single
        tok = wb.run(TOKENIZER) if TOKENIZER in wb else None
        return [tok.token_str(i) if tok is not None else str(i) for i in ids]

    def columns(self) -> dict[str, list[str]]:
        """Column names of the table cells, from their `cols` hint (a library constant)."""
        out = {}
        for c in self.cells:
            hint = self.single.cell(c).hints.get("cols")
            names = self.single.library.constants.get(hint) if isinstance(hint, str) else None
            if isinstance(names, list | tuple) and all(isinstance(n, str) for n in names):
                out[c] = list(names)
        return out

    # ------------------------------------------------------------------ shards
    def run(self, shard: Shard) -> ShardResult:
        """Compute every requested cell for the shard's prompts; a failing batch is retried a
        prompt at a time so one bad prompt records its error and the others go on."""
        result = ShardResult(
            shard.index,
            list(shard.prompt_ids),
            [list(t) for t in shard.token_ids],
            [self.labels(t) for t in shard.token_ids],
            {c: [] for c in self.cells},
            {},
            columns=self.columns(),
        )
        try:
            self._run_batch(shard, result, range(len(shard.prompt_ids)))
        except (CellError, ValueError, ArithmeticError) as exc:
            if len(shard.prompt_ids) == 1:
                result.errors[shard.prompt_ids[0]] = str(exc)
                self._blank(result, 1)
            else:
                result.values = {c: [] for c in self.cells}
                result.sums, result.losses = {}, None
                for i in range(len(shard.prompt_ids)):
                    try:
                        self._run_batch(shard, result, range(i, i + 1))
                    except (CellError, ValueError, ArithmeticError) as one:
                        result.errors[shard.prompt_ids[i]] = str(one)
                        self._blank(result, 1)
        return result

    def _blank(self, result: ShardResult, n: int) -> None:
        for c in self.cells:
            result.values[c].extend([None] * n)
        if self.setup.reduce == "perplexity":
            result.losses = (result.losses or []) + [np.full(0, np.nan)] * n

    def _run_batch(self, shard: Shard, result: ShardResult, rows: range) -> None:
        wb, plan = self.batched, self.plan
        ids = np.asarray([shard.token_ids[i] for i in rows], dtype=np.int64)
        self._set_inputs(wb, self.batch_inputs(shard.row(rows[0])))
        wb.pin(TOKEN_IDS, ids)
        wb.pin(N_TOKENS, int(ids.shape[1]))
        wanted = [c for c in self.cells if c in plan.batched] + sorted(plan.frontier)
        batch = {c: wb[c] for c in dict.fromkeys(wanted)}
        for c in batch:
            value = batch[c]
            if not (isinstance(value, np.ndarray) and value.shape[:1] == (len(rows),)):
                raise ValueError(f"cell {c!r} did not keep the batch axis; it cannot be batched")
        per_prompt = self._tail(shard, rows, batch)
        losses = None
        if self.setup.reduce == "perplexity":
            from cellgpt.gpt2.batched import token_losses

            losses = list(token_losses(*(wb[c] for c in LOSS_CELLS), ids))
        # Everything computed: only now added to the result (a failure above adds nothing).
        for c in self.cells:
            values = [batch[c][k] for k in range(len(rows))] if c in batch else per_prompt[c]
            if self.setup.reduce == "mean" and isinstance(values[0], np.ndarray):
                self._accumulate(result, c, values)
            else:
                result.values[c].extend(values)
        if losses is not None:
            result.losses = (result.losses or []) + losses

    def _tail(self, shard: Shard, rows: range, batch: dict[str, Any]) -> dict[str, list[Any]]:
        """The cells not computed batched, one prompt at a time in the single workbook."""
        cells = [c for c in self.cells if c not in batch]
        out: dict[str, list[Any]] = {c: [] for c in cells}
        if not cells:
            return out
        wb = self.single
        for k, i in enumerate(rows):
            self.tokenize(shard.texts[i], shard.row(i))
            for name in self.plan.frontier:
                wb.pin(name, batch[name][k])
            for c in cells:
                out[c].append(wb[c])
        return out

    def _accumulate(self, result: ShardResult, cell: str, values: list[np.ndarray]) -> None:
        # A cell with one row per token is averaged over every token of every prompt (the
        # prompts differ in length); any other over prompts.
        per_token = self.single.cell(cell).hints.get("rows") == "tokens"
        total, count = result.sums.get(cell, (None, 0))
        for v in values:
            v64 = np.asarray(v, dtype=np.float64)
            part, n = (v64.sum(axis=0), v64.shape[0]) if per_token else (v64, 1)
            if total is not None and total.shape != part.shape:
                raise ValueError(f"--reduce mean: {cell!r} has values of different shapes")
            total = part if total is None else total + part
            count += n
        assert total is not None
        result.sums[cell] = (total, count)


# One evaluator per worker process (a local process pool or a Dask worker), built on first use.
# A Dask worker may run two tasks at once on its threads: they take turns on the workbooks.
_EVALUATORS: dict[Setup, Evaluator] = {}
_LOCK = threading.RLock()


def evaluator(setup: Setup) -> Evaluator:
    with _LOCK:
        found = _EVALUATORS.get(setup)
        if found is None:
            _EVALUATORS.clear()  # one run's model per process at a time
            found = _EVALUATORS[setup] = Evaluator(setup)
        return found


def init_worker(setup: Setup, threads: int = 1) -> None:
    """Process-pool initializer: the cores are shared between processes, so each one
    computes on `threads` threads; the model is loaded here, once."""
    from cellgpt.engine import parallel

    os.environ["CELLGPT_THREADS"] = str(threads)
    parallel.WORKERS = threads
    evaluator(setup)


def run_shard(setup: Setup, shard: Shard) -> ShardResult:
    """The task a pool or a Dask worker runs."""
    with _LOCK:
        return evaluator(setup).run(shard)
