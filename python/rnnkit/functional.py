"""Array-in / array-out recurrent layers over the C++ core (time-major, one layer, one direction).

Shapes (docs/design.md): x (T, B, I), y (T, B, H), states (B, H), Wx (I, G*H), Wh (H, G*H),
b and bh (G*H,), with G = 1 (RNN), 4 (LSTM, gates i, f, g, o), 3 (GRU, gates r, z, n).
An LSTM with a projection ``Wr`` (H, P) has h, y and h0 P wide and Wh (P, 4*H); its cell state
stays H wide. Peepholes are ``peepholes`` (3, H), the rows p_i, p_f, p_o.

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
sequences must be full length. On a device backend the segments' forwards run without a
reserve and backward reruns each segment's training forward before backpropagating it.

Backward results: parameter gradients sum over all time steps; ``dbh`` is None exactly when the
forward had no ``bh``. An LSTM forward given ``Wr`` or ``peepholes`` has two more results,
``dWr`` and ``dpeepholes`` (None for the one it was not given). float32 and float64 are supported; all floating arguments of one call
must share one dtype. Non-contiguous arrays are accepted (copied once).
"""
from __future__ import annotations

import contextlib as _contextlib
import os as _os
from dataclasses import dataclass

import numpy as np

from . import _core
from . import _checks
from . import _device
from .cells import cell_for_core_name, get_cell
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

_RNN, _LSTM, _GRU = (get_cell(name) for name in ("rnn", "lstm", "gru"))
# core names resolved once, not on every call (a few microseconds of a short sequence's call)
_RNN_CORE = {value: _RNN.core_name(nonlinearity=value) for value in _RNN.options["nonlinearity"]}
_LSTM_CORE, _GRU_CORE = _LSTM.core_name(), _GRU.core_name()


@dataclass(frozen=True)
class RecurrentCache:
    """What a training-mode forward keeps for its backward, opaque to callers.

    ``handles`` are the core's forward handles in step order; each owns its checked inputs and
    the backend's reserve. A plain forward has one. A forward with ``segment=k`` (k < T) has
    one checkpoint handle per k-step segment, covering time positions ``spans[i]``: it keeps
    only the states entering its segment, and backward reruns that segment's forward before
    backpropagating it. ``nbytes`` is what the cache keeps besides the inputs; ``cell``,
    ``dims`` (T, B, I, H), ``state_size`` (S: the width of h and y) and ``dtype`` describe
    the forward that made it."""

    cell: str
    handles: tuple
    spans: tuple  # (first, end) time positions of each handle

    @property
    def nbytes(self) -> int:
        return int(sum(h.nbytes for h in self.handles))

    @property
    def segmented(self) -> bool:
        return len(self.handles) > 1

    @property
    def dims(self) -> tuple:
        _, B, I, H = self.handles[0].dims
        return max(t1 for _, t1 in self.spans), B, I, H

    @property
    def state_size(self) -> int:
        return self.handles[0].state_size

    @property
    def dtype(self) -> np.dtype:
        return self.handles[0].dtype

    def backward(self, dy, dhT, dcT):
        """Backward over checked gradients (``dy`` time-major and C-contiguous or None);
        returns (dx, dh0, dc0 or None, dWx, dWh, db, dbh or None, dWr or None, dpeepholes or
        None, the normalisation gains' gradients as a dict or None), ten items from every
        backend. Callers check the cache first (``check_cache``)."""
        if not self.segmented:
            return _backward_one(self.handles[0], dy, dhT, dcT)
        # One segment at a time, last first: each handle reruns its segment's forward from the
        # state that entered it, then backpropagates it with the gradients flowing in from the
        # segment after it.
        T, B, I, _ = self.dims
        dev = _device.handle_backend(self.handles[0])
        on_device = dev.on_device(self.handles[0].device) if dev else _contextlib.nullcontext()
        with on_device:
            dx = (dev.empty if dev else np.empty)((T, B, I), self.dtype)
            total = None
            dh, dc = dhT, dcT
            for handle, (t0, t1) in zip(reversed(self.handles), reversed(self.spans)):
                seg_dy = None if dy is None else dy[t0:t1]
                dx[t0:t1], dh, dc, *params = _backward_one(handle, seg_dy, dh, dc)
                total = params if total is None else [a if g is None else a + g
                                                      for a, g in zip(total, params)]
        return (dx, dh, dc, *total)


