"""The tokenizer workbench: watch byte-pair encoding learn a vocabulary from a tiny corpus,
merge by merge, then encode a prompt with what it learned. The corpus is the textbook one
(low ×5, lower ×2, newest ×6, widest ×3). Edit the corpus, the number of merges or the
prompt and re-run; `cellgpt tokenizer train` uses the very same trainer on real corpora."""

# ---------------------------------------------------------------- inputs
corpus = "low low low low low lower lower newest newest newest newest newest newest widest widest widest"
"""The training text. Every distinct chunk is counted once with its frequency."""

pattern = "gpt2"
"""How text is cut into chunks before merging: "gpt2", "gpt4" (cl100k), "o200k", or "none"
(minbpe's basic tokenizer: the whole text is one chunk, so merges may cross spaces)."""

specials = ["<|endoftext|>"]
"""Special tokens: never split, never merged, each gets its own id after the merges."""

n_merges = 10
"""How many merges to learn; the vocabulary is 256 bytes + merges + special tokens."""

prompt = "lowest newer wider"
"""Text to encode with the trained vocabulary: words it has never seen as a whole."""

# ---------------------------------------------------------------- training
chunks: cell(stage="train") = chunk_counts(corpus, pattern, specials)
"""Step 1: the split pattern cuts the corpus into chunks (a leading space stays on the word:
" low" and "low" differ). Identical chunks are counted once, with their frequency."""

pass_columns = training_columns(chunks)
"""Labels of the training table: what each pass merged, then every chunk's tokens."""

training: cell(stage="train", cols="pass_columns") = training_passes(corpus, n_merges, pattern, specials)
"""Step 2: each pass counts every adjacent pair of tokens over all chunks (weighted by the
chunk's frequency), merges the most frequent pair everywhere into one new token, and repeats.
Ties go to the pair whose bytes sort first (b"a" < b"ab" < b"b"), so training is repeatable.
Row 0 is the start: every chunk as single bytes; tokens are separated by "·", a space is "␣"."""

vocab_size = 256 + n_merges + len(specials)
"""The vocabulary size: 256 single bytes, one token per merge, one per special token."""

trained: cell(stage="train") = train_tokenizer(corpus, vocab_size, pattern, specials)
"""The same training with the real trainer, as a vocabulary you could save."""

merges: cell(stage="train", cols="MERGE_COLUMNS") = learned_merges(trained)
"""The merge list (vocab.bpe): rank order is the order they were learned, and encoding
replays them in that order."""

tokenizer: cell(stage="train") = as_tokenizer(trained)
"""The trained vocabulary as a tokenizer: the same code that reads GPT-2's own files."""

vocab: cell(stage="train", cols="VOCAB_TABLE_COLUMNS") = vocab_table(tokenizer)
"""The whole vocabulary, one row per id: the 256 single bytes, then one token per merge (its
rank in the last column), then the special tokens."""

# ---------------------------------------------------------------- encoding
words: cell(stage="encode") = split_words(tokenizer, prompt)
"""Step 1 of encoding: the same split pattern cuts the prompt into words."""

bpe: cell(stage="encode", cols="BPE_COLUMNS") = bpe_passes(tokenizer, words)
"""Step 2: each word starts as bytes; every pass applies the best-ranked learned merge that
fits, until none does. Unseen words still encode: they end as known pieces."""

ids: cell(stage="encode") = bpe_ids(tokenizer, bpe)
"""Step 3: each final piece's id in the vocabulary."""

tokens: cell(stage="encode") = token_texts(tokenizer, ids)
"""The pieces as text."""

decoded: cell(stage="encode") = decode_ids(tokenizer, ids)
"""Decoding joins the pieces' bytes again: always the prompt back, byte for byte."""

# ---------------------------------------------------------------- a named tokenizer, traced
tokenizer_name = "cl100k_base"
"""Any tokenizer by name: "gpt2", "cl100k_base" (GPT-4), "o200k_base" (GPT-4o), "r50k_base",
"p50k_base", or a model's name. Its merges are traced below by the same code as GPT-2's."""

word = " strawberry"
"""A word (or a sentence) to watch the named tokenizer merge."""

named_tokenizer: cell(stage="named") = load_named_tokenizer(tokenizer_name)
"""The named tokenizer. GPT-4's and GPT-4o's are rank tables (token bytes → rank): each pass
joins the adjacent pair whose result has the lowest rank, as tiktoken does."""

named_words: cell(stage="named") = split_words(named_tokenizer, word)
"""The word cut by the named tokenizer's own split pattern (GPT-4 keeps up to 3 digits
together and lets a word start with punctuation)."""

named_bpe: cell(stage="named", cols="BPE_COLUMNS") = bpe_passes(named_tokenizer, named_words)
"""Every merge pass, from single bytes to the final tokens; `rank` is the new token's id."""

named_ids: cell(stage="named") = bpe_ids(named_tokenizer, named_bpe)
"""The ids: the same as tiktoken's for this tokenizer."""
