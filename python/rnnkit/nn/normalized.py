"""Recurrences with normalisation inside the loop (``norm="layer"`` / ``norm="batch"``).

The rnnkit.nn layers run them in the fused C++ kernels (``_core.forward(..., norm=...)``); an
inference-mode batch norm is an affine map of each product, folded into the weights here
(``fold_batch_norm``) so it runs as the plain kernels. This module also keeps the plain
per-time-step NumPy recurrence (``normalized_forward``/``normalized_backward``), written for
clarity and checked against finite differences: the reference the kernels are tested against.
It keeps the fused kernels' semantics: time-major (T, B, I), ``lengths`` (padded steps output 0
and carry the state), ``reverse`` (each sequence from its own last valid position),
``recurrent_mask`` (multiplies h_{t-1} where it enters h_{t-1} @ Wh; the GRU's z * h_{t-1}
path is unmasked).

What is computed at each step (N_x, N_h are the normalisations below, gains ``gamma_x`` and
``gamma_h`` of shape (G*H,); the biases b, bh act as the shifts):

    ax_t = N_x(x_t @ Wx) + b            ah_t = N_h((h_{t-1} * mask) @ Wh) + bh
    RNN:  h_t = phi(ax_t + ah_t)
    LSTM: i, f, g, o from ax_t + ah_t;  c_t = f c_{t-1} + i g;  h_t = o tanh(N_c(c_t))
    GRU:  r, z from ax + ah;  n = tanh(ax_n + r * ah_n);  h_t = (1 - z) n + z h_{t-1}

- ``layer`` (Ba, Kiros & Hinton 2016): N normalises each row over all G*H pre-activation
  features (mean 0, variance 1, eps 1e-5) and multiplies by gamma; for the LSTM also
  N_c(c) = LN(c) * gamma_c + beta_c over the H cell units (h_t uses the normalised cell, the
  carried state c_t is the unnormalised one).
- ``batch`` (recurrent batch normalisation, Cooijmans et al. 2016): in training N normalises
  each feature over the batch with the statistics of *that time step* (over the valid rows only
  when lengths are given; a step with no valid row outputs 0), separately for x @ Wx and for
  h @ Wh. Step s of a sequence is its position s, or with ``reverse`` its position
  length - 1 - s, so padded reversed sequences are grouped by how far they have run. Running statistics (one mean/variance per feature, shared by all time steps, updated
  after each training forward with momentum 0.1 from the average over steps of the per-step
  mean and unbiased variance) are used at inference. Differences from the paper: the cell
  state is not batch-normalised and the running statistics are not kept per time step (so any
  length works at inference); gammas start at 0.1 as the paper recommends.
"""
from __future__ import annotations

import numpy as np

from ..cells import cell_for_core_name

EPS = 1e-5
MOMENTUM = 0.1


def _sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def _sum_rows(a):
    return a.reshape(-1, a.shape[-1]).sum(axis=0)


# ------------------------------------------------------------------ layer normalisation
def ln_forward(a, gamma, beta=None):
    mu = a.mean(axis=-1, keepdims=True)
    xc = a - mu
    rstd = 1.0 / np.sqrt((xc * xc).mean(axis=-1, keepdims=True) + EPS)
    xhat = xc * rstd
    out = xhat * gamma
    if beta is not None:
        out += beta
    return out, (xhat, rstd)


def ln_backward(dout, gamma, cache):
    """Returns (da, dgamma, dbeta)."""
    xhat, rstd = cache
    dxhat = dout * gamma
    da = rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True)
                 - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))
    return da, _sum_rows(dout * xhat), _sum_rows(dout)


# ------------------------------------------------------------------ batch normalisation
def bn_train_forward(a, w, gamma):
    """a (..., B, F) normalised over B with the rows where w (..., B, 1) is 1."""
    n = np.maximum(w.sum(axis=-2, keepdims=True), 1)
    mu = (w * a).sum(axis=-2, keepdims=True) / n
    xc = (a - mu) * w
    var = (xc * xc).sum(axis=-2, keepdims=True) / n
    rstd = 1.0 / np.sqrt(var + EPS)
    xhat = xc * rstd
    return xhat * gamma, (xhat, rstd, w, n), mu, var


def bn_train_backward(dout, gamma, cache):
    xhat, rstd, w, n = cache
    dxhat = dout * gamma * w
    da = w * rstd * (dxhat - dxhat.sum(axis=-2, keepdims=True) / n
                     - xhat * (dxhat * xhat).sum(axis=-2, keepdims=True) / n)
    return da, _sum_rows(dout * xhat)


def bn_eval_forward(a, gamma, mean, var):
    rstd = 1.0 / np.sqrt(var + EPS)
    xhat = (a - mean) * rstd
    return xhat * gamma, (xhat, rstd)


