"""Readable plain-NumPy forward and backward passes for every cell: the oracle for tests.

Written straight from the equations in docs/design.md, one small function per cell step, one
per-time-step loop, vectorised over the batch. It is meant to be read and trusted, not to be
fast; benchmarks also use it as "the plain NumPy implementation".

Shapes (docs/design.md): x (T, B, I) time-major, y (T, B, H), states (B, H), Wx (I, G*H),
Wh (H, G*H), b and bh (G*H,), with G = 1 (RNN), 4 (LSTM, gates i, f, g, o) and
3 (GRU, gates r, z, n); gate blocks are contiguous H-wide column blocks. An LSTM with a
projection Wr (H, P) has y, h0, hT P wide and Wh (P, 4*H); peepholes are (3, H): p_i, p_f, p_o.

Computation runs in the dtype of ``x`` (float32 or float64; float64 is the oracle use) and
every floating argument must share it. ``h0``, ``c0``, ``dy``, ``dhT``, ``dcT`` may be None
(zeros); ``bh`` may be None (no recurrent bias), and then the returned ``dbh`` is None.

Variable lengths: ``lengths`` (B,) ints in [0, T]. Row b is valid at time t when
t < lengths[b]. Past a row's length the output is zero and the state is carried unchanged;
gradients given there (dy) are ignored, and nothing read there (x) reaches any result.
``reverse=True`` runs each row from its own last valid step, lengths[b] - 1, down to 0 and
writes each output at the time position of the input it came from.

Backward: activation gradients (dx, dh0, dc0) are assigned, parameter gradients (dWx, dWh,
db, dbh, and dWr, dpeepholes for an LSTM given them) are sums over all time steps and valid rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .cells import get_cell

__all__ = [
    "rnn_forward",
    "rnn_backward",
    "lstm_forward",
    "lstm_backward",
    "gru_forward",
    "gru_backward",
    "sigmoid",
]


# ----------------------------------------------------------------------------- maths helpers

def sigmoid(a):
    """1 / (1 + exp(-a)) without overflow: exp is only ever taken of -|a| <= 0."""
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(a.dtype, copy=False)


def _blocks(a, gates):
    """Splits (B, G*H) pre-activations into G views of (B, H), in column-block order."""
    width = a.shape[1] // gates
    return [a[:, k * width:(k + 1) * width] for k in range(gates)]


# ----------------------------------------------------------------------------- parameters

@dataclass
class _Params:
    Wx: np.ndarray  # (I, G*H)
    Wh: np.ndarray  # (H, G*H)
    b: np.ndarray  # (G*H,)
    bh: np.ndarray  # (G*H,), zeros when the caller gave None
    has_bh: bool
    nonlinearity: str = "tanh"  # RNN only
    linear_before_reset: bool = True  # GRU only
    Wr: np.ndarray | None = None  # (H, P) LSTM output projection, or None
    peepholes: np.ndarray | None = None  # (3, H) LSTM p_i, p_f, p_o, or None


@dataclass
class _Grads:
    dWx: np.ndarray
    dWh: np.ndarray
    db: np.ndarray
    dbh: np.ndarray
    dWr: np.ndarray | None = None
    dpeepholes: np.ndarray | None = None

    @classmethod
    def zeros_like(cls, p: _Params) -> "_Grads":
        def zeros(a):
            return None if a is None else np.zeros_like(a)
        return cls(zeros(p.Wx), zeros(p.Wh), zeros(p.b), zeros(p.bh), zeros(p.Wr),
                   zeros(p.peepholes))


@dataclass
class ReferenceCache:
    """Everything backward needs: the parameters and, per step, which time index each row
    read, which rows were valid, the (masked) input rows and the cell's saved activations."""

    cell: str
    x_shape: tuple
    params: _Params
    steps: list = field(default_factory=list)  # [(t_index (B,), valid (B,), x_t (B, I), saved)]
    has_cell_state: bool = False


# ----------------------------------------------------------------------------- cell steps
# Each *_step_forward(x_t, states, p) returns (new_states, saved); each *_step_backward(
# dstates, x_t, saved, p, grads) returns (dx_t, dstates_prev) and adds into grads.
# States are tuples: (h,) for RNN and GRU, (h, c) for LSTM.

