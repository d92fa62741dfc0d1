"""VectorToSequence: whole-model float64 gradient checks, decoding behaviour, bad input."""
import numpy as np
import pytest
from fdcheck import assert_central_differences

from rnnkit.models import VectorToSequence
from rnnkit.models._decoding import beam_search, choose_next
from rnnkit.train.losses import cross_entropy
from rnnkit.text import Vocabulary


def _loss_grad(m, x, t, L):
    logits = m.forward(x, t, lengths=L)
    mask = np.arange(t.shape[1])[None, :] < L[:, None]
    return cross_entropy(logits, t, mask=mask)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("condition", ["state", "input", "both"])
def test_gradcheck_float64(cell, condition):
    m = VectorToSequence(3, 7, embedding_dim=4, hidden_size=3, num_layers=2, cell=cell, condition=condition,
                         dtype=np.float64, seed=1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 3))
    t = rng.integers(1, 7, (3, 4))
    L = np.array([4, 2, 3])
    t[1, 2:] = 0  # padding past the length
    m.zero_grad()
    _, g, _ = _loss_grad(m, x, t, L)
    dx = m.backward(g)

    def f(xx):
        return _loss_grad(m, xx, t, L)[0]

    targets = [(name, p, m.grads()[name]) for name, p in m.parameters().items()]
    assert_central_differences(lambda: f(x), targets + [("x", x, dx)])


def _model(**kw):
    return VectorToSequence(4, 9, embedding_dim=5, hidden_size=8, seed=3, **kw)


def test_greedy_equals_beam_width_1():
    m = _model()
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    assert m.generate(x, method="greedy", max_len=7) == m.generate(x, method="beam", beam_width=1, max_len=7)


def test_sampling_reproducible_with_seed_and_top_k_1_is_greedy():
    m = _model()
    x = np.random.default_rng(1).standard_normal((4, 4)).astype(np.float32)
    a = m.generate(x, method="sample", temperature=1.5, top_k=4, seed=7, max_len=8)
    b = m.generate(x, method="sample", temperature=1.5, top_k=4, seed=7, max_len=8)
    assert a == b
    assert m.generate(x, method="sample", top_k=1, seed=1, max_len=8) == m.generate(x, max_len=8)


def test_never_emits_padding_or_bos_and_respects_max_len():
    m = _model(eos_id=8)
    m.fc.b[...] = 0
    m.fc.b[[0, 2]] = 50.0  # padding and <bos> would win every step if they were allowed
    x = np.ones((2, 4), np.float32)
    for method in ("greedy", "sample", "beam"):
        outs = m.generate(x, method=method, max_len=6, seed=0)
        for o in outs:
            assert len(o) <= 6 and 0 not in o and 2 not in o


def test_choose_next_top_k_restricts_support():
    logits = np.array([[0.0, 1.0, 2.0, 3.0]] * 2000)
    picks = choose_next(logits, greedy=False, temperature=1.0, top_k=2, rng=np.random.default_rng(0))
    assert set(np.unique(picks)) == {2, 3}
    hot = choose_next(logits, greedy=False, temperature=100.0, rng=np.random.default_rng(0))
    assert len(np.unique(hot)) == 4


def test_beam_search_finds_better_sequence_than_greedy():
    # A 2-step toy: greedy takes token 1 (p=0.6) then is stuck with 0.5/0.5; beam finds
    # token 2 (p=0.4) followed by eos with p=1: 0.4 > 0.6 * 0.5.
    eos = 3

    def step(tokens, state):
        rows = []
        for tok in tokens:
            if tok == 0:  # bos
                rows.append(np.log([1e-9, 0.6, 0.4, 1e-9]))
            elif tok == 1:
                rows.append(np.log([1e-9, 0.25, 0.25, 0.5]))
            else:
                rows.append(np.log([1e-9, 1e-9, 1e-9, 1.0]))
        return np.array(rows), state

    def search(width):  # one source, started from the step on bos
        logits, state = step(np.array([0]), None)
        seqs, scores = beam_search(step, logits, state, eos_id=eos, beam_width=width, max_len=5, banned=(0,))
        return seqs[0], scores[0]

    greedy, _ = search(1)
    best, score = search(2)
    assert greedy == [1] and best == [2]
    assert score == pytest.approx(np.log(0.4), abs=1e-6)


def test_learns_to_write_from_class_vector():
    # Two classes, each with its own fixed sentence: after teacher-forced training greedy and
    # beam decoding reproduce them (a real learning test, not just shapes).
    sents = [["the", "cat", "sat"], ["a", "dog", "ran", "far"]]
    vocab = Vocabulary(sents, bos=True, eos=True)
    m = VectorToSequence(2, len(vocab), embedding_dim=8, hidden_size=16, vocab=vocab, seed=0)
    Y, L = m.prepare_targets(sents * 8)
    X = np.tile(np.eye(2, dtype=np.float32), (8, 1))
    hist = m.fit(X, Y, L, epochs=60, batch_size=16, lr=2e-2)
    assert hist[-1] < 0.1 * hist[0]
    assert m.generate(np.eye(2, dtype=np.float32)) == ["the cat sat", "a dog ran far"]
    assert m.generate(np.eye(2, dtype=np.float32), method="beam", beam_width=3) == ["the cat sat", "a dog ran far"]
    assert m.generate(np.array([0, 1], np.float32)) == "a dog ran far"