def _backward_one(handle, dy, dhT, dcT):
    """Backward of one handle of whichever backend made it."""
    if isinstance(handle, _device.SegmentCheckpoint):
        return handle.backward(dy, dhT, dcT)
    if _device.is_handle(handle):  # a device backend's forward
        return _device.backward(handle, dy, dhT, dcT)
    return _core.backward(handle, dy, dhT, dcT)


def _segments(T, lengths, reverse, segment):
    """Positions [t0, t1) of each segment in step order, with the lengths within it."""
    bounds = [(s0, min(s0 + segment, T)) for s0 in range(0, T, segment)]
    if reverse:  # full-length sequences only: step s is position T - 1 - s
        return [(T - s1, T - s0, None) for s0, s1 in bounds]
    return [(t0, t1, None if lengths is None else np.clip(lengths - t0, 0, t1 - t0))
            for t0, t1 in bounds]


def _gate_block(cell: str, gate_order) -> list:
    """Column block of each canonical gate for a user gate order such as 'ifog'."""
    if gate_order is None:  # the core reads an empty list as the canonical order
        return []
    canonical = cell_for_core_name(cell).gate_names
    if not canonical:  # unnamed gates (RNN): nothing to reorder
        return []
    if not isinstance(gate_order, str) or sorted(gate_order) != sorted(canonical):
        raise ValueError(
            f"gate_order must be a permutation of {canonical!r} naming the column blocks "
            f"of Wx/Wh/b in order, got {gate_order!r}"
        )
    return [gate_order.index(g) for g in canonical]


def _forward(cell, x, h0, c0, Wx, Wh, b, bh, lengths, reverse, linear_before_reset, gate_order,
             inference, recurrent_mask, segment=None, Wr=None, peepholes=None):
    cell_type = cell_for_core_name(cell)
    gates = cell_type.num_gates
    # the backend is chosen by where the arrays live: None = host (the CPU core)
    dev = _device.backend_for(dict(x=x, h0=h0, c0=c0, Wx=Wx, Wh=Wh, b=b, bh=bh,
                                   recurrent_mask=recurrent_mask, Wr=Wr, peepholes=peepholes))
    float_array = dev.float_array if dev else _checks.float_array
    optional_float = dev.optional_float if dev else _checks.optional_float
    x = float_array(x, "x", ndim=3)
    dtype = x.dtype
    T, B, I = x.shape
    Wh = float_array(Wh, "Wh", ndim=2, dtype=dtype)
    if Wr is None:
        H = S = Wh.shape[0]
        _checks.expect_shape(Wh, "Wh", (H, gates * H), f"(H, {gates}*H)")
        state = "(B, H)"
    else:  # projected: H comes from Wr (H, P); h, y and Wh's rows are P wide
        Wr = float_array(Wr, "Wr", ndim=2, dtype=dtype)
        H, S = Wr.shape
        if S < 1:
            raise ValueError(f"Wr must be (H, P) with P >= 1, got shape {_checks.shape_str(Wr.shape)}")
        _checks.expect_shape(Wh, "Wh", (S, gates * H), f"(P, {gates}*H) with (H, P) = Wr.shape")
        state = "(B, P)"
    GH = gates * H
    Wx = float_array(Wx, "Wx", ndim=2, dtype=dtype)
    _checks.expect_shape(Wx, "Wx", (I, GH), f"(I, {gates}*H) with I = x.shape[2]")
    b = float_array(b, "b", ndim=1, dtype=dtype)
    _checks.expect_shape(b, "b", (GH,), f"({gates}*H,)")
    bh = optional_float(bh, "bh", (GH,), f"({gates}*H,)", dtype)
    peepholes = optional_float(peepholes, "peepholes", (3, H), "(3, H): p_i, p_f, p_o", dtype)
    h0 = optional_float(h0, "h0", (B, S), state, dtype)
    if cell_type.has_cell_state:
        c0 = optional_float(c0, "c0", (B, H), "(B, H)", dtype)
    else:
        c0 = None
    lengths = _checks.lengths_array(_device.lengths_to_host(dev, lengths), B, T)
    recurrent_mask = optional_float(recurrent_mask, "recurrent_mask", (B, S), state, dtype)
    reverse = bool(reverse)
    block = _gate_block(cell, gate_order)
    if segment is not None:
        if isinstance(segment, bool) or not isinstance(segment, (int, np.integer)) or segment < 1:
            raise ValueError(f"segment must be a positive int (steps per recomputed segment) or None, got {segment!r}")
        if reverse and lengths is not None and np.any(lengths != T):
            raise ValueError("segment with reverse=True needs full-length sequences (lengths None "
                             "or all equal to T): a reversed padded row starts at its own length")
        segment = int(segment)
    return _run_kernels(cell, x, h0, c0, Wx, Wh, b, bh, lengths, reverse, linear_before_reset,
                        block, inference, recurrent_mask, segment, Wr, peepholes, dev)


