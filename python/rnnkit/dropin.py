"""Drop-in replacements for the classic NumPy RNN functions (the CS231n assignment style).

Same names, signatures, return values and batch-first shapes as the widely taught NumPy code,
so a notebook changes only its import::

    from rnnkit.dropin import rnn_forward, rnn_backward, lstm_forward, ...

Letters: N batch, T time steps, D input features, H hidden units, V vocabulary, M outputs.

- Sequences are batch-first ``(N, T, D)`` here; they run on the fused C++ kernels of
  ``rnnkit.functional`` (time-major), transposing on the way in and out. Returned
  sequences ``h`` / ``dx`` are ``(N, T, ·)`` views of a time-major buffer (not C-contiguous);
  every NumPy operation works on them, ``np.ascontiguousarray`` gives a packed copy.
- Vanilla RNN: ``next_h = tanh(x Wx + prev_h Wh + b)``.
- LSTM: gate column blocks **i, f, o, g** (the classic order; the kernel reads it in place),
  ``c0 = 0`` in ``lstm_forward``, single bias ``b`` of shape ``(4H,)``.
- GRU (rnnkit's cell, docs/design.md): gate column blocks **r, z, n**, reset applied after the
  recurrent product, single bias ``b`` of shape ``(3H,)`` (no recurrent bias):
  ``n = tanh(x Wx_n + b_n + r * (h Wh_n))``, ``next_h = (1 - z) * n + z * h``; the lecture's
  update gate ``z'`` is ``1 - z``.
- Caches are opaque objects: pass them back to the matching backward unchanged.
- float32 and float64 are both supported; all floating arguments of one call must share one
  dtype (a mismatch raises TypeError rather than silently upcasting).
- Parameter gradients (dWx, dWh, db, dw, dW) are sums over batch and time.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import _core
from . import functional as _F
from . import _checks

__all__ = [
    "rnn_step_forward", "rnn_step_backward", "rnn_forward", "rnn_backward",
    "lstm_step_forward", "lstm_step_backward", "lstm_forward", "lstm_backward",
    "gru_step_forward", "gru_step_backward", "gru_forward", "gru_backward",
    "word_embedding_forward", "word_embedding_backward",
    "temporal_affine_forward", "temporal_affine_backward", "temporal_softmax_loss",
]


# ----------------------------------------------------------------------------- checks

def _ndim(value, name: str, ndim: int, meaning: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D {meaning}, got shape {_checks.shape_str(arr.shape)}")
    return arr


def _state(value, name: str, N: int, H: int, dtype) -> np.ndarray:
    """A (N, H) state or state gradient, checked under its classic name."""
    arr = _checks.float_array(value, name, ndim=2, dtype=dtype)
    _checks.expect_shape(arr, name, (N, H), "(N, H)")
    return arr


def _own_cache(cache, kind, forward: str):
    """``cache`` if it is what ``forward`` returned (a ``kind``), else a TypeError naming it:
    another library's cache tuple would otherwise fail somewhere inside with a vague error."""
    if not isinstance(cache, kind):
        raise TypeError(f"cache must be the cache {forward} returned, got {type(cache).__name__}")
    return cache


def _hidden_size(Wh, G: int) -> int:
    Wh = _ndim(Wh, "Wh", 2, f"(H, {G}H)")
    return Wh.shape[0]


# ----------------------------------------------------------------------------- step functions
# Measured at notebook sizes (N = 50, D = H = 128, float64; bench/bench_rnn.py --suite dropin):
# for LSTM and GRU one step is fastest as the fused time-major kernel with T = 1; for the
# vanilla RNN a step is two GEMMs and a tanh, and plain in-place NumPy is as fast forward and
# faster backward (the kernel's fixed per-call work shows at T = 1), so it stays NumPy.

