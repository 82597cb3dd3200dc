"""Train a byte-level BPE vocabulary that loads like GPT-2's own files.

How training works:

1. Each text is cut at the special tokens (they are never split or merged), the pieces are
   pre-split with the chosen regex, and identical chunks are counted once (chunk -> count).
2. Every distinct chunk becomes a list of byte-token ids. Adjacent-pair counts (weighted by
   chunk count) and an index pair -> ids of the chunks containing it are built once.
3. Each merge takes the best pair from a heap (stale entries are skipped when popped), rewrites
   only the chunks the index names, and updates counts and index by the difference between
   each chunk's old and new pairs. Nothing is recounted from scratch.

Conventions (so the saved files drop into anything that reads GPT-2's `encoder.json` +
`vocab.bpe`):

- Ids 0..255 are the single bytes in GPT-2's order: sorted by the printable character that
  `bytes_to_unicode()` gives each byte, i.e. "!".."~", "¡".."¬", "®".."ÿ", then the 68 other
  bytes (control bytes, space, ...). These are exactly GPT-2's ids 0..255.
- The merge of rank r makes token 256 + r; special tokens come last, in the order given.
- Merges go left to right without overlap: "aaaaa" with (a, a) becomes aa aa a.
- Tie-breaking: the pair with the highest count wins; among equal counts, the smallest
  (left bytes, right bytes), comparing byte strings lexicographically (so b"a" < b"ab" < b"b").
  The result depends only on the chunk counts, never on input order or hashing.
- A pair whose concatenation is already a token (made earlier from a different split) is
  skipped, so every merge adds a new token and ids stay 256 + rank. Randomised tests have not
  produced such a pair; the guard keeps `encoder.json` unambiguous should a corpus do so.
"""

from __future__ import annotations

import heapq
import json
import os
import tempfile
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from itertools import pairwise
from pathlib import Path

import regex

from cellgpt.tokenizer.bpe import PATTERNS, Tokenizer, bytes_to_unicode, fix_surrogates
from cellgpt.tokenizer.longword import LongWord

DEFAULT_SPECIALS = ("<|endoftext|>",)
VOCAB_BPE_HEADER = "#version: 0.2"
ProgressFn = Callable[[int, int], None]
Pair = tuple[int, int]
LONG_WORD = 256  # words longer than this merge through a position index (longword.py)
# Called after every merge with (merges done, the pair merged, its count, the statistics).
MergeHook = Callable[[int, Pair, int, "_PairStats"], None]


@cache
def gpt2_byte_order() -> tuple[int, ...]:
    """The byte of each id 0..255, in GPT-2's `encoder.json` order."""
    mapping = bytes_to_unicode()
    return tuple(sorted(range(256), key=lambda b: ord(mapping[b])))


def printable(token: bytes) -> str:
    """A token's bytes as GPT-2's printable symbols (the form used in the vocabulary files)."""
    mapping = bytes_to_unicode()
    return "".join(mapping[b] for b in token)


def readable(token: bytes) -> str:
    """A token as quoted, human-readable text: UTF-8 where valid, escapes for the rest."""
    out = []
    for ch in token.decode("utf-8", errors="surrogateescape"):
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")  # a byte that is not (complete) UTF-8
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif _invisible(ch):
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", '"': '\\"', "\\": "\\\\"}


def _invisible(ch: str) -> bool:
    # Control/format/unassigned characters and whitespace other than " " print as nothing
    # (or move the cursor), so they are escaped.
    return unicodedata.category(ch)[0] == "C" or (ch.isspace() and ch != " ")


