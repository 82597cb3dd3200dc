"""Word embeddings in miniature: king − man + woman ≈ queen.

Each word is a vector of four hand-made features (royalty, maleness, person-ness, fruitiness).
Vector arithmetic moves along the "gender" direction; cosine similarity finds the nearest word.
Change a feature or the words in the analogy and re-run `answer`."""

words = ["king", "queen", "man", "woman", "prince", "princess", "apple", "banana"]
"""The vocabulary."""

features = ["royalty", "male", "person", "fruit"]
"""What each embedding column means."""

embeddings: cell(rows="words", cols="features") = array(
    [
        [0.95, 0.90, 0.70, 0.00],  # king
        [0.95, -0.90, 0.70, 0.00],  # queen
        [0.05, 0.90, 0.95, 0.00],  # man
        [0.05, -0.90, 0.95, 0.00],  # woman
        [0.80, 0.80, 0.50, 0.05],  # prince
        [0.80, -0.80, 0.50, 0.05],  # princess
        [0.00, 0.00, 0.00, 1.00],  # apple
        [0.00, 0.00, 0.05, 0.95],  # banana
    ]
)
"""One row per word: the word's embedding vector."""

a = "king"
b = "man"
c = "woman"

analogy: cell(cols="features") = (
    row(embeddings, index_of(words, a))
    - row(embeddings, index_of(words, b))
    + row(embeddings, index_of(words, c))
)
"""a − b + c: start at `a`, remove what `b` has, add what `c` has."""

similarity: cell(rows="words") = cosine(analogy, embeddings)
"""Cosine similarity of the analogy vector with every word (1 = same direction)."""

candidates: cell(rows="words") = where(isin(words, [a, b, c]), -2.0, similarity)
"""Similarities with the three question words ruled out (set to -2)."""

answer = words[argmax(candidates)]
"""The nearest remaining word."""

ranking = nearest(analogy, embeddings, words, 4)
"""The four nearest words with their similarities (question words included)."""
