"""rnnkit.diagnostics.gradient_norms: the per-step gradients dLoss/dh_t against a NumPy float64
reference (the suffix backward of rnnkit.reference), the vanishing / exploding / forget-gate
behaviour it is meant to show, models, and what it refuses. No matplotlib needed."""
import numpy as np
import pytest

from rnnkit import nn
from rnnkit import reference as R
from rnnkit.diagnostics import gradient_norms


def _reference_norms(layer, x, dy, lengths):
    """||dy[t] + dh0 of a reference backward over steps t+1.. started from h_t|| per (row, t)."""
    d = layer.l0.fwd
    P = [np.asarray(getattr(d, k), np.float64) for k in ("Wx", "Wh", "b", "bh")]
    cell = layer.cell
    T, B, H = dy.shape
    out = np.full((B, T), np.nan)

    def fwd(xs, h, c):
        if cell == "lstm":
            y, h, c, cache = R.lstm_forward(xs, h, c, *P)
        elif cell == "gru":
            y, h, cache = R.gru_forward(xs, h, *P, linear_before_reset=layer.linear_before_reset)
        else:
            y, h, cache = R.rnn_forward(xs, h, *P, nonlinearity=cell[4:])
        return h, c, cache

    def dh0(dys, cache):
        if cell == "lstm":
            return R.lstm_backward(dys, None, None, cache)[1]
        return (R.gru_backward if cell == "gru" else R.rnn_backward)(dys, None, cache)[1]

    for b in range(B):
        n = int(lengths[b])
        xb, dyb = x[:n, b:b + 1], dy[:n, b:b + 1]
        h, c, states = np.zeros((1, H)), np.zeros((1, H)), []
        for t in range(n):
            h, c, _ = fwd(xb[t:t + 1], h, c)
            states.append((h, c))
        for t in range(n):
            g = dyb[t].copy()
            if t < n - 1:
                g += dh0(dyb[t + 1:], fwd(xb[t + 1:], *states[t])[2])
            out[b, t] = np.linalg.norm(g)
    return out


@pytest.mark.parametrize("cls,kw", [(nn.RNN, {}), (nn.RNN, {"nonlinearity": "relu"}), (nn.LSTM, {}),
                                    (nn.GRU, {}), (nn.GRU, {"linear_before_reset": False})])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_numpy_reference(cls, kw, dtype):
    rng = np.random.default_rng(0)
    T, B, I, H = 7, 3, 4, 5
    layer = cls(I, H, seed=1, dtype=dtype, batch_first=False, **kw)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    dy = rng.standard_normal((T, B, H)).astype(dtype)
    lengths = np.array([7, 4, 1])
    got = gradient_norms(layer, x, grad=dy, lengths=lengths, per_example=True)
    assert got.shape == (1, B, T)
    want = _reference_norms(layer, x.astype(np.float64), dy.astype(np.float64), lengths)
    assert np.array_equal(np.isnan(got[0]), np.isnan(want))
    np.testing.assert_allclose(got[0], want, rtol=1e-10, atol=1e-12)
    mean = gradient_norms(layer, x, grad=dy, lengths=lengths)
    assert mean.shape == (1, T)
    np.testing.assert_allclose(mean[0], np.nanmean(want, axis=0), rtol=1e-12)


def test_finite_differences_on_a_state():
    """dL/dh_t by central differences: perturb h_t (the initial state of the suffix run)."""
    rng = np.random.default_rng(1)
    T, B, I, H = 6, 1, 3, 4
    layer = nn.RNN(I, H, seed=2, dtype=np.float64, batch_first=False)
    x = rng.standard_normal((T, B, I))
    u = rng.standard_normal((B, H))
    # loss = sum(h_{T-1} * u)
    got = gradient_norms(layer, x, grad=np.concatenate([np.zeros((T - 1, B, H)), u[None]]), per_example=True)
    d = layer.l0.fwd
    P = [d.Wx, d.Wh, d.b, d.bh]
    t = 2
    _, h_t, _ = R.rnn_forward(x[:t + 1], None, *P)

    def loss(h):
        return float((R.rnn_forward(x[t + 1:], h, *P)[1] * u).sum())

    g = np.zeros(H)
    for j in range(H):
        e = np.zeros((B, H))
        e[0, j] = 1e-6
        g[j] = (loss(h_t + e) - loss(h_t - e)) / 2e-6
    np.testing.assert_allclose(got[0, 0, t], np.linalg.norm(g), rtol=1e-6)