def _run_kernels(cell, x, h0, c0, Wx, Wh, b, bh, lengths, reverse, linear_before_reset, block,
                 inference, recurrent_mask, segment=None, Wr=None, peepholes=None, dev=None,
                 norm=None):
    """The forward of backend ``dev`` (None: the CPU core) on arguments already checked (by
    _forward, or by an rnnkit.nn layer through layer_forward): C-contiguous arrays of one dtype,
    the right shapes and one place, lengths a host int64 array or None; ``norm`` the core's
    normalisation dict (CPU only). The core's own guards still run."""
    T = x.shape[0]
    # (a device forward zeroes the padding itself, on the device)
    if dev is None and lengths is not None and not inference and x.shape[1] and lengths.min() < T:
        # Backward's dWx = x^T @ dA meets padded rows of x with zeros of dA, and 0 * NaN is
        # NaN: zero the padding so that whatever it holds never reaches a gradient.
        valid = (np.arange(T)[:, None] < lengths[None, :])[:, :, None]
        x = np.where(valid, x, x.dtype.type(0))
    # An empty batch or state has nothing to recompute: one call, not T/segment empty ones
    # (T may be 10**12 when x is (T, 0, I)).
    if segment is not None and not inference and segment < T and x.shape[1] and Wh.shape[0]:
        return _segmented_forward(cell, x, h0, c0, Wx, Wh, b, bh, lengths, reverse,
                                  recurrent_mask, bool(linear_before_reset), block, segment,
                                  Wr, peepholes, dev)
    if dev is not None:
        if norm is not None:
            raise ValueError(f"norm: normalised recurrences run on the CPU core only, not on the "
                             f"{dev.name} backend")
        y, hT, cT, handle = _device.forward(
            dev, cell, x, h0, c0, Wx, Wh, b, bh, lengths, reverse, linear_before_reset, block,
            inference, recurrent_mask, Wr, peepholes, cell_for_core_name(cell).has_cell_state)
    else:
        y, hT, cT, handle = _core.forward(
            cell, x, h0, c0, Wx, Wh, b, bh, lengths, reverse, recurrent_mask,
            bool(linear_before_reset), block, not inference, Wr=Wr, peepholes=peepholes,
            norm=norm,
        )
    cache = None if inference else RecurrentCache(cell, (handle,), ((0, T),))
    return y, hT, cT, cache


