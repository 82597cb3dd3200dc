"""How a token is shown to a person on one line: its text with edge spaces as · (a leading
space matters in GPT-2), line breaks as symbols and other invisible characters escaped.

Shared by the tokenizer's tables, the TUI's labels and the export, so a token reads the same
everywhere. Byte-level BPE has tokens that are half a UTF-8 character (b"\\xe2\\x80"); those
bytes are shown as \\xNN escapes, never as U+FFFD, so two different fragments never look alike.
"""

from __future__ import annotations

_CONTROL = str.maketrans({"\n": "↵", "\t": "→", "\r": "␍"})


def visible(text: str) -> str:
    """Token text with its edge spaces shown as · and line breaks and tabs as symbols; spaces
    inside the text stay spaces."""
    if "\n" in text or "\t" in text or "\r" in text:  # rare: three scans beat a translate
        text = text.translate(_CONTROL)
    return _edge_dots(text)


def _edge_dots(text: str) -> str:
    if not text or (text[0] != " " and text[-1] != " "):
        return text  # the common case, first: nothing at the edges
    if text[-1] != " " and len(text) > 1 and text[1] != " ":
        return "·" + text[1:]  # the next most common: one leading space (" the")
    core = text.strip(" ")
    if not core:
        return "·" * len(text)
    left = len(text) - len(text.lstrip(" "))
    right = len(text) - len(text.rstrip(" "))
    return "·" * left + core + "·" * right


def token_text(data: bytes) -> str:
    """A token's bytes as readable text: UTF-8 where it decodes, \\xNN for bytes that are not
    (complete) UTF-8, other invisible characters as \\uNNNN, edges as `visible` shows them."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="surrogateescape")
    if text.isprintable():  # C speed; true for all but a few hundred of GPT-2's tokens
        return _edge_dots(text)
    return _edge_dots("".join(_char(ch) for ch in text.translate(_CONTROL)))


def _char(ch: str) -> str:
    if ch.isprintable():
        return ch
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: a byte that did not decode
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
