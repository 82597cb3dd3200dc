"""`cellgpt tokenizer ...`: train a BPE vocabulary, encode, decode, and compare tokenizers.
`cellgpt tokenize` is `cellgpt tokenizer encode` under a shorter name."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from cellgpt.cli import UserError
from cellgpt.locations import DEFAULT_MODEL

if TYPE_CHECKING:
    from rich.text import Text

    from cellgpt.tokenizer.compare import AnyTokenizer, Comparison
    from cellgpt.tokenizer.train import TrainedBPE

# The default model's own tokenizer (2,048 tokens), so ids match what `cellgpt run` feeds
# the model; `--tokenizer gpt2` for GPT-2's.
DEFAULT_TOKENIZER = DEFAULT_MODEL
# `compare` without --tokenizer: the model's own, then GPT-2, GPT-4 and GPT-4o.
COMPARED = ("gpt2", "cl100k_base", "o200k_base")
TOKENIZER_HELP = (
    "'gpt2', 'cl100k_base' (GPT-4), 'o200k_base' (GPT-4o), 'r50k_base', 'p50k_base', a model "
    "name, a folder with encoder.json, a minbpe .model, or a Hugging Face tokenizer.json "
    f"(default: {DEFAULT_TOKENIZER}, the default model's own)"
)
DEFAULT_SPECIAL = "<|endoftext|>"
# Background colours cycled over tokens in `compare` (dark text stays readable on all).
TOKEN_STYLES = (
    "black on rgb(255,214,153)",
    "black on rgb(168,218,255)",
    "black on rgb(196,240,170)",
    "black on rgb(240,190,235)",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `tokenizer` command group to the top-level parser."""
    group = subparsers.add_parser(
        "tokenizer", help="train, inspect and compare byte-level BPE tokenizers"
    )
    sub = group.add_subparsers(dest="tokenizer_command", required=True)
    _add_train(sub)
    _add_encode(sub)
    _add_decode(sub)
    _add_compare(sub)
    tokenize = subparsers.add_parser(
        "tokenize", help="split text into tokens and ids (same as `tokenizer encode`)"
    )
    _encode_options(tokenize)


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a vocabulary and write encoder.json + vocab.bpe")
    p.add_argument("corpus", nargs="+", type=Path, help="UTF-8 text file(s), one document each")
    p.add_argument("--vocab-size", type=int, required=True, help="256 + merges + specials")
    split = p.add_mutually_exclusive_group()
    split.add_argument(
        "--pattern",
        choices=["gpt2", "gpt4", "o200k", "none"],
        default="gpt2",
        help="pre-split: GPT-2's, GPT-4's, GPT-4o's, or none (minbpe's basic tokenizer: the "
        "whole text is one piece)",
    )
    split.add_argument("--pattern-regex", metavar="REGEX", help="a custom pre-split regex")
    p.add_argument(
        "--special",
        action="append",
        metavar="TOKEN",
        help=f"a special token, repeatable (default: {DEFAULT_SPECIAL})",
    )
    p.add_argument("--no-special", action="store_true", help="train without special tokens")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument(
        "--held-out",
        type=Path,
        metavar="FILE",
        help="a text not trained on: its compression ratio is reported too",
    )
    p.add_argument(
        "--minbpe",
        action="store_true",
        help="also write minbpe's files (minbpe.model, minbpe.vocab) into --out",
    )
    p.set_defaults(func=cmd_train)


def _add_encode(sub: argparse._SubParsersAction) -> None:
    _encode_options(sub.add_parser("encode", help="print the token ids of TEXT"))


def _encode_options(p: argparse.ArgumentParser) -> None:
    # Shared by `tokenizer encode` and its alias `tokenize`: one set of options, one command.
    p.add_argument("text", metavar="TEXT", help="text to encode ('-' reads stdin)")
    p.add_argument("--tokenizer", default=DEFAULT_TOKENIZER, help=TOKENIZER_HELP)
    p.add_argument(
        "--json", action="store_true", help="print the tokenizer's name, tokens and ids as JSON"
    )
    p.set_defaults(func=cmd_encode)


def _add_decode(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("decode", help="print the text of token ids")
    p.add_argument("ids", nargs="+", metavar="IDS", help="ids (spaces, commas or a JSON list)")
    p.add_argument("--tokenizer", default=DEFAULT_TOKENIZER, help=TOKENIZER_HELP)
    p.set_defaults(func=cmd_decode)


def _add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="token counts and boundaries of TEXT per tokenizer")
    p.add_argument(
        "text",
        metavar="TEXT",
        nargs="?",
        help="text to compare on ('-' reads stdin; default: a built-in sample with capitals, "
        "code, numbers, emoji, Korean, Chinese and a special token)",
    )
    p.add_argument(
        "--tokenizer",
        action="append",
        help="a tokenizer name, folder or file (as for encode); repeat to compare several "
        f"(default: the model's own, then {', '.join(COMPARED)})",
    )
    p.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"whose tokenizer joins the default set (default: {DEFAULT_MODEL})",
    )
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    colour = p.add_mutually_exclusive_group()
    colour.add_argument("--no-color", action="store_true", help="show boundaries with '|'")
    colour.add_argument("--color", action="store_true", help="colours even when piped")
    p.set_defaults(func=cmd_compare)