class RNNStepCache(NamedTuple):
    """What rnn_step_backward needs: x (N, D), prev_h (N, H), Wx (D, H), Wh (H, H), next_h (N, H)."""

    x: np.ndarray
    prev_h: np.ndarray
    Wx: np.ndarray
    Wh: np.ndarray
    next_h: np.ndarray


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    """One tanh-RNN step. x (N, D), prev_h (N, H), Wx (D, H), Wh (H, H), b (H,).

    Returns (next_h (N, H), cache).
    """
    x = _checks.float_array(x, "x", ndim=2)
    N, D = x.shape
    Wh = _checks.float_array(Wh, "Wh", ndim=2, dtype=x.dtype)
    H = Wh.shape[0]
    _checks.expect_shape(Wh, "Wh", (H, H), "(H, H)")
    Wx = _checks.float_array(Wx, "Wx", ndim=2, dtype=x.dtype)
    _checks.expect_shape(Wx, "Wx", (D, H), "(D, H) with D = x.shape[1]")
    b = _checks.float_array(b, "b", ndim=1, dtype=x.dtype)
    _checks.expect_shape(b, "b", (H,), "(H,)")
    prev_h = _state(prev_h, "prev_h", N, H, x.dtype)
    next_h = x @ Wx
    next_h += prev_h @ Wh
    next_h += b
    np.tanh(next_h, out=next_h)
    return next_h, RNNStepCache(x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    """dnext_h (N, H) -> (dx (N, D), dprev_h (N, H), dWx (D, H), dWh (H, H), db (H,))."""
    x, prev_h, Wx, Wh, next_h = _own_cache(cache, RNNStepCache, "rnn_step_forward")
    dnext_h = _state(dnext_h, "dnext_h", *next_h.shape, x.dtype)
    da = next_h * next_h           # tanh' = 1 - next_h^2, built in place
    np.subtract(1.0, da, out=da)
    da *= dnext_h
    return da @ Wx.T, da @ Wh.T, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """One LSTM step, gate blocks i, f, o, g. x (N, D), prev_h and prev_c (N, H),
    Wx (D, 4H), Wh (H, 4H), b (4H,).

    Returns (next_h (N, H), next_c (N, H), cache).
    """
    x = _checks.float_array(x, "x", ndim=2)
    H = _hidden_size(Wh, 4)
    prev_h = _state(prev_h, "prev_h", x.shape[0], H, x.dtype)
    prev_c = _state(prev_c, "prev_c", x.shape[0], H, x.dtype)
    _, next_h, next_c, cache = _F.lstm_forward(x[None], prev_h, prev_c, Wx, Wh, b, gate_order="ifog")
    return next_h, next_c, cache


def lstm_step_backward(dnext_h, dnext_c, cache):
    """dnext_h, dnext_c (N, H) -> (dx (N, D), dprev_h (N, H), dprev_c (N, H), dWx (D, 4H),
    dWh (H, 4H), db (4H,))."""
    dnext_h = _step_grad(dnext_h, "dnext_h", cache, ("lstm",))
    dnext_c = _step_grad(dnext_c, "dnext_c", cache, ("lstm",))
    dx, dprev_h, dprev_c, dWx, dWh, db, _ = _F.lstm_backward(None, dnext_h, dnext_c, cache)
    return dx[0], dprev_h, dprev_c, dWx, dWh, db


def gru_step_forward(x, prev_h, Wx, Wh, b):
    """One GRU step (gates r, z, n, reset after the recurrent product; see the module doc).
    x (N, D), prev_h (N, H), Wx (D, 3H), Wh (H, 3H), b (3H,).

    Returns (next_h (N, H), cache).
    """
    x = _checks.float_array(x, "x", ndim=2)
    prev_h = _state(prev_h, "prev_h", x.shape[0], _hidden_size(Wh, 3), x.dtype)
    _, next_h, cache = _F.gru_forward(x[None], prev_h, Wx, Wh, b)
    return next_h, cache


def gru_step_backward(dnext_h, cache):
    """dnext_h (N, H) -> (dx (N, D), dprev_h (N, H), dWx (D, 3H), dWh (H, 3H), db (3H,))."""
    dnext_h = _step_grad(dnext_h, "dnext_h", cache, ("gru",))
    dx, dprev_h, dWx, dWh, db, _ = _F.gru_backward(None, dnext_h, cache)
    return dx[0], dprev_h, dWx, dWh, db


def _step_grad(value, name, cache, cells):
    _F.check_cache(cache, cells, "the matching step forward")
    T, N, _, H = cache.dims
    if T != 1:
        raise TypeError("cache comes from a sequence forward; use the sequence backward")
    return _state(value, name, N, H, cache.dtype)


# ----------------------------------------------------------------------------- sequences

def _time_major(x, h0):
    """x (N, T, D) as the time-major view the kernels take; a time-major x (T, N, D) is named as
    such (otherwise the kernels would blame h0 for the mismatch)."""
    x = _ndim(x, "x", 3, "(N, T, D)")
    N = np.shape(h0)[0] if np.ndim(h0) == 2 else None
    if N is not None and x.shape[0] != N:
        hint = (" - it looks time-major (T, N, D); pass x.transpose(1, 0, 2)" if x.shape[1] == N else "")
        raise ValueError(f"x must be batch-first (N, T, D) with N = h0.shape[0] = {N}, got shape "
                         f"{_checks.shape_str(x.shape)}{hint}")
    return x.transpose(1, 0, 2)


def _seq_grad(dh, cache, cells):
    _F.check_cache(cache, cells)
    T, N, _, H = cache.dims
    dh = _checks.float_array(dh, "dh", ndim=3, dtype=cache.dtype)
    _checks.expect_shape(dh, "dh", (N, T, H), "(N, T, H)")
    return dh.transpose(1, 0, 2)


def rnn_forward(x, h0, Wx, Wh, b):
    """tanh RNN over a sequence. x (N, T, D), h0 (N, H), Wx (D, H), Wh (H, H), b (H,).

    Returns (h (N, T, H), cache).
    """
    y, _, cache = _F.rnn_forward(_time_major(x, h0), h0, Wx, Wh, b)
    return y.transpose(1, 0, 2), cache


def rnn_backward(dh, cache):
    """dh (N, T, H): upstream gradient of every hidden state.

    Returns (dx (N, T, D), dh0 (N, H), dWx (D, H), dWh (H, H), db (H,)).
    """
    dx, dh0, dWx, dWh, db, _ = _F.rnn_backward(_seq_grad(dh, cache, ("rnn_tanh",)), None, cache)
    return dx.transpose(1, 0, 2), dh0, dWx, dWh, db


def lstm_forward(x, h0, Wx, Wh, b):
    """LSTM over a sequence from c0 = 0, gate blocks i, f, o, g.
    x (N, T, D), h0 (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,).

    Returns (h (N, T, H), cache).
    """
    y, _, _, cache = _F.lstm_forward(_time_major(x, h0), h0, None, Wx, Wh, b, gate_order="ifog")
    return y.transpose(1, 0, 2), cache


def lstm_backward(dh, cache):
    """dh (N, T, H) -> (dx (N, T, D), dh0 (N, H), dWx (D, 4H), dWh (H, 4H), db (4H,))."""
    dx, dh0, _, dWx, dWh, db, _ = _F.lstm_backward(_seq_grad(dh, cache, ("lstm",)), None, None,
                                                  cache)
    return dx.transpose(1, 0, 2), dh0, dWx, dWh, db


def gru_forward(x, h0, Wx, Wh, b):
    """GRU over a sequence (gates r, z, n, reset after the recurrent product, single bias).
    x (N, T, D), h0 (N, H), Wx (D, 3H), Wh (H, 3H), b (3H,).

    Returns (h (N, T, H), cache).
    """
    y, _, cache = _F.gru_forward(_time_major(x, h0), h0, Wx, Wh, b)
    return y.transpose(1, 0, 2), cache


def gru_backward(dh, cache):
    """dh (N, T, H) -> (dx (N, T, D), dh0 (N, H), dWx (D, 3H), dWh (H, 3H), db (3H,))."""
    dx, dh0, dWx, dWh, db, _ = _F.gru_backward(_seq_grad(dh, cache, ("gru",)), None, cache)
    return dx.transpose(1, 0, 2), dh0, dWx, dWh, db


# ----------------------------------------------------------------------------- embedding

class WordEmbeddingCache(NamedTuple):
    """What word_embedding_backward needs: the checked ids (N, T) and W's shape and dtype."""

    ids: np.ndarray
    table_shape: tuple
    dtype: np.dtype


def word_embedding_forward(x, W):
    """Looks up word vectors. x (N, T) integer ids in [0, V), W (V, D).

    Returns (out (N, T, D), cache).
    """
    x = _ndim(x, "x", 2, "(N, T) integer ids")
    W = _checks.float_array(W, "W", ndim=2)
    ids = _checks.check_ids(x, W.shape[0], "x")
    _checks.check_lookup_size(ids.shape, W.shape[1], W.dtype, "x")
    return W.take(ids, axis=0), WordEmbeddingCache(ids, W.shape, W.dtype)


def word_embedding_backward(dout, cache):
    """dout (N, T, D) -> dW (V, D): rows of dout summed into the rows their ids name
    (a C++ scatter-add, deterministic order)."""
    ids, (V, D), dtype = _own_cache(cache, WordEmbeddingCache, "word_embedding_forward")
    dout = _checks.float_array(dout, "dout", ndim=3, dtype=dtype)
    _checks.expect_shape(dout, "dout", ids.shape + (D,), "(N, T, D)")
    dW = np.zeros((V, D), dtype=dtype)
    # explicit row count: reshape(-1, 0) is ambiguous for an embedding size D = 0
    _core.embedding_backward(ids.reshape(-1), dout.reshape(ids.size, D), dW, -1)
    return dW


# ----------------------------------------------------------------------------- affine and loss

class TemporalAffineCache(NamedTuple):
    """What temporal_affine_backward needs: x (N, T, D) and w (D, M)."""

    x: np.ndarray
    w: np.ndarray


def temporal_affine_forward(x, w, b):
    """Affine map at every time step. x (N, T, D), w (D, M), b (M,).

    Returns (out (N, T, M), cache).
    """
    x = _checks.float_array(x, "x", ndim=3)
    N, T, D = x.shape
    w = _checks.float_array(w, "w", ndim=2, dtype=x.dtype)
    if w.shape[0] != D:
        raise ValueError(f"w must have shape (D, M) with D = x.shape[2] = {D}, got {_checks.shape_str(w.shape)}")
    M = w.shape[1]
    b = _checks.float_array(b, "b", ndim=1, dtype=x.dtype)
    _checks.expect_shape(b, "b", (M,), "(M,)")
    out = x.reshape(N * T, D) @ w
    out += b
    return out.reshape(N, T, M), TemporalAffineCache(x, w)


def temporal_affine_backward(dout, cache):
    """dout (N, T, M) -> (dx (N, T, D), dw (D, M), db (M,))."""
    x, w = _own_cache(cache, TemporalAffineCache, "temporal_affine_forward")
    N, T, D = x.shape
    M = w.shape[1]
    dout = _checks.float_array(dout, "dout", ndim=3, dtype=x.dtype)
    _checks.expect_shape(dout, "dout", (N, T, M), "(N, T, M)")
    d2 = dout.reshape(N * T, M)
    dx = (d2 @ w.T).reshape(N, T, D)
    dw = x.reshape(N * T, D).T @ d2
    return dx, dw, d2.sum(axis=0)


def temporal_softmax_loss(x, y, mask, verbose=False):
    """Softmax cross-entropy summed over the time steps where mask is true, averaged over N.

    x (N, T, V) scores, y (N, T) integer targets in [0, V), mask (N, T) bool (or 0/1 weights).
    Returns (loss (float), dx (N, T, V)).
    """
    x = _checks.float_array(x, "x", ndim=3)
    N, T, V = x.shape
    y = _ndim(y, "y", 2, "(N, T) integer targets")
    if y.shape != (N, T):
        raise ValueError(f"y must have shape (N, T) = {_checks.shape_str((N, T))}, got {_checks.shape_str(y.shape)}")
    y = _checks.check_ids(y, V, "y", range_name="classes (x has V scores per step)").reshape(N * T)
    mask = np.asarray(mask)
    if mask.shape != (N, T):
        raise ValueError(f"mask must have shape (N, T) = {_checks.shape_str((N, T))}, got {_checks.shape_str(mask.shape)}")
    if not (mask.dtype == bool or np.issubdtype(mask.dtype, np.number)):
        raise TypeError(f"mask must be a bool (or numeric) array, got dtype {mask.dtype}")
    m = mask.reshape(N * T).astype(x.dtype)

    # log-sum-exp form, in place: one scores-sized buffer that becomes dx.
    dx = x.reshape(N * T, V) - x.reshape(N * T, V).max(axis=1, keepdims=True)
    rows = np.arange(N * T)
    target = dx[rows, y]                    # shifted score of each target
    np.exp(dx, out=dx)
    z = dx.sum(axis=1)
    loss = float(np.dot(m, np.log(z) - target)) / N
    dx *= (m / (N * z))[:, None]            # masked softmax / N
    dx[rows, y] -= m / N
    if verbose:
        print("dx_flat: ", dx.shape)
    return loss, dx.reshape(N, T, V)
