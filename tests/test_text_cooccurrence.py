"""cooccurrence_matrix / cooccurrence_vectors: counts, shape, determinism, that words used
alike end up close, and clear errors on degenerate input."""
from __future__ import annotations

import numpy as np
import pytest

from rnnkit.text import Vocabulary, cooccurrence_matrix, cooccurrence_vectors, tokenize

_TOPICS = {"animals": "cat dog horse cow sheep".split(), "vehicles": "car truck bus train bike".split()}


def toy_corpus(n=200, seed=0):
    """Sentences mixing words of one topic only, so words of a topic co-occur and words of
    different topics never do."""
    rng = np.random.default_rng(seed)
    texts = []
    for i in range(n):
        words = _TOPICS["animals" if i % 2 else "vehicles"]
        texts.append(" ".join(rng.choice(words, size=6)))
    return texts


def cosine(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_counts_weigh_neighbours_by_inverse_distance_and_skip_specials():
    vocab = Vocabulary([["a", "b", "c"]])
    counts = cooccurrence_matrix([["a", "b", "zzz", "c"]], vocab, window=2).toarray()
    a, b, c = vocab["a"], vocab["b"], vocab["c"]
    assert counts[a, b] == counts[b, a] == 1.0          # adjacent
    assert counts[b, c] == 0.5                          # two apart: the unknown word keeps its place
    assert counts[a, c] == 0.0                          # three apart: outside the window
    assert counts[: vocab.n_specials].sum() == 0 and counts[:, : vocab.n_specials].sum() == 0
    np.testing.assert_array_equal(counts, counts.T)


def test_shape_dtype_and_determinism():
    texts = toy_corpus()
    vocab = Vocabulary.from_texts(texts)
    vectors = cooccurrence_vectors(texts, vocab, dim=4, window=3)
    assert vectors.shape == (len(vocab), 4) and vectors.dtype == np.float32
    assert np.array_equal(vectors, cooccurrence_vectors(texts, vocab, dim=4, window=3))
    assert not vectors[vocab.pad_id].any() and not vectors[vocab.unk_id].any()
    # every word's row has length sqrt(dim): the spread of a standard-normal embedding
    words = np.arange(vocab.n_specials, len(vocab))
    np.testing.assert_allclose(np.linalg.norm(vectors[words], axis=1), 2.0, rtol=1e-5)
    # token lists give the same vectors as the texts they come from
    np.testing.assert_array_equal(vectors, cooccurrence_vectors([tokenize(t) for t in texts], vocab, 4, window=3))


def test_words_that_co_occur_end_up_closer_than_unrelated_ones():
    texts = toy_corpus()
    vocab = Vocabulary.from_texts(texts)
    vectors = cooccurrence_vectors(texts, vocab, dim=4)
    v = {w: vectors[vocab[w]] for words in _TOPICS.values() for w in words}
    assert cosine(v["cat"], v["dog"]) > cosine(v["cat"], v["car"]) + 0.5
    assert cosine(v["truck"], v["bus"]) > cosine(v["truck"], v["cow"]) + 0.5


def test_larger_vocabulary_takes_the_sparse_solver_and_stays_deterministic():
    rng = np.random.default_rng(1)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["w" + letters[i // 26 // 26] + letters[i // 26 % 26] + letters[i % 26] for i in range(1500)]
    texts = [" ".join(rng.choice(words[(i % 5) * 300:(i % 5 + 1) * 300], size=12)) for i in range(3000)]
    vocab = Vocabulary.from_texts(texts)
    first = cooccurrence_vectors(texts, vocab, dim=8)
    assert np.array_equal(first, cooccurrence_vectors(texts, vocab, dim=8))
    # words of one group are closer to each other than to another group's
    same = cosine(first[vocab[words[0]]], first[vocab[words[1]]])
    other = cosine(first[vocab[words[0]]], first[vocab[words[301]]])
    assert same > other


def test_dimensions_beyond_the_vocabulary_are_zero():
    texts = ["a b c", "b c d", "a d"]
    vocab = Vocabulary.from_texts(texts)
    vectors = cooccurrence_vectors(texts, vocab, dim=10)
    assert vectors.shape == (len(vocab), 10) and not vectors[:, 3:].any()


def test_degenerate_input_raises():
    vocab = Vocabulary.from_texts(["a b", "c"])
    with pytest.raises(ValueError, match="no two vocabulary words co-occur"):
        cooccurrence_vectors(["a", "b", "c"], vocab, dim=2)
    with pytest.raises(ValueError, match="no two vocabulary words co-occur"):
        cooccurrence_vectors([], vocab, dim=2)
    with pytest.raises(TypeError, match="got a str"):
        cooccurrence_vectors("a b", vocab, dim=2)
    with pytest.raises(TypeError, match=r"documents\[1\] must be a str or a list"):
        cooccurrence_vectors(["a b", 3], vocab, dim=2)
    with pytest.raises(TypeError, match="vocab must be a rnnkit.text.Vocabulary"):
        cooccurrence_vectors(["a b"], {"a": 2}, dim=2)
    with pytest.raises(ValueError, match="dim must be an int >= 1"):
        cooccurrence_vectors(["a b"], vocab, dim=0)
    with pytest.raises(ValueError, match="window must be an int >= 1"):
        cooccurrence_vectors(["a b"], vocab, dim=2, window=0)
    with pytest.raises(ValueError, match="context_smoothing must be in"):
        cooccurrence_vectors(["a b"], vocab, dim=2, context_smoothing=0)