def _segmented_forward(cell, x, h0, c0, Wx, Wh, b, bh, lengths, reverse, recurrent_mask,
                       linear_before_reset, block, segment, Wr, peepholes, dev=None):
    """Runs the segments keeping one checkpoint each: the segment's inputs and the states
    entering it, no reserve (a CPU core handle with keep_reserve=False, or on a device a
    _device.SegmentCheckpoint after an inference forward of the segment)."""
    T, B, _ = x.shape
    S = Wh.shape[0]  # Wh has S rows
    if dev is None:
        _check_fits_in_memory(T * B * S * x.dtype.itemsize,
                              f"{cell} forward (T={T}, B={B}, segment={segment})")
        y = np.empty((T, B, S), x.dtype)
        on_device = _contextlib.nullcontext()
    else:
        on_device = dev.on_device(dev.device_of(x))
        with on_device:
            y = dev.empty((T, B, S), x.dtype)
    has_cell_state = cell_for_core_name(cell).has_cell_state
    handles, spans = [], []
    h, c = h0, c0
    for t0, t1, seg_lengths in _segments(T, lengths, reverse, segment):
        if dev is None:
            y[t0:t1], h, c, handle = _core.forward(
                cell, x[t0:t1], h, c, Wx, Wh, b, bh, seg_lengths, reverse, recurrent_mask,
                linear_before_reset, block, True, False, Wr=Wr, peepholes=peepholes,
            )
        else:
            kwargs = dict(x=x[t0:t1], h0=h, c0=c, Wx=Wx, Wh=Wh, b=b, bh=bh, lengths=seg_lengths,
                          reverse=reverse, linear_before_reset=linear_before_reset, block=block,
                          recurrent_mask=recurrent_mask, Wr=Wr, peepholes=peepholes,
                          has_cell_state=has_cell_state)
            handle = _device.SegmentCheckpoint(dev, cell, kwargs)
            seg_y, h, c, _ = _device.forward(dev, cell, inference=True, **kwargs)
            with on_device:
                y[t0:t1] = seg_y
        handles.append(handle)
        spans.append((t0, t1))
    return y, h, c, RecurrentCache(cell, tuple(handles), tuple(spans))


def _check_fits_in_memory(nbytes: int, call: str) -> None:
    """The core's check (cpp/bindings/checks.h) for what Python allocates around it: a segmented
    forward's y is allocated here, before any segment reaches the core."""
    try:
        limit = _os.sysconf("SC_PHYS_PAGES") * _os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):  # unknown on this platform: no check
        return
    if limit > 0 and nbytes > limit:
        raise MemoryError(f"{call} needs {nbytes / 2**30:.1f} GiB for its outputs, more than this "
                          f"machine's {limit / 2**30:.1f} GiB of memory; use a smaller batch, fewer "
                          f"hidden units or shorter sequences")


def layer_forward(cell, x, h0, c0, Wx, Wh, b, bh=None, *, lengths=None, reverse=False,
                  recurrent_mask=None, linear_before_reset=True, Wr=None, peepholes=None,
                  inference=False, norm=None):
    """Internal entry of the rnnkit.nn layers, which check their inputs once at their own
    boundary (with messages in the caller's layout) and own their parameters: the kernels of
    the core cell ``cell`` without this module's argument checks. Arguments as ``_run_kernels``
    needs them; ``norm`` the core's normalisation dict (see ``_core.forward``); returns (y,
    hT, cT or None, cache)."""
    return _run_kernels(cell, x, h0, c0, Wx, Wh, b, bh, lengths, reverse, linear_before_reset,
                        [], inference, recurrent_mask, None, Wr, peepholes, _device.backend_of(x),
                        norm)


def layer_backward(cache, dy, dhT, dcT):
    """Backward of a ``layer_forward`` cache on checked, C-contiguous gradients: (dx, dh0, dc0
    or None, dWx, dWh, db, dbh or None, dWr or None, dpeepholes or None, the gains' gradients:
    a dict after a forward with ``norm``, else None)."""
    return cache.backward(dy, dhT, dcT)


