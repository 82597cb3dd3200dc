"""The embedding explorer: what the model's two lookup tables have learned. Every token is a
row of `wte`, every position a row of `wpe`; cosine similarity (1 = same direction, 0 =
unrelated, -1 = opposite) says which rows point the same way. Find a token's neighbours, try
an analogy (father − man + woman), compare a few tokens side by side, and watch how nearby
positions resemble each other. Works with any model: set `model` (gpt2-mini by default)."""

# ---------------------------------------------------------------- inputs
model = "gpt2-mini"
"""Which weights to use, by name: your models folder first, then the bundled ones (gpt2-mini).
A folder of CSV tables is given by you (`cellgpt tui --workbook embeddings --model DIR`)."""

token = " king"
"""The token to explore, as its text or its id. Text must be exactly one token of the model's
vocabulary; most word tokens carry their leading space (" king", not "king")."""

top_n = 10
"""How many tokens the `neighbours` and `analogy` lists show."""

a = " father"
"""The analogy a − b + c ≈ ?: "father is to man as ? is to woman"."""

b = " man"
"""Taken away from a."""

c = " woman"
"""Added to a − b."""

compare = [" king", " queen", " man", " woman", " father", " mother", " day", " night"]
"""Tokens to compare with each other in `compare_cosine`."""

show_positions = 1024
"""How many positions `wpe_cosine` compares (at most the context length, n_ctx)."""

# ---------------------------------------------------------------- the model's tables
weights: cell(kind="model") = load_weights(model)
"""All parameter tables of the model, loaded from CSV (cached as binary after the first load)."""

tokenizer: cell(kind="model") = load_tokenizer(model)
"""The model's byte-level BPE tokenizer: which text each token id stands for."""

wte: cell(kind="param", rows="vocab") = param(weights, "wte.weight")
"""Token embedding table: one learned row of n_embd numbers per vocabulary entry."""

wpe: cell(kind="param") = param(weights, "wpe.weight")
"""Position embedding table: one learned row per position in the context."""

vocab: cell(kind="model") = token_labels(tokenizer, shape(wte)[0])
"""Every token's text, in id order: the row labels of `wte`."""

# ---------------------------------------------------------------- nearest tokens
token_id: cell(stage="nearest") = token_id_of(tokenizer, token)
"""The id of `token` (an error names the pieces of a text that is not one token)."""

token_vector: cell(stage="nearest") = row(wte, token_id)
"""The token's row of `wte`: its meaning, as the model learned it."""

similarity: cell(stage="nearest", rows="vocab") = cosine_rows(wte, token_vector)
"""Cosine similarity of the token's row with every row of `wte`: the dot product divided by
both lengths, so only the direction counts. The token itself scores 1."""

neighbours: cell(stage="nearest", cols="SIMILAR_COLUMNS") = most_similar(tokenizer, similarity, top_n, [token_id])
"""The most similar other tokens: often the same kind of word (royals, pronouns, numbers).
Equal cosines are listed by id."""

# ---------------------------------------------------------------- analogy
analogy_words: cell(stage="analogy") = [a, b, c]
"""The analogy's three tokens."""

analogy_ids: cell(stage="analogy", rows="analogy_words") = token_ids_of(tokenizer, analogy_words)
"""Their ids."""

analogy_vector: cell(stage="analogy") = row(wte, analogy_ids[0]) - row(wte, analogy_ids[1]) + row(wte, analogy_ids[2])
"""a − b + c on the raw rows: start at a, take away what b has, add what c has."""

analogy_similarity: cell(stage="analogy", rows="vocab") = cosine_rows(wte, analogy_vector)
"""Cosine similarity of a − b + c with every token's row."""

analogy: cell(stage="analogy", cols="SIMILAR_COLUMNS") = most_similar(tokenizer, analogy_similarity, top_n, analogy_ids)
"""The best candidates, leaving out a, b and c themselves (as is usual: a − b + c is often
still closest to a)."""

answer: cell(stage="analogy") = analogy[0][1]
"""The analogy's best answer."""

# ---------------------------------------------------------------- compare tokens
compare_ids: cell(stage="compare", rows="compare") = token_ids_of(tokenizer, compare)
"""The ids of the tokens to compare."""

compare_cosine: cell(stage="compare", rows="compare", cols="compare") = cosine_matrix(embed_tokens(wte, compare_ids))
"""Cosine similarity of every pair: related words light up off the diagonal."""

# ---------------------------------------------------------------- positions
wpe_shown: cell(stage="positions", rows="position_ids") = first_positions(wpe, show_positions)
"""The first `show_positions` rows of the position table."""

position_ids: cell(stage="positions") = arange(0, shape(wpe_shown)[0], 1, "int64")
"""Positions 0, 1, 2, …: row labels of the position tables."""

wpe_cosine: cell(stage="positions", rows="position_ids", cols="position_ids") = cosine_matrix(wpe_shown)
"""Cosine similarity of every position with every position. Nearby positions point the same
way (a bright band along the diagonal) and far-apart ones differ: position is encoded
smoothly, which is how the model can tell near from far."""

position_norms: cell(stage="positions", rows="position_ids") = norm(wpe_shown, 1)
"""The length of each position's row; compare with a token row's length (`token_vector`)."""

token_at_positions: cell(stage="positions", rows="position_ids") = token_vector + wpe_shown
"""What block 0 receives when `token` stands at each position: its row of `wte` plus that
position's row of `wpe` (the `embed` cell of the GPT-2 workbook, for one token everywhere)."""

position_shift: cell(stage="positions", rows="position_ids") = cosine_rows(token_at_positions, token_vector)
"""Cosine of token + position with the token alone, per position: close to 1 means the
position barely turns the token's direction; lower means the position weighs in more."""

# ---------------------------------------------------------------- signs
wte_negative: cell(stage="signs") = mean(wte < 0)
"""The fraction of numbers in `wte` that are negative: about half. Embeddings are not
counts or probabilities; a number's sign only means which way along that dimension."""

wpe_negative: cell(stage="signs") = mean(wpe < 0)
"""The same for the position table."""
