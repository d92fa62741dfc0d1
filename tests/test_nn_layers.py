"""rnnkit.nn feed-forward layers, heads, Sequential and the Module base: values, finite-difference
gradients (see test_nn_gradcheck.py for the tolerance), state dicts, seeding and bad input."""
import numpy as np
import pytest

import rnnkit.nn as nn
from test_nn_gradcheck import check_module

T, B, D = 4, 3, 5
LENGTHS = np.array([4, 1, 2])


def x_(shape=(T, B, D), seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def test_linear_values_and_gradients():
    lin = nn.Linear(D, 2, dtype=np.float64, seed=0, batch_first=False)
    x = x_()
    np.testing.assert_allclose(lin.forward(x), x @ lin.W + lin.b, rtol=1e-14)
    np.testing.assert_allclose(lin.forward(x[0]), x[0] @ lin.W + lin.b, rtol=1e-14)
    lin.b[...] = 0.5  # so padding would show
    y = lin.forward(x, lengths=LENGTHS)
    assert np.all(y[1:, 1] == 0) and np.all(y[:1, 1] != 0)
    check_module(lin, x, fwd_kwargs=dict(lengths=LENGTHS))
    check_module(lin, x[0])
    bf = nn.Linear(D, 2, batch_first=True, dtype=np.float64, seed=0)
    bf.b[...] = 0.5
    np.testing.assert_array_equal(bf.forward(x.transpose(1, 0, 2), lengths=LENGTHS), y.transpose(1, 0, 2))


def test_embedding_values_gradients_padding():
    emb = nn.Embedding(7, 3, padding_idx=0, dtype=np.float64, seed=1)
    assert np.all(emb.W[0] == 0)
    ids = np.array([[1, 2, 0], [6, 1, 0]])
    out = emb.forward(ids)
    np.testing.assert_array_equal(out, emb.W[ids])
    g = np.random.default_rng(0).standard_normal(out.shape)
    assert emb.backward(g) is None
    want = np.zeros_like(emb.W)
    np.add.at(want, ids.reshape(-1), g.reshape(-1, 3))
    want[0] = 0  # padding gets no gradient
    np.testing.assert_allclose(emb.grads()["W"], want, rtol=1e-14)
    emb.backward(g)  # accumulates
    np.testing.assert_allclose(emb.grads()["W"], 2 * want, rtol=1e-14)
    emb.zero_grad()
    check_module(emb, ids, check_x=False)


def test_embedding_bad_ids():
    emb = nn.Embedding(5, 2)
    with pytest.raises(IndexError, match=r"id 9 at position \(1, 0\)"):
        emb.forward(np.array([[1, 2], [9, 0]]))
    with pytest.raises(IndexError, match="negative id -1"):
        emb.forward(np.array([[-1]]))
    with pytest.raises(TypeError, match="ids must be an integer"):
        emb.forward(np.array([[1.5]]))
    with pytest.raises(ValueError, match="padding_idx"):
        nn.Embedding(5, 2, padding_idx=5)


def test_dropout():
    drop = nn.Dropout(0.5, seed=0)
    x = x_()
    np.testing.assert_array_equal(drop.forward(x), x)  # inference: identity
    y = drop.forward(x, training=True)
    kept = y != 0
    np.testing.assert_allclose(y[kept], 2 * x[kept])
    assert 0 < kept.mean() < 1
    np.testing.assert_array_equal(drop.backward(np.ones_like(x)), kept * 2.0)
    check_module(drop, x, fwd_kwargs=dict(training=True))  # reseeded before each forward
    with pytest.raises(ValueError, match="p must be"):
        nn.Dropout(1.0)


@pytest.mark.parametrize("head", [nn.LastStep, nn.MeanPool, nn.MaxPool])
def test_heads(head):
    y = x_()
    lengths = np.array([4, 0, 2])
    h = head(batch_first=False)
    out = h.forward(y, lengths=lengths)
    assert np.all(out[1] == 0)  # empty sequence
    for b in (0, 2):
        valid = y[:lengths[b], b]
        want = {nn.LastStep: valid[-1], nn.MeanPool: valid.mean(0), nn.MaxPool: valid.max(0)}[head]
        np.testing.assert_allclose(out[b], want, rtol=1e-14)
    dy = h.backward(np.ones((B, D)))
    assert np.all(dy[:, 1] == 0) and np.all(dy[2:, 2] == 0)  # no gradient into padding
    np.testing.assert_allclose(h.forward(y), {nn.LastStep: y[-1], nn.MeanPool: y.mean(0),
                                              nn.MaxPool: y.max(0)}[head], rtol=1e-14)
    # max is differentiable away from ties, which random data avoids
    check_module(h, y, fwd_kwargs=dict(lengths=lengths))
    bf = head(batch_first=True)
    np.testing.assert_array_equal(bf.forward(y.transpose(1, 0, 2), lengths=lengths), out)
    with pytest.raises(ValueError, match="y must be 3-D"):
        h.forward(y[0])
    with pytest.raises(ValueError, match="lengths must have shape"):
        h.forward(y, lengths=np.array([1, 2]))


def test_sequential_whole_model_gradients():
    """Embedding -> bidirectional LSTM (layer norm, recurrent dropout) -> Dropout -> MeanPool ->
    Linear: checks every parameter of the model at once, lengths passed to every child."""
    model = nn.Sequential(
        embed=nn.Embedding(9, 3, padding_idx=0, dtype=np.float64, seed=0),
        rnn=nn.LSTM(3, 2, 2, bidirectional=True, recurrent_dropout=0.3, dropout=0.2,
                    skip="residual", norm="layer", dtype=np.float64, seed=1, batch_first=False),
        drop=nn.Dropout(0.3),
        pool=nn.MeanPool(batch_first=False),
        head=nn.Linear(4, 2, dtype=np.float64, seed=2, batch_first=False),
    )
    ids = np.array([[1, 2, 3, 4], [5, 6, 0, 0], [7, 8, 2, 0]]).T  # (T, B)
    lengths = np.array([4, 2, 3])
    assert "rnn.l1.bwd.norm_c.gamma" in model.parameters() and "head.W" in model.parameters()
    check_module(model, ids, fwd_kwargs=dict(lengths=lengths, training=True), max_per_param=3)
    assert model["head"] is model.head and model[0] is model.embed


def test_sequential_construction_forms():
    a, b = nn.Linear(2, 2, batch_first=False), nn.Linear(2, 2, batch_first=False)
    assert list(nn.Sequential(a, b).parameters()) == ["0.W", "0.b", "1.W", "1.b"]
    assert list(nn.Sequential({"p": a, "q": b}).parameters())[0] == "p.W"
    assert list(nn.Sequential([("p", a), ("q", b)]).parameters())[-1] == "q.b"
    with pytest.raises(TypeError, match="must be an rnnkit.nn.Module"):
        nn.Sequential(a, "relu")


def test_module_seed_rng_state_and_state_dict():
    model = nn.Sequential(nn.Linear(D, D, dtype=np.float64, batch_first=False), nn.Dropout(0.5), nn.Dropout(0.5))
    x = x_()
    model.seed(3)
    y1 = model.forward(x, training=True)
    model.seed(3)
    np.testing.assert_array_equal(model.forward(x, training=True), y1)
    s = model.rng_state()
    y2 = model.forward(x, training=True)
    assert not np.array_equal(y1, y2)
    model.set_rng_state(s)
    np.testing.assert_array_equal(model.forward(x, training=True), y2)
    other = nn.Sequential(nn.Linear(D, D, dtype=np.float64, batch_first=False), nn.Dropout(0.5), nn.Dropout(0.5))
    other.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(other.forward(x), model.forward(x))
    with pytest.raises(ValueError, match="missing"):
        other.load_state_dict({})


def test_linear_bad_input():
    lin = nn.Linear(D, 2, batch_first=False)
    with pytest.raises(TypeError, match="x has dtype float64"):
        lin.forward(x_())
    with pytest.raises(ValueError, match="x must have 5 features"):
        lin.forward(x_().astype(np.float32)[..., :3])
    with pytest.raises(ValueError, match="x must be 2-D or 3-D"):
        lin.forward(np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="in_features"):
        nn.Linear(0, 2, batch_first=False)


def test_layers_default_to_batch_first_so_a_sequential_trains_on_trainer_data():
    """Trainer data is batch-first (N, T, F); so are the layers and heads by default, and a
    layout mistake names the layout the layer assumed."""
    from rnnkit.train import Trainer

    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 4, 3)).astype(np.float32)  # N=5 sequences of T=4 steps
    y = np.array([0, 1, 0, 1, 1])
    lengths = np.array([4, 2, 3, 1, 4])
    model = nn.Sequential(nn.LSTM(3, 6, seed=0), nn.LastStep(), nn.Linear(6, 2, seed=1))
    history = Trainer(model, quiet=True).fit((X, y, lengths), epochs=2, batch_size=5)
    assert len(history["loss"]) == 2 and np.isfinite(history["loss"]).all()
    with pytest.raises(ValueError, match=r"lengths must have shape \(B,\) = \(4,\) \(x of shape \(4, 5, 3\) "
                                         r"read as \(B, T, input_size\), batch_first=True\), got \(5,\)"):
        nn.LSTM(3, 6).forward(X.transpose(1, 0, 2), lengths=lengths)