def test_vanishing_exploding_and_the_forget_gate():
    rng = np.random.default_rng(0)
    T = 60
    x = rng.standard_normal((T, 8, 1)).astype(np.float32)
    small = nn.RNN(1, 32, seed=0, batch_first=False)
    small.l0.fwd.Wh[...] *= 0.5
    norms = gradient_norms(small, x)[0]
    assert norms[-1] == pytest.approx(1.0)  # the default loss: unit gradient on the last output
    assert np.all(np.diff(norms) > 0)  # shrinks at every step back in time
    assert norms[0] < 1e-12 and norms[T // 2] < 1e-6  # by orders of magnitude
    large = nn.RNN(1, 32, seed=0, batch_first=False)
    large.l0.fwd.Wh[...] *= 3.0
    assert gradient_norms(large, x)[0][0] > 1e3  # exploding
    lstm = gradient_norms(nn.LSTM(1, 32, seed=0, batch_first=False), x)[0]  # forget-gate bias 1
    assert lstm[0] > 1e6 * norms[0] and lstm[T // 2] > 1e3 * norms[T // 2]
    assert lstm[0] > 1e-4


def test_stacked_layers_and_float32_layer_in_float64():
    rng = np.random.default_rng(0)
    layer = nn.LSTM(3, 8, num_layers=3, seed=0, batch_first=False)
    x = rng.standard_normal((20, 4, 3)).astype(np.float32)
    norms = gradient_norms(layer, x)
    assert norms.shape == (3, 20) and norms.dtype == np.float64 and np.all(norms > 0)
    assert norms[2, -1] == pytest.approx(1.0)
    # the bottom layer's last step gets gradient only through the layers above at that step
    assert norms[0, -1] < 1.0


def test_batch_first_return_state_and_initial_state():
    rng = np.random.default_rng(0)
    layer = nn.GRU(2, 4, seed=0, batch_first=True, return_state=True, dtype=np.float64)
    x = rng.standard_normal((3, 5, 2))
    h0 = [rng.standard_normal((3, 4))]
    dy = rng.standard_normal((3, 5, 4))
    dh = [rng.standard_normal((3, 4))]
    got = gradient_norms(layer, x, grad=(dy, dh), initial_state=h0, per_example=True)
    plain = nn.GRU(2, 4, seed=0, dtype=np.float64, batch_first=False)
    dy_tm = dy.transpose(1, 0, 2).copy()
    dy_tm[-1] += dh[0]  # the final state is the last output
    want = gradient_norms(plain, x.transpose(1, 0, 2), grad=dy_tm, initial_state=h0, per_example=True)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_model_follows_its_loss_and_keeps_its_gradients():
    rng = np.random.default_rng(0)
    rnn = nn.RNN(2, 6, return_sequences=False, batch_first=True, seed=0, dtype=np.float64)
    model = nn.Sequential(rnn=rnn, fc=nn.Linear(6, 1, seed=1, dtype=np.float64, batch_first=False))
    x = rng.standard_normal((5, 9, 2))
    y = rng.standard_normal((5, 1))
    before = {k: g.copy() for k, g in model.grads().items()}
    got = gradient_norms(model, x, y, loss="mse", per_example=True)
    for k, g in model.grads().items():
        np.testing.assert_array_equal(g, before[k])
    # by hand: the loss gradient at the layer's output is the Linear's input gradient
    out = model.forward(x)
    dout = 2.0 * (out - y) / out.size
    dh = dout @ model.fc.W.T  # W (in, out)
    want = gradient_norms(rnn, x, grad=dh, per_example=True)
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_sequence_classifier_with_lengths():
    from rnnkit.models import SequenceClassifier

    rng = np.random.default_rng(0)
    model = SequenceClassifier(20, 3, embedding_dim=4, hidden_size=8, cell="lstm", seed=0)
    ids = rng.integers(1, 20, (4, 10))
    lengths = np.array([10, 7, 3, 10])
    norms = gradient_norms(model, ids, rng.integers(0, 3, 4), lengths=lengths, per_example=True)
    assert norms.shape == (1, 4, 10)
    assert np.isnan(norms[0, 2, 3:]).all() and np.isfinite(norms[0, 2, :3]).all()
    assert np.all(norms[0, 1, :7] > 0)


def test_refusals():
    x = np.zeros((4, 2, 3), np.float32)
    with pytest.raises(NotImplementedError, match="bidirectional"):
        gradient_norms(nn.LSTM(3, 4, bidirectional=True, batch_first=False), x)
    with pytest.raises(NotImplementedError, match="norm"):
        gradient_norms(nn.LSTM(3, 4, norm="layer", batch_first=False), x)
    with pytest.raises(ValueError, match="y is for models"):
        gradient_norms(nn.LSTM(3, 4, batch_first=False), x, np.zeros(2))
    model = nn.Sequential(a=nn.LSTM(3, 4, batch_first=False), b=nn.LSTM(4, 4, return_sequences=False, batch_first=False))
    with pytest.raises(ValueError, match="layer="):
        gradient_norms(model, x, np.zeros((2, 4)), loss="mse")
    with pytest.raises(ValueError, match="needs targets"):
        gradient_norms(model, x)
    norms = gradient_norms(model, x, np.zeros((2, 4), np.float32), loss="mse", layer="a")
    assert norms.shape == (1, 4)