# ---------------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------------


def load_tokenizer(name: str) -> AnyTokenizer:
    """A tokenizer by name, folder or file, as everywhere; a Hugging Face tokenizer.json too."""
    from cellgpt.locations import NotFoundError
    from cellgpt.tokenizer.bpe import TokenizerError
    from cellgpt.tokenizer.named import load_any_tokenizer

    try:
        return load_any_tokenizer(name)
    except (NotFoundError, TokenizerError) as e:
        raise UserError(str(e)) from None


def _describe(tok: AnyTokenizer, name: str) -> str:
    from cellgpt.tokenizer.hf import HFTokenizer
    from cellgpt.tokenizer.named import describe_tokenizer

    if isinstance(tok, HFTokenizer):
        return f"{tok.name} (Hugging Face tokenizer.json, {tok.vocab_size:,} tokens)"
    return describe_tokenizer(tok, name)


def _say_which(tok: AnyTokenizer, name: str) -> None:
    """Which tokenizer was used, on stderr: stdout stays the ids or text alone."""
    print(f"tokenizer: {_describe(tok, name)}", file=sys.stderr)


def _text_arg(text: str) -> str:
    return sys.stdin.read() if text == "-" else text


def _read_corpus(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"corpus file not found: {path}") from None
    except IsADirectoryError:
        raise UserError(f"corpus is a folder, not a text file: {path}") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (bad byte at offset {e.start})") from None


def _encode(tok: AnyTokenizer, text: str) -> list[int]:
    # On the command line, special-token text means the special token.
    return tok.encode(text, allowed_special="all")


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------


class ProgressReporter:
    """`progress(done, total)` callback printing merges done and merges/s to a stream."""

    def __init__(self, stream: TextIO, every: float = 0.5) -> None:
        self.stream = stream
        self.every = every
        self.is_tty = stream.isatty()
        self.start = self.last = 0.0  # set at the first merge: the rate covers merging only
        self.done = 0
        self.total = 0

    def __call__(self, done: int, total: int) -> None:
        self.done, self.total = done, total
        now = time.perf_counter()
        if not self.start:
            self.start = self.last = now
        if now - self.last >= self.every:
            self.last = now
            self._write(self._line(now), final=False)

    def _line(self, now: float) -> str:
        elapsed = now - self.start if self.start else 0.0
        rate = self.done / elapsed if elapsed > 0 else 0.0
        return f"merges {self.done}/{self.total}  {rate:,.0f} merges/s  {elapsed:.1f} s"

    def _write(self, line: str, final: bool) -> None:
        if self.is_tty:
            self.stream.write("\r" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self) -> None:
        """Print the final count and rate."""
        self._write(self._line(time.perf_counter()), final=True)


def cmd_train(args: argparse.Namespace) -> int:
    """Train on the corpus files and save the vocabulary files into --out."""
    from cellgpt.tokenizer.train import train_bpe

    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out} is a file, not a folder")
    if args.no_special and args.special:
        raise UserError("--no-special and --special contradict each other")
    specials = [] if args.no_special else (args.special or [DEFAULT_SPECIAL])
    texts = [_read_corpus(path) for path in args.corpus]
    held_out = _read_corpus(args.held_out) if args.held_out else None
    size = sum(len(t.encode("utf-8")) for t in texts)
    print(f"pre-splitting {len(texts)} file(s), {size / 1e6:.2f} MB", file=sys.stderr)
    progress = ProgressReporter(sys.stderr)
    try:
        trained = train_bpe(
            texts,
            args.vocab_size,
            pattern=args.pattern_regex or args.pattern,
            special_tokens=specials,
            progress=progress,
        )
    except ValueError as e:
        if progress.done:
            progress.finish()  # end the progress line before the error
        raise UserError(str(e)) from None
    progress.finish()
    trained.save(args.out)
    print(
        f"wrote {args.out}: vocab_size {trained.vocab_size} = 256 bytes + "
        f"{len(trained.merges)} merges + {len(trained.special_tokens)} special",
        file=sys.stderr,
    )
    if args.minbpe:
        from cellgpt.tokenizer.minbpe_files import write_model

        pattern = args.pattern_regex or args.pattern
        written = write_model(args.out / "minbpe", trained.merges, pattern, trained.special_tokens)
        print(f"wrote {', '.join(str(p) for p in written)} (minbpe's format)", file=sys.stderr)
    _report_compression(trained, {"corpus": "\n".join(texts), "held-out": held_out})
    return 0


