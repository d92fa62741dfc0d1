"""Array-in / array-out recurrent layers over the C++ core (time-major, one layer, one direction).

Shapes (docs/design.md): x (T, B, I), y (T, B, H), states (B, H), Wx (I, G*H), Wh (H, G*H),
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

``segment=k`` trades memory for recomputation on long sequences: the forward keeps only the
states entering every k-step segment (cache.nbytes ~ T/k states instead of the full reserve)
and backward re-runs each segment's forward before backpropagating it: about one extra forward
pass, results equal to the unsegmented ones up to float rounding. With reverse=True the
sequences must be full length.

Backward results: parameter gradients sum over all time steps; ``dbh`` is None exactly when the
forward had no ``bh``. float32 and float64 are supported; all floating arguments of one call
must share one dtype. Non-contiguous arrays are accepted (copied once).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _core
from ._checks import FLOAT_DTYPES, expect_shape, float_array, lengths_array, optional_float, shape_str
from .embedding import embedding_backward, embedding_forward  # noqa: F401 (part of this API)

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
_GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}


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


@dataclass
class SegmentedCache:
    """Cache of a forward run with ``segment=k``: only the states at the start of every k-step
    segment are kept; backward recomputes one segment's activations at a time."""

    cell: str
    x: np.ndarray
    Wx: np.ndarray
    Wh: np.ndarray
    b: np.ndarray
    bh: np.ndarray | None
    lengths: np.ndarray | None
    reverse: bool
    recurrent_mask: np.ndarray | None
    linear_before_reset: bool
    gate_block: list
    segments: list  # (first position, end position, lengths within the segment or None)
    starts: list    # (h, c) entering each segment, in step order

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for state in self.starts for a in state if a is not None)


def _segments(T, lengths, reverse, segment):
    """Positions [t0, t1) of each segment in step order, with the lengths within it."""
    bounds = [(s0, min(s0 + segment, T)) for s0 in range(0, T, segment)]
    if reverse:  # full-length sequences only: step s is position T - 1 - s
        return [(T - s1, T - s0, None) for s0, s1 in bounds]
    return [(t0, t1, None if lengths is None else np.clip(lengths - t0, 0, t1 - t0))
            for t0, t1 in bounds]


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
             inference, recurrent_mask, segment=None):
    gates = _GATES[cell]
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
    if segment is not None:
        if isinstance(segment, bool) or not isinstance(segment, (int, np.integer)) or segment < 1:
            raise ValueError(f"segment must be a positive int (steps per recomputed segment) or None, got {segment!r}")
        if reverse and lengths is not None and np.any(lengths != T):
            raise ValueError("segment with reverse=True needs full-length sequences (lengths None "
                             "or all equal to T): a reversed padded row starts at its own length")
        if not inference and segment < T:
            return _segmented_forward(cell, x, h0, c0, Wx, Wh, b, bh, lengths, reverse,
                                      recurrent_mask, bool(linear_before_reset), block, int(segment))
    y, hT, cT, reserve = _core.forward(
        cell, x, h0, c0, Wx, Wh, b, bh, lengths, reverse, recurrent_mask,
        bool(linear_before_reset), block, not inference,
    )
    cache = None
    if not inference:
        cache = RecurrentCache(cell, x, h0, c0, Wx, Wh, bh is not None, lengths, reverse,
                               recurrent_mask, bool(linear_before_reset), block, reserve)
    return y, hT, cT, cache


def _segmented_forward(cell, x, h0, c0, Wx, Wh, b, bh, lengths, reverse, recurrent_mask,
                       linear_before_reset, block, segment):
    """Runs the segments in inference mode, keeping only the states entering each one."""
    T, B, _ = x.shape
    y = np.empty((T, B, Wh.shape[0]), x.dtype)
    segments = _segments(T, lengths, reverse, segment)
    starts = []
    h, c = h0, c0
    for t0, t1, seg_lengths in segments:
        starts.append((h, c))
        y[t0:t1], h, c, _ = _core.forward(
            cell, x[t0:t1], h, c, Wx, Wh, b, bh, seg_lengths, reverse, recurrent_mask,
            linear_before_reset, block, False,
        )
    cache = SegmentedCache(cell, x, Wx, Wh, b, bh, lengths, reverse, recurrent_mask,
                           linear_before_reset, block, segments, starts)
    return y, h, c, cache


