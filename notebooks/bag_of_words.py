# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Bag of words and embeddings
#
# Before a recurrent network sees a text, the text becomes numbers. This notebook follows the
# two classic routes with `rnnkit.text`: counting words into a **bag of words** (a matrix with
# one row per document, for linear models), and mapping each word to a dense vector, an
# **embedding**, that a recurrent layer reads one word at a time.
#
# The corpus is the documentation that ships with Python: the docstrings of the public
# functions and classes of some thirty standard-library modules.

# %%
import importlib
import inspect

import numpy as np

from rnnkit.text import BagOfWords, Vocabulary, english_stop_words, normalize, to_sequences, tokenize

# %% [markdown]
# ## Normalisation
#
# `normalize` lowercases, replaces punctuation, digits and symbols by spaces (so words stay
# apart) and collapses whitespace. Letters of every script are kept; accents can be removed.

# %%
samples = ["The cat sat on the mat.", "It's 3:15pm -- the e-mail arrived!", "Crème brûlée, naïvely."]
for s in samples:
    print(f"{s!r:40} -> {normalize(s)!r}")
print(repr(normalize(samples[2], strip_accents="unicode")))

# %% [markdown]
# ## Stop words
#
# The most frequent words of a language ("the", "of", "it's") say little about a document's
# topic. Removing them shrinks the vocabulary; rnnkit's English list is applied after
# normalisation, so contractions are matched as the tokenizer writes them.

# %%
stop = english_stop_words()
print(len(stop), "stop words, e.g.", sorted(stop)[:12])
sentence = "It's not the size of the dog in the fight, it's the size of the fight in the dog."
print(tokenize(sentence))
without = tokenize(sentence, stop_words="english")
print(without)
assert "not" not in without

# %% [markdown]
# Removing stop words is a choice, not a rule: the second line lost "not", which decides the
# meaning of a review. `english_stop_words() - {"not", "no", "nor"}` keeps negations.
#
# ## N-grams
#
# A bag of single words forgets order. Word n-grams (runs of `n` words) keep some of it; note
# that they are built after stop-word removal. Character n-grams (`char_wb`: within words)
# make misspellings and word forms share features.

# %%
print(tokenize("state of the art neural networks", ngram_range=(1, 2), stop_words="english"))
print(tokenize("networks", analyzer="char_wb", ngram_range=(3, 3)))

# %% [markdown]
# ## The document-term matrix and the term-document matrix
#
# Counting gives one number per (document, term). Laid out with **documents in rows** it is
# the document-term matrix (DTM), the layout of scikit-learn and of any classifier: one row per
# sample. Its transpose, **terms in rows**, is the term-document matrix (TDM) of information
# retrieval, where each row describes a word by the documents it occurs in.

# %%
docs = ["the cat sat on the mat", "the dog sat on the log", "the cat chased the dog",
        "a dog and a cat"]
bow = BagOfWords(stop_words="english")
dtm = bow.fit_transform(docs)
terms = bow.get_feature_names_out()


def show(matrix, rows, cols, fmt="{:5}"):
    print(" " * 8 + "".join(f"{c:>7}" for c in cols))
    for name, row in zip(rows, matrix):
        print(f"{name:8}" + "".join(f"{fmt.format(v):>7}" for v in row))


show(dtm.toarray(), [f"doc {i}" for i in range(len(docs))], terms)
print()
tdm = bow.term_document(dtm)
show(tdm.toarray(), terms, [f"doc {i}" for i in range(len(docs))])
print(f"\nDTM {dtm.shape} (documents x terms), TDM {tdm.shape} (terms x documents), "
      f"stored sparse: {type(dtm).__name__}")
assert (tdm.toarray() == dtm.toarray().T).all()

# %% [markdown]
# ## tf-idf
#
# Raw counts favour words that are everywhere. tf-idf multiplies each count by the inverse
# document frequency `idf(t) = ln((1 + n) / (1 + df(t))) + 1`, so the more documents a term
# occurs in, the less it weighs, and scales each row to unit length.

# %%
tfidf = BagOfWords(stop_words="english", weighting="tfidf")
weights = tfidf.fit_transform(docs)
for term, idf, df in zip(tfidf.get_feature_names_out(), tfidf.idf_, tfidf.document_frequency_):
    print(f"{term:7} in {df} of {len(docs)} documents: idf {idf:.3f}")
show(weights.toarray(), [f"doc {i}" for i in range(len(docs))], terms, "{:.2f}")

# %% [markdown]
# ## A real corpus: Python's docstrings
#
# The same steps on the standard library's documentation. Each document is one docstring of
# at least eight words; its label is the module it comes from.

# %%
MODULES = ["os", "pathlib", "shutil", "json", "csv", "re", "string", "textwrap", "collections",
           "itertools", "functools", "random", "statistics", "math", "datetime", "calendar",
           "socket", "threading", "subprocess", "logging", "argparse", "tarfile", "zipfile",
           "gzip", "http.client", "urllib.request", "email.message", "sqlite3", "decimal",
           "fractions"]
