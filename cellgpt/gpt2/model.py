"""GPT-2 configuration and a plain numpy reference forward pass.

The reference forward is deliberately straightforward float32 numpy: it is the yardstick
the cell graph is benchmarked and cross-checked against, so it favours obviously-correct
over clever. Math (DESIGN §4): layer norm with population variance and eps from the
config, GELU in its tanh form, attention scaled by 1/sqrt(d_head) with a causal mask, and
a tied output head (logits = ln_f · wteᵀ). Weights use Conv1D orientation: x @ W + b.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from cellgpt.gpt2.params_error import ParamsError

if TYPE_CHECKING:
    from cellgpt.gpt2.params import Params

# Hugging Face spells some fields differently; both spellings are accepted on input.
_ALIASES = {
    "n_positions": "n_ctx",
    "num_hidden_layers": "n_layer",
    "hidden_size": "n_embd",
    "num_attention_heads": "n_head",
    "max_position_embeddings": "n_ctx",
}
_INT_FIELDS = ("n_layer", "n_head", "n_embd", "n_ctx", "vocab_size")


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
        if self.n_embd % self.n_head:
            raise ConfigError(
                f"config: n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})"
            )
        eps = self.layer_norm_epsilon
        if isinstance(eps, bool) or not isinstance(eps, int | float) or not 0 < eps < 1:
            raise ConfigError(f"config: layer_norm_epsilon must be in (0, 1), got {eps!r}")

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
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such file") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc})") from None
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


# --- reference forward -------------------------------------------------------------------


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    """Normalise each row to zero mean and unit (population) variance, then scale/shift."""
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + np.float32(eps)) * weight + bias


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU, tanh approximation (Hugging Face `gelu_new`)."""
    c = np.float32(math.sqrt(2.0 / math.pi))
    cube = x * x * x  # not x**3: powf takes a slow path for negative bases
    return np.float32(0.5) * x * (1 + np.tanh(c * (x + np.float32(0.044715) * cube)))


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (max-subtracted for stability)."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def reference_forward(
    params: Params, token_ids: Any, *, return_stages: bool = False
) -> np.ndarray | dict[str, np.ndarray]:
    """GPT-2 forward pass for one sequence of token ids.

    Returns logits [T, vocab] for every position, or with `return_stages` a dict of the
    intermediate arrays named like the workbook's cells: `embed`, `h{i}.resid_pre`,
    `h{i}.ln_1`, `h{i}.attn.pattern`, `h{i}.attn.z`, `h{i}.attn.out`, `h{i}.resid_mid`,
    `h{i}.ln_2`, `h{i}.mlp.gelu`, `h{i}.mlp.out`, `h{i}.resid_post`, `ln_f`, `logits_all`.
    """
    cfg = params.config
    ids = np.asarray(token_ids, dtype=np.int64).reshape(-1)
    t = ids.size
    if t == 0 or t > cfg.n_ctx:
        raise ValueError(f"need 1..{cfg.n_ctx} tokens, got {t}")
    if ids.min() < 0 or ids.max() >= cfg.vocab_size:
        raise ValueError(f"token ids must lie in [0, {cfg.vocab_size})")
    eps = cfg.layer_norm_epsilon
    stages: dict[str, np.ndarray] = {}

    x = params["wte.weight"][ids] + params["wpe.weight"][:t]
    stages["embed"] = x
    causal = np.triu(np.ones((t, t), dtype=bool), k=1)  # True above the diagonal = future
    scale = np.float32(1.0 / math.sqrt(cfg.d_head))
    for i in range(cfg.n_layer):
        p = f"h{i}."

        def w(name: str, i: int = i) -> np.ndarray:
            return params.layer(i, name)

        stages[p + "resid_pre"] = x
        h = layer_norm(x, w("ln_1.weight"), w("ln_1.bias"), eps)
        stages[p + "ln_1"] = h
        qkv = h @ w("attn.c_attn.weight") + w("attn.c_attn.bias")
        q, k, v = np.split(qkv, 3, axis=-1)
        # [T, n_embd] → [n_head, T, d_head]; contiguous so matmul can hand it to BLAS
        q, k, v = (
            np.ascontiguousarray(m.reshape(t, cfg.n_head, cfg.d_head).transpose(1, 0, 2))
            for m in (q, k, v)
        )
        scores = (q @ k.transpose(0, 2, 1)) * scale
        scores = np.where(causal, np.float32(-np.inf), scores)
        pattern = softmax(scores)
        z = (pattern @ v).transpose(1, 0, 2).reshape(t, cfg.n_embd)
        attn_out = z @ w("attn.c_proj.weight") + w("attn.c_proj.bias")
        x = x + attn_out
        stages[p + "attn.pattern"] = pattern
        stages[p + "attn.z"] = z
        stages[p + "attn.out"] = attn_out
        stages[p + "resid_mid"] = x
        h = layer_norm(x, w("ln_2.weight"), w("ln_2.bias"), eps)
        stages[p + "ln_2"] = h
        act = gelu(h @ w("mlp.c_fc.weight") + w("mlp.c_fc.bias"))
        mlp_out = act @ w("mlp.c_proj.weight") + w("mlp.c_proj.bias")
        x = x + mlp_out
        stages[p + "mlp.gelu"] = act
        stages[p + "mlp.out"] = mlp_out
        stages[p + "resid_post"] = x

    final = layer_norm(x, params["ln_f.weight"], params["ln_f.bias"], eps)
    logits = final @ params["wte.weight"].T
    if not return_stages:
        return logits
    stages["ln_f"] = final
    stages["logits_all"] = logits
    return stages