def bn_eval_backward(dout, gamma, cache):
    xhat, rstd = cache
    return dout * gamma * rstd, _sum_rows(dout * xhat)


class _Norm:
    """One normalisation site (x-path or h-path) of a forward call."""

    def __init__(self, kind, training, gamma, running_mean=None, running_var=None):
        self.kind, self.training, self.gamma = kind, training, gamma
        self.running_mean, self.running_var = running_mean, running_var
        self.means, self.vars = [], []  # per-step batch statistics (batch norm, training)

    def forward(self, a, w):
        if self.kind == "layer":
            return ln_forward(a, self.gamma)
        if not self.training:
            return bn_eval_forward(a, self.gamma, self.running_mean, self.running_var)
        out, cache, mu, var = bn_train_forward(a, w, self.gamma)
        n = w.sum(axis=-2)  # (..., 1)
        mu, var = mu.reshape(-1, a.shape[-1]), var.reshape(-1, a.shape[-1])
        n = n.reshape(-1)
        for k in range(len(n)):
            if n[k] >= 1:
                unbiased = var[k] * (n[k] / (n[k] - 1)) if n[k] > 1 else var[k]
                self.means.append(mu[k])
                self.vars.append(unbiased)
        return out, cache

    def backward(self, dout, cache):
        if self.kind == "layer":
            da, dgamma, _ = ln_backward(dout, self.gamma, cache)
            return da, dgamma
        if not self.training:
            return bn_eval_backward(dout, self.gamma, cache)
        return bn_train_backward(dout, self.gamma, cache)

    def update_running(self):
        if self.kind != "batch" or not self.training or not self.means:
            return
        m = MOMENTUM
        self.running_mean *= 1 - m
        self.running_mean += m * np.mean(self.means, axis=0)
        self.running_var *= 1 - m
        self.running_var += m * np.mean(self.vars, axis=0)


def normalized_forward(cell, x, h0, c0, P, norm, lengths, reverse, rmask, training, buffers):
    """One layer, one direction. cell: 'rnn_tanh' | 'rnn_relu' | 'lstm' | 'gru'.
    P: Wx, Wh, b, bh, gamma_x, gamma_h (+ gamma_c, beta_c for LSTM with layer norm).
    buffers: running_mean_x/var_x/mean_h/var_h (batch norm; updated in place in training).
    Returns (y, hT, cT or None, cache)."""
    T, B, I = x.shape
    if reverse:  # each sequence flipped within its length: step s is then position s
        x = _flip_sequences(x, lengths)
    Wx, Wh = P["Wx"], P["Wh"]
    H = Wh.shape[0]
    dt = x.dtype
    if lengths is None:
        V = np.ones((T, B, 1), dt)
    else:
        V = (np.arange(T)[:, None] < lengths[None, :]).astype(dt)[:, :, None]
    bn = norm == "batch"
    nx = _Norm(norm, training, P["gamma_x"], buffers.get("running_mean_x"), buffers.get("running_var_x"))
    nh = _Norm(norm, training, P["gamma_h"], buffers.get("running_mean_h"), buffers.get("running_var_h"))
    XW = (x.reshape(T * B, I) @ Wx).reshape(T, B, -1)
    AX, cache_x = nx.forward(XW, V)
    AX = AX + P["b"]
    cell_type = cell_for_core_name(cell)
    step_forward = _STEPS[cell_type.name][0]
    # what a step needs besides its pre-activations: sizes, the cell's options, LSTM's N_c
    ctx = dict(H=H, norm=norm, P=P, **cell_type.options_for_core_name(cell))
    h = np.zeros((B, H), dt) if h0 is None else h0.copy()
    c = None
    if cell_type.has_cell_state:
        c = np.zeros((B, H), dt) if c0 is None else c0.copy()
    y = np.zeros((T, B, H), dt)
    store = {}
    for t in range(T):
        v = V[t]
        hm = h if rmask is None else h * rmask
        AHn, cache_h = nh.forward(hm @ Wh, v)
        AH = AHn + P["bh"]
        s = {"h": h, "hm": hm, "cache_h": cache_h}
        hn, cn = step_forward(AX[t], AH, h, c, s, ctx)
        if cell_type.has_cell_state:
            c = v * cn + (1 - v) * c
        y[t] = v[:, :1] * hn
        h = v * hn + (1 - v) * h
        s["hn"] = hn
        store[t] = s
    nx.update_running()
    nh.update_running()
    cache = dict(cell=cell, ctx=ctx, x=x, P=P, V=V, rmask=rmask, reverse=reverse, norm=norm, nx=nx, nh=nh,
                 cache_x=cache_x, store=store, has_h0=h0 is not None, has_c0=c0 is not None, bn=bn,
                 lengths=lengths)
    if reverse:
        y = _flip_sequences(y, lengths)
    return y, h, c, cache


