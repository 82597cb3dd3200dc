"""The bundled default model (weights_csv/gpt2-mini): its files load and validate, the cell
graph's forward equals a plain numpy forward of the same weights, it beats a unigram model on
held-out text, and the README's first command works on it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import cellgpt
from cellgpt.gpt2.reference import reference_forward
from cellgpt.tokenizer.bpe import Tokenizer
from cellgpt.weights.params import load_params

ROOT = Path(__file__).resolve().parents[2]
MINI = ROOT / "weights_csv" / "gpt2-mini"
VAL = ROOT / "data" / "corpus" / "shakespeare_val.txt"
TRAIN = ROOT / "data" / "corpus" / "shakespeare_train.txt"


@pytest.fixture(scope="module")
def params():
    return load_params(MINI)


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.from_dir(MINI)


def test_bundled_files_load_and_validate(params, tokenizer):
    cfg = params.config
    assert (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.n_ctx, cfg.vocab_size) == (
        12,
        4,
        64,
        128,
        2048,
    )
    assert tokenizer.vocab_size == cfg.vocab_size
    assert tokenizer.special_tokens == {"<|endoftext|>": 2047}
    csv_bytes = sum(p.stat().st_size for p in MINI.glob("*.csv"))
    assert len(list(MINI.glob("*.csv"))) == 4 + 12 * 12
    assert csv_bytes <= 10 * 1024 * 1024
    assert params.n_params == 739_200
    for name, tensor in params.tensors.items():
        assert tensor.dtype == np.float32 and np.isfinite(tensor).all(), name


def test_engine_forward_equals_plain_numpy_forward(params, tokenizer):
    text = VAL.read_text(encoding="utf-8")[:2000]
    ids = tokenizer.encode(text, allowed_special="all")[: params.config.n_ctx]
    wb = cellgpt.open(ROOT / "workbooks" / "gpt2.py", model=str(MINI), prompt="x")
    wb.pin("prompt_ids", ids)
    want = reference_forward(params, ids, return_stages=True)
    for stage in ("embed", "h0.attn.pattern", "h5.resid_mid", "h11.resid_post", "ln_f"):
        # Same float32 maths, different summation order: agreement to float32 rounding.
        np.testing.assert_allclose(wb[stage], want[stage], atol=1e-4, rtol=1e-5, err_msg=stage)
    np.testing.assert_allclose(wb["logits"], want["logits_all"][-1], atol=1e-4, rtol=0)
    assert wb["next_token"] == int(np.argmax(want["logits_all"][-1]))


def _cross_entropy(logits: np.ndarray, targets: np.ndarray) -> float:
    logits = logits.astype(np.float64)
    top = logits.max(axis=-1, keepdims=True)
    logz = np.log(np.exp(logits - top).sum(axis=-1)) + top[:, 0]
    return float(np.mean(logz - logits[np.arange(len(targets)), targets]))


def test_model_beats_a_unigram_model_on_held_out_text(params, tokenizer):
    train_ids = tokenizer.encode(TRAIN.read_text(encoding="utf-8")[:1_000_000], "all")
    counts = Counter(train_ids)
    total = sum(counts.values()) + params.config.vocab_size  # add-one smoothing
    val_ids = np.array(tokenizer.encode(VAL.read_text(encoding="utf-8")[:60_000], "all"))
    n = params.config.n_ctx
    losses, unigram = [], []
    for start in range(0, len(val_ids) - n - 1, 4 * n)[:8]:
        window = val_ids[start : start + n + 1]
        losses.append(_cross_entropy(reference_forward(params, window[:-1]), window[1:]))
        unigram.append(-np.mean([np.log((counts[t] + 1) / total) for t in window[1:]]))
    assert len(losses) == 8
    # Held-out loss is ≈3.8 nats/token (TRAINING.md); a unigram model scores ≈5.5.
    assert np.mean(losses) < np.mean(unigram) - 1.0, (np.mean(losses), np.mean(unigram))


def test_readme_main_command_runs_on_the_bundled_model():
    readme = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    commands = [line for line in readme[:8] if line.startswith("pip install")]
    assert commands[0] == 'pip install -e . && cellgpt run "ROMEO:"'

    out = subprocess.run(
        [sys.executable, "-m", "cellgpt", "run", "ROMEO:", "--json", "--generate", "8"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    result = json.loads(out.stdout)
    assert result["tokens"] == ["ROM", "E", "O", ":"]
    probs = [row["prob"] for row in result["top_k"]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-6
    assert len(result["generated_ids"]) == 8
    assert result["generated_text"]