def _report_compression(trained: TrainedBPE, texts: dict[str, str | None]) -> None:
    """Bytes per token of the trained vocabulary on each text (more is better)."""
    from cellgpt.tokenizer.ranked import RankTokenizer

    # Our trainer never makes two tokens with the same bytes, so its vocabulary is a rank
    # table (rank = id): the fast encoder, even without a pre-split (--pattern none).
    ranks = {token: i for i, token in enumerate(trained.token_bytes)}
    tok = RankTokenizer(ranks, trained.pattern, trained.special_tokens)
    for label, text in texts.items():
        if text is None:
            continue
        n_tokens = len(tok.encode(text, disallowed_special=()))
        n_bytes = len(text.encode("utf-8"))
        ratio = n_bytes / n_tokens if n_tokens else 0.0
        print(
            f"compression on the {label}: {ratio:.2f} bytes/token "
            f"({n_bytes:,} bytes -> {n_tokens:,} tokens)",
            file=sys.stderr,
        )


# ---------------------------------------------------------------------------------------------
# encode / decode
# ---------------------------------------------------------------------------------------------


def cmd_encode(args: argparse.Namespace) -> int:
    """Print the ids of TEXT (space-separated, or JSON with the tokens)."""
    from cellgpt.tokenizer.bpe import TokenizerError

    tok = load_tokenizer(args.tokenizer)
    try:
        ids = _encode(tok, _text_arg(args.text))
    except (TokenizerError, OSError) as exc:
        raise UserError(str(exc)) from None
    if args.json:
        from cellgpt.tokenizer.hf import HFTokenizer
        from cellgpt.tokenizer.named import tokenizer_name

        # The keys the workbook's cells use for the same lists; "tokenizer" loads it again.
        tokens = [tok.token_str(i) for i in ids]
        hf = isinstance(tok, HFTokenizer)
        which = args.tokenizer if hf else tokenizer_name(tok, args.tokenizer)
        print(
            json.dumps({"tokenizer": which, "tokens": tokens, "token_ids": ids}, ensure_ascii=False)
        )
    else:
        _say_which(tok, args.tokenizer)
        print(" ".join(map(str, ids)))
    return 0


def parse_ids(args: list[str]) -> list[int]:
    """Ids from arguments such as `1 2 3`, `1,2,3` or `[1, 2, 3]`."""
    words = " ".join(args).replace(",", " ").replace("[", " ").replace("]", " ").split()
    ids = []
    for word in words:
        try:
            value = int(word)
        except ValueError:
            raise UserError(f"not a token id: {word!r}") from None
        if value < 0:
            raise UserError(f"token ids are non-negative, got {value}")
        ids.append(value)
    return ids


def cmd_decode(args: argparse.Namespace) -> int:
    """Print the text of the ids."""
    from cellgpt.tokenizer.bpe import TokenizerError

    tok = load_tokenizer(args.tokenizer)
    try:
        text = tok.decode(parse_ids(args.ids))
    except TokenizerError as e:
        raise UserError(str(e)) from None
    _say_which(tok, args.tokenizer)  # after the checks: an error stays one line
    print(text)
    return 0


# ---------------------------------------------------------------------------------------------
# compare
# ---------------------------------------------------------------------------------------------


def plain_boundaries(pieces: list[str]) -> str:
    """Tokens separated by '|'."""
    return "|" + "|".join(pieces) + "|"


def coloured_boundaries(pieces: list[str]) -> Text:
    """Tokens on alternating background colours; newlines shown as ↵ so they are visible."""
    from rich.text import Text

    text = Text()
    for k, piece in enumerate(pieces):
        text.append(piece.replace("\n", "↵\n"), style=TOKEN_STYLES[k % len(TOKEN_STYLES)])
    return text


def stats_line(row: Comparison) -> str:
    """Token count, bytes and characters per token, unknown and partial-character tokens."""
    return (
        f"{row.tokenizer}: {row.tokens} tokens, {row.bytes_per_token:.2f} bytes/token, "
        f"{row.chars_per_token:.2f} chars/token, {row.unknown} unknown, "
        f"{row.byte_tokens} byte tokens"
    )


def compared_names(args: argparse.Namespace) -> list[str]:
    """--tokenizer as given, else the model's own tokenizer and the default set."""
    if args.tokenizer:
        return list(args.tokenizer)
    return list(dict.fromkeys([args.model, *COMPARED]))


def cmd_compare(args: argparse.Namespace) -> int:
    """For each tokenizer: counts, ratios, and the text with token boundaries shown."""
    from rich.console import Console

    from cellgpt.tokenizer.bpe import TokenizerError
    from cellgpt.tokenizer.compare import SAMPLE, compare_all

    text = SAMPLE if args.text is None else _text_arg(args.text)
    if not text:
        raise UserError("TEXT is empty: nothing to compare")
    tokenizers = {name: load_tokenizer(name) for name in compared_names(args)}
    try:
        rows = compare_all(text, tokenizers)
    except TokenizerError as e:
        raise UserError(str(e)) from None
    if args.json:
        print(
            json.dumps(
                {"text": text, "tokenizers": [r.as_json() for r in rows]}, ensure_ascii=False
            )
        )
        return 0
    console = Console(highlight=False, force_terminal=True if args.color else None)
    colour = not args.no_color and console.is_terminal and not console.no_color
    for k, row in enumerate(rows):
        if k:
            print()
        print(stats_line(row))
        if colour:
            console.print(coloured_boundaries(row.pieces), soft_wrap=True)
        else:
            print(plain_boundaries(row.pieces))
    return 0