def normalized_backward(cache, dy, dhT, dcT):
    """Returns (dx, dh0, dc0, grads) with grads a dict of parameter gradients (same keys as P)."""
    cell, x, P, V = cache["cell"], cache["x"], cache["P"], cache["V"]
    T, B, I = x.shape
    if cache["reverse"] and dy is not None:
        dy = _flip_sequences(dy, cache["lengths"])
    Wx, Wh = P["Wx"], P["Wh"]
    H = Wh.shape[0]
    dt = x.dtype
    rmask, store, nx, nh = cache["rmask"], cache["store"], cache["nx"], cache["nh"]
    grads = {k: np.zeros_like(v) for k, v in P.items()}
    dAX = np.zeros((T, B, Wx.shape[1]), dt)
    dh = np.zeros((B, H), dt) if dhT is None else dhT.copy()
    cell_type = cell_for_core_name(cell)
    step_backward = _STEPS[cell_type.name][1]
    dc = None
    if cell_type.has_cell_state:
        dc = np.zeros((B, H), dt) if dcT is None else dcT.copy()
    for t in range(T - 1, -1, -1):
        v, s = V[t], store[t]
        dhn = v * (dh if dy is None else dh + dy[t])
        dax, dah, dh_direct, dc = step_backward(dhn, dc, v, s, cache["ctx"], grads)
        dh_prev = (1 - v) * dh + dh_direct
        dAX[t] = dax
        grads["bh"] += dah.sum(axis=0)
        dHW, dgh = nh.backward(dah, s["cache_h"])
        grads["gamma_h"] += dgh
        grads["Wh"] += s["hm"].T @ dHW
        dhm = dHW @ Wh.T
        dh = dh_prev + (dhm if rmask is None else dhm * rmask)
    grads["b"] += _sum_rows(dAX)
    dXW, dgx = nx.backward(dAX, cache["cache_x"])
    grads["gamma_x"] += dgx
    dXW2 = dXW.reshape(T * B, -1)
    grads["Wx"] += x.reshape(T * B, I).T @ dXW2
    dx = (dXW2 @ Wx.T).reshape(T, B, I)
    if cache["reverse"]:
        dx = _flip_sequences(dx, cache["lengths"])
    return dx, dh, dc, grads


def _flip_sequences(a, lengths):
    """a (T, B, F) with each row's first lengths[b] positions in reverse order (all T when
    lengths is None); the padding stays where it is."""
    T, B = a.shape[:2]
    t = np.arange(T)[:, None]
    n = np.full(B, T) if lengths is None else np.asarray(lengths)
    source = np.where(t < n[None, :], n[None, :] - 1 - t, t)
    return a[source, np.arange(B)[None, :]]


# ------------------------------------------------- the layers' side of the fused kernels
def core_norm(kind, gamma_x, gamma_h, gamma_c=None, beta_c=None):
    """The normalisation dict ``_core.forward`` takes."""
    norm = {"kind": kind, "gamma_x": gamma_x, "gamma_h": gamma_h}
    if gamma_c is not None:
        norm.update(gamma_c=gamma_c, beta_c=beta_c)
    return norm


def update_running_statistics(buffers, batch_statistics):
    """Moves the running statistics (momentum MOMENTUM) towards a batch-normalised training
    forward's ``handle.batch_statistics``: (4, G*H) mean and unbiased variance of x @ Wx, then
    of h @ Wh, averaged over the steps with a valid row."""
    m = MOMENTUM
    for k, site in enumerate("xh"):
        for j, stat in enumerate(("mean", "var")):
            buf = buffers[f"running_{stat}_{site}"]
            buf *= 1 - m
            buf += m * batch_statistics[2 * k + j]


def fold_batch_norm(params, gamma_x, gamma_h, buffers):
    """An inference-mode batch norm is affine: N(a) = a * s + t with s = gamma / sqrt(var +
    EPS), t = -mean * s. Returns the plain kernels' parameters computing the same layer (Wx * s_x,
    b + t_x, Wh * s_h, bh + t_h) and what ``unfold_batch_norm_gradients`` needs."""
    folded, fold = dict(params), {}
    for site, w, bias, gamma in (("x", "Wx", "b", gamma_x), ("h", "Wh", "bh", gamma_h)):
        mean = buffers[f"running_mean_{site}"]
        rstd = 1.0 / np.sqrt(buffers[f"running_var_{site}"] + EPS)
        scale = (rstd * gamma).astype(params[w].dtype)
        folded[w] = params[w] * scale
        folded[bias] = params[bias] - mean * scale
        fold[site] = (params[w], mean, rstd)
    return folded, fold


