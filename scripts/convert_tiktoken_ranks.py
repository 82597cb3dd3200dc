"""Convert the rank tables of the npm package js-tiktoken into cellgpt's compact files.

Reproducible from the registry:

    cd /tmp && npm pack js-tiktoken@1.0.21 && tar xzf js-tiktoken-1.0.21.tgz
    python scripts/convert_tiktoken_ranks.py /tmp/package

writes `cellgpt/tokenizer/data/ranks/{r50k_base,p50k_base,p50k_edit,cl100k_base,o200k_base}`
`.ranks.xz` and a README with the SHA-256 of each source file. `gpt2` is not converted: its table is
r50k_base's, and GPT-2's own files (encoder.json, vocab.bpe) are bundled already.

js-tiktoken's `dist/ranks/NAME.js` is `export default {...}`: a JSON object with `pat_str`
(spelled for JavaScript regexes), `special_tokens` and `bpe_ranks`, whose lines read
`! START tok tok ...` (base64 tokens of consecutive ranks from START). We keep the ranks and
special tokens, and store the name of tiktoken's own Python pattern for the table (the JS
spelling is checked to be the one we expect, so an upstream change is not missed).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cellgpt.tokenizer.rankfile import SUFFIX, RankTable, write_ranks  # noqa: E402

OUT = REPO / "cellgpt" / "tokenizer" / "data" / "ranks"
# Table → (our name for tiktoken's Python split pattern, the start of js-tiktoken's spelling).
TABLES = {
    "r50k_base": ("r50k", "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+"),
    "p50k_base": ("r50k", "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+"),
    "p50k_edit": ("r50k", "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+"),
    "cl100k_base": ("gpt4", "('s|'S|'t|'T|'re|'rE|'Re|'RE|"),
    "o200k_base": ("o200k", "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*"),
}
PREFIX = "export default "


def parse_js(path: Path) -> dict:
    """The JSON object of one `dist/ranks/NAME.js` file."""
    text = path.read_text(encoding="utf-8")
    if not text.startswith(PREFIX):
        raise SystemExit(f"{path}: does not start with {PREFIX!r}")
    return json.loads(text[len(PREFIX) :].rstrip().removesuffix(";"))


def ranks_of(bpe_ranks: str) -> dict[bytes, int]:
    """Token bytes → rank from js-tiktoken's `bpe_ranks` lines."""
    ranks: dict[bytes, int] = {}
    for line in bpe_ranks.split("\n"):
        if not line:
            continue
        _, start, *tokens = line.split(" ")
        for offset, token in enumerate(tokens):
            ranks[base64.b64decode(token, validate=True)] = int(start) + offset
    return ranks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("package", type=Path, help="the unpacked npm tarball (its package/)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    meta = json.loads((args.package / "package.json").read_text())
    version = f"{meta['name']} {meta['version']}"
    args.out.mkdir(parents=True, exist_ok=True)
    lines = []
    for name, (pattern, js_start) in TABLES.items():
        source = args.package / "dist" / "ranks" / f"{name}.js"
        data = parse_js(source)
        if not data["pat_str"].startswith(js_start):
            raise SystemExit(f"{source}: unexpected pat_str {data['pat_str'][:60]!r}")
        table = RankTable(
            name=name,
            ranks=ranks_of(data["bpe_ranks"]),
            pattern=pattern,
            special_tokens=data["special_tokens"],
            source=f"{version} dist/ranks/{name}.js",
        )
        out = write_ranks(args.out / f"{name}{SUFFIX}", table)
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        lines.append(f"| `{out.name}` | `dist/ranks/{name}.js` | `{digest}` |")
        print(f"{out}: {len(table.ranks):,} ranks, {out.stat().st_size:,} bytes")
    gpt2, r50k = (
        parse_js(args.package / "dist" / "ranks" / f"{n}.js") for n in ("gpt2", "r50k_base")
    )
    if gpt2 != r50k | {"explicit_n_vocab": gpt2.get("explicit_n_vocab")}:
        raise SystemExit("dist/ranks/gpt2.js differs from r50k_base.js: convert it too")
    readme = [
        f"Rank tables converted from the npm package `{version}` (MIT; see",
        "LICENSE.js-tiktoken) by `scripts/convert_tiktoken_ranks.py`. The tables themselves are",
        "OpenAI's tiktoken encodings. Each file keeps the ranks and special tokens as published;",
        "the split pattern is named (tiktoken's Python spelling, in cellgpt/tokenizer/alphabet.py).",
        "",
        "| file | source in the npm package | SHA-256 of the source |",
        "|---|---|---|",
        *lines,
        "",
    ]
    (args.out / "README.md").write_text("\n".join(readme), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