def test_trainer_trains_on_vector_targets_and_lengths_grouped_by_target_length():
    from rnnkit.train import Trainer

    sents = [["the", "cat", "sat"], ["a", "dog", "ran", "far"], ["ok"]]
    vocab = Vocabulary(sents, bos=True, eos=True)
    make = lambda: VectorToSequence(3, len(vocab), embedding_dim=8, hidden_size=16, vocab=vocab, seed=0)
    Y, L = make().prepare_targets(sents * 8)
    X = np.tile(np.eye(3, dtype=np.float32), (8, 1))
    by_fit, by_trainer = make(), make()
    losses = by_fit.fit(X, Y, L, epochs=3, batch_size=8, lr=2e-2, seed=1)
    history = Trainer(by_trainer, lr=2e-2, clip_norm=5.0, seed=1, quiet=True).fit(
        {"x": X, "targets": Y, "lengths": L}, epochs=3, batch_size=8, bucket=False)
    assert losses == history["loss"]
    assert all(np.array_equal(by_fit.parameters()[k], v) for k, v in by_trainer.parameters().items())
    # bucketed: every batch holds targets of one length (24 rows, 8 of each, batches of 8)
    seen = []
    model = make()
    forward = model.forward
    model.forward = lambda x, targets, **kw: seen.append(kw["lengths"]) or forward(x, targets, **kw)
    history = Trainer(model, lr=3e-2, seed=1, quiet=True).fit((X, Y, L), epochs=40, batch_size=8)
    assert all(len(set(lengths.tolist())) == 1 for lengths in seen)
    assert history["loss"][-1] < 0.1 * history["loss"][0]
    assert model.generate(np.eye(3, dtype=np.float32)) == ["the cat sat", "a dog ran far", "ok"]


def test_teacher_forcing_uses_previous_targets():
    m = _model(dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((2, 4))
    t = np.array([[4, 5, 6], [4, 5, 6]])
    t2 = t.copy()
    t2[:, 2] = 7  # the last target is never an input, so logits must not change
    assert np.array_equal(m.forward(x, t), m.forward(x, t2))
    t3 = t.copy()
    t3[:, 0] = 7
    assert not np.allclose(m.forward(x, t)[:, 1:], m.forward(x, t3)[:, 1:])
    assert np.array_equal(m.forward(x, t)[:, 0], m.forward(x, t3)[:, 0])


def test_bad_input():
    m = _model()
    x = np.zeros((2, 4), np.float32)
    t = np.array([[4, 5], [6, 7]])
    with pytest.raises(IndexError, match="targets.*vocabulary"):
        m.forward(x, np.array([[4, 9], [1, 2]]))
    with pytest.raises(ValueError, match="vocab has .* vocab_size"):
        VectorToSequence(4, 5, vocab=Vocabulary([["a", "b"]], bos=True, eos=True))
    with pytest.raises(ValueError, match="<bos> and <eos>"):
        VectorToSequence(4, 3, vocab=Vocabulary([["a"]]))
    with pytest.raises(ValueError, match="targets is empty"):
        m.forward(x, np.zeros((2, 0), np.int64))
    with pytest.raises(ValueError, match="x is empty"):
        m.forward(np.zeros((0, 4), np.float32), np.zeros((0, 2), np.int64))
    with pytest.raises(ValueError, match="x must have 4 features"):
        m.forward(np.zeros((2, 3), np.float32), t)
    with pytest.raises(ValueError, match="x has 2 rows but targets has 1"):
        m.forward(x, t[:1])
    with pytest.raises(ValueError, match="lengths"):
        m.forward(x, t, lengths=np.array([3, 1]))
    with pytest.raises(ValueError, match="beam_width"):
        m.generate(x, method="beam", beam_width=0)
    with pytest.raises(ValueError, match="temperature"):
        m.generate(x, method="sample", temperature=0.0)
    with pytest.raises(ValueError, match="top_k"):
        m.generate(x, method="sample", top_k=0)
    with pytest.raises(ValueError, match="max_len"):
        m.generate(x, max_len=0)
    with pytest.raises(ValueError, match="method"):
        m.generate(x, method="nucleus")
    with pytest.raises(ValueError, match="condition"):
        _model(condition="nowhere")
    with pytest.raises(ValueError, match="must differ"):
        _model(bos_id=0)
    with pytest.raises(TypeError, match="targets"):
        m.forward(x)
    with pytest.raises(ValueError, match="lengths must lie"):
        m.fit(x, t, np.array([2, 3]))