def unfold_batch_norm_gradients(grads, fold, gamma_x, gamma_h):
    """The gradients of the folded parameters as gradients of the layer's own (Wx, Wh, b, bh,
    gamma_x, gamma_h); the others pass through."""
    out = dict(grads)
    for site, w, bias, gamma in (("x", "Wx", "b", gamma_x), ("h", "Wh", "bh", gamma_h)):
        weight, mean, rstd = fold[site]
        dfolded = grads[w]
        out[w] = dfolded * (rstd * gamma)
        out[f"gamma_{site}"] = rstd * ((dfolded * weight).sum(axis=0) - mean * grads[bias])
    return out


# ----------------------------------------------------------------------------- cell steps
# step_forward(ax, ah, h, c, s, ctx) -> (h_t, c_t or None), keeping what backward needs in s;
# step_backward(dhn, dc, v, s, ctx, grads) -> (d ax, d ah, gradient reaching h_{t-1} directly
# (not through ah), gradient of c_{t-1} or None). v: the step's (B, 1) validity.

_ACTIVATIONS = {  # RNN nonlinearity: phi and phi' written in terms of phi's output
    "tanh": (np.tanh, lambda out: 1 - out * out),
    "relu": (lambda a: np.maximum(a, 0), lambda out: out > 0),
}


def _rnn_step_forward(ax, ah, h, c, s, ctx):
    hn = _ACTIVATIONS[ctx["nonlinearity"]][0](ax + ah)
    return hn, None


def _rnn_step_backward(dhn, dc, v, s, ctx, grads):
    da = dhn * _ACTIVATIONS[ctx["nonlinearity"]][1](s["hn"])
    return da, da, 0, None


def _lstm_step_forward(ax, ah, h, c, s, ctx):
    H, P = ctx["H"], ctx["P"]
    a = ax + ah
    i, f = _sigmoid(a[:, :H]), _sigmoid(a[:, H:2 * H])
    g, o = np.tanh(a[:, 2 * H:3 * H]), _sigmoid(a[:, 3 * H:])
    cn = f * c + i * g
    if ctx["norm"] == "layer":
        cnn, s["cache_c"] = ln_forward(cn, P["gamma_c"], P["beta_c"])
    else:
        cnn = cn
    tc = np.tanh(cnn)
    s.update(c=c, i=i, f=f, g=g, o=o, tc=tc)
    return o * tc, cn


def _lstm_step_backward(dhn, dc, v, s, ctx, grads):
    i, f, g, o, tc = s["i"], s["f"], s["g"], s["o"], s["tc"]
    do = dhn * tc
    dcnn = dhn * o * (1 - tc * tc)
    if ctx["norm"] == "layer":
        dcn, dgc, dbc = ln_backward(dcnn, ctx["P"]["gamma_c"], s["cache_c"])
        grads["gamma_c"] += dgc
        grads["beta_c"] += dbc
    else:
        dcn = dcnn
    dcn = dcn + v * dc
    dc_prev = dcn * f + (1 - v) * dc
    da = np.concatenate([dcn * g * i * (1 - i), dcn * s["c"] * f * (1 - f),
                         dcn * i * (1 - g * g), do * o * (1 - o)], axis=1)
    return da, da, 0, dc_prev


def _gru_step_forward(ax, ah, h, c, s, ctx):  # reset after the recurrent product
    H = ctx["H"]
    a_rz = ax[:, :2 * H] + ah[:, :2 * H]
    r, z = _sigmoid(a_rz[:, :H]), _sigmoid(a_rz[:, H:])
    n = np.tanh(ax[:, 2 * H:] + r * ah[:, 2 * H:])
    s.update(r=r, z=z, n=n, ah_n=ah[:, 2 * H:])
    return (1 - z) * n + z * h, None


def _gru_step_backward(dhn, dc, v, s, ctx, grads):
    r, z, n, ah_n, h = s["r"], s["z"], s["n"], s["ah_n"], s["h"]
    dan = dhn * (1 - z) * (1 - n * n)
    dz = dhn * (h - n)
    dr = dan * ah_n
    dar, daz = dr * r * (1 - r), dz * z * (1 - z)
    dax = np.concatenate([dar, daz, dan], axis=1)
    dah = np.concatenate([dar, daz, dan * r], axis=1)
    return dax, dah, dhn * z, None


_STEPS = {  # by rnnkit.cells name; the equations are in this module's docstring
    "rnn": (_rnn_step_forward, _rnn_step_backward),
    "lstm": (_lstm_step_forward, _lstm_step_backward),
    "gru": (_gru_step_forward, _gru_step_backward),
}