def _rnn_step_forward(x_t, states, p):
    (h_prev,) = states
    a = x_t @ p.Wx + p.b + h_prev @ p.Wh + p.bh
    h = np.tanh(a) if p.nonlinearity == "tanh" else np.maximum(a, 0)
    return (h,), (h_prev, h)


def _rnn_step_backward(dstates, x_t, saved, p, grads):
    (dh,) = dstates
    h_prev, h = saved
    if p.nonlinearity == "tanh":
        da = dh * (1 - h * h)
    else:  # relu'(a) = 1 where a > 0, which is exactly where h > 0
        da = dh * (h > 0)
    grads.dWx += x_t.T @ da
    grads.dWh += h_prev.T @ da
    grads.db += da.sum(axis=0)
    grads.dbh += da.sum(axis=0)
    return da @ p.Wx.T, (da @ p.Wh.T,)


def _lstm_step_forward(x_t, states, p):
    h_prev, c_prev = states
    a = x_t @ p.Wx + p.b + h_prev @ p.Wh + p.bh
    a_i, a_f, a_g, a_o = _blocks(a, 4)
    if p.peepholes is not None:  # i and f look at c_{t-1}
        p_i, p_f, _ = p.peepholes
        a_i, a_f = a_i + p_i * c_prev, a_f + p_f * c_prev
    i, f, g = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g)
    c = f * c_prev + i * g
    if p.peepholes is not None:  # o looks at c_t
        a_o = a_o + p.peepholes[2] * c
    o = sigmoid(a_o)
    tanh_c = np.tanh(c)
    m = o * tanh_c  # the cell's output; the projection, if any, makes it h
    h = m if p.Wr is None else m @ p.Wr
    return (h, c), (h_prev, c_prev, c, i, f, g, o, tanh_c, m)


def _lstm_step_backward(dstates, x_t, saved, p, grads):
    dh, dc = dstates
    h_prev, c_prev, c, i, f, g, o, tanh_c, m = saved
    if p.Wr is not None:
        grads.dWr += m.T @ dh
        dh = dh @ p.Wr.T  # now the gradient reaching m
    da_o = dh * tanh_c * o * (1 - o)
    dc = dc + dh * o * (1 - tanh_c * tanh_c)
    if p.peepholes is not None:
        dc = dc + da_o * p.peepholes[2]
    da_i, da_f, da_g = dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g * g)
    da = np.concatenate([da_i, da_f, da_g, da_o], axis=1)
    dc_prev = dc * f
    if p.peepholes is not None:
        p_i, p_f, _ = p.peepholes
        dc_prev = dc_prev + da_i * p_i + da_f * p_f
        grads.dpeepholes += np.stack([(da_i * c_prev).sum(axis=0), (da_f * c_prev).sum(axis=0),
                                      (da_o * c).sum(axis=0)])
    grads.dWx += x_t.T @ da
    grads.dWh += h_prev.T @ da
    grads.db += da.sum(axis=0)
    grads.dbh += da.sum(axis=0)
    return da @ p.Wx.T, (da @ p.Wh.T, dc_prev)


def _gru_step_forward(x_t, states, p):
    (h_prev,) = states
    H = h_prev.shape[1]
    ax = x_t @ p.Wx + p.b
    ax_rz, ax_n = ax[:, : 2 * H], ax[:, 2 * H:]
    Wh_rz, Wh_n = p.Wh[:, : 2 * H], p.Wh[:, 2 * H:]
    bh_rz, bh_n = p.bh[: 2 * H], p.bh[2 * H:]
    r, z = _blocks(sigmoid(ax_rz + h_prev @ Wh_rz + bh_rz), 2)
    if p.linear_before_reset:
        # n = tanh(x Wx_n + b_n + r * (h Wh_n + bh_n))
        hidden_n = h_prev @ Wh_n + bh_n
        n = np.tanh(ax_n + r * hidden_n)
    else:
        # n = tanh(x Wx_n + b_n + (r * h) Wh_n + bh_n)
        hidden_n = (r * h_prev) @ Wh_n + bh_n
        n = np.tanh(ax_n + hidden_n)
    h = (1 - z) * n + z * h_prev
    return (h,), (h_prev, r, z, n, hidden_n)


