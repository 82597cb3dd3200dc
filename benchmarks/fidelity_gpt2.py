"""How exactly the cell graph matches Hugging Face's GPT2LMHeadModel at GPT-2-small shapes:
max |Δ| per stage over all blocks, for several prompt lengths.

    python benchmarks/fidelity_gpt2.py [--tokens 7,1024]

Random weights (biases and layer norms perturbed so every parameter matters), saved with
save_pretrained and imported with the user-facing importer, built once in a temp folder.
HF runs with eager attention so that it returns its attention patterns.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from transformers import GPT2Config, GPT2LMHeadModel

import cellgpt
from cellgpt.weights.importers import import_hf

ROOT = Path(__file__).resolve().parent.parent
TEXT = "The quick brown fox jumps over the lazy dog. ROMEO: But soft, what light breaks? " * 60


def build(folder: Path) -> GPT2LMHeadModel:
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(attn_implementation="eager")).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or ".ln_" in name or "ln_f" in name:
                p.add_(torch.randn_like(p) * 0.05)
    model.save_pretrained(folder / "hf")
    import_hf(folder / "hf", folder / "csv")
    return model


def stage_deltas(wb: cellgpt.engine.Workbook, model: GPT2LMHeadModel) -> dict[str, float]:
    ids = list(wb["prompt_ids"])
    with torch.no_grad():
        out = model(torch.tensor([ids]), output_hidden_states=True, output_attentions=True)
    n = model.config.n_layer

    def worst(cell: str, ref: list[np.ndarray]) -> float:
        return max(float(np.abs(wb[cell.format(i=i)] - ref[i][0].numpy()).max()) for i in range(n))

    return {
        "h{i}.resid_pre (hidden states)": worst("h{i}.resid_pre", list(out.hidden_states)),
        "h{i}.attn.pattern (attentions)": worst("h{i}.attn.pattern", list(out.attentions)),
        "ln_f": float(np.abs(wb["ln_f"] - out.hidden_states[n][0].numpy()).max()),
        "logits_all": float(np.abs(wb["logits_all"] - out.logits[0].numpy()).max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", default="7,1024")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = build(Path(tmp))
        wb = cellgpt.open(ROOT / "workbooks" / "gpt2.py", model=str(Path(tmp) / "csv"))
        all_ids = wb["tokenizer"].encode(TEXT)
        for n in (int(t) for t in args.tokens.split(",")):
            wb.pin("prompt_ids", all_ids[:n])
            print(f"{n} tokens, max |Δ| over all 12 blocks:")
            for stage, delta in stage_deltas(wb, model).items():
                print(f"  {stage:32s} {delta:.2e}")


if __name__ == "__main__":
    main()
