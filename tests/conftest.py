"""Shared fixtures. Hugging Face fixtures are prefixed `hf_`, parameter folders `params_`."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Hermetic: the user's own models, workbooks and caches never leak into a test, and tests
# never write into the user's folders. Set before any test (and any subprocess it starts).
os.environ["CELLGPT_HOME"] = _HOME = tempfile.mkdtemp(prefix="cellgpt-test-home-")
_HOME_OWNER = os.getpid()


@atexit.register
def _remove_home() -> None:
    # Its weight caches reach ~0.6 GB a session: left behind, 762 runs had filled 56 GB of
    # /tmp and a test failed for want of disk. Only the process that made it removes it
    # (a forked batch worker exiting must not pull it from under the session).
    if os.getpid() == _HOME_OWNER:
        shutil.rmtree(_HOME, ignore_errors=True)


# MKL's products whatever the machine's load (by default they switch to numpy's under load,
# which changes last bits): tests comparing two runs bit for bit must not depend on the load.
# tests/engine/test_mkl_blas.py covers the default switch.
os.environ.setdefault("CELLGPT_BLAS", "mkl")

# The tiny model every test can afford; the full model has GPT-2 small's exact shapes.
TINY = {"vocab_size": 50257, "n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 128}
SMALL = {"vocab_size": 50257, "n_embd": 768, "n_layer": 12, "n_head": 12, "n_positions": 1024}


@dataclass
class HFCheckpoint:
    """A randomly initialised GPT2LMHeadModel and the folder it was saved to."""

    model: Any  # transformers.GPT2LMHeadModel, in eval mode
    path: Path


def _build_hf(config: dict[str, int], folder: Path, seed: int = 0) -> HFCheckpoint:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    # Eager attention: the fused kernels return no attention patterns to compare against.
    model = GPT2LMHeadModel(GPT2Config(**config, attn_implementation="eager")).eval()
    # Random init leaves biases and layer norms at 0/1: perturb them so every parameter matters.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or ".ln_" in name or "ln_f" in name:
                p.add_(torch.randn_like(p) * 0.05)
    model.save_pretrained(folder, safe_serialization=True)
    return HFCheckpoint(model=model, path=folder)


@pytest.fixture(scope="session")
def hf_tiny(tmp_path_factory: pytest.TempPathFactory) -> HFCheckpoint:
    """Tiny random GPT-2 (vocab 50257, n_embd 64, 2 layers, 4 heads, n_ctx 128, seed 0)."""
    return _build_hf(TINY, tmp_path_factory.mktemp("hf_tiny"))


@pytest.fixture(scope="session")
def params_tiny_dir(hf_tiny: HFCheckpoint, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`hf_tiny` imported into our CSV layout (read-only use, please: it is shared)."""
    from cellgpt.weights.importers import import_hf

    return import_hf(hf_tiny.path, tmp_path_factory.mktemp("params_tiny") / "tiny")


@pytest.fixture(scope="session")
def params_tiny(params_tiny_dir: Path) -> Any:
    """`Params` loaded from `params_tiny_dir`."""
    from cellgpt.weights.params import load_params

    return load_params(params_tiny_dir)


@pytest.fixture(scope="session")
def hf_small(tmp_path_factory: pytest.TempPathFactory) -> HFCheckpoint:
    """Random GPT-2 with GPT-2 small's shapes (124M parameters; built once per session)."""
    return _build_hf(SMALL, tmp_path_factory.mktemp("hf_small"))


@pytest.fixture(scope="session")
def params_small_dir(hf_small: HFCheckpoint, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`hf_small` imported into our CSV layout."""
    from cellgpt.weights.importers import import_hf

    return import_hf(hf_small.path, tmp_path_factory.mktemp("params_small") / "small")


@pytest.fixture(scope="session")
def params_small(params_small_dir: Path) -> Any:
    """`Params` loaded (from the binary cache) from `params_small_dir`."""
    from cellgpt.weights.params import load_params

    return load_params(params_small_dir)