def _gru_step_backward(dstates, x_t, saved, p, grads):
    (dh,) = dstates
    h_prev, r, z, n, hidden_n = saved
    H = h_prev.shape[1]
    Wh_rz, Wh_n = p.Wh[:, : 2 * H], p.Wh[:, 2 * H:]
    dn = dh * (1 - z)
    dz = dh * (h_prev - n)
    dh_prev = dh * z
    da_n = dn * (1 - n * n)  # gradient of n's tanh argument
    da_z = dz * z * (1 - z)
    if p.linear_before_reset:
        dhidden_n = da_n * r  # hidden_n = h Wh_n + bh_n
        dr = da_n * hidden_n
        da_r = dr * r * (1 - r)
        dah = np.concatenate([da_r, da_z, dhidden_n], axis=1)  # recurrent pre-activations
        grads.dWh += h_prev.T @ dah
        dh_prev = dh_prev + dah @ p.Wh.T
    else:
        dhidden_n = da_n  # hidden_n = (r * h) Wh_n + bh_n
        d_rh = da_n @ Wh_n.T
        dr = d_rh * h_prev
        da_r = dr * r * (1 - r)
        dah_rz = np.concatenate([da_r, da_z], axis=1)
        grads.dWh[:, : 2 * H] += h_prev.T @ dah_rz
        grads.dWh[:, 2 * H:] += (r * h_prev).T @ da_n
        dh_prev = dh_prev + d_rh * r + dah_rz @ Wh_rz.T
        dah = np.concatenate([da_r, da_z, dhidden_n], axis=1)
    dax = np.concatenate([da_r, da_z, da_n], axis=1)  # input pre-activations
    grads.dWx += x_t.T @ dax
    grads.db += dax.sum(axis=0)
    grads.dbh += dah.sum(axis=0)
    return dax @ p.Wx.T, (dh_prev,)


_STEPS = {
    "rnn": (_rnn_step_forward, _rnn_step_backward),
    "lstm": (_lstm_step_forward, _lstm_step_backward),
    "gru": (_gru_step_forward, _gru_step_backward),
}


# ----------------------------------------------------------------------------- the time loop

def _schedule(T, lengths, reverse):
    """Yields, for each step s = 0..T-1, the time index each row reads at that step and
    which rows are valid (s < lengths[b]). Invalid rows get index 0; they are masked."""
    for s in range(T):
        valid = s < lengths
        t_index = (lengths - 1 - s) if reverse else np.full_like(lengths, s)
        yield np.where(valid, t_index, 0), valid


def _run_forward(cell, x, states, p, lengths, reverse):
    step_forward = _STEPS[cell][0]
    T, B, _ = x.shape
    S = p.Wh.shape[0]  # the width of h: H, or P with a projection
    rows = np.arange(B)
    lengths = np.full(B, T, dtype=np.int64) if lengths is None else lengths
    y = np.zeros((T, B, S), dtype=x.dtype)
    cache = ReferenceCache(cell, x.shape, p, has_cell_state=len(states) == 2)
    for t_index, valid in _schedule(T, lengths, reverse):
        keep = valid[:, None]
        # Zeroing padded input rows keeps whatever sits in the padding (even NaN) out of
        # the weight gradients, which multiply x_t by a zero gradient for those rows.
        x_t = np.where(keep, x[t_index, rows], 0).astype(x.dtype, copy=False)
        new_states, saved = step_forward(x_t, states, p)
        states = tuple(np.where(keep, new, old) for new, old in zip(new_states, states))
        y[t_index[valid], rows[valid]] = states[0][valid]
        cache.steps.append((t_index, valid, x_t, saved))
    return y, states, cache


