"""GPT-2 tokenization in formulas (formulas mode with a capacity): the prompt cell → the
pre-split → BPE merge passes → token ids, like the original spreadsheet's tokenization sheet,
with functions Excel 2010 and LibreOffice 7.4 both have (MID, FIND, EXACT, MATCH, INDEX,
COUNTIF, IFERROR: no LET, LAMBDA, REGEX, TEXTSPLIT or SEQUENCE).

Sheets:
  tok_chars   one row per character: its byte, class (L letter, N digit, P other, W space),
              GPT-2 contraction ('s 't 're 've 'm 'll 'd) and whether a piece starts there.
              The split regex ` ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+` decides a
              piece start from the neighbouring characters alone (see `_start`), so no row
              depends on a scan.
  tok_words   one row per piece: its start, length, text, its final BPE tokens and offset.
  tok_bpe     one row per piece and pass: the symbols (token ids, from the piece's bytes),
              each adjacent pair's merge rank, and the leftmost best pair merged into the
              next row. Merging the leftmost best pair one at a time gives GPT-2's tokens
              (bpe.py's `_merge_pairs`), and a piece of K bytes needs at most K-1 passes.
  tok_bytes   the ASCII characters the sheet can read, with each one's byte token id.
  tok_merges  the merge list keyed by left id × vocab size + right id (sorted: MATCH(…,1) is
              a binary search, exact on numbers; MATCH on text ignores case).

What cannot be done: Excel 2010 has no UNICODE() (nor UNICHAR), so a character outside
ASCII cannot be turned into its UTF-8 bytes; such a prompt (and one with a special token,
more pieces or tokens than the capacity, or a piece longer than K characters) shows the
reason in `tok_status`, and the token ids come from the typed id column instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from openpyxl.utils import get_column_letter as col
from openpyxl.workbook.defined_name import DefinedName

from cellgpt.export import styles
from cellgpt.export.layout import quote_sheet
from cellgpt.export.sheetio import plain_formula, text_cell, value_cell
from cellgpt.export.styles import BOLD, HEADER_FILL
from cellgpt.tokenizer.alphabet import GPT2_SPLIT_PATTERN, bytes_to_unicode

WORD_CHARS = 24  # K: the longest piece the sheet tokenizes (K-1 merge passes)
MAX_TOKENS = 128  # tokenization sheets cover prompts up to min(capacity, this) tokens
NO_RANK = 10**9
# The characters the sheet reads, in byte order after tab, LF and CR (a cell cannot hold
# the other control characters): FIND's position in this text gives the byte.
ASCII_BYTES = [9, 10, 13, *range(32, 127)]
SHEETS = ("tok_chars", "tok_words", "tok_bpe", "tok_bytes", "tok_merges")
STATUS_OK = "ok"
CONTRACTIONS = {3: ("'re", "'ve", "'ll"), 2: ("'s", "'t", "'m", "'d")}


@dataclass
class TokenizeLayout:
    n: int  # pieces and tokens the sheets hold
    k: int  # characters per piece
    vocab_size: int
    byte_ids: list[int]  # token id of each ASCII_BYTES entry
    merges: list[tuple[int, int, int, str, str]]  # key, rank, merged id, left, right
    prompt_ref: str = ""  # the prompt cell, set when its sheet is known

    @property
    def chars(self) -> int:
        return self.n * self.k


def tokenize_layout(tokenizer: Any, capacity: int) -> TokenizeLayout | None:
    """The sheets' tables for a GPT-2 byte-level BPE tokenizer (None for any other)."""
    if getattr(tokenizer, "pattern", None) != GPT2_SPLIT_PATTERN:
        return None
    encoder, ranks = getattr(tokenizer, "encoder", None), getattr(tokenizer, "bpe_ranks", None)
    if not isinstance(encoder, dict) or not isinstance(ranks, dict):
        return None
    to_char = bytes_to_unicode()
    try:
        byte_ids = [encoder[to_char[b]] for b in ASCII_BYTES]
        v = int(tokenizer.vocab_size)
        merges = sorted(
            (encoder[a] * v + encoder[b], rank, encoder[a + b], a, b)
            for (a, b), rank in ranks.items()
        )
    except KeyError:  # a vocabulary without every byte or merge result: not GPT-2's kind
        return None
    return TokenizeLayout(min(capacity, MAX_TOKENS), WORD_CHARS, v, byte_ids, merges)


