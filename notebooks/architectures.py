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
# # Architectures
#
# One recurrent cell, several ways to wire it, each on a small task whose data is written by
# code in this notebook or ships with Python:
#
# - **many to one**: read a sequence, output one label (classification);
# - **one to many**: start from a vector, write a sequence (generation);
# - **many to many, unaligned**: an encoder reads a sequence into a context, a decoder writes
#   another sequence from it (sequence to sequence), with embeddings on both sides;
# - the same with a **bidirectional encoder and attention**: the decoder looks back at every
#   source word, and the attention weights show where.

# %%
# %matplotlib inline
import importlib
import inspect
import time

import numpy as np

from rnnkit.models import Seq2Seq, SequenceClassifier, VectorToSequence
from rnnkit.plot import plot_attention
from rnnkit.text import Vocabulary, to_sequences
from rnnkit.train import Trainer

rng = np.random.default_rng(0)

# %% [markdown]
# ## Many to one: what is this docstring about?
#
# The first sentences of standard-library docstrings, labelled by the kind of module they come
# from. The network embeds each word, runs an LSTM over the sentence and classifies its output
# at the last word (`SequenceClassifier`: embedding, recurrent layer, pooling head, linear).

# %%
GROUPS = {"files": ["os", "shutil", "pathlib", "tarfile", "zipfile", "tempfile", "glob"],
          "network": ["socket", "http.client", "urllib.request", "urllib.parse", "smtplib", "ssl"],
          "time": ["datetime", "calendar", "time", "zoneinfo"],
          "text": ["re", "string", "textwrap", "difflib", "unicodedata", "codecs"]}
sentences, labels = [], []
for label, modules in GROUPS.items():
    for name in modules:
        for attr, obj in vars(importlib.import_module(name)).items():
            doc = inspect.getdoc(obj) if not attr.startswith("_") and callable(obj) else None
            first = doc.split("\n\n")[0].replace("\n", " ") if doc else ""
            if len(first.split()) >= 4 and first not in sentences:
                sentences.append(first)
                labels.append(label)
