"""Evaluate a CSV weights folder (default: the bundled `weights_csv/gpt2-mini/`).

Usage:
    python scripts/eval_mini.py                               # evaluate + update TRAINING.md
    python scripts/eval_mini.py --weights DIR --no-md --max-windows 50   # quick look

Everything runs on the exported CSV tables through cellgpt's numpy reference forward (no
torch), so the numbers describe exactly what the spreadsheet computes:

- held-out cross-entropy on the validation split in nats/token and bits per UTF-8 byte,
  over non-overlapping windows of n_ctx predictions (window i sees tokens
  [i*n_ctx, (i+1)*n_ctx] and predicts the last n_ctx of them, so every token after the
  first is predicted exactly once);
- n-gram baselines on the same tokens, counted on the training split: add-one unigram,
  add-one bigram, and an interpolated Kneser-Ney bigram;
- greedy and sampled (temperature, top-k, fixed seed) continuations of a few prompts.

With a TRAINING.md in the weights folder, the results replace its evaluation section.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cellgpt.gpt2.reference import reference_forward
from cellgpt.tokenizer.bpe import Tokenizer
from cellgpt.weights.params import Params, load_params

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WEIGHTS = ROOT / "weights_csv" / "gpt2-mini"
DEFAULT_CORPUS = ROOT / "data" / "corpus"
PROMPTS = ("ROMEO:", "KING HENRY:\n", "To be, or not")
BEGIN, END = "<!-- eval:begin -->", "<!-- eval:end -->"
LN2 = math.log(2.0)


@dataclass(frozen=True)
class Score:
    name: str
    nats: float  # total over all predicted tokens
    tokens: int
    text_bytes: int

    @property
    def nats_per_token(self) -> float:
        return self.nats / self.tokens

    @property
    def bits_per_byte(self) -> float:
        return self.nats / LN2 / self.text_bytes


def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)  # float64: sums of ~10^5 log-probs stay exact enough
    x -= x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def windows(n_tokens: int, n_ctx: int) -> list[tuple[int, int]]:
    """(start, stop) token slices; consecutive windows share one token (the context of
    the next window's first prediction)."""
    return [(i, min(i + n_ctx + 1, n_tokens)) for i in range(0, n_tokens - 1, n_ctx)]


def model_score(
    params: Params, ids: np.ndarray, text_bytes: int, max_windows: int | None
) -> tuple[Score, float]:
    spans = windows(len(ids), params.config.n_ctx)[:max_windows]
    total, count = 0.0, 0
    start = time.perf_counter()
    for a, b in spans:
        x, y = ids[a : b - 1], ids[a + 1 : b]
        logp = log_softmax(np.asarray(reference_forward(params, x)))
        total -= float(logp[np.arange(len(y)), y].sum())
        count += len(y)
    elapsed = time.perf_counter() - start
    # A partial run scores a prefix: scale the byte count by the token fraction covered.
    nbytes = text_bytes if count == len(ids) - 1 else round(text_bytes * count / (len(ids) - 1))
    return Score("gpt2-mini (numpy reference forward)", total, count, nbytes), elapsed


def ngram_scores(train: np.ndarray, val: np.ndarray, vocab: int, text_bytes: int) -> list[Score]:
    """Baselines over the same predicted tokens (val[1:] given val[:-1])."""
    prev, nxt = val[:-1], val[1:]
    uni = np.bincount(train, minlength=vocab).astype(np.float64)
    p_uni = (uni + 1) / (uni.sum() + vocab)
    pairs = np.bincount(train[:-1] * vocab + train[1:], minlength=vocab * vocab)
    counts = pairs.reshape(vocab, vocab).astype(np.float64)
    row = counts.sum(axis=1)
    p_add1 = (counts[prev, nxt] + 1) / (row[prev] + vocab)
    # Interpolated Kneser-Ney with one absolute discount: the discounted mass of each
    # history goes to a continuation distribution (in how many contexts a token appears),
    # itself add-one smoothed so unseen tokens keep some probability.
    d = 0.75
    seen = counts > 0
    cont = seen.sum(axis=0).astype(np.float64)
    p_cont = (cont + 1) / (cont.sum() + vocab)
    types = seen.sum(axis=1)
    safe = np.maximum(row, 1)
    p_kn = np.where(
        row[prev] > 0,
        np.maximum(counts[prev, nxt] - d, 0) / safe[prev]
        + d * types[prev] / safe[prev] * p_cont[nxt],
        p_cont[nxt],
    )
    n = len(nxt)
    return [
        Score("unigram, add-one", -float(np.log(p_uni[nxt]).sum()), n, text_bytes),
        Score("bigram, add-one", -float(np.log(p_add1).sum()), n, text_bytes),
        Score(
            f"bigram, interpolated Kneser-Ney (D={d})", -float(np.log(p_kn).sum()), n, text_bytes
        ),
    ]


def generate(
    params: Params,
    tok: Tokenizer,
    prompt: str,
    n_new: int,
    *,
    rng: np.random.Generator | None,
    temperature: float,
    top_k: int,
    stop_id: int,
) -> str:
    """Continue `prompt`: greedy when rng is None, else top-k sampling at a temperature."""
    ids = tok.encode(prompt, allowed_special="all")
    new: list[int] = []
    for _ in range(n_new):
        context = (ids + new)[-params.config.n_ctx :]
        logits = np.asarray(reference_forward(params, context))[-1].astype(np.float64)
        if rng is None:
            nxt = int(np.argmax(logits))
        else:
            top = np.argpartition(logits, -top_k)[-top_k:]
            z = logits[top] / temperature
            p = np.exp(z - z.max())
            nxt = int(rng.choice(top, p=p / p.sum()))
        if nxt == stop_id:
            break
        new.append(nxt)
    return prompt + tok.decode(new)


def markdown(
    scores: list[Score],
    samples: list[tuple[str, str]],
    args: argparse.Namespace,
    command: str,
    elapsed: float,
) -> str:
    rows = "\n".join(
        f"| {s.name} | {s.nats_per_token:.4f} | {s.bits_per_byte:.4f} |" for s in scores
    )
    blocks = "\n\n".join(f"{label}:\n\n```text\n{text}\n```" for label, text in samples)
    ref = scores[0]
    return f"""{BEGIN}
## Evaluation

Held-out cross-entropy on `data/corpus/shakespeare_val.txt` ({ref.tokens:,} predicted
tokens, {ref.text_bytes:,} UTF-8 bytes), computed from the exported CSV tables with cellgpt's
numpy reference forward over non-overlapping windows of n_ctx predictions
({elapsed:.0f} s). Bits per byte = total nats / ln 2 / UTF-8 bytes of the validation text.
The n-gram baselines are counted on the training split and scored on the same tokens.

| model | nats/token | bits/byte |
|---|---|---|
{rows}

Continuations ({args.new_tokens} new tokens at most; sampling: temperature
{args.temperature}, top-k {args.top_k}, numpy seed {args.seed}):

{blocks}

Command:

```
{command}
```
{END}
"""


def update_md(path: Path, section: str) -> None:
    text = path.read_text(encoding="utf-8")
    if BEGIN in text:
        head = text[: text.index(BEGIN)]
        tail = text[text.index(END) + len(END) :].lstrip("\n") if END in text else ""
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text, encoding="utf-8")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help="CSV weights folder")
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="folder of the corpus")
    p.add_argument("--max-windows", type=int, default=None, help="score only the first N")
    p.add_argument("--new-tokens", type=int, default=60)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-md", action="store_true", help="do not update TRAINING.md")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    params = load_params(args.weights)
    tok = Tokenizer.from_dir(args.weights)
    stop_id = tok.encode("<|endoftext|>", allowed_special="all")[0]
    val_text = (args.corpus / "shakespeare_val.txt").read_text(encoding="utf-8")
    train_text = (args.corpus / "shakespeare_train.txt").read_text(encoding="utf-8")
    val = np.asarray(tok.encode(val_text, allowed_special="all"), dtype=np.int64)
    train = np.asarray(tok.encode(train_text, allowed_special="all"), dtype=np.int64)
    nbytes = len(val_text.encode("utf-8"))

    model, elapsed = model_score(params, val, nbytes, args.max_windows)
    scores = [model]
    if args.max_windows is None:  # baselines are only comparable over the full split
        scores += ngram_scores(train, val, params.config.vocab_size, nbytes)
    for s in scores:
        print(f"{s.name:45s} {s.nats_per_token:.4f} nats/token  {s.bits_per_byte:.4f} bits/byte")

    samples: list[tuple[str, str]] = []
    for prompt in PROMPTS:
        text = generate(
            params,
            tok,
            prompt,
            args.new_tokens,
            rng=None,
            temperature=1.0,
            top_k=1,
            stop_id=stop_id,
        )
        samples.append((f"Greedy, prompt {prompt!r}", text))
    rng = np.random.default_rng(args.seed)
    for prompt in PROMPTS:
        text = generate(
            params,
            tok,
            prompt,
            args.new_tokens,
            rng=rng,
            temperature=args.temperature,
            top_k=args.top_k,
            stop_id=stop_id,
        )
        samples.append((f"Sampled, prompt {prompt!r}", text))
    for label, text in samples:
        print(f"\n--- {label}\n{text}")

    md = args.weights / "TRAINING.md"
    if not args.no_md and md.is_file() and args.max_windows is None:
        command = shlex.join(["python", "scripts/eval_mini.py", *(argv or sys.argv[1:])])
        update_md(md, markdown(scores, samples, args, command, elapsed))
        print(f"\nupdated {md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