def sheet_tokenizes(layout: TokenizeLayout, tokenizer: Any, prompt: str, ids: list[int]) -> bool:
    """Whether the sheets' formulas give `ids` for `prompt` (else the ids are typed)."""
    if not prompt or len(prompt) > layout.chars:
        return False
    if any(ord(ch) not in ASCII_BYTES for ch in prompt):
        return False
    # A cell's CR reads back as LF (XML line ends), and LibreOffice's FIND did not find a
    # typed tab: such a prompt's ids are written as typed ids too (they override the sheet).
    if "\r" in prompt or "\t" in prompt:
        return False
    if any(s in prompt for s in getattr(tokenizer, "special_tokens", {})):
        return False
    words = tokenizer.split(prompt)
    if len(words) > layout.n or max(map(len, words)) > layout.k or len(ids) > layout.n:
        return False
    return list(tokenizer.encode_ordinary(prompt)) == ids


class _Names:
    """Defined names of the tokenization sheets (all prefixed tok_)."""

    def __init__(self, book: Any) -> None:
        self.book = book

    def add(self, name: str, sheet: str, ref: str) -> str:
        self.book.defined_names[name] = DefinedName(name, attr_text=f"{quote_sheet(sheet)}!{ref}")
        return name


def write_tokenize_sheets(
    layout: TokenizeLayout, book: Any, new_sheet: Callable[[str], Any], specials: list[str]
) -> None:
    """The five sheets and their defined names (tok_status, tok_count, tok_final, ...)."""
    names = _Names(book)
    n, k, c = layout.n, layout.k, layout.chars
    p = layout.prompt_ref
    names.add("tok_ascii", "tok_bytes", "$B$2")
    names.add("tok_byte_code", "tok_bytes", f"$C$3:$C${2 + len(ASCII_BYTES)}")
    names.add("tok_byte_id", "tok_bytes", f"$D$3:$D${2 + len(ASCII_BYTES)}")
    last = 1 + len(layout.merges)
    names.add("tok_merge_keys", "tok_merges", f"$A$2:$A${last}")
    names.add("tok_merge_ranks", "tok_merges", f"$B$2:$B${last}")
    names.add("tok_merge_ids", "tok_merges", f"$C$2:$C${last}")
    names.add("tok_char_byte", "tok_chars", f"$C$2:$C${c + 1}")
    names.add("tok_piece", "tok_chars", f"$G$2:$G${c + 1}")
    names.add("tok_lengths", "tok_words", f"$C$2:$C${n + 1}")
    names.add("tok_offsets", "tok_words", f"$F$2:$F${n + 1}")
    names.add("tok_final", "tok_words", f"$G$2:${col(6 + k)}${n + 1}")
    # tok_words: labels and values right of the table
    names.add("tok_status", "tok_words", f"${col(9 + k)}$2")
    names.add("tok_count", "tok_words", f"${col(9 + k)}$3")
    _chars(layout, new_sheet("tok_chars"), p)
    _words(layout, new_sheet("tok_words"), p, specials)
    _bpe(layout, new_sheet("tok_bpe"))
    _bytes(layout, new_sheet("tok_bytes"))
    _merges(layout, new_sheet("tok_merges"))


def _head(ws: Any, titles: list[str], widths: list[float]) -> None:
    styles.freeze_header(ws)
    styles.set_widths(ws, widths)
    first = [text_cell(ws, titles[0], font=BOLD, fill=HEADER_FILL)]
    ws.append(first + [text_cell(ws, t, font=BOLD) for t in titles[1:]])


def _chars(layout: TokenizeLayout, ws: Any, prompt: str) -> None:
    titles = ["position", "character", "byte", "class", "contraction", "piece starts", "piece"]
    _head(ws, titles, [9, 10, 8, 7, 12, 12, 7])
    for i in range(1, layout.chars + 1):
        r = i + 1
        row: list[Any] = [i]
        row.append(plain_formula(ws, f"MID({prompt},{i},1)"))
        found = f"IFERROR(INDEX(tok_byte_code,FIND(B{r},tok_ascii)),-1)"
        row.append(plain_formula(ws, f'IF(B{r}="","",{found})'))
        row.append(plain_formula(ws, _class(f"C{r}")))
        row.append(plain_formula(ws, _contraction(r, prompt, i)))
        row.append(plain_formula(ws, _start(r, i, layout.chars)))
        row.append(plain_formula(ws, f'IF(B{r}="","",{f"G{r - 1}+" if i > 1 else ""}F{r})'))
        ws.append(row)


def _class(b: str) -> str:
    """L letter, N digit, W whitespace, P anything else, ? outside ASCII (from the byte)."""
    letter = f"OR(AND({b}>=65,{b}<=90),AND({b}>=97,{b}<=122))"
    return (
        f'IF({b}="","",IF({b}<0,"?",IF({b}<=32,"W",IF(AND({b}>=48,{b}<=57),"N",'
        f'IF({letter},"L","P")))))'
    )


