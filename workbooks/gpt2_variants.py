"""GPT-2 with two parts swapped for others, written as function cells: RMSNorm (LLaMA's layer
norm without centring or bias) in place of both layer norms of block 0, and a ReLU MLP (the
original Transformer's) in place of its GELU MLP. Everything else is the GPT-2 workbook
(workbooks/gpt2.py), statement for statement; compare the two predictions:

    cellgpt run "Mike is quick. He moves" --workbook gpt2
    cellgpt run "Mike is quick. He moves" --workbook gpt2_variants

In the TUI the swapped cells are marked ✎; U on one goes back to GPT-2's formula (u redoes
the swap), so the effect of each part shows in the next-token panel. The weights stay
GPT-2's: the swapped block was not trained with these parts, so expect worse guesses — the
point is to see how much each part matters."""

# ---------------------------------------------------------------- inputs
model = "gpt2-mini"
"""Which weights to use, by name: your models folder first, then the bundled ones (gpt2-mini).
A folder of CSV tables is given by you, e.g. `cellgpt run --model DIR` or
`cellgpt.open("gpt2", model=DIR)`; a workbook file cannot name a folder itself."""

prompt = "Mike is quick. He moves"
"""The text the model continues."""

generated = []
"""Token ids appended after the prompt by generation (empty to start)."""

allow_special = True
"""Whether text such as <|endoftext|> in the prompt becomes its special token."""

# ---------------------------------------------------------------- function cells
def rms_norm(x, w, eps):
    """RMSNorm: each row divided by its root mean square, then × a learned gain w. Unlike
    layer norm, no mean is subtracted and there is no bias (LLaMA, T5)."""
    return x / sqrt(mean(x * x, axis=-1, keepdims=True) + eps) * w

def relu_mlp(x, w_fc, b_fc, w_proj, b_proj):
    """The MLP with ReLU, max(0, x), in place of GELU: widen to 4× the width, cut the
    negatives to zero, project back (the original Transformer's MLP)."""
    return matmul(relu(matmul(x, w_fc) + b_fc), w_proj) + b_proj

# ---------------------------------------------------------------- the model's tables
weights: cell(kind="model") = load_weights(model)
"""All parameter tables of the model, loaded from CSV (cached as binary after the first load)."""

tokenizer: cell(kind="model") = load_tokenizer(model)
"""The byte-level BPE tokenizer: a vocabulary (encoder.json) and ranked merges (vocab.bpe)."""

config: cell(kind="model") = model_config(weights)
"""The model's shape: blocks, heads, width, context length, vocabulary size."""

n_layer = config["n_layer"]
"""How many transformer blocks are stacked (12 in GPT-2 small)."""

n_head = config["n_head"]
"""Attention heads per block; each looks at the text in its own way."""

eps = config["layer_norm_epsilon"]
"""Small number added inside layer norm's square root so it never divides by zero."""

wte: cell(kind="param") = param(weights, "wte.weight")
"""Token embedding table: one learned row of numbers per vocabulary entry."""

wpe: cell(kind="param") = param(weights, "wpe.weight")
"""Position embedding table: one learned row per position in the context."""

ln_f.weight: cell(kind="param") = param(weights, "ln_f.weight")
"""Final layer norm: per-dimension gain (the learned scale)."""

ln_f.bias: cell(kind="param") = param(weights, "ln_f.bias")
"""Final layer norm: per-dimension shift."""

# ---------------------------------------------------------------- tokenize
words: cell(stage="tokenize") = split_words(tokenizer, prompt, allow_special)
"""Step 1 of tokenizing: a regular expression cuts the text into words, numbers, punctuation
and runs of spaces; a leading space stays attached to the word after it (" moves")."""

bpe: cell(stage="tokenize", cols="BPE_COLUMNS") = bpe_passes(tokenizer, words)
"""Step 2: byte-pair encoding. Each word starts as single bytes; every pass merges the adjacent
pair that ranks best in the learned merge list, until no listed pair is left."""

