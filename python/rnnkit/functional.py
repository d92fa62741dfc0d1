"""Array-in / array-out recurrent layers over the C++ core (time-major, one layer, one direction).

Shapes (DESIGN.md): x (T, B, I), y (T, B, H), states (B, H), Wx (I, G*H), Wh (H, G*H),
b and bh (G*H,), with G = 1 (RNN), 4 (LSTM, gates i, f, g, o), 3 (GRU, gates r, z, n).

Every forward returns a cache for its backward. Pass ``inference=True`` to skip storing it
(faster, less memory): the cache is then None and backward raises.

Variable lengths: ``lengths`` (B,) ints in [0, T]. Outputs past a sequence's length are zero,
the state is carried unchanged, so the returned final state is the one after the sequence's own
last step; gradients given at padded positions are ignored. ``reverse=True`` runs each sequence
from its own last valid step down to 0, writing outputs at the same time positions.

``recurrent_mask`` (B, H): variational recurrent dropout on the fast path. The mask (e.g.
Bernoulli(1-p)/(1-p), drawn once per sequence) multiplies h_{t-1} where it enters the
recurrent product ``h_{t-1} @ Wh`` at every step; a GRU's direct path z * h_{t-1} and the
carried state are not masked (as Keras' recurrent_dropout). Backward accounts for it.

Backward results: parameter gradients sum over all time steps; ``dbh`` is None exactly when the
forward had no ``bh``. float32 and float64 are supported; all floating arguments of one call
must share one dtype. Non-contiguous arrays are accepted (copied once).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _core
from ._checks import expect_shape, float_array, lengths_array, optional_float

__all__ = [
    "rnn_forward",
    "rnn_backward",
    "lstm_forward",
    "lstm_backward",
    "gru_forward",
    "gru_backward",
    "embedding_forward",
    "embedding_backward",
]

_CANONICAL_GATES = {"lstm": "ifgo", "gru": "rzn"}


@dataclass
class RecurrentCache:
    """What a training-mode forward keeps for its backward: the (contiguous) inputs and the
    core's reserve of gate activations and states. ``nbytes`` is the reserve's size."""

    cell: str
    x: np.ndarray
    h0: np.ndarray | None
    c0: np.ndarray | None
    Wx: np.ndarray
    Wh: np.ndarray
    has_bh: bool
    lengths: np.ndarray | None
    reverse: bool
    recurrent_mask: np.ndarray | None
    linear_before_reset: bool
    gate_block: list
    reserve: object

    @property
    def nbytes(self) -> int:
        return int(self.reserve.nbytes)


def _gate_block(cell: str, gate_order) -> list:
    """Column block of each canonical gate for a user gate order such as 'ifog'."""
    if cell not in _CANONICAL_GATES:
        return []
    canonical = _CANONICAL_GATES[cell]
    if gate_order is None:
        return list(range(len(canonical)))
    if not isinstance(gate_order, str) or sorted(gate_order) != sorted(canonical):
        raise ValueError(
            f"gate_order must be a permutation of {canonical!r} naming the column blocks "
            f"of Wx/Wh/b in order, got {gate_order!r}"
        )
    return [gate_order.index(g) for g in canonical]


def _forward(cell, x, h0, c0, Wx, Wh, b, bh, lengths, reverse, linear_before_reset, gate_order,
             inference, recurrent_mask):
    gates = 4 if cell == "lstm" else 3 if cell == "gru" else 1
    x = float_array(x, "x", ndim=3)
    dtype = x.dtype
    T, B, I = x.shape
    Wh = float_array(Wh, "Wh", ndim=2, dtype=dtype)
    H = Wh.shape[0]
    GH = gates * H
    expect_shape(Wh, "Wh", (H, GH), f"(H, {gates}*H)")
    Wx = float_array(Wx, "Wx", ndim=2, dtype=dtype)
    expect_shape(Wx, "Wx", (I, GH), f"(I, {gates}*H) with I = x.shape[2]")
    b = float_array(b, "b", ndim=1, dtype=dtype)
    expect_shape(b, "b", (GH,), f"({gates}*H,)")
    bh = optional_float(bh, "bh", (GH,), f"({gates}*H,)", dtype)
    h0 = optional_float(h0, "h0", (B, H), "(B, H)", dtype)
    if cell == "lstm":
        c0 = optional_float(c0, "c0", (B, H), "(B, H)", dtype)
    lengths = lengths_array(lengths, B, T)
    recurrent_mask = optional_float(recurrent_mask, "recurrent_mask", (B, H), "(B, H)", dtype)
    reverse = bool(reverse)
    block = _gate_block(cell, gate_order)
    y, hT, cT, reserve = _core.forward(
        cell, x, h0, c0, Wx, Wh, b, bh, lengths, reverse, recurrent_mask,
        bool(linear_before_reset), block, not inference,
    )
    cache = None
    if not inference:
        cache = RecurrentCache(cell, x, h0, c0, Wx, Wh, bh is not None, lengths, reverse,
                               recurrent_mask, bool(linear_before_reset), block, reserve)
    return y, hT, cT, cache


def _backward(expected_cells, dy, dhT, dcT, cache):
    if cache is None:
        raise ValueError(
            "cache is None: the forward ran with inference=True, which stores nothing for "
            "backward; run the forward with inference=False (the default) to train"
        )
    if not isinstance(cache, RecurrentCache) or cache.cell not in expected_cells:
        kind = cache.cell if isinstance(cache, RecurrentCache) else type(cache).__name__
        raise TypeError(f"cache must come from the matching forward ({'/'.join(expected_cells)}), got {kind}")
    T, B, _ = cache.x.shape
    H = cache.Wh.shape[0]
    dtype = cache.x.dtype
    dy = optional_float(dy, "dy", (T, B, H), "(T, B, H)", dtype)
    dhT = optional_float(dhT, "dhT", (B, H), "(B, H)", dtype)
    if cache.cell == "lstm":
        dcT = optional_float(dcT, "dcT", (B, H), "(B, H)", dtype)
    return _core.backward(
        cache.cell, cache.x, cache.h0, cache.c0, cache.Wx, cache.Wh, cache.has_bh, cache.lengths,
        cache.reverse, cache.recurrent_mask, cache.linear_before_reset, cache.gate_block,
        cache.reserve, dy, dhT, dcT,
    )


def rnn_forward(x, h0, Wx, Wh, b, bh=None, *, nonlinearity="tanh", lengths=None, reverse=False,
                inference=False, recurrent_mask=None):
    """Vanilla RNN: h_t = phi(x_t Wx + b + h_{t-1} Wh + bh), phi = tanh or relu.

    Returns (y (T, B, H), hT (B, H), cache); cache is None when inference=True.
    """
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    y, hT, _, cache = _forward("rnn_" + nonlinearity, x, h0, None, Wx, Wh, b, bh, lengths,
                               reverse, True, None, inference, recurrent_mask)
    return y, hT, cache


def rnn_backward(dy, dhT, cache):
    """Gradients of an rnn_forward: returns (dx, dh0, dWx, dWh, db, dbh)."""
    dx, dh0, _, dWx, dWh, db, dbh = _backward(("rnn_tanh", "rnn_relu"), dy, dhT, None, cache)
    return dx, dh0, dWx, dWh, db, dbh


def lstm_forward(x, h0, c0, Wx, Wh, b, bh=None, *, lengths=None, reverse=False, inference=False,
                 gate_order=None, recurrent_mask=None):
    """LSTM with gates i, f, g, o (PyTorch/Keras/cuDNN order) in the column blocks of Wx, Wh, b.

    gate_order: another block order of the same gates (e.g. 'ifog' for the classic NumPy
    assignments) used in place, without copying weights. Returns (y, hT, cT, cache).
    """
    return _forward("lstm", x, h0, c0, Wx, Wh, b, bh, lengths, reverse, True, gate_order,
                    inference, recurrent_mask)


def lstm_backward(dy, dhT, dcT, cache):
    """Gradients of an lstm_forward: returns (dx, dh0, dc0, dWx, dWh, db, dbh)."""
    return _backward(("lstm",), dy, dhT, dcT, cache)


def gru_forward(x, h0, Wx, Wh, b, bh=None, *, lengths=None, reverse=False,
                linear_before_reset=True, inference=False, gate_order=None, recurrent_mask=None):
    """GRU with gates r, z, n; h_t = (1 - z) n + z h_{t-1}.

    linear_before_reset=True (PyTorch/cuDNN, Keras reset_after=True):
    n = tanh(x Wx_n + b_n + r * (h Wh_n + bh_n)); False (Cho et al., ONNX default):
    n = tanh(x Wx_n + b_n + (r * h) Wh_n + bh_n). Returns (y, hT, cache).
    """
    y, hT, _, cache = _forward("gru", x, h0, None, Wx, Wh, b, bh, lengths, reverse,
                               linear_before_reset, gate_order, inference, recurrent_mask)
    return y, hT, cache


def gru_backward(dy, dhT, cache):
    """Gradients of a gru_forward: returns (dx, dh0, dWx, dWh, db, dbh)."""
    dx, dh0, _, dWx, dWh, db, dbh = _backward(("gru",), dy, dhT, None, cache)
    return dx, dh0, dWx, dWh, db, dbh


def embedding_forward(ids, W, *, padding_idx=None):
    """Embedding lookup (see rnnkit.embedding)."""
    from .embedding import embedding_forward as impl

    return impl(ids, W, padding_idx=padding_idx)


def embedding_backward(dout, cache):
    """Dense gradient of the embedding table (see rnnkit.embedding)."""
    from .embedding import embedding_backward as impl

    return impl(dout, cache)