corpus, labels = [], []
for name in MODULES:
    module = importlib.import_module(name)
    for attr, obj in vars(module).items():
        if attr.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)
                                        or inspect.isbuiltin(obj)):
            continue
        doc = inspect.getdoc(obj)
        if doc and len(doc.split()) >= 8 and doc not in corpus:
            corpus.append(doc)
            labels.append(name)
print(f"{len(corpus)} docstrings, {sum(len(d.split()) for d in corpus)} words, "
      f"from {len(set(labels))} modules")

# %% [markdown]
# Search by similarity: the tf-idf rows have unit length, so the cosine similarity of two
# documents is their dot product. Ask for the docstrings closest to a query written in words:

# %%
search = BagOfWords(stop_words="english", weighting="tfidf", ngram_range=(1, 2), min_df=2)
X = search.fit_transform(corpus)
print(f"DTM of the corpus: {X.shape[0]} documents x {X.shape[1]} terms, "
      f"{X.nnz / (X.shape[0] * X.shape[1]):.2%} of the entries non-zero")

for query in ["compress a file into an archive", "random number from a distribution"]:
    scores = (X @ search.transform([query]).T).toarray().ravel()
    best = np.argsort(-scores)[:3]
    print(f"\n{query!r}:")
    for i in best:
        print(f"  {scores[i]:.2f}  [{labels[i]}] {corpus[i].splitlines()[0][:70]}")

# %% [markdown]
# ## From words to ids: the vocabulary
#
# A recurrent network reads a text as a sequence of ids. `Vocabulary` numbers the words by
# frequency after two reserved ids, `<pad>` (0) and `<unk>` (1, for words it has not seen);
# `to_sequences` pads the id sequences to one length and returns the true lengths.

# %%
vocab = Vocabulary.from_texts(corpus, stop_words="english", min_freq=3)
print(f"{len(vocab)} tokens; the most frequent: {vocab.tokens[2:12]}")
ids, lengths = to_sequences(["Return the path of the file.", "Open a socket connection"],
                            vocab, max_len=6)
print(ids)
print("lengths", lengths, "->", [vocab.decode(row) for row in ids])

# %% [markdown]
# ## An embedding layer
#
# An embedding is a table `W` of shape `(vocabulary size, dimension)`; looking a word up is
# taking its row, and the layer's gradient adds into the rows of the words that were used.
# `rnnkit.nn.Embedding` keeps the padding row at zero, so padding never carries a signal.

# %%
from rnnkit import nn  # noqa: E402

embed = nn.Embedding(len(vocab), 8, padding_idx=vocab.pad_id, seed=0)
out = embed.forward(ids)
print("ids", ids.shape, "-> vectors", out.shape)
print("row of a padded step:", out[1, -1])
embed.zero_grad()
embed.backward(np.ones_like(out))
used = np.flatnonzero(np.abs(embed.grads()["W"]).sum(axis=1))
print("rows with a gradient:", used.tolist(), "= the ids used:",
      sorted(set(ids[ids != vocab.pad_id].tolist())))
assert not out[1, -1].any()

# %% [markdown]
# A trained network learns its table. The table can also start from vectors computed from the
# corpus itself: count how often two words occur within a few words of each other, weight the
# counts by how surprising they are (positive pointwise mutual information) and keep the main
# directions of that matrix (a truncated SVD). Words used in similar contexts get similar rows.

# %%
from rnnkit.embedding import most_similar  # noqa: E402
from rnnkit.text import cooccurrence_vectors  # noqa: E402

W = cooccurrence_vectors(corpus, vocab, dim=64, window=5)
print("vectors", W.shape)
for word in ["file", "directory", "read", "thread", "year", "error"]:
    print(f"{word:10}", ", ".join(f"{w} {c:.2f}" for w, c in most_similar(W, vocab, word, k=5)))

# %% [markdown]
# `most_similar` ranks the words by the cosine of the angle between their vectors. For
# comparison, the cosine of two words picked at random, and of each word above with its
# nearest neighbour:

# %%
rng = np.random.default_rng(0)
rows = W[vocab.n_specials:]
unit = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
pairs = rng.integers(0, len(unit), size=(2000, 2))
random_cos = np.sum(unit[pairs[:, 0]] * unit[pairs[:, 1]], axis=1)
nearest = [most_similar(W, vocab, w, k=1)[0][1]
           for w in ["file", "directory", "read", "thread", "year", "error"]]
print(f"random pairs: median cosine {np.median(random_cos):.2f}; "
      f"these words with their nearest neighbour: {min(nearest):.2f} to {max(nearest):.2f}")
assert min(nearest) > np.quantile(random_cos, 0.95)

# %% [markdown]
# To start a network from these vectors, copy them into its embedding layer
# (`embed.W[...] = W`); `rnnkit.models.TextClassifier` does this by default
# (`init_embeddings="corpus"`).

# %%
embed = nn.Embedding(len(vocab), 64, padding_idx=vocab.pad_id)
embed.W[...] = W
print(most_similar(embed.W, vocab, "socket", k=3))