def _run_backward(dy, dstates, cache):
    step_backward = _STEPS[cache.cell][1]
    p = cache.params
    T, B, _ = cache.x_shape
    rows = np.arange(B)
    dtype = p.Wx.dtype
    dx = np.zeros(cache.x_shape, dtype=dtype)
    grads = _Grads.zeros_like(p)
    for t_index, valid, x_t, saved in reversed(cache.steps):
        keep = valid[:, None]
        dy_t = np.where(keep, dy[t_index, rows], 0)  # gradients at padded positions ignored
        dstates = (dstates[0] + dy_t,) + dstates[1:]
        # Invalid rows contribute nothing to this step and pass their state gradient through.
        dstep = tuple(np.where(keep, d, 0).astype(dtype, copy=False) for d in dstates)
        dx_t, dprev = step_backward(dstep, x_t, saved, p, grads)
        dstates = tuple(np.where(keep, new, old) for new, old in zip(dprev, dstates))
        dx[t_index[valid], rows[valid]] = dx_t[valid]
    dbh = grads.dbh if p.has_bh else None
    return dx, dstates, grads.dWx, grads.dWh, grads.db, dbh, grads.dWr, grads.dpeepholes


# ----------------------------------------------------------------------------- argument checks

def _float(a, name, shape, dtype):
    a = np.asarray(a)
    if a.dtype != dtype:
        raise TypeError(f"{name} has dtype {a.dtype}, expected {dtype} (the dtype of x)")
    if a.shape != shape:
        raise ValueError(f"{name} has shape {a.shape}, expected {shape}")
    return a


def _optional(a, name, shape, dtype):
    return np.zeros(shape, dtype=dtype) if a is None else _float(a, name, shape, dtype)


def _prepare(cell, x, Wx, Wh, b, bh, lengths, Wr=None, peepholes=None, **options):
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"x must be float32 or float64, got {x.dtype}")
    if x.ndim != 3:
        raise ValueError(f"x must be (T, B, I), got shape {x.shape}")
    T, B, I = x.shape
    G = get_cell(cell).num_gates
    Wh = np.asarray(Wh)
    if Wh.ndim != 2:
        raise ValueError(f"Wh must be (H, {G}*H), got shape {Wh.shape}")
    if Wr is None:
        H = S = Wh.shape[0]
    else:
        Wr = np.asarray(Wr)
        if Wr.ndim != 2:
            raise ValueError(f"Wr must be (H, P), got shape {Wr.shape}")
        H, S = Wr.shape
        Wr = _float(Wr, "Wr", (H, S), x.dtype)
    Wh = _float(Wh, "Wh", (S, G * H), x.dtype)
    Wx = _float(Wx, "Wx", (I, G * H), x.dtype)
    b = _float(b, "b", (G * H,), x.dtype)
    if peepholes is not None:
        peepholes = _float(peepholes, "peepholes", (3, H), x.dtype)
    p = _Params(Wx, Wh, b, _optional(bh, "bh", (G * H,), x.dtype), bh is not None, Wr=Wr,
                peepholes=peepholes, **options)
    if lengths is not None:
        lengths = np.asarray(lengths)
        if lengths.shape != (B,) or not np.issubdtype(lengths.dtype, np.integer):
            raise ValueError(f"lengths must be ints of shape ({B},), got {lengths.dtype} {lengths.shape}")
        if lengths.size and (lengths.min() < 0 or lengths.max() > T):
            raise ValueError(f"lengths must lie in [0, {T}], got {lengths}")
        lengths = lengths.astype(np.int64)
    return x, p, lengths, (B, S)


# ----------------------------------------------------------------------------- public API

def rnn_forward(x, h0, Wx, Wh, b, bh=None, *, nonlinearity="tanh", lengths=None, reverse=False):
    """Vanilla RNN, h_t = phi(x_t Wx + b + h_{t-1} Wh + bh), phi = tanh or relu.

    Returns (y (T, B, H), hT (B, H), cache)."""
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    x, p, lengths, state_shape = _prepare("rnn", x, Wx, Wh, b, bh, lengths, nonlinearity=nonlinearity)
    h0 = _optional(h0, "h0", state_shape, x.dtype)
    y, (hT,), cache = _run_forward("rnn", x, (h0,), p, lengths, bool(reverse))
    return y, hT, cache


