"""The GPT-2 workbook's well-known cells, named once.

The CLI, the TUI, the export and generation read a few cells by their role (the prompt,
the tokenizer, the top-k table, ...). They name them here instead of repeating strings, and
read them through `WorkbookCells`, which answers None when a workbook (e.g. the tokenizer
workbench or an example) does not have that cell.
"""

from __future__ import annotations

from typing import Any

PROMPT = "prompt"  # the text input
PROMPT_IDS = "prompt_ids"  # the prompt's token ids (pinned by --truncate left)
TOKENS = "tokens"  # token strings, the row labels of most matrices
TOKEN_IDS = "token_ids"  # ids the model reads (prompt + generated)
N_TOKENS = "n_tokens"  # how many tokens the model reads
TOKENIZER = "tokenizer"  # the Tokenizer object
CONFIG = "config"  # the model's shape: n_layer, n_head, n_embd, n_ctx, vocab_size
MODEL = "model"  # the model's name or folder (an input)
EMBED = "embed"  # token + position embeddings: the first block's input
LOGITS = "logits"  # next-token logits (last position)
PROBS = "probs"  # their softmax: the next token's probabilities
VOCAB = "vocab"  # the vocabulary table: id, token text, bytes, ...
TOP_K = "top_k"  # [(id, token, prob, logit)] of the most likely next tokens
SHOW_K = "show_k"  # how many rows top_k lists (an input)
NEXT_TOKEN = "next_token"  # greedy choice
NEXT_TEXT = "next_text"  # its text
SAMPLE = "sample"  # sampled choice (temperature, top-k, top-p, seed)
TEMPERATURE = "temperature"  # sampling inputs: 0 is greedy
SAMPLE_TOP_K = "sample_top_k"  # sample among the k most likely (0 = all)
TOP_P = "top_p"  # nucleus threshold
SEED = "seed"
GENERATED = "generated"  # ids appended by generation (an input)

# What the TUI's side panel shows rather than the cell tree's main pane.
PANEL = frozenset({TOP_K, NEXT_TEXT, PROMPT, GENERATED, TOKEN_IDS, MODEL})
# The first cell worth showing, in order of preference.
START = ("h0.attn.pattern", TOKENS, PROMPT)


class WorkbookCells:
    """Read access to a workbook's well-known cells; None where the workbook lacks one."""

    def __init__(self, wb: Any) -> None:
        self.wb = wb

    def has(self, name: str) -> bool:
        return name in self.wb

    def value(self, name: str) -> Any:
        """The cell's current value (no recompute), or None if the workbook lacks it."""
        return self.wb.value(name) if name in self.wb else None

    @property
    def tokenizer(self) -> Any:
        return self.value(TOKENIZER)

    @property
    def prompt(self) -> str:
        return str(self.value(PROMPT) or "")

    def n_ctx(self) -> int | None:
        """The context length (computes the config cell if needed)."""
        if CONFIG not in self.wb:
            return None
        return int(self.wb[CONFIG]["n_ctx"])

    def end_of_text(self) -> int | None:
        """The <|endoftext|> id, if the tokenizer has one."""
        if TOKENIZER not in self.wb:
            return None
        return self.wb[TOKENIZER].special_tokens.get("<|endoftext|>")
