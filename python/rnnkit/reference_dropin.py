"""Plain NumPy versions of the classic RNN functions that rnnkit.dropin replaces.

Written from the equations for this project (batch-first (N, T, D) sequences, LSTM gate blocks
i, f, o, g, GRU gates r, z, n with the reset applied after the recurrent product, a single
bias b). They are deliberately straightforward — one step at a time, caches as tuples,
np.add.at for the embedding gradient — so they serve both as the test oracle
(tests/test_dropin.py) and as the "plain NumPy" side of ``rnnkit bench --suite dropin``.
"""
from __future__ import annotations

import numpy as np


def _sigmoid(a):
    # exp(-a) overflows to inf for a < -709, which correctly gives 0; silence that warning only.
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-a))


# ----------------------------------------------------------------------------- vanilla RNN

def rnn_step_forward(x, prev_h, Wx, Wh, b):
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1.0 - next_h * next_h)
    return da @ Wx.T, da @ Wh.T, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def rnn_forward(x, h0, Wx, Wh, b):
    N, T, _ = x.shape
    H = h0.shape[1]
    h = np.zeros((N, T, H), dtype=x.dtype)
    steps = []
    prev = h0
    for t in range(T):
        prev, c = rnn_step_forward(x[:, t], prev, Wx, Wh, b)
        h[:, t] = prev
        steps.append(c)
    return h, steps


def rnn_backward(dh, cache):
    steps = cache
    x0, h0, Wx, Wh, _ = steps[0]
    N, T, _ = dh.shape
    dx = np.zeros((N, T, Wx.shape[0]), dtype=dh.dtype)
    dWx = np.zeros_like(Wx)
    dWh = np.zeros_like(Wh)
    db = np.zeros(Wx.shape[1], dtype=dh.dtype)
    carry = np.zeros_like(h0)
    for t in reversed(range(T)):
        dxt, carry, dwx, dwh, dbt = rnn_step_backward(dh[:, t] + carry, steps[t])
        dx[:, t] = dxt
        dWx += dwx
        dWh += dwh
        db += dbt
    return dx, carry, dWx, dWh, db


# ----------------------------------------------------------------------------- LSTM (i, f, o, g)

def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    i = _sigmoid(a[:, :H])
    f = _sigmoid(a[:, H:2 * H])
    o = _sigmoid(a[:, 2 * H:3 * H])
    g = np.tanh(a[:, 3 * H:])
    next_c = f * prev_c + i * g
    tc = np.tanh(next_c)
    next_h = o * tc
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, i, f, o, g, tc)


