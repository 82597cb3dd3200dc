"""A GPT-2 model's shape hyper-parameters (config.json), validated on read."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from cellgpt.weights.errors import ParamsError
from cellgpt.weights.files import CONFIG_CAP, UnsafeFileError, read_json

# Hugging Face spells some fields differently; both spellings are accepted on input.
_ALIASES = {
    "n_positions": "n_ctx",
    "num_hidden_layers": "n_layer",
    "hidden_size": "n_embd",
    "num_attention_heads": "n_head",
    "max_position_embeddings": "n_ctx",
}
_INT_FIELDS = ("n_layer", "n_head", "n_embd", "n_ctx", "vocab_size")
# A config.json may come from a stranger: bound every size before anything is allocated.
# GPT-2 XL (48 layers, 25 heads, 1600 wide, 1024 context, 50257 tokens) fits easily.
MAXIMA = {
    "n_layer": 256,
    "n_head": 1024,
    "n_embd": 32768,
    "n_ctx": 65536,
    "vocab_size": 1 << 20,
}
MAX_PARAMS = 4_000_000_000  # 16 GB of float32 tables


class ConfigError(ParamsError):
    """An invalid or incomplete model configuration."""


@dataclass(frozen=True)
class GPT2Config:
    """Shape hyper-parameters of a GPT-2 model."""

    n_layer: int
    n_head: int
    n_embd: int
    n_ctx: int
    vocab_size: int
    layer_norm_epsilon: float = 1e-5

    def __post_init__(self) -> None:
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"config: {name} must be a positive integer, got {value!r}")
            if value > MAXIMA[name]:
                shown = f"{value:,}" if value < 10**15 else f"{value:.3e}"
                raise ConfigError(f"config: {name} is {shown}; at most {MAXIMA[name]:,}")
        if self.n_embd % self.n_head:
            raise ConfigError(
                f"config: n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})"
            )
        if self.n_params > MAX_PARAMS:
            raise ConfigError(
                f"config: these sizes imply {self.n_params:,} parameters "
                f"({self.n_params * 4 / 1e9:.1f} GB); at most {MAX_PARAMS:,}"
            )
        eps = self.layer_norm_epsilon
        if isinstance(eps, bool) or not isinstance(eps, int | float) or not 0 < eps < 1:
            raise ConfigError(f"config: layer_norm_epsilon must be in (0, 1), got {eps!r}")

    @property
    def n_params(self) -> int:
        """How many numbers the model's tables hold (wte, wpe, the blocks, ln_f)."""
        d = self.n_embd
        per_block = 12 * d * d + 13 * d
        return (self.vocab_size + self.n_ctx) * d + self.n_layer * per_block + 2 * d

    @property
    def d_head(self) -> int:
        """Width of one attention head."""
        return self.n_embd // self.n_head

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GPT2Config:
        """Build from our keys or Hugging Face's (n_positions → n_ctx); unknown keys ignored."""
        values: dict[str, Any] = {}
        for key, value in data.items():
            name = _ALIASES.get(key, key)
            known = name in _INT_FIELDS or name == "layer_norm_epsilon"
            # Our own key wins over an alias (HF files may carry both n_ctx and n_positions).
            if known and (name not in values or key == name):
                values[name] = value
        missing = [name for name in _INT_FIELDS if name not in values]
        if missing:
            raise ConfigError(f"config: missing {', '.join(missing)}")
        for name in _INT_FIELDS:  # JSON may say 768.0; accept integral floats only
            value = values[name]
            if isinstance(value, float) and value.is_integer():
                values[name] = int(value)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Our config.json content (plain JSON types)."""
        return asdict(self)

    @classmethod
    def from_json_file(cls, path: str | os.PathLike[str]) -> GPT2Config:
        """Read a config.json (ours or a Hugging Face one)."""
        if not os.path.lexists(path):
            raise ConfigError(f"{path}: no such file")
        try:
            data = read_json(path, CONFIG_CAP, what="config.json")
        except (ParamsError, UnsafeFileError) as exc:
            raise ConfigError(str(exc)) from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a JSON object")
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def to_json_file(self, path: str | os.PathLike[str]) -> None:
        """Write config.json atomically."""
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        tmp = f"{os.fspath(path)}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