@dataclass
class TrainedBPE:
    """A trained vocabulary: merges in rank order, every token's bytes, and special tokens."""

    merges: list[tuple[bytes, bytes]]
    merge_counts: list[int]
    special_tokens: dict[str, int]
    pattern: str  # "gpt2", "gpt4" or a regex
    # Final token ids of every distinct training chunk (the training-time segmentation).
    segmentation: dict[str, tuple[int, ...]] = field(default_factory=dict, repr=False)

    @property
    def token_bytes(self) -> list[bytes]:
        """Bytes of every ordinary token, indexed by id."""
        singles = [bytes([b]) for b in gpt2_byte_order()]
        return singles + [left + right for left, right in self.merges]

    @property
    def vocab_size(self) -> int:
        return 256 + len(self.merges) + len(self.special_tokens)

    def encoder(self) -> dict[str, int]:
        """`encoder.json` content: printable token string -> id, special tokens included."""
        table = {printable(tok): i for i, tok in enumerate(self.token_bytes)}
        table.update(self.special_tokens)  # GPT-2 keeps specials as literal text here too
        return table

    def merge_lines(self) -> list[str]:
        """`vocab.bpe` lines after the header: "left right" in printable symbols."""
        return [f"{printable(left)} {printable(right)}" for left, right in self.merges]

    def config(self) -> dict[str, object]:
        """`tokenizer_config.json` content."""
        return {"pattern": self.pattern, "special_tokens": dict(self.special_tokens)}

    def readable_listing(self) -> str:
        """`merges_readable.txt`: one merge per line with its count at merge time."""
        lines = [
            "# rank\tleft\tright\tresult\tcount  (id of the result = 256 + rank)",
        ]
        for rank, ((left, right), count) in enumerate(
            zip(self.merges, self.merge_counts, strict=True)
        ):
            lines.append(
                f"{rank}\t{readable(left)}\t{readable(right)}\t{readable(left + right)}\t{count}"
            )
        return "\n".join(lines) + "\n"

    def to_tokenizer(self) -> Tokenizer:
        """An in-memory `Tokenizer` with this vocabulary (no files needed)."""
        pairs = [(printable(left), printable(right)) for left, right in self.merges]
        return Tokenizer(self.encoder(), pairs, self.special_tokens, self.pattern)

    def save(self, out_dir: str | Path) -> list[Path]:
        """Write encoder.json, vocab.bpe, tokenizer_config.json and merges_readable.txt."""
        folder = Path(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        files = {
            "encoder.json": json.dumps(self.encoder(), ensure_ascii=False),
            "vocab.bpe": "\n".join([VOCAB_BPE_HEADER, *self.merge_lines()]) + "\n",
            "tokenizer_config.json": json.dumps(self.config(), ensure_ascii=False, indent=2) + "\n",
            "merges_readable.txt": self.readable_listing(),
        }
        written = []
        for name, text in files.items():
            written.append(atomic_write_text(folder / name, text))
        return written


@cache
def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> Path:
    """Write UTF-8 text so readers see the old file or the new one, never half of it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give a normal file's mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# ---------------------------------------------------------------------------------------------
# Chunk counting
# ---------------------------------------------------------------------------------------------


def resolve_pattern(pattern: str) -> regex.Pattern[str]:
    """Compile a pattern name ("gpt2", "gpt4") or a regex; ValueError if it is not valid."""
    if not pattern:
        raise ValueError("pattern must be 'gpt2', 'gpt4' or a non-empty regex")
    try:
        return regex.compile(PATTERNS.get(pattern, pattern))
    except regex.error as e:
        raise ValueError(f"bad split pattern {pattern!r}: {e}") from e


def _check_specials(special_tokens: Sequence[str]) -> list[str]:
    if isinstance(special_tokens, str):
        raise ValueError(f"special_tokens must be a list of strings, not {special_tokens!r}")
    specials = list(special_tokens)
    if any(not isinstance(t, str) or not t for t in specials):
        raise ValueError("special tokens must be non-empty strings")
    if len(set(specials)) != len(specials):
        raise ValueError(f"special tokens repeat: {specials}")
    return specials


def special_splitter(specials: Sequence[str]) -> regex.Pattern[str] | None:
    """A regex matching any special token, longest first (so one extending another wins)."""
    if not specials:
        return None
    ordered = sorted(specials, key=lambda t: (-len(t), t))
    return regex.compile("|".join(regex.escape(t) for t in ordered))


def count_chunks(
    texts: Iterable[str], split_re: regex.Pattern[str], specials: Sequence[str] = ()
) -> Counter[str]:
    """Pre-split chunks of all texts with their counts; special tokens are cut out first."""
    cutter = special_splitter(specials)
    counts: Counter[str] = Counter()
    for text in texts:
        text = fix_surrogates(text)
        pieces = cutter.split(text) if cutter else [text]
        for piece in pieces:
            counts.update(split_re.findall(piece))
    return counts


# ---------------------------------------------------------------------------------------------
# Incremental pair statistics
# ---------------------------------------------------------------------------------------------


def _merge_word(word: list[int], left: int, right: int, new: int) -> list[int]:
    """Replace each (left, right) by `new`, scanning left to right without overlap."""
    out: list[int] = []
    i, n = 0, len(word)
    while i < n:
        if word[i] == left and i + 1 < n and word[i + 1] == right:
            out.append(new)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


class _PairStats:
    """Pair counts over weighted words, an index pair -> words, and a max-heap of pairs."""

    def __init__(self, words: list[list[int]], freqs: list[int], token_bytes: list[bytes]):
        self.words = words
        # Words this long (a whole text when nothing pre-splits it) merge by position.
        self.long = {w: LongWord(word) for w, word in enumerate(words) if len(word) > LONG_WORD}
        self.freqs = freqs
        self.token_bytes = token_bytes
        self.known = set(token_bytes)  # byte strings that already are tokens
        self.counts: dict[Pair, int] = defaultdict(int)
        self.index: dict[Pair, set[int]] = defaultdict(set)
        for w, word in enumerate(words):
            f = freqs[w]
            for pair in pairwise(word):
                self.counts[pair] += f
                self.index[pair].add(w)
        self.heap: list[tuple[int, bytes, bytes, Pair]] = []
        for pair, count in self.counts.items():
            self._push(pair, count)
        heapq.heapify(self.heap)

    def _push(self, pair: Pair, count: int) -> None:
        # (-count, left bytes, right bytes) orders by the documented tie-breaking rule.
        tb = self.token_bytes
        self.heap.append((-count, tb[pair[0]], tb[pair[1]], pair))

    def pop_best(self) -> tuple[Pair, int] | None:
        """The best mergeable pair and its count, or None when no pair is left."""
        heap, counts = self.heap, self.counts
        while heap:
            neg, left, right, pair = heapq.heappop(heap)
            if counts.get(pair, 0) != -neg:
                continue  # stale: the count changed after this entry was pushed
            if left + right in self.known:
                continue  # would duplicate an existing token; never merged (see module doc)
            return pair, -neg
        return None

    def merge(self, pair: Pair, new_id: int) -> None:
        """Merge `pair` into `new_id` in every word containing it, updating stats locally."""
        left, right = pair
        self.token_bytes.append(self.token_bytes[left] + self.token_bytes[right])
        self.known.add(self.token_bytes[new_id])
        delta: dict[Pair, int] = defaultdict(int)
        for w in self.index.pop(pair):
            if w in self.long:
                for made in self.long[w].merge(left, right, new_id, self.freqs[w], delta):
                    self.index[made].add(w)
                continue
            old = self.words[w]
            new = _merge_word(old, left, right, new_id)
            self.words[w] = new
            self._diff_word(w, old, new, delta)
        self._apply(delta)

    def word(self, w: int) -> list[int]:
        """Word `w`'s current token ids."""
        return self.long[w].ids() if w in self.long else self.words[w]

    def _diff_word(self, w: int, old: list[int], new: list[int], delta: dict[Pair, int]) -> None:
        f = self.freqs[w]
        old_pairs = list(pairwise(old))
        new_pairs = list(pairwise(new))
        for p in old_pairs:
            delta[p] -= f
        index = self.index
        for p in new_pairs:
            delta[p] += f
            index[p].add(w)
        for p in set(old_pairs).difference(new_pairs):
            words_with_p = index.get(p)
            if words_with_p is not None:
                words_with_p.discard(w)

    def _apply(self, delta: dict[Pair, int]) -> None:
        counts, heap = self.counts, self.heap
        tb = self.token_bytes
        for p, d in delta.items():
            if not d:
                continue
            c = counts[p] + d
            if c:
                counts[p] = c
                heapq.heappush(heap, (-c, tb[p[0]], tb[p[1]], p))
            else:
                del counts[p]
                self.index.pop(p, None)


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


def train_bpe(
    texts: Iterable[str],
    vocab_size: int,
    *,
    pattern: str = "gpt2",
    special_tokens: Sequence[str] = DEFAULT_SPECIALS,
    progress: ProgressFn | None = None,
) -> TrainedBPE:
    """Learn `vocab_size - 256 - len(special_tokens)` merges from `texts`.

    `pattern` is "gpt2", "gpt4" or a regex for the pre-split. `progress(done, total)` is called
    after every merge. Raises ValueError for a bad pattern, bad special tokens, a vocab_size
    below 256 + len(special_tokens), or a corpus with too few distinct pairs for the merges.
    """
    specials = _check_specials(special_tokens)
    split_re = resolve_pattern(pattern)
    n_merges = vocab_size - 256 - len(specials)
    if n_merges < 0:
        raise ValueError(
            f"vocab_size {vocab_size} is too small: it must be at least 256 byte tokens "
            f"+ {len(specials)} special tokens = {256 + len(specials)}"
        )
    chunk_counts = count_chunks(texts, split_re, specials)
    chunks = list(chunk_counts)
    merges, merge_counts, words = _learn_merges(chunk_counts, n_merges, progress)
    if len(merges) < n_merges:
        most = 256 + len(merges) + len(specials)
        raise ValueError(
            f"the corpus supports only {len(merges)} merges, but vocab_size {vocab_size} needs "
            f"{n_merges}; at most {most} is possible with this corpus"
        )
    special_ids = {tok: 256 + n_merges + i for i, tok in enumerate(specials)}
    segmentation = dict(zip(chunks, map(tuple, words), strict=True))
    trained = TrainedBPE(merges, merge_counts, special_ids, pattern, segmentation)
    _check_no_clash(trained)
    return trained


def _check_no_clash(trained: TrainedBPE) -> None:
    # encoder.json holds ordinary tokens (as printable symbols) and specials (as literal text)
    # in one table, so a special must not spell an ordinary token, e.g. "a" or "Ġthe".
    ordinary = {printable(tok) for tok in trained.token_bytes}
    for special in trained.special_tokens:
        if special in ordinary:
            raise ValueError(
                f"special token {special!r} is spelled like an ordinary token in encoder.json; "
                "choose another special token"
            )


def _learn_merges(
    chunk_counts: Counter[str],
    n_merges: int,
    progress: ProgressFn | None,
    on_merge: MergeHook | None = None,
) -> tuple[list[tuple[bytes, bytes]], list[int], list[list[int]]]:
    """The merges, their counts, and every chunk's final token ids (in `chunk_counts` order).
    `on_merge` lets a caller watch each pass (the tokenizer workbook's trace)."""
    id_of_byte = {b: i for i, b in enumerate(gpt2_byte_order())}
    words = [[id_of_byte[b] for b in chunk.encode("utf-8")] for chunk in chunk_counts]
    token_bytes = [bytes([b]) for b in gpt2_byte_order()]
    stats = _PairStats(words, list(chunk_counts.values()), token_bytes)
    merges: list[tuple[bytes, bytes]] = []
    counts: list[int] = []
    for done in range(n_merges):
        best = stats.pop_best()
        if best is None:
            break  # every chunk is one token (or only duplicate-making pairs are left)
        (left, right), count = best
        merges.append((token_bytes[left], token_bytes[right]))
        counts.append(count)
        stats.merge((left, right), 256 + done)
        if on_merge is not None:
            on_merge(done + 1, (left, right), count, stats)
        if progress is not None:
            progress(done + 1, n_merges)
    return merges, counts, [stats.word(w) for w in range(len(words))]
