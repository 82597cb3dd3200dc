"""A random GPT-2 with GPT-2 small's exact shapes for the benchmarks: a Hugging Face folder
(for PyTorch) and the same weights imported to our CSV layout (for cellgpt). Built once
(~30 s) into a scratch folder and reused; random weights run at the same speed as real ones."""

from __future__ import annotations

import tempfile
from pathlib import Path

SMALL = {"vocab_size": 50257, "n_embd": 768, "n_layer": 12, "n_head": 12, "n_positions": 1024}
DEFAULT_DIR = Path(tempfile.gettempdir()) / "cellgpt-bench-gpt2-small"


def ensure_model(folder: Path = DEFAULT_DIR) -> tuple[Path, Path]:
    """(hf_dir, csv_dir), building them if missing."""
    hf_dir, csv_dir = folder / "hf", folder / "csv"
    if not (csv_dir / "config.json").exists() or not (hf_dir / "config.json").exists():
        import torch
        from transformers import GPT2Config, GPT2LMHeadModel

        from cellgpt.weights.importers import import_hf

        print(f"building a random GPT-2-small-shaped model in {folder} (once) ...", flush=True)
        torch.manual_seed(0)
        model = GPT2LMHeadModel(GPT2Config(**SMALL)).eval()
        with torch.no_grad():  # biases and norms off their 0/1 init so every parameter matters
            for name, p in model.named_parameters():
                if name.endswith("bias") or ".ln_" in name or "ln_f" in name:
                    p.add_(torch.randn_like(p) * 0.05)
        model.save_pretrained(hf_dir, safe_serialization=True)
        import_hf(hf_dir, csv_dir)
    from cellgpt.weights.params import load_params

    load_params(csv_dir)  # builds the binary cache on first use
    return hf_dir, csv_dir


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB. VmHWM, not ru_maxrss: the latter
    survives exec, so a child started from a big parent would report the parent's size."""
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")
