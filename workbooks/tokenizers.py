"""Tokenizers side by side: one text through GPT-2, GPT-4 (cl100k_base), GPT-4o (o200k_base)
and the bundled model's own tokenizer. Type your own text into `sentence` and re-run: watch
GPT-2 spend one token per space of an 8-space indent where GPT-4 spends one, long numbers
split into 3-digit groups, and Korean or Chinese cost several byte tokens per character in
GPT-2 but about one token per word or character in GPT-4o."""

# ---------------------------------------------------------------- inputs
sentence = (
    "Hello World! HELLO world. How many r's are in STRAWBERRY? The strawberry has 3.\n"
    '\n'
    'def count(word, letter):\n'
    '    total = 0\n'
    '    for ch in word:\n'
    '        if ch == letter:\n'
    '            total += 1\n'
    '    return total\n'
    '\n'
    'In 2024, 127 + 677 = 804 and 1234567 / 1000 = 1234.567.\n'
    'Emoji: 🍓😀👍🏽 🏳️\u200d🌈\n'
    'Korean: 안녕하세요, 세계!\n'
    'Chinese: 你好，世界！\n'
    '<|endoftext|>'
)
"""The text to compare on. The built-in sample has capitals, a strawberry, Python indented by
4 and 8 spaces, long numbers, emoji, Korean, Chinese and a special token."""

tokenizers = ["gpt2-mini", "gpt2", "cl100k_base", "o200k_base"]
"""Which tokenizers, by name: "gpt2", "cl100k_base", "o200k_base", "r50k_base",
"p50k_base" or a model's name."""

# ---------------------------------------------------------------- the comparison
comparison: cell(stage="compare", cols="COMPARE_COLUMNS") = compare_tokenizers(sentence, tokenizers)
"""One row per tokenizer: how many tokens, bytes and characters per token (more is a better
compression), tokens the vocabulary cannot spell (unknown: none for byte-level BPE), tokens
holding part of a character (byte tokens), and the text with each boundary shown as |."""

gpt2: cell(stage="compare") = load_named_tokenizer("gpt2")
"""GPT-2's tokenizer (50,257 tokens)."""

gpt4: cell(stage="compare") = load_named_tokenizer("cl100k_base")
"""GPT-4's tokenizer, cl100k_base (100,277 tokens)."""

gpt4o: cell(stage="compare") = load_named_tokenizer("o200k_base")
"""GPT-4o's tokenizer, o200k_base (200,019 tokens)."""

gpt2_tokens: cell(stage="compare") = token_pieces(gpt2, sentence)
"""The text GPT-2 puts in each token."""

gpt4_tokens: cell(stage="compare") = token_pieces(gpt4, sentence)
"""The text GPT-4 puts in each token."""

gpt4o_tokens: cell(stage="compare") = token_pieces(gpt4o, sentence)
"""The text GPT-4o puts in each token."""