def _contraction(r: int, prompt: str, i: int) -> str:
    """2 or 3 where a GPT-2 contraction ('s, 're, ...) starts a piece, else 0. An apostrophe
    starts a piece after a letter, a digit or a whitespace other than a space (after a space
    or other punctuation it joins their piece)."""
    if i == 1:
        starts = "TRUE"
    else:
        q = r - 1
        starts = f'OR(D{q}="L",D{q}="N",AND(D{q}="W",B{q}<>" "))'

    def exact(length: int) -> str:
        texts = CONTRACTIONS[length]
        return "OR(" + ",".join(f'EXACT(MID({prompt},{i},{length}),"{t}")' for t in texts) + ")"

    return f'IF(AND(B{r}="\'",{starts}),IF({exact(3)},3,IF({exact(2)},2,0)),0)'


def _start(r: int, i: int, last: int) -> str:
    """1 where GPT-2's split starts a piece. Whitespace: the first of a run, and the last of
    a run of two or more before a non-space (`\\s+(?!\\S)` leaves it out). Anything else: after
    whitespace, unless that is a space (` ?X` takes it); after another class; inside a class
    run only right after a contraction; never inside a contraction."""
    if i == 1:
        return f'IF(B{r}="",0,1)'

    def at(col_: str, back: int, default: str) -> str:
        return f"{col_}{r - back}" if i - back >= 1 else default

    inside = f"OR({at('E', 1, '0')}>=2,{at('E', 2, '0')}=3)"
    after_contraction = f"OR({at('E', 2, '0')}=2,{at('E', 3, '0')}=3)"
    nxt = f"D{r + 1}" if i < last else '""'
    space = f'IF(OR(D{r - 1}<>"W",AND({nxt}<>"",{nxt}<>"W")),1,0)'
    other = (
        f'IF(D{r - 1}="W",IF(B{r - 1}=" ",0,1),IF(D{r - 1}<>D{r},1,IF({after_contraction},1,0)))'
    )
    return f'IF(B{r}="",0,IF({inside},0,IF(D{r}="W",{space},{other})))'


def _words(layout: TokenizeLayout, ws: Any, prompt: str, specials: list[str]) -> None:
    n, k = layout.n, layout.k
    titles = ["piece", "start", "length", "text", "tokens", "offset"]
    titles += [f"token {j}" for j in range(1, k + 1)]
    _head(ws, titles, [7, 7, 7, 16, 7, 7, *[8] * k, 2, 22, 60])
    checks = [
        (f"LEN({prompt})=0", "the prompt is empty: type ids on token_ids"),
        (
            f"LEN({prompt})>{layout.chars}",
            f"longer than {layout.chars} characters: type ids on token_ids",
        ),
        (
            "COUNTIF(tok_char_byte,-1)>0",
            "characters outside ASCII (or control characters): Excel 2010 has no UNICODE() "
            "to read their UTF-8 bytes, so type ids on token_ids",
        ),
        *[
            (
                f'ISNUMBER(FIND("{s}",{prompt}))',
                f"the special token {s}: type ids on token_ids",
            )
            for s in specials
            if '"' not in s
        ],
        (f"MAX(tok_piece)>{n}", f"more than {n} pieces: type ids on token_ids"),
        (f"MAX(tok_lengths)>{k}", f"a piece longer than {k} characters: type ids on token_ids"),
        (f"tok_count>{n}", f"more than {n} tokens: type ids on token_ids"),
    ]
    status = f'"{STATUS_OK}"'
    for test, message in reversed(checks):
        status = f'IF({test},"{message}",{status})'
    bpe_final = 1 + layout.k  # tok_bpe's last pass of piece w: row 1 + w*(k) (see _bpe)
    for w in range(1, n + 1):
        r = w + 1
        row: list[Any] = [w]
        row.append(plain_formula(ws, f'IFERROR(MATCH({w},tok_piece,0),"")'))
        row.append(plain_formula(ws, f'IF(B{r}="","",COUNTIF(tok_piece,{w}))'))
        row.append(plain_formula(ws, f'IF(B{r}="","",MID({prompt},B{r},C{r}))'))
        row.append(plain_formula(ws, f"COUNT(G{r}:{col(6 + k)}{r})"))
        row.append(plain_formula(ws, f"F{r - 1}+E{r - 1}") if w > 1 else 0)
        final = (w - 1) * layout.k + bpe_final  # row of piece w's last pass
        row += [plain_formula(ws, f"'tok_bpe'!{col(2 + j)}{final}") for j in range(k)]
        if w <= 2:
            label, value = [
                ("status", plain_formula(ws, status)),
                ("tokens", plain_formula(ws, f"SUM(E2:E{n + 1})")),
            ][w - 1]
            row += [None, text_cell(ws, label, font=BOLD), value]
        ws.append(row)