def _segmented_backward(cache, dy, dhT, dcT):
    """Backward one segment at a time, last first: recompute its forward from the state that
    entered it, then backpropagate it with the gradients flowing in from the next segment."""
    x = cache.x
    dx = np.empty_like(x)
    total = None
    dh, dc = dhT, dcT
    for (t0, t1, seg_lengths), (h, c) in zip(reversed(cache.segments), reversed(cache.starts)):
        _, _, _, reserve = _core.forward(
            cache.cell, x[t0:t1], h, c, cache.Wx, cache.Wh, cache.b, cache.bh, seg_lengths,
            cache.reverse, cache.recurrent_mask, cache.linear_before_reset, cache.gate_block, True,
        )
        seg_dy = None if dy is None else np.ascontiguousarray(dy[t0:t1])
        dx[t0:t1], dh, dc, *params = _core.backward(
            cache.cell, x[t0:t1], h, c, cache.Wx, cache.Wh, cache.bh is not None, seg_lengths,
            cache.reverse, cache.recurrent_mask, cache.linear_before_reset, cache.gate_block,
            reserve, seg_dy, dh, dc,
        )
        total = params if total is None else [a if g is None else a + g for a, g in zip(total, params)]
    dWx, dWh, db, dbh = total
    return dx, dh, dc if cache.cell == "lstm" else None, dWx, dWh, db, dbh


def _describe(value) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array of shape {shape_str(value.shape)}"
    return type(value).__name__


def check_cache(cache, cells, forward: str = "the matching forward") -> None:
    """TypeError/ValueError naming ``cache`` unless it is the cache a training forward of one of
    ``cells`` returned, with arrays that still fit each other and the kernel's reserve. Caches
    are opaque, but a caller can edit one or pass another's; the kernel must never see that."""
    caches = (RecurrentCache, SegmentedCache)
    if not isinstance(cache, caches) or cache.cell not in cells:
        kind = cache.cell if isinstance(cache, caches) else type(cache).__name__
        raise TypeError(f"cache must come from {forward} ({'/'.join(cells)}), got {kind}")
    unchanged = "; pass backward the cache its forward returned, unchanged"
    x, Wh = cache.x, cache.Wh
    if not (isinstance(x, np.ndarray) and x.dtype in FLOAT_DTYPES and x.ndim == 3):
        raise ValueError(f"cache.x must be the forward's 3-D float32/float64 input x, "
                         f"got {_describe(x)}{unchanged}")
    if not (isinstance(Wh, np.ndarray) and Wh.ndim == 2):
        raise ValueError(f"cache.Wh must be the forward's 2-D Wh, got {_describe(Wh)}{unchanged}")
    T, B, I = x.shape
    H = Wh.shape[0]
    GH = _GATES[cache.cell] * H
    if isinstance(cache, RecurrentCache):
        want = _core.Reserve32 if x.dtype == np.float32 else _core.Reserve64
        if not isinstance(cache.reserve, want):
            raise TypeError(f"cache.reserve must be the {want.__name__} a {x.dtype} training forward "
                            f"returns, got {type(cache.reserve).__name__}{unchanged}")
        if cache.reserve.dims != (T, B, I, H):
            raise ValueError(f"cache.x and cache.Wh give (T, B, I, H) = {(T, B, I, H)} but cache.reserve "
                             f"comes from a forward with {cache.reserve.dims}{unchanged}")
        arrays = [("h0", (B, H), False), ("c0", (B, H), False)]
    else:
        arrays = [("b", (GH,), True), ("bh", (GH,), False)]
    arrays += [("x", (T, B, I), True), ("Wx", (I, GH), True), ("Wh", (H, GH), True),
               ("recurrent_mask", (B, H), False)]
    for name, shape, required in arrays:
        value = getattr(cache, name)
        if value is None and not required:
            continue
        if not (isinstance(value, np.ndarray) and value.dtype == x.dtype and value.shape == shape
                and value.flags.c_contiguous):
            raise ValueError(f"cache.{name} must be a C-contiguous {x.dtype} array of shape "
                             f"{shape_str(shape)}, got {_describe(value)}{unchanged}")
    lengths = cache.lengths
    if lengths is not None and not (
            isinstance(lengths, np.ndarray) and lengths.dtype == np.int64 and lengths.shape == (B,)
            and lengths.flags.c_contiguous and np.all((lengths >= 0) & (lengths <= T))):
        raise ValueError(f"cache.lengths must be None or a C-contiguous int64 array of shape ({B},) "
                         f"with values in [0, {T}], got {_describe(lengths)}{unchanged}")