prompt_ids: cell(stage="tokenize") = bpe_ids(tokenizer, bpe)
"""Step 3: each final piece's number in the vocabulary."""

token_ids: cell(stage="tokenize", rows="tokens") = prompt_ids + generated
"""The token ids the model reads: the prompt's, then any generated ones."""

tokens: cell(stage="tokenize", title="Tokens") = token_texts(tokenizer, token_ids)
"""The tokens as text (labels for every matrix below)."""

n_tokens = len(token_ids)
"""How many tokens (rows) flow through the model."""

vocab: cell(stage="tokenize", cols="VOCAB_TABLE_COLUMNS") = vocab_table(tokenizer)
"""The vocabulary: one row per token id with its text (a leading space shown as ·), its exact
bytes, how many bytes, and the rank of the merge that made it (blank for the 256 single bytes
and for special tokens such as <|endoftext|>). Find a token with / to read its id: the original
spreadsheet's token → id lookup."""

merges: cell(stage="tokenize", cols="MERGES_TABLE_COLUMNS") = merges_table(tokenizer)
"""The learned merge list (vocab.bpe) in rank order: step 2 always applies the lowest-ranked
pair first. Each row joins a left and a right token into a result; the last column is the
result's token id."""

# ---------------------------------------------------------------- embed
wte_rows: cell(stage="embed", rows="tokens", title="Token embeddings", alias="hook_embed") = embed_tokens(wte, token_ids)
"""Each token's row of the token embedding table: what the token means, as numbers."""

wpe_rows: cell(stage="embed", rows="tokens", title="Position embeddings", alias="hook_pos_embed") = positions(wpe, n_tokens)
"""Rows 0..n-1 of the position table: where each token stands."""

embed: cell(stage="embed", rows="tokens") = wte_rows + wpe_rows
"""Token meaning plus position: the residual stream entering block 0."""