def _describe(value) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array of shape {_checks.shape_str(value.shape)}"
    return type(value).__name__


def check_cache(cache, cells, forward: str = "the matching forward") -> None:
    """TypeError/ValueError naming ``cache`` unless it is the cache a training forward of one of
    ``cells`` returned, with handles that still fit each other. Caches are opaque, but a caller
    can edit one or pass another's; the kernel must never see that."""
    if not isinstance(cache, RecurrentCache) or cache.cell not in cells:
        kind = cache.cell if isinstance(cache, RecurrentCache) else type(cache).__name__
        raise TypeError(f"cache must come from {forward} ({'/'.join(cells)}), got {kind}")
    unchanged = "; pass backward the cache its forward returned, unchanged"
    handles, spans = cache.handles, cache.spans
    if not (isinstance(handles, tuple) and handles
            and all(isinstance(h, _core.ForwardHandle) or _device.is_handle(h) for h in handles)):
        raise TypeError(f"cache.handles must be the tuple of ForwardHandles a training forward "
                        f"returns, got {_describe(handles)}{unchanged}")
    first = handles[0]
    for h in handles:
        if h.cell != cache.cell:
            raise ValueError(f"cache.cell is {cache.cell!r} but cache.handles come from a "
                             f"{h.cell} forward{unchanged}")
        if h.dtype != first.dtype or h.dims[1:] != first.dims[1:]:
            raise ValueError(f"cache.handles come from different forwards (dtype or (B, I, H) "
                             f"differ: {first.dtype} {first.dims[1:]} vs {h.dtype} "
                             f"{h.dims[1:]}){unchanged}")
    if not (isinstance(spans, tuple) and len(spans) == len(handles)
            and all(isinstance(s, tuple) and len(s) == 2 for s in spans)):
        raise ValueError(f"cache.spans must be a (first, end) pair per handle, got "
                         f"{spans!r}{unchanged}")
    covered = sorted(spans)
    T = covered[-1][1]
    if covered[0][0] != 0 or any(a[1] != b[0] for a, b in zip(covered, covered[1:])) or any(
            t1 - t0 != h.dims[0] for h, (t0, t1) in zip(handles, spans)):
        raise ValueError(f"cache.spans {spans!r} do not tile [0, {T}) with the handles' "
                         f"lengths {[h.dims[0] for h in handles]}{unchanged}")


def _backward(expected_cells, dy, dhT, dcT, cache):
    if cache is None:
        raise ValueError(
            "cache is None: the forward ran with inference=True, which stores nothing for "
            "backward; run the forward with inference=False (the default) to train"
        )
    check_cache(cache, expected_cells)
    T, B, _, H = cache.dims
    S, dtype = cache.state_size, cache.dtype
    state = "(B, H)" if S == H else "(B, P)"  # P: the projection's width
    # gradients live where the forward ran (a device cache takes device arrays only)
    dev = _device.handle_backend(cache.handles[0])
    optional_float = dev.optional_float if dev else _checks.optional_float
    if dev is None and _device.backend_for(dict(dy=dy, dhT=dhT, dcT=dcT)) is not None:
        raise TypeError("the gradients are device arrays but the forward ran on host (NumPy) "
                        "arrays; pass host gradients (cupy.asnumpy(...))")
    dy = optional_float(dy, "dy", (T, B, S), f"(T, {state[1:]}", dtype)
    dhT = optional_float(dhT, "dhT", (B, S), state, dtype)
    if cell_for_core_name(cache.cell).has_cell_state:
        dcT = optional_float(dcT, "dcT", (B, H), "(B, H)", dtype)
    return cache.backward(dy, dhT, dcT)


