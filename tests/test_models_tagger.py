"""SequenceTagger: whole-model float64 gradient checks, masked loss, a tiny tagging task, bad input."""
import re

import numpy as np
import pytest
from fdcheck import assert_central_differences

from rnnkit.models import SequenceTagger, tagging_loss
from rnnkit.text import Vocabulary
from rnnkit.train import Trainer


@pytest.mark.parametrize("cell,bidirectional", [("lstm", True), ("gru", True), ("rnn", False)])
def test_gradcheck_float64(cell, bidirectional):
    m = SequenceTagger(9, 3, embedding_dim=4, hidden_size=3, num_layers=2, cell=cell,
                       bidirectional=bidirectional, dtype=np.float64, seed=2)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 9, (3, 5))
    tags = rng.integers(0, 3, (3, 5))
    L = np.array([5, 2, 3])
    tags[1, 2:] = -1  # padding tags may hold anything

    def f():
        return tagging_loss(m.forward(ids, lengths=L), tags, L)[0]

    m.zero_grad()
    _, g, count = tagging_loss(m.forward(ids, lengths=L), tags, L)
    assert count == 10
    m.backward(g)
    assert_central_differences(f, [(name, p, m.grads()[name]) for name, p in m.parameters().items()])


def test_masked_loss_ignores_padding():
    m = SequenceTagger(9, 3, embedding_dim=4, hidden_size=5, dtype=np.float64, seed=0)
    rng = np.random.default_rng(1)
    ids = rng.integers(1, 9, (3, 6))
    tags = rng.integers(0, 3, (3, 6))
    L = np.array([6, 3, 1])
    ids2, tags2 = ids.copy(), tags.copy()
    for b, n in enumerate(L):
        ids2[b, n:] = rng.integers(1, 9, 6 - n)  # different junk past the lengths
        tags2[b, n:] = 2 - tags2[b, n:]
    results = []
    for i, t in ((ids, tags), (ids2, tags2)):
        m.zero_grad()
        loss, g, count = tagging_loss(m.forward(i, lengths=L), t, L)
        m.backward(g)
        results.append((loss, count, {k: v.copy() for k, v in m.grads().items()}))
    (l1, c1, g1), (l2, c2, g2) = results
    assert c1 == c2 == 10
    assert l1 == pytest.approx(l2, abs=1e-12)
    for k in g1:
        np.testing.assert_allclose(g1[k], g2[k], atol=1e-12)
    m.zero_grad()
    m.backward(tagging_loss(m.forward(ids, lengths=L), tags, L)[1])
    # padding embedding row (id 0 never appears) and rows only used past the lengths get nothing
    used = set(int(v) for b, n in enumerate(L) for v in ids[b, :n])
    unused = [r for r in range(9) if r not in used]
    assert np.all(m.grads()["embed.W"][unused] == 0)
    assert np.all(m.predict(ids, L)[2, 1:] == -1)


def _shape_tag(tok):
    if re.fullmatch(r"\d+", tok):
        return 2  # number
    if tok[0].isupper():
        return 1  # capitalised
    return 0      # other word


def test_learns_offline_tagging_task_with_trainer():
    # Tag each token as word / Capitalised / number; the word itself decides, so a tagger
    # must reach (near) perfect accuracy on held-out sentences of known tokens.
    rng = np.random.default_rng(0)
    words = ["the", "cat", "sat", "on", "mat", "and", "ran", "far"]
    caps = ["Paris", "Alice", "Bob", "London", "Monday"]
    nums = ["1", "42", "7", "2024", "300"]
    pool = words + caps + nums
    sents = [[pool[i] for i in rng.integers(0, len(pool), rng.integers(2, 9))] for _ in range(300)]
    vocab = Vocabulary(sents)
    T = 8
    ids = np.zeros((len(sents), T), np.int64)
    tags = np.zeros((len(sents), T), np.int64)
    L = np.array([len(s) for s in sents])
    for k, s in enumerate(sents):
        ids[k, :len(s)] = vocab.encode(s)
        tags[k, :len(s)] = [_shape_tag(w) for w in s]
    m = SequenceTagger(len(vocab), 3, embedding_dim=8, hidden_size=8, seed=0)
    Trainer(m, loss="cross_entropy", lr=2e-2, quiet=True).fit((ids[:250], tags[:250], L[:250]), epochs=8,
                                                               batch_size=25)
    pred = m.predict(ids[250:], L[250:])
    valid = np.arange(T)[None, :] < L[250:, None]
    assert (pred == tags[250:])[valid].mean() > 0.97
    assert np.all(pred[~valid] == -1)
    p = m.predict_proba(ids[250:], L[250:])
    assert p.shape == (50, T, 3) and np.allclose(p.sum(-1), 1)


def test_bidirectional_by_default_sees_the_future():
    m = SequenceTagger(6, 2, hidden_size=4, dtype=np.float64, seed=0)
    assert m.rnn.bidirectional
    a = m.forward(np.array([[1, 2, 3]]))
    b = m.forward(np.array([[1, 2, 4]]))
    assert not np.allclose(a[0, 0], b[0, 0])  # the first tag depends on the last token


def test_bad_input():
    m = SequenceTagger(6, 3, hidden_size=4, seed=0)
    with pytest.raises(IndexError, match=r"ids contains id 6 at position \(0, 1\).*vocabulary of vocab_size=6"):
        m.forward(np.array([[1, 6]]))
    with pytest.raises(ValueError, match="ids is empty"):
        m.forward(np.zeros((0, 3), np.int64))
    with pytest.raises(ValueError, match="ids is empty"):
        m.forward(np.zeros((2, 0), np.int64))
    with pytest.raises(ValueError, match="lengths"):
        m.forward(np.ones((2, 3), np.int64), lengths=np.array([4, 1]))
    with pytest.raises(TypeError, match="ids must be an integer array"):
        m.forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match="2-D"):
        m.forward(np.ones(3, np.int64))
    logits = m.forward(np.ones((2, 3), np.int64))
    with pytest.raises(IndexError, match="targets contain class 3"):
        tagging_loss(logits, np.full((2, 3), 3), np.array([3, 3]))
    with pytest.raises(ValueError, match="lengths"):
        tagging_loss(logits, np.zeros((2, 3), np.int64), np.array([1, 5]))
    with pytest.raises(ValueError, match="num_tags"):
        SequenceTagger(6, 1)
