"""rnnkit.models networks: shapes, gradients by finite differences (float64), padding
invariance, training on toy tasks, generation and LM helpers."""
from __future__ import annotations

import numpy as np
import pytest

from rnnkit.models import (LanguageModel, MLPClassifier, SequenceClassifier, char_vocabulary, lm_windows,
                           unigram_perplexity)
from rnnkit.train import Trainer, cross_entropy


def loss_and_grads(model, ids, lengths, y):
    model.zero_grad()
    out = model.forward(ids, lengths=lengths)
    value, grad, _ = cross_entropy(out, y, mask=None if out.ndim == 2 else np.arange(ids.shape[1]) < lengths[:, None])
    model.backward(grad)
    return value, {k: v.copy() for k, v in model.grads().items()}


@pytest.mark.parametrize("cell,pooling,bidir", [("lstm", "last", False), ("gru", "mean", True), ("rnn", "max", False)])
def test_sequence_classifier_gradients_match_finite_differences(cell, pooling, bidir):
    rng = np.random.default_rng(0)
    model = SequenceClassifier(9, 3, embedding_dim=4, hidden_size=5, cell=cell, pooling=pooling,
                               bidirectional=bidir, dtype=np.float64, seed=0)
    ids = rng.integers(1, 9, (3, 6))
    lengths = np.array([6, 4, 2])
    ids[np.arange(6)[None] >= lengths[:, None]] = 0
    y = np.array([0, 2, 1])
    _, grads = loss_and_grads(model, ids, lengths, y)
    params = model.parameters()
    # float64 central differences, eps 1e-6: error ~1e-9 on O(1) quantities; 1e-6 relative to
    # the largest entry leaves room while catching any missing or misplaced term.
    for name in ("embed.W", "rnn.l0.fwd.Wh", "rnn.l0.fwd.b", "fc.W"):
        p, g = params[name], grads[name]
        num = np.zeros_like(p)
        for idx in list(np.ndindex(*p.shape))[:40]:
            old = p[idx]
            p[idx] = old + 1e-6; up = loss_and_grads(model, ids, lengths, y)[0]
            p[idx] = old - 1e-6; down = loss_and_grads(model, ids, lengths, y)[0]
            p[idx] = old
            num[idx] = (up - down) / 2e-6
        sel = tuple(np.array(list(np.ndindex(*p.shape))[:40]).T)
        np.testing.assert_allclose(g[sel], num[sel], atol=1e-6 * max(1.0, np.abs(num).max()), rtol=0)


def test_padding_does_not_change_outputs():
    model = SequenceClassifier(9, 3, embedding_dim=4, hidden_size=5, pooling="mean", seed=0)
    ids = np.array([[3, 4, 5, 0, 0]])
    a = model.forward(ids, lengths=np.array([3]))
    b = model.forward(ids[:, :3], lengths=np.array([3]))
    np.testing.assert_allclose(a, b, rtol=1e-6)
    lm = LanguageModel(9, hidden_size=6, seed=0)
    out = lm.forward(ids, lengths=np.array([3]))
    np.testing.assert_allclose(out[:, :3], lm.forward(ids[:, :3]), rtol=1e-5, atol=1e-6)
    assert not out[:, 3:].any()


def test_language_model_learns_a_cycle_and_generates():
    text = "abcdefg " * 200
    vocab = char_vocabulary(text)
    ids = np.array(vocab.encode(list(text)))
    X, Y = lm_windows(ids, 16)
    lm = LanguageModel(len(vocab), embedding_dim=8, hidden_size=24, cell="gru", vocab=vocab, seed=0)
    h = Trainer(lm, lr=0.02, metrics=["perplexity"], quiet=True).fit((X, Y), epochs=4, batch_size=16)
    assert h["perplexity"][-1] < 1.5 < unigram_perplexity(ids, ids, len(vocab))
    assert lm.generate("abc", 12, greedy=True) == "defg abcdefg"
    s1 = lm.generate("ab", 30, temperature=1.5, top_k=3, seed=1)
    assert s1 == lm.generate("ab", 30, temperature=1.5, top_k=3, seed=1) and len(s1) == 30
    ids_out = lm.generate([vocab["a"]], 5, greedy=True)
    assert isinstance(ids_out, list) and all(0 < i < len(vocab) for i in ids_out)
    with pytest.raises(ValueError, match="empty"):
        lm.generate("", 3)
    with pytest.raises(ValueError, match="temperature"):
        lm.generate("a", 3, temperature=0)
    with pytest.raises(ValueError, match="top_k"):
        lm.generate("a", 3, top_k=0)


def test_lm_helpers():
    X, Y = lm_windows(np.arange(10), 4)
    assert X.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]] and Y.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]
    X, Y = lm_windows(np.arange(10), 4, stride=2)
    assert len(X) == 3 and Y[-1].tolist() == [5, 6, 7, 8]
    with pytest.raises(ValueError, match="at least"):
        lm_windows(np.arange(3), 4)
    # unigram over ids {2: 3 times, 3: once} with add-one smoothing over ids 1..3
    ppl = unigram_perplexity([2, 2, 2, 3], [2, 3], 4, smoothing=1.0)
    p2, p3 = 4 / 7, 2 / 7
    assert ppl == pytest.approx(np.exp(-(np.log(p2) + np.log(p3)) / 2))
    v = char_vocabulary("ab\nb")
    assert "\n" in v and len(v) == 5


def test_mlp_on_sparse_input():
    sp = pytest.importorskip("scipy.sparse")
    rng = np.random.default_rng(0)
    X = sp.random(80, 30, density=0.2, random_state=0, format="csr", dtype=np.float32)
    y = (np.asarray(X[:, :15].sum(1)).ravel() > np.asarray(X[:, 15:].sum(1)).ravel()).astype(int)
    m = MLPClassifier(30, 2, hidden_sizes=(16,), seed=0)
    h = Trainer(m, lr=0.02, metrics=["accuracy"], quiet=True).fit((X, y), epochs=30, batch_size=16)
    assert h["accuracy"][-1] > 0.9
    assert m.forward(X[:3]).shape == (3, 2)
    del rng


def test_bad_arguments():
    with pytest.raises(ValueError, match="cell"):
        SequenceClassifier(5, 2, cell="transformer")
    with pytest.raises(ValueError, match="pooling"):
        SequenceClassifier(5, 2, pooling="attention")
    with pytest.raises(ValueError, match="num_classes"):
        SequenceClassifier(5, 1)
    with pytest.raises(TypeError, match="integer"):
        SequenceClassifier(5, 2).forward(np.zeros((2, 3)))
    with pytest.raises(IndexError):
        SequenceClassifier(5, 2).forward(np.full((2, 3), 7))


def test_bad_id_is_reported_at_its_position_in_the_batch_first_input():
    # the models embed ids.T (time-major); the position must still be the caller's (b, t)
    clf = SequenceClassifier(5, 2, embedding_dim=3, hidden_size=4, seed=0)
    ids = np.ones((2, 4), np.int64)
    ids[1, 3] = 5
    with pytest.raises(IndexError, match=r"ids contains id 5 at position \(1, 3\).*vocab_size=5"):
        clf.forward(ids)
    lm = LanguageModel(5, embedding_dim=3, hidden_size=4, seed=0)
    with pytest.raises(IndexError, match=r"position \(1, 3\)"):
        lm.forward(ids)