# ---------------------------------------------------------------- the transformer blocks
with block("h", count=n_layer, input=embed, output="resid_post", steps="h{i}.step", first_step=1):
    """One transformer block: attention (tokens look at earlier tokens) and an MLP (each token
    thinks on its own), each added back onto the residual stream. Its cells answer to the
    original spreadsheet's step numbers, h{i}.step1 … h{i}.step16, and to TransformerLens's
    hook names (blocks.{i}.hook_resid_pre, blocks.{i}.ln1.hook_normalized, …)."""

    ln_1.weight: cell(kind="param") = param(weights, "ln_1.weight", i)
    """Layer norm 1: per-dimension gain (the learned scale)."""
    ln_1.bias: cell(kind="param") = param(weights, "ln_1.bias", i)
    """Layer norm 1: per-dimension shift."""
    attn.c_attn.weight: cell(kind="param") = param(weights, "attn.c_attn.weight", i)
    """Projection from the stream to queries, keys and values (side by side)."""
    attn.c_attn.bias: cell(kind="param") = param(weights, "attn.c_attn.bias", i)
    """Bias of the query/key/value projection."""
    attn.c_proj.weight: cell(kind="param") = param(weights, "attn.c_proj.weight", i)
    """Projection from the heads' outputs back to the stream."""
    attn.c_proj.bias: cell(kind="param") = param(weights, "attn.c_proj.bias", i)
    """Bias of the attention output projection."""
    ln_2.weight: cell(kind="param") = param(weights, "ln_2.weight", i)
    """Layer norm 2: per-dimension gain (the learned scale)."""
    ln_2.bias: cell(kind="param") = param(weights, "ln_2.bias", i)
    """Layer norm 2: per-dimension shift."""
    mlp.c_fc.weight: cell(kind="param") = param(weights, "mlp.c_fc.weight", i)
    """MLP expansion: stream width → 4× width."""
    mlp.c_fc.bias: cell(kind="param") = param(weights, "mlp.c_fc.bias", i)
    """Bias of the MLP expansion."""
    mlp.c_proj.weight: cell(kind="param") = param(weights, "mlp.c_proj.weight", i)
    """MLP contraction: 4× width → stream width."""
    mlp.c_proj.bias: cell(kind="param") = param(weights, "mlp.c_proj.bias", i)
    """Bias of the MLP contraction."""

    resid_pre: cell(step=True, rows="tokens", alias="blocks.{i}.hook_resid_pre") = prev
    """The residual stream entering this block."""
    ln_1.scale: cell(rows="tokens", alias="blocks.{i}.ln1.hook_scale") = norm_scale(resid_pre, eps)
    """Layer norm 1's divisor for each token: sqrt(variance of the row + eps), one number per
    token (the population variance, as PyTorch's LayerNorm uses)."""
    ln_1.normalized: cell(step=True, rows="tokens", evict=True, alias="blocks.{i}.ln1.hook_normalized") = normalize(resid_pre, eps)
    """Layer norm 1, normalising: each token's row minus its mean, divided by its scale
    (ln_1.scale), so every row has mean 0 and variance 1 (before the learned gain and bias)."""
    ln_1: cell(step=True, rows="tokens", evict=True) = ln_1.normalized * ln_1.weight + ln_1.bias
    """Layer norm 1, then × a learned gain and + a learned bias per dimension: attention's
    input."""
    qkv: cell(step=True, rows="tokens", evict=True) = matmul(ln_1, attn.c_attn.weight) + attn.c_attn.bias
    """One matrix product makes every token's query, key and value vectors (side by side)."""
    q: cell(step="q", rows="tokens", alias="blocks.{i}.attn.hook_q") = split_heads(qkv, 0, n_head)
    """Queries, split into heads: what each token is looking for. Shape [head, token, d_head]."""
    k: cell(step="k", rows="tokens", alias="blocks.{i}.attn.hook_k") = split_heads(qkv, 1, n_head)
    """Keys, split into heads: what each token offers to be found by."""
    v: cell(step="v", rows="tokens", alias="blocks.{i}.attn.hook_v") = split_heads(qkv, 2, n_head)
    """Values, split into heads: what each token passes on when attended to."""
    attn.scores: cell(step=True, rows="tokens", cols="tokens", evict=True, alias="blocks.{i}.attn.hook_attn_scores") = attention_scores(q, k)
    """How well each query matches each earlier key: q·kᵀ/√d_head. Later tokens are masked to
    -inf, so a token can only look back (the model is causal)."""
    attn.pattern: cell(step=True, rows="tokens", evict=True, cols="tokens", alias="blocks.{i}.attn.hook_pattern") = softmax(attn.scores)
    """Softmax turns each row of scores into weights that sum to 1: where each token looks."""
    attn.z: cell(step=True, rows="tokens", evict=True, alias="blocks.{i}.attn.hook_z") = merge_heads(matmul(attn.pattern, v))
    """Each token's weighted mix of the values it looks at, heads side by side."""
    attn.out: cell(step=True, rows="tokens", evict=True, alias="blocks.{i}.hook_attn_out") = matmul(attn.z, attn.c_proj.weight) + attn.c_proj.bias
    """The heads' findings projected back to the stream's width."""
    resid_mid: cell(step=True, rows="tokens", alias="blocks.{i}.hook_resid_mid") = resid_pre + attn.out
    """Residual connection: attention's output is added to the stream."""
    ln_2.scale: cell(rows="tokens", alias="blocks.{i}.ln2.hook_scale") = norm_scale(resid_mid, eps)
    """Layer norm 2's divisor for each token: sqrt(variance of the row + eps)."""
    ln_2.normalized: cell(step=True, rows="tokens", evict=True, alias="blocks.{i}.ln2.hook_normalized") = normalize(resid_mid, eps)
    """Layer norm 2, normalising: each row minus its mean, divided by its scale (ln_2.scale)."""
    ln_2: cell(step=True, rows="tokens", evict=True) = ln_2.normalized * ln_2.weight + ln_2.bias
    """× gain + bias: the MLP's input."""
    mlp.fc: cell(step=True, rows="tokens", evict=True, alias="blocks.{i}.mlp.hook_pre") = matmul(ln_2, mlp.c_fc.weight) + mlp.c_fc.bias
    """The MLP widens each token's vector to 4× the width."""
    mlp.gelu: cell(step=True, rows="tokens", evict=True, alias="blocks.{i}.mlp.hook_post") = gelu(mlp.fc)
    """GELU: a smooth ReLU, 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))."""
    mlp.out: cell(step=True, rows="tokens", evict=True, alias="blocks.{i}.hook_mlp_out") = matmul(mlp.gelu, mlp.c_proj.weight) + mlp.c_proj.bias
    """…and projects it back to the stream's width."""
    resid_post: cell(step=True, rows="tokens", alias="blocks.{i}.hook_resid_post") = resid_mid + mlp.out
    """Residual connection: the MLP's output is added; this is the block's output."""

