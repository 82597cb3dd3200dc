"""Train the bundled default model `weights_csv/gpt2-mini/`: a 12-block GPT-2 on Shakespeare.

Usage (the defaults are the bundled model's settings):
    python scripts/train_mini.py                       # full run, then export to CSV
    python scripts/train_mini.py --steps 20 --out /tmp/mini-smoke   # smoke test

Pipeline: tokenize the corpus with the bundled tokenizer (cached under .cache/train_mini/),
train `transformers.GPT2LMHeadModel` with AdamW on random contiguous windows, save it with
`save_pretrained` (safetensors), and export it through the user-facing importer
(`cellgpt.weights.importers.import_hf`) so the bundle is produced exactly as a user's import
would be. Only config.json and the *.csv files are written to --out; the tokenizer files
already there are left untouched. Needs the `train` extra (torch, transformers, safetensors).
Run `scripts/eval_mini.py` afterwards for the held-out evaluation.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import platform
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import transformers

from cellgpt.gpt2.reference import reference_forward
from cellgpt.tokenizer.bpe import Tokenizer
from cellgpt.weights.importers import import_hf
from cellgpt.weights.params import TOKENIZER_FILES, load_params

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "weights_csv" / "gpt2-mini"
DEFAULT_CORPUS = ROOT / "data" / "corpus"
CACHE = ROOT / ".cache" / "train_mini"
TRAIN_FILE = "shakespeare_train.txt"
VAL_FILE = "shakespeare_val.txt"
EOT = "<|endoftext|>"


# --- data --------------------------------------------------------------------------------


def tokenize_cached(text_path: Path, tok_dir: Path, tok: Tokenizer) -> np.ndarray:
    """Token ids of a corpus file, cached as .npy keyed by the text and tokenizer bytes
    (re-tokenizing costs seconds; the key keeps a retrained tokenizer from reusing ids)."""
    digest = hashlib.sha256(text_path.read_bytes())
    for name in TOKENIZER_FILES:
        if (tok_dir / name).is_file():
            digest.update((tok_dir / name).read_bytes())
    cached = CACHE / f"{text_path.stem}-{digest.hexdigest()[:16]}.npy"
    if cached.is_file():
        return np.load(cached)
    ids = tok.encode(text_path.read_text(encoding="utf-8"), allowed_special="all")
    array = np.asarray(ids, dtype=np.int64)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(cached, array)
    return array


def batch(data: np.ndarray, starts: np.ndarray, n_ctx: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-token targets for windows of n_ctx+1 tokens at `starts`."""
    idx = starts[:, None] + np.arange(n_ctx + 1)[None, :]
    windows = torch.from_numpy(data[idx])
    return windows[:, :-1], windows[:, 1:]


# --- model and optimiser -----------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    n_layer: int
    n_head: int
    n_embd: int
    n_ctx: int
    batch: int
    steps: int
    lr: float
    min_lr: float
    warmup: int
    weight_decay: float
    seed: int


def build_model(vocab_size: int, eot_id: int, s: Settings) -> transformers.GPT2LMHeadModel:
    config = transformers.GPT2Config(
        vocab_size=vocab_size,
        n_positions=s.n_ctx,
        n_embd=s.n_embd,
        n_layer=s.n_layer,
        n_head=s.n_head,
        activation_function="gelu_new",  # the tanh GELU cellgpt's formulas use
        layer_norm_epsilon=1e-5,
        resid_pdrop=0.0,  # dropout is pointless at this size/step budget
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        tie_word_embeddings=True,  # cellgpt's head is tied to wte
        bos_token_id=eot_id,
        eos_token_id=eot_id,
    )
    return transformers.GPT2LMHeadModel(config)


