"""Semantics of the rnnkit.nn recurrent layers: agreement with rnnkit.functional, lengths,
bidirectional, batch_first, return_sequences/state, recurrent dropout, norms, initialisation,
state dicts, seeding and bad input."""
import pickle

import numpy as np
import pytest

import rnnkit.functional as F
import rnnkit.nn as nn
from rnnkit.nn.normalized import EPS, normalized_backward, normalized_forward

T, B, I, H = 5, 3, 4, 3
LENGTHS = np.array([5, 2, 3])
CLASSES = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
# float64 layer vs float64 kernel on the same data: identical operations up to BLAS blocking
TIGHT = dict(rtol=0, atol=1e-12)


def x_(shape=(T, B, I), seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def run_functional(kind, d, x, lengths, reverse, mask=None, h0=None):
    if kind == "lstm":
        y, hT, cT, _ = F.lstm_forward(x, h0, None, d.Wx, d.Wh, d.b, d.bh, lengths=lengths,
                                      reverse=reverse, recurrent_mask=mask)
        return y, (hT, cT)
    if kind == "gru":
        y, hT, _ = F.gru_forward(x, h0, d.Wx, d.Wh, d.b, d.bh, lengths=lengths, reverse=reverse,
                                 recurrent_mask=mask)
        return y, hT
    y, hT, _ = F.rnn_forward(x, h0, d.Wx, d.Wh, d.b, d.bh, lengths=lengths, reverse=reverse,
                             recurrent_mask=mask)
    return y, hT


@pytest.mark.parametrize("kind", list(CLASSES))
def test_bidirectional_matches_functional(kind):
    m = CLASSES[kind](I, H, bidirectional=True, return_state=True, dtype=np.float64, seed=0, batch_first=False)
    x = x_()
    y, states = m.forward(x, lengths=LENGTHS)
    yf, sf = run_functional(kind, m.l0.fwd, x, LENGTHS, False)
    yb, sb = run_functional(kind, m.l0.bwd, x, LENGTHS, True)
    np.testing.assert_allclose(y, np.concatenate([yf, yb], -1), **TIGHT)
    for got, want in zip(states, [sf, sb]):
        for g, w in zip(got if kind == "lstm" else [got], want if kind == "lstm" else [want]):
            np.testing.assert_allclose(g, w, **TIGHT)


@pytest.mark.parametrize("kind", list(CLASSES))
def test_lengths_padding_and_final_state(kind):
    """Padded outputs are zero; final states equal running each sequence alone, truncated."""
    m = CLASSES[kind](I, H, 2, bidirectional=True, return_state=True, dtype=np.float64, seed=1, batch_first=False)
    x = x_()
    y, states = m.forward(x, lengths=LENGTHS)
    for b in range(B):
        L = LENGTHS[b]
        assert np.all(y[L:, b] == 0)
        yb, sb = m.forward(x[:L, b:b + 1])
        np.testing.assert_allclose(y[:L, b:b + 1], yb, rtol=0, atol=1e-12)
        for got, want in zip(states, sb):
            for g, w in zip(got if kind == "lstm" else [got], want if kind == "lstm" else [want]):
                np.testing.assert_allclose(g[b:b + 1], w, rtol=0, atol=1e-12)
    # padding never leaks: garbage in padded steps changes nothing, and gets no gradient
    x2 = x.copy()
    for b in range(B):
        x2[LENGTHS[b]:, b] = 1e3
    y2, _ = m.forward(x2, lengths=LENGTHS)
    np.testing.assert_array_equal(y, y2)
    dx = m.backward((np.ones_like(y2), None))
    for b in range(B):
        assert np.all(dx[LENGTHS[b]:, b] == 0)


@pytest.mark.parametrize("kind", list(CLASSES))
def test_batch_first_and_last_step(kind):
    kw = dict(dtype=np.float64, seed=2, bidirectional=True, merge="sum")
    tm = CLASSES[kind](I, H, 2, batch_first=False, **kw)
    bf = CLASSES[kind](I, H, 2, batch_first=True, **kw)
    last = CLASSES[kind](I, H, 2, return_sequences=False, batch_first=False, **kw)
    x = x_()
    y = tm.forward(x, lengths=LENGTHS)
    np.testing.assert_array_equal(bf.forward(x.transpose(1, 0, 2), lengths=LENGTHS), y.transpose(1, 0, 2))
    np.testing.assert_array_equal(last.forward(x, lengths=LENGTHS), y[LENGTHS - 1, np.arange(B)])
    assert last.output_size == H and tm.output_size == H


def test_merge_modes_and_output_size():
    x = x_()
    outs = {}
    for merge in ("concat", "sum", "mul", "ave"):
        m = nn.GRU(I, H, bidirectional=True, merge=merge, dtype=np.float64, seed=4, batch_first=False)
        outs[merge] = m.forward(x)
        assert outs[merge].shape[-1] == m.output_size == (2 * H if merge == "concat" else H)
    yf, yb = outs["concat"][..., :H], outs["concat"][..., H:]
    np.testing.assert_allclose(outs["sum"], yf + yb, **TIGHT)
    np.testing.assert_allclose(outs["mul"], yf * yb, **TIGHT)
    np.testing.assert_allclose(outs["ave"], (yf + yb) / 2, **TIGHT)


def test_skip_connections():
    x = x_(shape=(T, B, H))
    plain = nn.LSTM(H, H, 2, dtype=np.float64, seed=5, batch_first=False)
    res = nn.LSTM(H, H, 2, skip="residual", dtype=np.float64, seed=5, batch_first=False)
    dense = nn.LSTM(H, H, 2, skip="dense", dtype=np.float64, seed=5, batch_first=False)
    y0 = res.l0.forward(x, None, False, [None])[0] + x
    y1 = res.l1.forward(y0, None, False, [None])[0] + y0
    np.testing.assert_allclose(res.forward(x), y1, **TIGHT)
    assert dense.output_size == 2 * H and dense.l1.fwd.Wx.shape == (2 * H, 4 * H)
    d0 = dense.l0.forward(x, None, False, [None])[0]
    d1 = dense.l1.forward(np.concatenate([x, d0], -1), None, False, [None])[0]
    np.testing.assert_allclose(dense.forward(x), np.concatenate([d0, d1], -1), **TIGHT)
    assert plain.forward(x).shape == (T, B, H)


def test_recurrent_dropout_mask_semantics():
    m = nn.LSTM(I, H, bidirectional=True, recurrent_dropout=0.5, dtype=np.float64, seed=6, batch_first=False)
    x = x_()
    m.seed(1)
    y1 = m.forward(x, lengths=LENGTHS, training=True)
    mask = m.l0.fwd.last_recurrent_mask
    assert mask.shape == (B, H) and set(np.unique(mask)) <= {0.0, 2.0}
    m.seed(1)
    np.testing.assert_array_equal(m.forward(x, lengths=LENGTHS, training=True), y1)
    m.seed(2)
    assert not np.array_equal(m.forward(x, lengths=LENGTHS, training=True), y1)
    # the same mask passed to the fused kernel by hand gives the same forward direction
    m.seed(1)
    y1 = m.forward(x, lengths=LENGTHS, training=True)
    yf, _ = run_functional("lstm", m.l0.fwd, x, LENGTHS, False, mask=m.l0.fwd.last_recurrent_mask)
    np.testing.assert_allclose(y1[..., :H], yf, **TIGHT)
    # inference: no mask
    y_eval = m.forward(x, lengths=LENGTHS)
    assert m.l0.fwd.last_recurrent_mask is None
    np.testing.assert_allclose(y_eval[..., :H], run_functional("lstm", m.l0.fwd, x, LENGTHS, False)[0], **TIGHT)


def test_rng_state_round_trip_is_picklable():
    m = nn.GRU(I, H, 2, dropout=0.5, recurrent_dropout=0.5, dtype=np.float64, seed=7, batch_first=False)
    x = x_()
    state = pickle.loads(pickle.dumps(m.rng_state()))
    y1 = m.forward(x, training=True)
    m.set_rng_state(state)
    np.testing.assert_array_equal(m.forward(x, training=True), y1)
    with pytest.raises(ValueError, match="state"):
        m.set_rng_state({"": state[""]})


@pytest.mark.parametrize("kind", list(CLASSES))
@pytest.mark.parametrize("reverse", [False, True])
def test_normalized_recurrence_reduces_to_the_kernel(kind, reverse):
    """The NumPy recurrence with batch norm in inference mode, mean 0, var 1 - eps and gain 1 is
    the identity normalisation: it must reproduce the fused kernel, forward and backward, with
    lengths, reverse and a recurrent mask (an independent check of the slower path's cell math)."""
    m = CLASSES[kind](I, H, dtype=np.float64, seed=8, batch_first=False)
    d = m.l0.fwd
    G = d.Wx.shape[1] // H
    P = {"Wx": d.Wx, "Wh": d.Wh, "b": d.b + 0.1, "bh": d.bh - 0.2,
         "gamma_x": np.ones(G * H), "gamma_h": np.ones(G * H)}
    bufs = {"running_mean_x": np.zeros(G * H), "running_var_x": np.full(G * H, 1 - EPS),
            "running_mean_h": np.zeros(G * H), "running_var_h": np.full(G * H, 1 - EPS)}
    cell = {"rnn": "rnn_tanh", "lstm": "lstm", "gru": "gru"}[kind]
    x = x_()
    rng = np.random.default_rng(3)
    mask = (rng.random((B, H)) > 0.3) / 0.7
    h0 = rng.standard_normal((B, H))
    c0 = rng.standard_normal((B, H)) if kind == "lstm" else None
    y, hT, cT, cache = normalized_forward(cell, x, h0, c0, P, "batch", LENGTHS, reverse, mask,
                                          False, bufs)
    args = (x, h0) + ((c0,) if kind == "lstm" else ()) + (P["Wx"], P["Wh"], P["b"], P["bh"])
    fwd = {"rnn": F.rnn_forward, "lstm": F.lstm_forward, "gru": F.gru_forward}[kind]
    out = fwd(*args, lengths=LENGTHS, reverse=reverse, recurrent_mask=mask)
    # rstd = 1/sqrt(1 - eps + eps) = 1 up to one rounding: agreement to ~1e-15 relative
    np.testing.assert_allclose(y, out[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(hT, out[1], rtol=0, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    dhT = rng.standard_normal((B, H))
    dcT = rng.standard_normal((B, H)) if kind == "lstm" else None
    dx, dh0, dc0, grads = normalized_backward(cache, dy, dhT, dcT)
    if kind == "lstm":
        want = F.lstm_backward(dy, dhT, dcT, out[-1])
        got = (dx, dh0, dc0, grads["Wx"], grads["Wh"], grads["b"], grads["bh"])
    else:
        bwd = F.gru_backward if kind == "gru" else F.rnn_backward
        want = bwd(dy, dhT, out[-1])
        got = (dx, dh0, grads["Wx"], grads["Wh"], grads["b"], grads["bh"])
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-11)


@pytest.mark.parametrize("norm", ["layer", "batch"])
def test_norms_are_scale_invariant_in_the_input_path(norm):
    """Both normalisations remove the scale of x @ Wx: scaling Wx by 5 barely changes y
    (only through eps = 1e-5 against O(1) variances, so ~1e-5 relative)."""
    m = nn.LSTM(I, H, bidirectional=True, norm=norm, dtype=np.float64, seed=9, batch_first=False)
    x = x_()
    y1 = m.forward(x, lengths=LENGTHS, training=True)
    for name, p in m.parameters().items():
        if name.endswith(".Wx"):
            p *= 5
    y2 = m.forward(x, lengths=LENGTHS, training=True)
    np.testing.assert_allclose(y1, y2, rtol=0, atol=1e-4)


def test_batch_norm_statistics_and_running_update():
    m = nn.RNN(I, H, norm="batch", dtype=np.float64, seed=10, batch_first=False)
    x = x_()
    d = m.l0.fwd
    XW = x @ d.Wx
    mean_steps = []
    for t in range(T):
        rows = LENGTHS > t
        mean_steps.append(XW[t, rows].mean(axis=0))
    m.forward(x, lengths=LENGTHS, training=True)
    # momentum 0.1 from the average over steps of the per-step means of the valid rows
    np.testing.assert_allclose(d.running_mean_x, 0.1 * np.mean(mean_steps, axis=0), rtol=1e-12)
    before = d.running_mean_x.copy()
    m.forward(x, lengths=LENGTHS, training=False)
    np.testing.assert_array_equal(d.running_mean_x, before)  # inference does not update


def test_initialisation():
    m = nn.LSTM(I, H, 2, bidirectional=True, seed=11, batch_first=False)
    for name, p in m.parameters().items():
        assert p.dtype == np.float32
        kind = name.rsplit(".", 1)[-1]
        if kind == "b":
            np.testing.assert_array_equal(p[H:2 * H], 1.0)  # forget gate
            np.testing.assert_array_equal(np.delete(p, np.s_[H:2 * H]), 0.0)
        if kind == "Wh":
            for g in range(4):
                blk = p[:, g * H:(g + 1) * H].astype(np.float64)
                np.testing.assert_allclose(blk.T @ blk, np.eye(H), atol=1e-6)
        if kind == "Wx":
            limit = np.sqrt(6 / (p.shape[0] + p.shape[1]))
            assert np.abs(p).max() <= limit
    a = nn.LSTM(I, H, seed=1, batch_first=False).parameters()
    b = nn.LSTM(I, H, seed=1, batch_first=False).parameters()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert nn.GRU(I, H, norm="batch", batch_first=False).l0.fwd.norm_x.gamma[0] == np.float32(0.1)
    assert nn.GRU(I, H, norm="layer", batch_first=False).l0.fwd.norm_h.gamma[0] == 1.0


def test_parameter_names_and_kinds():
    m = nn.LSTM(I, H, 2, bidirectional=True, norm="layer", batch_first=False)
    names = list(m.parameters())
    assert "l0.fwd.Wx" in names and "l1.bwd.bh" in names and "l0.fwd.norm_c.beta" in names
    assert {n.rsplit(".", 1)[-1] for n in names} == {"Wx", "Wh", "b", "bh", "gamma", "beta"}
    assert list(m.grads()) == names
    assert all(m.grads()[k].shape == p.shape for k, p in m.parameters().items())
    bn = nn.GRU(I, H, norm="batch", batch_first=False)
    assert "l0.fwd.running_mean_x" in bn.state_dict() and "l0.fwd.running_var_h" in bn.buffers()


def test_gradients_accumulate_and_zero_grad():
    m = nn.GRU(I, H, dtype=np.float64, seed=12, batch_first=False)
    x = x_()
    y = m.forward(x, training=True)
    m.backward(np.ones_like(y))
    g1 = {k: v.copy() for k, v in m.grads().items()}
    m.backward(np.ones_like(y))
    for k, v in m.grads().items():
        np.testing.assert_allclose(v, 2 * g1[k], rtol=1e-14)
    m.zero_grad()
    assert all(np.all(v == 0) for v in m.grads().values())


def test_state_dict_round_trip():
    a = nn.LSTM(I, H, 2, bidirectional=True, norm="batch", dtype=np.float64, seed=13, batch_first=False)
    a.forward(x_(), training=True)  # moves the running statistics
    b = nn.LSTM(I, H, 2, bidirectional=True, norm="batch", dtype=np.float64, seed=14, batch_first=False)
    sd = a.state_dict()
    sd["l0.fwd.Wx"][...] = sd["l0.fwd.Wx"]  # copies: editing them must not touch a
    b.load_state_dict(sd)
    live = b.parameters()["l0.fwd.Wx"]
    np.testing.assert_array_equal(b.forward(x_()), a.forward(x_()))
    assert b.parameters()["l0.fwd.Wx"] is live  # loaded in place
    sd2 = a.state_dict()
    sd2["l0.fwd.Wx"] += 1
    assert not np.array_equal(a.l0.fwd.Wx, sd2["l0.fwd.Wx"])
    bad = dict(sd)
    bad["l0.fwd.Wx"] = np.zeros((2, 2))
    with pytest.raises(ValueError, match="l0.fwd.Wx"):
        b.load_state_dict(bad)
    missing = dict(sd)
    del missing["l0.fwd.running_mean_x"]
    with pytest.raises(ValueError, match="running_mean_x"):
        b.load_state_dict(missing)


def test_float32_default_runs():
    m = nn.GRU(I, H, 2, bidirectional=True, recurrent_dropout=0.2, norm=None, seed=0, batch_first=False)
    x = x_(dtype=np.float32)
    y = m.forward(x, lengths=LENGTHS, training=True)
    assert y.dtype == np.float32
    assert m.backward(np.ones_like(y)).dtype == np.float32


# ---------------------------------------------------------------------- bad input
def test_bad_input_messages():
    m = nn.LSTM(I, H, 2, bidirectional=True, return_state=True, batch_first=False)
    x = x_(dtype=np.float32)
    with pytest.raises(TypeError, match="x has dtype float64"):
        m.forward(x.astype(np.float64))
    with pytest.raises(TypeError, match="x must be a floating"):
        m.forward(x.astype(np.int32))
    with pytest.raises(ValueError, match="x must be 3-D"):
        m.forward(x[0])
    with pytest.raises(ValueError, match="x must have 4 features"):
        m.forward(x[..., :2])
    with pytest.raises(ValueError, match="lengths must have shape"):
        m.forward(x, lengths=np.array([1, 2]))
    with pytest.raises(ValueError, match=r"lengths\[1\] = 9"):
        m.forward(x, lengths=np.array([1, 9, 2]))
    with pytest.raises(TypeError, match="lengths must be an integer"):
        m.forward(x, lengths=np.array([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="initial_state must be a list"):
        m.forward(x, initial_state=[None])
    bad_state = [(np.zeros((B, H + 1), np.float32), None)] + [None] * 3
    with pytest.raises(ValueError, match=r"initial_state\[0\]\[0\] must have shape"):
        m.forward(x, initial_state=bad_state)
    y, _ = m.forward(x)
    with pytest.raises(ValueError, match="dy must have"):
        m.backward((np.ones((T, B, 5), np.float32), None))
    with pytest.raises(ValueError, match="pair"):
        m.backward(np.ones_like(y))


@pytest.mark.parametrize("kwargs, match", [
    (dict(merge="max"), "merge"), (dict(skip="highway"), "skip"), (dict(norm="group"), "norm"),
    (dict(dropout=1.0), "dropout"), (dict(recurrent_dropout=-0.1), "recurrent_dropout"),
    (dict(dtype=np.int32), "dtype"), (dict(num_layers=0), "num_layers"),
])
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        nn.GRU(I, H, **kwargs)
    with pytest.raises(ValueError, match="hidden_size"):
        nn.LSTM(I, 0, batch_first=False)
    with pytest.warns(FutureWarning), pytest.raises(ValueError, match="mode"):  # deprecated alias
        nn.RNN(I, H, mode="sigmoid", batch_first=False)
    with pytest.raises(ValueError, match="linear_before_reset"):
        nn.GRU(I, H, norm="layer", linear_before_reset=False, batch_first=False)


def test_backward_before_forward():
    with pytest.raises(RuntimeError, match="before forward"):
        nn.GRU(I, H, batch_first=False).backward(np.zeros((T, B, H), np.float32))


@pytest.mark.parametrize("kind", list(CLASSES))
@pytest.mark.parametrize("norm", [None, "layer"])
def test_read_only_inputs_give_the_same_result(kind, norm):
    """x, lengths, initial states and the output gradient may be read-only (np.load with
    mmap_mode="r", np.frombuffer, np.broadcast_to): the layers only read them."""
    rng = np.random.default_rng(2)
    m = CLASSES[kind](I, H, num_layers=2, bidirectional=True, skip="residual", norm=norm,
                      return_state=True, dtype=np.float64, seed=0, batch_first=False)
    state = [rng.standard_normal((B, H)) for _ in range(4)]
    if kind == "lstm":
        state = [(h, rng.standard_normal((B, H))) for h in state]
    x, dy = x_(), rng.standard_normal((T, B, 2 * H))

    def read_only(a):
        a = np.array(a)
        a.setflags(write=False)
        return a

    def run(x, lengths, state, dy):
        out, states = m.forward(x, lengths=lengths, initial_state=state)
        m.zero_grad()
        dx = m.backward((dy, None))
        return [out, dx] + [g.copy() for g in m.grads().values()]  # copies: grads are live

    want = run(x, LENGTHS, state, dy)
    ro_state = [tuple(map(read_only, s)) if kind == "lstm" else read_only(s) for s in state]
    got = run(read_only(x), read_only(LENGTHS), ro_state, read_only(dy))
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    # zero strides: one input row repeated over time and batch
    xb = np.broadcast_to(x[:1, :1], x.shape)
    for g, w in zip(run(xb, None, None, dy), run(np.array(xb), None, None, dy)):
        np.testing.assert_array_equal(g, w)


def test_rnn_nonlinearity_and_its_deprecated_alias_mode():
    x = np.random.default_rng(0).standard_normal((T, B, I))
    relu = nn.RNN(I, H, nonlinearity="relu", batch_first=False, dtype=np.float64, seed=1)
    assert relu.nonlinearity == "relu" and relu.cell == "rnn_relu"
    assert nn.RNN(I, H).nonlinearity == "tanh"
    with pytest.warns(FutureWarning, match="nonlinearity="):
        old = nn.RNN(I, H, mode="relu", batch_first=False, dtype=np.float64, seed=1)
    assert old.nonlinearity == "relu"
    np.testing.assert_array_equal(old.forward(x), relu.forward(x))
    with pytest.warns(FutureWarning):
        assert old.mode == "relu"
    with pytest.warns(FutureWarning), pytest.raises(ValueError, match="disagree"):
        nn.RNN(I, H, mode="tanh", nonlinearity="relu")
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu', got 'sigmoid'"):
        nn.RNN(I, H, nonlinearity="sigmoid")


def test_normalized_relu_recurrence_reduces_to_the_kernel():
    """As above for the RNN's relu nonlinearity (the slower path's rnn_relu step)."""
    m = nn.RNN(I, H, nonlinearity="relu", dtype=np.float64, seed=8, batch_first=False)
    d = m.l0.fwd
    P = {"Wx": d.Wx, "Wh": d.Wh, "b": d.b + 0.1, "bh": d.bh - 0.2,
         "gamma_x": np.ones(H), "gamma_h": np.ones(H)}
    bufs = {"running_mean_x": np.zeros(H), "running_var_x": np.full(H, 1 - EPS),
            "running_mean_h": np.zeros(H), "running_var_h": np.full(H, 1 - EPS)}
    rng = np.random.default_rng(3)
    x, h0 = x_(), rng.standard_normal((B, H))
    y, hT, _, cache = normalized_forward("rnn_relu", x, h0, None, P, "batch", LENGTHS, False,
                                         None, False, bufs)
    want_y, want_hT, kcache = F.rnn_forward(x, h0, P["Wx"], P["Wh"], P["b"], P["bh"],
                                            nonlinearity="relu", lengths=LENGTHS)
    np.testing.assert_allclose(y, want_y, rtol=0, atol=1e-12)
    np.testing.assert_allclose(hT, want_hT, rtol=0, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    dx, dh0, _, grads = normalized_backward(cache, dy, None, None)
    want = F.rnn_backward(dy, None, kcache)
    for g, w in zip((dx, dh0, grads["Wx"], grads["Wh"], grads["b"], grads["bh"]), want):
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-11)


# ----------------------------------------------------------------------------- LSTM variants
def test_projection_lstm_shapes_and_parameters():
    """proj_size=P: outputs and h are P wide (2P when bidirectional with concat), c stays H
    wide, each direction owns Wr (H, P) and Wh (P, 4H); the next layer reads 2P features."""
    I, H, P, B, T = 5, 6, 3, 2, 4
    layer = nn.LSTM(I, H, 2, proj_size=P, bidirectional=True, return_state=True, seed=0)
    params = layer.parameters()
    assert params["l0.fwd.Wr"].shape == (H, P) and params["l0.bwd.Wh"].shape == (P, 4 * H)
    assert params["l1.fwd.Wx"].shape == (2 * P, 4 * H)
    assert layer.output_size == 2 * P and "proj_size=3" in repr(layer)
    y, states = layer.forward(np.zeros((B, T, I), np.float32))
    assert y.shape == (B, T, 2 * P)
    assert all(h.shape == (B, P) and c.shape == (B, H) for h, c in states)


def test_peephole_lstm_parameters_start_at_zero():
    layer = nn.LSTM(4, 5, peepholes=True, seed=0)
    assert np.all(layer.l0.fwd.peepholes == 0) and layer.l0.fwd.peepholes.shape == (3, 5)
    plain = nn.LSTM(4, 5, seed=0)
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    # zero peepholes compute the plain LSTM (same initial weights: same seed, same draws)
    np.testing.assert_array_equal(layer.forward(x), plain.forward(x))


def test_projection_and_peephole_option_errors():
    with pytest.raises(ValueError, match="proj_size must be an int >= 0, got -1"):
        nn.LSTM(4, 5, proj_size=-1)
    with pytest.raises(ValueError, match="peepholes must be False or True, got 'yes'"):
        nn.LSTM(4, 5, peepholes="yes")
    with pytest.raises(ValueError, match="norm='layer' cannot be combined with proj_size=2"):
        nn.LSTM(4, 5, proj_size=2, norm="layer")
    layer = nn.LSTM(4, 5, proj_size=2, return_state=True)
    with pytest.raises(ValueError, match=r"initial_state\[0\]\[0\] must have shape "
                                         r"\(B, proj_size\) = \(3, 2\), got \(3, 5\)"):
        layer.forward(np.zeros((3, 2, 4), np.float32),
                      initial_state=[(np.zeros((3, 5), np.float32), np.zeros((3, 5), np.float32))])


@pytest.mark.parametrize("options", [dict(proj_size=2), dict(peepholes=True)],
                         ids=["proj", "peepholes"])
def test_projection_and_peephole_lstm_save_load_and_pickle(tmp_path, options):
    import rnnkit

    layer = nn.LSTM(4, 5, 2, bidirectional=True, seed=1, **options)
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    want = layer.forward(x, training=True)
    rnnkit.save(layer, tmp_path / "lstm.rnnkit")
    for again in (rnnkit.load(tmp_path / "lstm.rnnkit"), pickle.loads(pickle.dumps(layer))):
        assert again.cell_options == layer.cell_options
        np.testing.assert_array_equal(again.forward(x), layer.forward(x))
    assert want.shape == (2, 3, 2 * layer.state_size)


@pytest.mark.parametrize("cls", [nn.RNN, nn.LSTM, nn.GRU])
def test_layers_validate_once_at_their_own_boundary(monkeypatch, cls):
    """The layers check x, lengths and states themselves and call the kernels through the
    internal entry, never through rnnkit.functional's checks again."""
    def not_again(*args, **kwargs):
        raise AssertionError("a layer went through rnnkit.functional's argument checks")

    monkeypatch.setattr(F, "_forward", not_again)
    monkeypatch.setattr(F, "_backward", not_again)
    layer = cls(3, 4, 2, bidirectional=True, seed=0)
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    y = layer.forward(x, lengths=[5, 2], training=True)
    assert layer.backward(np.ones_like(y)).shape == x.shape


@pytest.mark.parametrize("norm", [None, "layer", "batch"])
@pytest.mark.parametrize("kind", list(CLASSES))
def test_inference_forward_keeps_no_reserve_and_backward_after_it_is_exact(kind, norm):
    """training=False runs the inference kernels and keeps only the call's inputs (no core
    handle); a backward after it reruns the forward in training mode first, so its gradients
    equal those after a training-mode forward of the same (eval-mode) layer."""
    from rnnkit import _core

    m = CLASSES[kind](I, H, 2, bidirectional=True, norm=norm, dtype=np.float64, seed=4,
                      batch_first=False)
    x = x_(seed=7)
    dy = np.random.default_rng(8).standard_normal((T, B, 2 * H))
    before = _core._live_forward_handles()
    y = m.forward(x, lengths=LENGTHS, training=False)
    assert _core._live_forward_handles() == before
    m.zero_grad()
    dx = m.backward(dy)
    grads = {k: v.copy() for k, v in m.grads().items()}
    # the same computation with the reserve kept: each direction's call as a training forward
    m2 = pickle.loads(pickle.dumps(m))
    m2.zero_grad()
    y2 = m2.forward(x, lengths=LENGTHS, training=False)
    for level in m2.levels:  # replace the kept inputs by a training forward's cache
        for d in level.directions:
            d._cache = d._run(d._cache, inference=False)[3]
    dx2 = m2.backward(dy)
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(dx, dx2)
    for k, g in m2.grads().items():
        np.testing.assert_array_equal(grads[k], g, err_msg=k)