def rnn_backward(dy, dhT, cache):
    """Gradients of rnn_forward: returns (dx, dh0, dWx, dWh, db, dbh)."""
    dy, (dhT,) = _backward_inputs("rnn", dy, (dhT,), ("dhT",), cache)
    dx, (dh0,), dWx, dWh, db, dbh, _, _ = _run_backward(dy, (dhT,), cache)
    return dx, dh0, dWx, dWh, db, dbh


def lstm_forward(x, h0, c0, Wx, Wh, b, bh=None, *, lengths=None, reverse=False, Wr=None,
                 peepholes=None):
    """LSTM, gates i, f, g, o: c_t = f c_{t-1} + i g, h_t = o tanh(c_t); with Wr (H, P),
    h_t = (o tanh(c_t)) @ Wr; with peepholes (3, H), i and f add p * c_{t-1} and o adds
    p_o * c_t to their pre-activations.

    Returns (y (T, B, S), hT (B, S), cT (B, H), cache), S = P with Wr, else H."""
    x, p, lengths, state_shape = _prepare("lstm", x, Wx, Wh, b, bh, lengths, Wr=Wr,
                                          peepholes=peepholes)
    h0 = _optional(h0, "h0", state_shape, x.dtype)
    c0 = _optional(c0, "c0", (state_shape[0], p.Wx.shape[1] // 4), x.dtype)
    y, (hT, cT), cache = _run_forward("lstm", x, (h0, c0), p, lengths, bool(reverse))
    return y, hT, cT, cache


def lstm_backward(dy, dhT, dcT, cache):
    """Gradients of lstm_forward: returns (dx, dh0, dc0, dWx, dWh, db, dbh), and when the
    forward had Wr or peepholes also (dWr, dpeepholes), None for the one it did not have."""
    dy, dstates = _backward_inputs("lstm", dy, (dhT, dcT), ("dhT", "dcT"), cache)
    dx, (dh0, dc0), dWx, dWh, db, dbh, dWr, dpeepholes = _run_backward(dy, dstates, cache)
    grads = (dx, dh0, dc0, dWx, dWh, db, dbh)
    if dWr is None and dpeepholes is None:
        return grads
    return grads + (dWr, dpeepholes)


def gru_forward(x, h0, Wx, Wh, b, bh=None, *, lengths=None, reverse=False, linear_before_reset=True):
    """GRU, gates r, z, n: h_t = (1 - z) n + z h_{t-1}.

    linear_before_reset=True: n = tanh(x Wx_n + b_n + r * (h Wh_n + bh_n)) (PyTorch/cuDNN);
    False: n = tanh(x Wx_n + b_n + (r * h) Wh_n + bh_n) (Cho et al., ONNX default).
    Returns (y (T, B, H), hT (B, H), cache)."""
    x, p, lengths, state_shape = _prepare(
        "gru", x, Wx, Wh, b, bh, lengths, linear_before_reset=bool(linear_before_reset)
    )
    h0 = _optional(h0, "h0", state_shape, x.dtype)
    y, (hT,), cache = _run_forward("gru", x, (h0,), p, lengths, bool(reverse))
    return y, hT, cache


def gru_backward(dy, dhT, cache):
    """Gradients of gru_forward: returns (dx, dh0, dWx, dWh, db, dbh)."""
    dy, (dhT,) = _backward_inputs("gru", dy, (dhT,), ("dhT",), cache)
    dx, (dh0,), dWx, dWh, db, dbh, _, _ = _run_backward(dy, (dhT,), cache)
    return dx, dh0, dWx, dWh, db, dbh


def _backward_inputs(cell, dy, dstates, names, cache):
    if not isinstance(cache, ReferenceCache) or cache.cell != cell:
        kind = cache.cell if isinstance(cache, ReferenceCache) else type(cache).__name__
        raise TypeError(f"cache must come from reference.{cell}_forward, got {kind}")
    T, B, _ = cache.x_shape
    S = cache.params.Wh.shape[0]  # the width of h
    H = cache.params.Wx.shape[1] // get_cell(cell).num_gates  # the width of c
    dtype = cache.params.Wx.dtype
    dy = _optional(dy, "dy", (T, B, S), dtype)
    dstates = tuple(_optional(d, name, (B, width), dtype)
                    for d, name, width in zip(dstates, names, (S, H)))
    return dy, dstates