def _backward(expected_cells, dy, dhT, dcT, cache):
    if cache is None:
        raise ValueError(
            "cache is None: the forward ran with inference=True, which stores nothing for "
            "backward; run the forward with inference=False (the default) to train"
        )
    check_cache(cache, expected_cells)
    T, B, _ = cache.x.shape
    H = cache.Wh.shape[0]
    dtype = cache.x.dtype
    dy = optional_float(dy, "dy", (T, B, H), "(T, B, H)", dtype)
    dhT = optional_float(dhT, "dhT", (B, H), "(B, H)", dtype)
    if cache.cell == "lstm":
        dcT = optional_float(dcT, "dcT", (B, H), "(B, H)", dtype)
    if isinstance(cache, SegmentedCache):
        return _segmented_backward(cache, dy, dhT, dcT)
    return _core.backward(
        cache.cell, cache.x, cache.h0, cache.c0, cache.Wx, cache.Wh, cache.has_bh, cache.lengths,
        cache.reverse, cache.recurrent_mask, cache.linear_before_reset, cache.gate_block,
        cache.reserve, dy, dhT, dcT,
    )


def rnn_forward(x, h0, Wx, Wh, b, bh=None, *, nonlinearity="tanh", lengths=None, reverse=False,
                inference=False, recurrent_mask=None, segment=None):
    """Vanilla RNN: h_t = phi(x_t Wx + b + h_{t-1} Wh + bh), phi = tanh or relu.

    Returns (y (T, B, H), hT (B, H), cache); cache is None when inference=True.
    """
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    y, hT, _, cache = _forward("rnn_" + nonlinearity, x, h0, None, Wx, Wh, b, bh, lengths,
                               reverse, True, None, inference, recurrent_mask, segment)
    return y, hT, cache


def rnn_backward(dy, dhT, cache):
    """Gradients of an rnn_forward: returns (dx, dh0, dWx, dWh, db, dbh)."""
    dx, dh0, _, dWx, dWh, db, dbh = _backward(("rnn_tanh", "rnn_relu"), dy, dhT, None, cache)
    return dx, dh0, dWx, dWh, db, dbh


def lstm_forward(x, h0, c0, Wx, Wh, b, bh=None, *, lengths=None, reverse=False, inference=False,
                 gate_order=None, recurrent_mask=None, segment=None):
    """LSTM with gates i, f, g, o (PyTorch/Keras/cuDNN order) in the column blocks of Wx, Wh, b.

    gate_order: another block order of the same gates (e.g. 'ifog' for the classic NumPy
    assignments) used in place, without copying weights. Returns (y, hT, cT, cache).
    """
    return _forward("lstm", x, h0, c0, Wx, Wh, b, bh, lengths, reverse, True, gate_order,
                    inference, recurrent_mask, segment)


def lstm_backward(dy, dhT, dcT, cache):
    """Gradients of an lstm_forward: returns (dx, dh0, dc0, dWx, dWh, db, dbh)."""
    return _backward(("lstm",), dy, dhT, dcT, cache)


def gru_forward(x, h0, Wx, Wh, b, bh=None, *, lengths=None, reverse=False,
                linear_before_reset=True, inference=False, gate_order=None, recurrent_mask=None,
                segment=None):
    """GRU with gates r, z, n; h_t = (1 - z) n + z h_{t-1}.

    linear_before_reset=True (PyTorch/cuDNN, Keras reset_after=True):
    n = tanh(x Wx_n + b_n + r * (h Wh_n + bh_n)); False (Cho et al., ONNX default):
    n = tanh(x Wx_n + b_n + (r * h) Wh_n + bh_n). Returns (y, hT, cache).
    """
    y, hT, _, cache = _forward("gru", x, h0, None, Wx, Wh, b, bh, lengths, reverse,
                               linear_before_reset, gate_order, inference, recurrent_mask, segment)
    return y, hT, cache


def gru_backward(dy, dhT, cache):
    """Gradients of a gru_forward: returns (dx, dh0, dWx, dWh, db, dbh)."""
    dx, dh0, _, dWx, dWh, db, dbh = _backward(("gru",), dy, dhT, None, cache)
    return dx, dh0, dWx, dWh, db, dbh