def _bpe(layout: TokenizeLayout, ws: Any) -> None:
    """Rows of piece w: pass 0 (its bytes) to pass k-1. Columns: symbols (B…), a blank, the
    rank of each adjacent pair, the best rank, where it is (leftmost) and the merged id."""
    k, v = layout.k, layout.vocab_size
    sym = [col(2 + j) for j in range(k)]  # B ...
    rank = [col(3 + k + j) for j in range(k - 1)]
    best, at, merged = col(2 + 2 * k), col(3 + 2 * k), col(4 + 2 * k)
    titles = ["piece · pass", *[f"symbol {j + 1}" for j in range(k)], ""]
    titles += [f"rank {j + 1}-{j + 2}" for j in range(k - 1)]
    titles += ["best rank", "at", "merged id"]
    _head(ws, titles, [12, *[8] * k, 2, *[10] * (k - 1), 10, 5, 9])
    row_of = 2
    for w in range(1, layout.n + 1):
        for t in range(k):
            r = row_of
            row: list[Any] = [text_cell(ws, f"{w} · {t}")]
            for j in range(k):
                if t == 0:
                    ch = f"MID('tok_words'!$D${w + 1},{j + 1},1)"
                    byte_id = f"INDEX(tok_byte_id,FIND({ch},tok_ascii))"
                    text = f'IF(N(\'tok_words\'!$C${w + 1})>={j + 1},IFERROR({byte_id},""),"")'
                else:
                    q = r - 1
                    nxt = f"{sym[j + 1]}{q}" if j + 1 < k else '""'
                    text = (
                        f'IF({at}{q}="",{sym[j]}{q},IF({j + 1}<{at}{q},{sym[j]}{q},'
                        f"IF({j + 1}={at}{q},{merged}{q},{nxt})))"
                    )
                row.append(plain_formula(ws, text))
            row.append(None)
            for j in range(k - 1):
                a, b = f"{sym[j]}{r}", f"{sym[j + 1]}{r}"
                key = f"{a}*{v}+{b}"
                found = f"MATCH({key},tok_merge_keys,1)"
                lookup = f"IF(INDEX(tok_merge_keys,{found})={key},INDEX(tok_merge_ranks,{found}),{NO_RANK})"
                row.append(
                    plain_formula(
                        ws, f'IF(OR({a}="",{b}=""),{NO_RANK},IFERROR({lookup},{NO_RANK}))'
                    )
                )
            ranks = f"{rank[0]}{r}:{rank[-1]}{r}"
            row.append(plain_formula(ws, f"MIN({ranks})"))
            row.append(plain_formula(ws, f'IF({best}{r}>={NO_RANK},"",MATCH({best}{r},{ranks},0))'))
            syms = f"{sym[0]}{r}:{sym[-1]}{r}"
            key = f"INDEX({syms},{at}{r})*{v}+INDEX({syms},{at}{r}+1)"
            row.append(
                plain_formula(
                    ws, f'IF({at}{r}="","",INDEX(tok_merge_ids,MATCH({key},tok_merge_keys,1)))'
                )
            )
            ws.append(row)
            row_of += 1


def _bytes(layout: TokenizeLayout, ws: Any) -> None:
    _head(ws, ["tok_bytes", "character", "byte", "token id"], [10, 10, 6, 9])
    text = "".join(chr(b) for b in ASCII_BYTES[3:]).replace('"', '""')
    ws.append([text_cell(ws, "readable"), plain_formula(ws, f'CHAR(9)&CHAR(10)&CHAR(13)&"{text}"')])
    for b, token_id in zip(ASCII_BYTES, layout.byte_ids, strict=True):
        shown = {9: "tab", 10: "line feed", 13: "return", 32: "space"}.get(b, chr(b))
        ws.append([None, text_cell(ws, shown), b, token_id])


def _merges(layout: TokenizeLayout, ws: Any) -> None:
    titles = ["pair key", "rank", "merged id", "left", "right"]
    _head(ws, titles, [12, 7, 9, 12, 12])
    for key, rank, merged, left, right in layout.merges:
        ws.append([key, rank, merged, value_cell(ws, left), value_cell(ws, right)])


def from_prompt(n: int) -> str:
    """Token n (1-based) of the prompt as the sheets tokenize it, "" past the end or when
    `tok_status` is not ok."""
    word = f"MATCH({n - 1},tok_offsets,1)"
    token = f"INDEX(tok_final,{word},{n}-INDEX(tok_offsets,{word}))"
    return f'IF(tok_status<>"{STATUS_OK}","",IF({n}>tok_count,"",{token}))'