def make_optimizer(model: torch.nn.Module, s: Settings) -> torch.optim.AdamW:
    # Decay matrices (embeddings and projections) only; biases and layer-norm gains stay free.
    # named_parameters() lists the tied wte/lm_head tensor once.
    decay = [p for _, p in model.named_parameters() if p.dim() >= 2]
    free = [p for _, p in model.named_parameters() if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": s.weight_decay},
        {"params": free, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=s.lr, betas=(0.9, 0.95), eps=1e-8)


def lr_at(step: int, s: Settings) -> float:
    """Linear warm-up, then cosine decay from lr to min_lr at the last step."""
    if step < s.warmup:
        return s.lr * (step + 1) / s.warmup
    progress = (step - s.warmup) / max(1, s.steps - s.warmup)
    return s.min_lr + 0.5 * (s.lr - s.min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))


def loss_of(model: transformers.GPT2LMHeadModel, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits = model(input_ids=x).logits
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))


@torch.no_grad()
def estimate(
    model: transformers.GPT2LMHeadModel, data: np.ndarray, starts: np.ndarray, s: Settings
) -> float:
    """Mean loss over fixed windows (the same ones every time, so curves are comparable)."""
    model.eval()
    losses = []
    for chunk in np.array_split(starts, max(1, len(starts) // s.batch)):
        x, y = batch(data, chunk, s.n_ctx)
        losses.append(loss_of(model, x, y).item() * len(chunk))
    model.train()
    return sum(losses) / len(starts)


# --- export ------------------------------------------------------------------------------


def export(model: transformers.GPT2LMHeadModel, hf_dir: Path, tok_dir: Path, out: Path) -> None:
    """save_pretrained → import_hf → copy config.json + *.csv into `out`.

    import_hf also writes tokenizer files; importing into a scratch folder and copying only
    the tables keeps the trained tokenizer in `out` byte-for-byte untouched."""
    if hf_dir.exists():
        shutil.rmtree(hf_dir)
    model.save_pretrained(hf_dir, safe_serialization=True)
    for name in TOKENIZER_FILES:  # so import_hf finds our tokenizer, not GPT-2's
        if (tok_dir / name).is_file():
            shutil.copyfile(tok_dir / name, hf_dir / name)
    with tempfile.TemporaryDirectory(prefix="train-mini-export-") as scratch:
        staged = import_hf(hf_dir, Path(scratch) / "bundle")
        out.mkdir(parents=True, exist_ok=True)
        new_tables = {p.name for p in staged.glob("*.csv")}
        for old in out.glob("*.csv"):  # tables of an earlier, differently shaped export
            if old.name not in new_tables:
                old.unlink()
        (out / "config.json").unlink(missing_ok=True)  # incomplete until config returns
        for path in sorted(staged.glob("*.csv")):
            shutil.copyfile(path, out / path.name)
        shutil.copyfile(staged / "config.json", out / "config.json")  # last, as save_params


def check_export(model: transformers.GPT2LMHeadModel, out: Path, data: np.ndarray) -> float:
    """Max |Δ| between torch logits and the numpy reference forward on the exported CSVs."""
    params = load_params(out)
    ids = data[: params.config.n_ctx]
    ours = np.asarray(reference_forward(params, ids))
    model.eval()
    with torch.no_grad():
        theirs = model(input_ids=torch.from_numpy(ids)[None]).logits[0].numpy()
    return float(np.abs(ours - theirs).max())


def csv_bytes(out: Path) -> int:
    return sum(p.stat().st_size for p in out.glob("*.csv"))


# --- report ------------------------------------------------------------------------------


def write_training_md(
    out: Path,
    s: Settings,
    *,
    vocab_size: int,
    n_params: int,
    train_tokens: int,
    val_tokens: int,
    wall: float,
    final_train: float,
    final_val: float,
    max_diff: float,
    curve: list[tuple[int, float, float]],
    command: str,
) -> None:
    """TRAINING.md; keeps an existing evaluation section (written by eval_mini.py)."""
    path = out / "TRAINING.md"
    eval_section = ""
    if path.is_file():
        old = path.read_text(encoding="utf-8")
        if "<!-- eval:begin -->" in old:
            eval_section = old[old.index("<!-- eval:begin -->") :]
    tokens_seen = s.steps * s.batch * s.n_ctx
    rows = "\n".join(f"| {st} | {tr:.4f} | {va:.4f} |" for st, tr, va in curve)
    text = f"""# gpt2-mini: how the bundled default model was trained

A GPT-2-architecture model with {s.n_layer} blocks (like GPT-2 small, so every screen of the
workbook has the same structure) but a narrow residual stream, trained from scratch by
`scripts/train_mini.py` on public-domain Shakespeare (and Milton) text.

## Data

- Corpus: `data/corpus/{TRAIN_FILE}` (training) and `data/corpus/{VAL_FILE}` (held out);
  documents separated by `{EOT}`; provenance and cleaning in `data/corpus/SOURCES.md`.
- Tokenizer: the byte-level BPE in this folder (`encoder.json`, `vocab.bpe`,
  `tokenizer_config.json`; GPT-2 split pattern, {vocab_size} tokens incl. `{EOT}`),
  applied with special tokens allowed.
- Tokens: {train_tokens:,} training, {val_tokens:,} validation.

## Model

| field | value |
|---|---|
| n_layer | {s.n_layer} |
| n_head | {s.n_head} (d_head {s.n_embd // s.n_head}) |
| n_embd | {s.n_embd} (MLP {4 * s.n_embd}) |
| n_ctx (n_positions) | {s.n_ctx} |
| vocab_size | {vocab_size} |
| activation | gelu_new (tanh GELU) |
| layer_norm_epsilon | 1e-5 |
| output head | tied to wte |
| dropout | 0 |
| parameters | {n_params:,} |
| CSV size | {csv_bytes(out):,} bytes (all `*.csv`) |

## Optimisation

- `transformers.GPT2LMHeadModel` (transformers {transformers.__version__}, torch
  {torch.__version__}, CPU, {torch.get_num_threads()} threads), default GPT-2 initialisation.
- AdamW, betas (0.9, 0.95), weight decay {s.weight_decay} on matrices only (embeddings and
  projections; not biases or layer-norm parameters), gradient clipping at norm 1.0.
- Learning rate: linear warm-up over {s.warmup} steps to {s.lr:g}, cosine decay to
  {s.min_lr:g} at step {s.steps}.
- {s.steps:,} steps × batch {s.batch} windows × {s.n_ctx} tokens
  = {tokens_seen:,} tokens (≈ {tokens_seen / max(1, train_tokens):.1f} passes over the
  training split); windows are random contiguous slices of the token stream.
- Seed {s.seed} (torch and numpy); the run stops by step count, so it is reproducible up to
  floating-point non-determinism of the CPU kernels.
- Wall time: {wall / 60:.1f} min of training on {platform.machine()} ({platform.system()}).

## Result

Final loss (nats/token, mean over 64 fixed random windows per split, torch):
train {final_train:.4f}, validation {final_val:.4f}.

| step | train | val |
|---|---|---|
{rows}

Export: `save_pretrained` (safetensors) → `cellgpt.weights.importers.import_hf` → config.json
and the CSV tables here. The numpy reference forward on the CSVs matches the torch logits to
max |Δ| = {max_diff:.2e}.

Command:

```
{command}
```

"""
    path.write_text(text + eval_section, encoding="utf-8")


# --- main --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="bundle folder to write")
    p.add_argument(
        "--tokenizer", type=Path, default=DEFAULT_OUT, help="folder with the trained tokenizer"
    )
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="folder of the corpus")
    p.add_argument("--n-layer", type=int, default=12)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--n-embd", type=int, default=64)
    p.add_argument("--n-ctx", type=int, default=128, help="n_positions (window length)")
    p.add_argument("--batch", type=int, default=16, help="windows per step")
    p.add_argument("--steps", type=int, default=7000, help="optimizer steps (sets the schedule)")
    p.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="safety cap on training wall time (stops early; breaks reproducibility)",
    )
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--min-lr", type=float, default=3e-4)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--max-csv-mb", type=float, default=10.0, help="size limit for the bundle")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    s = Settings(
        n_layer=args.n_layer,
        n_head=args.n_head,
        n_embd=args.n_embd,
        n_ctx=args.n_ctx,
        batch=args.batch,
        steps=args.steps,
        lr=args.lr,
        min_lr=args.min_lr,
        warmup=min(args.warmup, max(1, args.steps // 10)),
        weight_decay=args.weight_decay,
        seed=args.seed,
    )

    tok = Tokenizer.from_dir(args.tokenizer)
    eot_id = tok.encode(EOT, allowed_special="all")[0]
    train = tokenize_cached(args.corpus / TRAIN_FILE, args.tokenizer, tok)
    val = tokenize_cached(args.corpus / VAL_FILE, args.tokenizer, tok)
    print(f"tokens: train {len(train):,}  val {len(val):,}  vocab {tok.vocab_size}", flush=True)

    model = build_model(tok.vocab_size, eot_id, s)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {s}  params {n_params:,}", flush=True)
    opt = make_optimizer(model, s)
    # Fixed evaluation windows, drawn from a separate stream so they do not shift the
    # training batches when eval settings change.
    eval_rng = np.random.default_rng(args.seed + 1)
    train_eval = eval_rng.integers(0, len(train) - s.n_ctx - 1, size=64)
    val_eval = eval_rng.integers(0, len(val) - s.n_ctx - 1, size=64)

    curve: list[tuple[int, float, float]] = []
    start = time.perf_counter()
    step = 0
    for step in range(s.steps):
        if args.minutes is not None and time.perf_counter() - start > args.minutes * 60:
            print(f"wall-clock cap reached at step {step}", flush=True)
            break
        lr = lr_at(step, s)
        for group in opt.param_groups:
            group["lr"] = lr
        x, y = batch(train, rng.integers(0, len(train) - s.n_ctx - 1, size=s.batch), s.n_ctx)
        loss = loss_of(model, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 25 == 0:
            rate = (step + 1) / (time.perf_counter() - start)
            print(
                f"step {step:5d}  loss {loss.item():.4f}  lr {lr:.2e}  {rate:.2f} it/s", flush=True
            )
        if step > 0 and step % args.eval_every == 0:
            tr, va = estimate(model, train, train_eval, s), estimate(model, val, val_eval, s)
            curve.append((step, tr, va))
            print(f"eval step {step}: train {tr:.4f}  val {va:.4f}", flush=True)
    else:
        step = s.steps
    wall = time.perf_counter() - start
    final_train, final_val = (
        estimate(model, train, train_eval, s),
        estimate(model, val, val_eval, s),
    )
    curve.append((step, final_train, final_val))
    print(
        f"done: {step} steps in {wall / 60:.1f} min; train {final_train:.4f}  val {final_val:.4f}"
    )

    if step != s.steps:  # record what actually ran, so TRAINING.md does not overstate it
        s = Settings(**{**s.__dict__, "steps": step})
    export(model, CACHE / f"hf-{args.out.name}", args.tokenizer, args.out)
    size = csv_bytes(args.out)
    max_diff = check_export(model, args.out, val)
    print(
        f"exported to {args.out}: {size:,} bytes of CSV; reference forward max |Δ| {max_diff:.2e}"
    )
    command = shlex.join(["python", "scripts/train_mini.py", *(argv or sys.argv[1:])])
    write_training_md(
        args.out,
        s,
        vocab_size=tok.vocab_size,
        n_params=n_params,
        train_tokens=len(train),
        val_tokens=len(val),
        wall=wall,
        final_train=final_train,
        final_val=final_val,
        max_diff=max_diff,
        curve=curve,
        command=command,
    )
    if size > args.max_csv_mb * 1e6:
        print(f"WARNING: CSVs total {size:,} bytes > {args.max_csv_mb} MB", file=sys.stderr)
        return 1
    if max_diff > 1e-3:
        print(f"WARNING: export differs from torch by {max_diff:.2e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