def lstm_step_backward(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, tc = cache
    do = dnext_h * tc
    dc = dnext_c + dnext_h * o * (1.0 - tc * tc)
    di = dc * g
    df = dc * prev_c
    dg = dc * i
    dprev_c = dc * f
    da = np.concatenate(
        [di * i * (1.0 - i), df * f * (1.0 - f), do * o * (1.0 - o), dg * (1.0 - g * g)], axis=1
    )
    return da @ Wx.T, da @ Wh.T, dprev_c, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def lstm_forward(x, h0, Wx, Wh, b):
    N, T, _ = x.shape
    H = h0.shape[1]
    h = np.zeros((N, T, H), dtype=x.dtype)
    prev_h, prev_c = h0, np.zeros_like(h0)
    steps = []
    for t in range(T):
        prev_h, prev_c, c = lstm_step_forward(x[:, t], prev_h, prev_c, Wx, Wh, b)
        h[:, t] = prev_h
        steps.append(c)
    return h, steps


def lstm_backward(dh, cache):
    steps = cache
    Wx, Wh = steps[0][3], steps[0][4]
    N, T, H = dh.shape
    dx = np.zeros((N, T, Wx.shape[0]), dtype=dh.dtype)
    dWx = np.zeros_like(Wx)
    dWh = np.zeros_like(Wh)
    db = np.zeros(Wx.shape[1], dtype=dh.dtype)
    dh_carry = np.zeros((N, H), dtype=dh.dtype)
    dc_carry = np.zeros((N, H), dtype=dh.dtype)
    for t in reversed(range(T)):
        dxt, dh_carry, dc_carry, dwx, dwh, dbt = lstm_step_backward(
            dh[:, t] + dh_carry, dc_carry, steps[t])
        dx[:, t] = dxt
        dWx += dwx
        dWh += dwh
        db += dbt
    return dx, dh_carry, dWx, dWh, db


# ----------------------------------------------------------------------------- GRU (r, z, n)

def gru_step_forward(x, prev_h, Wx, Wh, b):
    """r, z = sigmoid(x Wx_rz + h Wh_rz + b_rz); n = tanh(x Wx_n + b_n + r * (h Wh_n));
    next_h = (1 - z) * n + z * h."""
    H = prev_h.shape[1]
    ax = x @ Wx + b
    ah = prev_h @ Wh
    r = _sigmoid(ax[:, :H] + ah[:, :H])
    z = _sigmoid(ax[:, H:2 * H] + ah[:, H:2 * H])
    hn = ah[:, 2 * H:]
    n = np.tanh(ax[:, 2 * H:] + r * hn)
    next_h = (1.0 - z) * n + z * prev_h
    return next_h, (x, prev_h, Wx, Wh, r, z, n, hn)


def gru_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh, r, z, n, hn = cache
    dn = dnext_h * (1.0 - z)
    dz = dnext_h * (prev_h - n)
    dan = dn * (1.0 - n * n)          # gradient of the n pre-activation
    dr = dan * hn
    dar = dr * r * (1.0 - r)
    daz = dz * z * (1.0 - z)
    dax = np.concatenate([dar, daz, dan], axis=1)      # through x Wx + b
    dah = np.concatenate([dar, daz, dan * r], axis=1)  # through h Wh
    dprev_h = dnext_h * z + dah @ Wh.T
    return dax @ Wx.T, dprev_h, x.T @ dax, prev_h.T @ dah, dax.sum(axis=0)


def gru_forward(x, h0, Wx, Wh, b):
    N, T, _ = x.shape
    H = h0.shape[1]
    h = np.zeros((N, T, H), dtype=x.dtype)
    prev = h0
    steps = []
    for t in range(T):
        prev, c = gru_step_forward(x[:, t], prev, Wx, Wh, b)
        h[:, t] = prev
        steps.append(c)
    return h, steps


def gru_backward(dh, cache):
    steps = cache
    Wx, Wh = steps[0][2], steps[0][3]
    N, T, H = dh.shape
    dx = np.zeros((N, T, Wx.shape[0]), dtype=dh.dtype)
    dWx = np.zeros_like(Wx)
    dWh = np.zeros_like(Wh)
    db = np.zeros(Wx.shape[1], dtype=dh.dtype)
    carry = np.zeros((N, H), dtype=dh.dtype)
    for t in reversed(range(T)):
        dxt, carry, dwx, dwh, dbt = gru_step_backward(dh[:, t] + carry, steps[t])
        dx[:, t] = dxt
        dWx += dwx
        dWh += dwh
        db += dbt
    return dx, carry, dWx, dWh, db


# ----------------------------------------------------------------------------- embedding, affine, loss

def word_embedding_forward(x, W):
    return W[x], (x, W.shape)


def word_embedding_backward(dout, cache):
    x, shape = cache
    dW = np.zeros(shape, dtype=dout.dtype)
    np.add.at(dW, x, dout)
    return dW


def temporal_affine_forward(x, w, b):
    N, T, D = x.shape
    out = (x.reshape(N * T, D) @ w + b).reshape(N, T, w.shape[1])
    return out, (x, w)


def temporal_affine_backward(dout, cache):
    x, w = cache
    N, T, D = x.shape
    M = w.shape[1]
    d2 = dout.reshape(N * T, M)
    x2 = x.reshape(N * T, D)
    return (d2 @ w.T).reshape(N, T, D), x2.T @ d2, d2.sum(axis=0)


def temporal_softmax_loss(x, y, mask, verbose=False):
    N, T, V = x.shape
    s = x.reshape(N * T, V)
    yf = y.reshape(N * T)
    mf = mask.reshape(N * T)
    p = np.exp(s - s.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    rows = np.arange(N * T)
    loss = -np.sum(mf * np.log(p[rows, yf])) / N
    dx = p
    dx[rows, yf] -= 1.0
    dx /= N
    dx *= mf[:, None]
    return loss, dx.reshape(N, T, V)