classes = sorted(GROUPS)
y = np.array([classes.index(label) for label in labels])
order = rng.permutation(len(y))
test, train = order[:len(y) // 4], order[len(y) // 4:]
print(f"{len(y)} sentences; per class: {dict(zip(classes, np.bincount(y).tolist()))}")

vocab = Vocabulary.from_texts([sentences[i] for i in train], min_freq=2)
ids, lengths = to_sequences(sentences, vocab, max_len=30)
print(f"vocabulary {len(vocab)}; e.g. {sentences[train[0]]!r} -> {ids[train[0], :8]} ...")

# %%
clf = SequenceClassifier(len(vocab), len(classes), embedding_dim=32, hidden_size=48, seed=0)
trainer = Trainer(clf, lr=5e-3, metrics=["accuracy"], seed=0, quiet=True)
start = time.perf_counter()
history = trainer.fit((ids[train], y[train], lengths[train]), epochs=30, batch_size=32)
accuracy = trainer.evaluate((ids[test], y[test], lengths[test]))["accuracy"]
majority = np.mean(y[test] == np.bincount(y[train]).argmax())
print(f"trained in {time.perf_counter() - start:.1f} s; test accuracy {accuracy:.3f} "
      f"(always the most frequent class: {majority:.3f})")
assert accuracy > majority + 0.1

# %% [markdown]
# ## One to many: writing numbers in words
#
# Now the input is a vector and the output a sequence. A number from 0 to 999 is given as
# three one-hot digits (30 features); the network writes it in English words. The vector sets
# the decoder's initial state and is also fed at every step (`VectorToSequence`,
# `condition="both"`); in training the decoder reads the true previous word (teacher forcing),
# when generating it reads its own.

# %%
ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen " \
       "fifteen sixteen seventeen eighteen nineteen".split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def words(n):
    """English words for 0 <= n < 1_000_000 (British "and")."""
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return ONES[n // 100] + " hundred" + ("" if rest == 0 else " and " + words(rest))
    rest = n % 1000
    tail = "" if rest == 0 else (" and " if rest < 100 else " ") + words(rest)
    return words(n // 1000) + " thousand" + tail


def digit_features(numbers):
    x = np.zeros((len(numbers), 30), np.float32)
    for row, n in enumerate(numbers):
        for k, d in enumerate(f"{n:03d}"):
            x[row, 10 * k + int(d)] = 1.0
    return x


print(words(7), "|", words(40), "|", words(115), "|", words(909))
numbers = rng.permutation(1000)
n_train, n_test = numbers[:700], numbers[700:]
texts = [words(n).split() for n in n_train]
word_vocab = Vocabulary(texts, bos=True, eos=True)
gen = VectorToSequence(30, len(word_vocab), hidden_size=64, vocab=word_vocab, seed=0)
targets, target_lengths = gen.prepare_targets(texts)
start = time.perf_counter()
losses = gen.fit(digit_features(n_train), targets, target_lengths, epochs=40, lr=1e-2)
written = gen.generate(digit_features(n_test))
exact = np.mean([w == words(n) for w, n in zip(written, n_test)])
print(f"trained in {time.perf_counter() - start:.1f} s (loss {losses[0]:.2f} -> {losses[-1]:.3f})")
print(f"300 numbers never seen in training, written exactly right: {exact:.3f}")
for n, w in list(zip(n_test, written))[:5]:
    print(f"  {n:3d} -> {w}")
assert exact > 0.5

# %% [markdown]
# ## Many to many: from words back to digits
#
# The inverse task has a sequence on both sides: read "four hundred and twelve thousand three
# hundred and six" and write `4 1 2 3 0 6`. An encoder (embedding + LSTM, both directions)
# reads the words; its final states, through a learned bridge, become the decoder's initial
# state and the context it sees at every step. The decoder embeds its previous output digit.
# Numbers below a million make sources of many words (the longest is printed below).

# %%
def number_pairs(count):
    ns = rng.integers(0, 1_000_000, count)
    return ns, [words(n).split() for n in ns], [list(str(n)) for n in ns]


ns_train, src_train, tgt_train = number_pairs(3000)
ns_test, src_test, tgt_test = number_pairs(500)
src_vocab = Vocabulary(src_train)
tgt_vocab = Vocabulary([list("0123456789")], bos=True, eos=True)
src_ids, src_len = to_sequences(src_train, src_vocab)
tgt_ids, tgt_len = to_sequences(tgt_train, tgt_vocab)
test_ids, test_len = to_sequences(src_test, src_vocab)
print(f"longest source {src_len.max()} words; target vocabulary {tgt_vocab.tokens}")


def train_seq2seq(attention):
    model = Seq2Seq(len(src_vocab), len(tgt_vocab), bos_id=tgt_vocab.bos_id, eos_id=tgt_vocab.eos_id,
                    embedding_dim=16, hidden_size=48, bidirectional=True, attention=attention, seed=0)
    start = time.perf_counter()
    # targets for training: without <bos>, ending with <eos>
    model.fit(src_ids, tgt_ids[:, 1:], src_lengths=src_len, tgt_lengths=tgt_len - 1, epochs=8,
              batch_size=32, lr=5e-3)
    seconds = time.perf_counter() - start
    decoded = model.predict(test_ids, src_lengths=test_len)
    exact = np.mean([tgt_vocab.decode(d) == t for d, t in zip(decoded, tgt_test)])
    return model, exact, seconds


plain, exact_plain, seconds = train_seq2seq(None)
print(f"no attention: {exact_plain:.3f} of 500 held-out numbers exactly right ({seconds:.1f} s)")

# %% [markdown]
# ## Bidirectional encoder with attention
#
# With attention (`attention="dot"`), at every output step the decoder scores each encoder
# output against its own state, turns the scores into weights with a softmax over the source
# words and mixes the encoder outputs with them. The encoder is bidirectional, so the output at
# each word has read the whole phrase, from both ends.

# %%
attentive, exact_attention, seconds = train_seq2seq("dot")
print(f"dot attention: {exact_attention:.3f} of 500 held-out numbers exactly right ({seconds:.1f} s)")
assert exact_attention > exact_plain

# %% [markdown]
# Where did it look? One held-out number, the weights of every output digit over the source
# words:

# %%
row = int(np.argmax(test_len))
targets_out, weights = attentive.attention_weights(test_ids[row:row + 1], src_lengths=test_len[row:row + 1])
out_tokens = [tgt_vocab.tokens[i] for i in targets_out[0]]
print(" ".join(src_test[row]), "->", "".join(t for t in out_tokens if t != "<eos>"))
fig = plot_attention(weights[0][:, :test_len[row]], src_test[row], out_tokens,
                     title="attention of each output digit over the source words")
fig

# %% [markdown]
# The source word each output digit weighs most:

# %%
for token, w in zip(out_tokens, weights[0]):
    best = int(np.argmax(w))
    print(f"{token:>6} <- {src_test[row][best]!r} (position {best}, weight {w[best]:.2f})")