# ---------------------------------------------------------------- output
ln_f.scale: cell(stage="output", rows="tokens", alias="ln_final.hook_scale") = norm_scale(h.out, eps)
"""The final layer norm's divisor for each token: sqrt(variance of the row + eps)."""

ln_f.normalized: cell(stage="output", rows="tokens", evict=True, title="Final layer norm", alias="ln_final.hook_normalized") = normalize(h.out, eps)
"""Final layer norm of the last block's output, normalising: each row minus its mean, divided
by its scale (ln_f.scale)."""

ln_f: cell(stage="output", rows="tokens") = ln_f.normalized * ln_f.weight + ln_f.bias
"""× gain + bias: every position's final vector, ready to be compared with the vocabulary."""

predicted: cell(stage="output", title="Predicted embedding") = last_row(ln_f)
"""The last token's final vector: the model's prediction, as an embedding. The next token is
the vocabulary entry whose embedding matches it best."""

logits_all: cell(stage="output", rows="tokens", on_demand=True) = matmul(ln_f, transpose(wte))
"""A score for every vocabulary entry at every position: each row of ln_f dotted with every
row of the token embedding table (the output head shares the input table)."""

logits: cell(stage="output", title="Logits") = matmul(predicted, transpose(wte))
"""The scores for the token after the last one: the predicted embedding dotted with every
row of the token embedding table (only the last row is needed to predict)."""

probs: cell(stage="output") = softmax(logits)
"""Softmax of the logits: the predicted probability of each possible next token."""

show_k = 10
"""How many candidates `top_k` lists."""

top_k: cell(stage="output", cols="TOP_K_COLUMNS") = top_tokens(tokenizer, logits, show_k)
"""The most likely next tokens with their probabilities."""

next_token: cell(stage="output", title="Predicted token") = argmax(logits)
"""Greedy choice: the single most likely next token id (the one with the largest logit)."""

max_logit: cell(stage="output") = max(logits)
"""The largest logit: the predicted token's score."""

next_text: cell(stage="output") = token_text(tokenizer, next_token)
"""The greedy next token as text."""

temperature = 1.0
"""Sampling temperature: below 1 sharpens the distribution, above 1 flattens it; 0 is greedy."""

sample_top_k = 0
"""Sample only among the k most likely tokens (0 = no limit)."""

top_p = 1.0
"""Nucleus sampling: keep the fewest tokens whose probabilities add up to top_p."""

seed = 0
"""Random seed: the same seed gives the same samples."""

sample: cell(stage="output") = sample_token(logits, temperature, sample_top_k, top_p, seed, len(generated))
"""A sampled next token id (temperature, top-k, top-p), reproducible through the seed."""

# ---------------------------------------------------------------- the swap: block 0
h0.ln_1 = rms_norm(h0.resid_pre, h0.ln_1.weight, eps)
h0.ln_2 = rms_norm(h0.resid_mid, h0.ln_2.weight, eps)
h0.mlp.out = relu_mlp(h0.ln_2, h0.mlp.c_fc.weight, h0.mlp.c_fc.bias, h0.mlp.c_proj.weight, h0.mlp.c_proj.bias)