def rnn_forward(x, h0, Wx, Wh, b, bh=None, *, nonlinearity="tanh", lengths=None, reverse=False,
                inference=False, recurrent_mask=None, segment=None):
    """Vanilla RNN: h_t = phi(x_t Wx + b + h_{t-1} Wh + bh), phi = tanh or relu.

    Returns (y (T, B, H), hT (B, H), cache); cache is None when inference=True.
    """
    core = _RNN_CORE.get(nonlinearity) if isinstance(nonlinearity, str) else None
    if core is None:  # an unknown value: core_name raises the error naming it
        core = _RNN.core_name(nonlinearity=nonlinearity)
    y, hT, _, cache = _forward(core, x, h0, None, Wx, Wh, b, bh, lengths, reverse, True, None,
                               inference, recurrent_mask, segment)
    return y, hT, cache


def rnn_backward(dy, dhT, cache):
    """Gradients of an rnn_forward: returns (dx, dh0, dWx, dWh, db, dbh)."""
    dx, dh0, _, dWx, dWh, db, dbh, *_ = _backward(_RNN.core_names, dy, dhT, None, cache)
    return dx, dh0, dWx, dWh, db, dbh


def lstm_forward(x, h0, c0, Wx, Wh, b, bh=None, *, lengths=None, reverse=False, inference=False,
                 gate_order=None, recurrent_mask=None, segment=None, Wr=None, peepholes=None):
    """LSTM with gates i, f, g, o (PyTorch/Keras/cuDNN order) in the column blocks of Wx, Wh, b.

    gate_order: another block order of the same gates (e.g. 'ifog' for the classic NumPy
    assignments) used in place, without copying weights.
    Wr (H, P): output projection as torch.nn.LSTM(proj_size=P): h_t = (o * tanh(c_t)) @ Wr, so
    y, hT, h0 and the recurrent_mask are P wide and Wh is (P, 4*H); c stays H wide.
    peepholes (3, H): p_i, p_f, p_o (Gers & Schmidhuber; ONNX's P): i and f add p * c_{t-1}
    to their pre-activations, o adds p_o * c_t.
    Returns (y, hT, cT, cache).
    """
    return _forward(_LSTM_CORE, x, h0, c0, Wx, Wh, b, bh, lengths, reverse, True, gate_order,
                    inference, recurrent_mask, segment, Wr, peepholes)


def lstm_backward(dy, dhT, dcT, cache):
    """Gradients of an lstm_forward: returns (dx, dh0, dc0, dWx, dWh, db, dbh), and when the
    forward had Wr or peepholes also (dWr, dpeepholes), None for the one it did not have."""
    grads = _backward(_LSTM.core_names, dy, dhT, dcT, cache)[:9]  # the public forward has no norm
    extended = grads[-2] is not None or grads[-1] is not None
    return grads if extended else grads[:7]


def gru_forward(x, h0, Wx, Wh, b, bh=None, *, lengths=None, reverse=False,
                linear_before_reset=True, inference=False, gate_order=None, recurrent_mask=None,
                segment=None):
    """GRU with gates r, z, n; h_t = (1 - z) n + z h_{t-1}.

    linear_before_reset=True (PyTorch/cuDNN, Keras reset_after=True):
    n = tanh(x Wx_n + b_n + r * (h Wh_n + bh_n)); False (Cho et al., ONNX default):
    n = tanh(x Wx_n + b_n + (r * h) Wh_n + bh_n). Returns (y, hT, cache).
    """
    y, hT, _, cache = _forward(_GRU_CORE, x, h0, None, Wx, Wh, b, bh, lengths, reverse,
                               linear_before_reset, gate_order, inference, recurrent_mask, segment)
    return y, hT, cache


def gru_backward(dy, dhT, cache):
    """Gradients of a gru_forward: returns (dx, dh0, dWx, dWh, db, dbh)."""
    dx, dh0, _, dWx, dWh, db, dbh, *_ = _backward(_GRU.core_names, dy, dhT, None, cache)
    return dx, dh0, dWx, dWh, db, dbh
