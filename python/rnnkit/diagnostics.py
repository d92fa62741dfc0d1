"""Diagnostics of recurrent networks: how the gradient flows back through time.

``gradient_norms(layer_or_model, x, ...)`` returns ||dLoss/dh_t|| for every time step t (and
every layer of a stack): how much a loss at the end of a sequence still "reaches" the early
states. Vanilla RNNs multiply the gradient by ``diag(phi'(a_t)) Wh^T`` at every step, so it
shrinks (or grows) geometrically; the LSTM's cell path multiplies it by the forget gate f_t
only, which stays near 1 with a forget bias of 1 (docs/diagnostics.md).

The gradients come from the real BPTT kernels of ``rnnkit.functional``: the forward runs one
step at a time (T=1 calls carrying the state, the same arithmetic as one call over the whole
sequence), and the backward runs the kernel's backward of each step in turn, from the last one
down, feeding the gradient it returns for the step's incoming state (dh0, and dc0 for an LSTM)
into the step before. The total gradient of the loss with respect to the state h_t is then the
gradient of the step's own output plus the gradient flowing in from steps t+1.. (which is the
dh0 of a backward over the steps after t started from h_t). Everything runs in float64 whatever
the layer's dtype, so tiny gradients do not underflow.

Supported: ``rnnkit.nn.RNN``/``LSTM``/``GRU`` layers, one or several stacked layers,
unidirectional, without ``norm`` and without ``skip`` (dropout is off: the analysis runs in
inference mode); and models (``rnnkit.nn.Module``\\ s following the Trainer contract
``forward(x, *, lengths, training)`` / ``backward(grad)``, e.g. ``SequenceClassifier``,
``LanguageModel``, ``Sequential(RNN(...), Linear(...))``) holding such a layer, for the model's
own loss on targets ``y``.
"""
from __future__ import annotations

import numpy as np

from ._checks import lengths_array
from .nn.heads import last_step_backward
from .nn.recurrent import _Recurrent

__all__ = ["gradient_norms", "plot_gradient_norms"]


def _check_layer(layer) -> None:
    what = type(layer).__name__
    if layer.bidirectional:
        raise NotImplementedError(f"gradient_norms supports unidirectional layers; this {what} is "
                                  "bidirectional")
    if layer.norm is not None:
        raise NotImplementedError(f"gradient_norms does not support norm={layer.norm!r} (the "
                                  "normalised recurrence is not the fused kernel)")
    if layer.skip is not None:
        raise NotImplementedError(f"gradient_norms does not support skip={layer.skip!r}")


def _params(direction):
    return {name: np.ascontiguousarray(value, dtype=np.float64)
            for name, value in direction.kernel_params().items()}


def _step_forward(direction, x_t, h, c, length):
    """One step's forward: (y_t, h_t, c_t or None, cache)."""
    cell_type = direction.cell_type
    return cell_type.run_forward(x_t, h, c, **_params(direction), lengths=length,
                                 **cell_type.kernel_options(direction.cell_options))


def _step_backward(cell_type, dy_t, dh, dc, cache):
    """One step's backward: (dx_t, dh_{t-1}, dc_{t-1} or None)."""
    dx, dh0, dc0, *_ = cell_type.run_backward(dy_t, dh, dc, cache)
    return dx, dh0, dc0


def _split_state(s):
    if isinstance(s, (tuple, list)):
        h, c = s
    else:
        h, c = s, None
    as64 = (lambda a: None if a is None else np.ascontiguousarray(a, dtype=np.float64))
    return as64(h), as64(c)


def _stack_gradients(layer, x, lengths, init, dy, dstates):
    """Per-step total gradients dLoss/dh_t of every layer of the stack: a list (one per layer,
    bottom first) of (T, B, H) float64 arrays. x (T, B, I) time-major; dy (T, B, H) the loss
    gradient of the top layer's outputs; dstates the gradients of the final states."""
    T, B, _ = x.shape
    step_lengths = [None if lengths is None else (lengths > t).astype(np.int64) for t in range(T)]
    caches, inp = [], x
    for k, level in enumerate(layer.levels):
        d = level.fwd
        h, c = _split_state(init[k])
        out = np.empty((T, B, layer.state_size))
        level_caches = []
        for t in range(T):
            y_t, h, c, cache = _step_forward(d, inp[t:t + 1], h, c, step_lengths[t])
            out[t] = y_t[0]
            level_caches.append(cache)
        caches.append(level_caches)
        inp = out
    grads = [None] * layer.num_layers
    dout = dy
    for k in range(layer.num_layers - 1, -1, -1):
        cell_type = layer.levels[k].fwd.cell_type
        dh, dc = _split_state(dstates[k])
        if dh is None:
            dh = np.zeros((B, layer.state_size))
        if cell_type.has_cell_state and dc is None:
            dc = np.zeros((B, layer.hidden_size))
        g = np.empty((T, B, layer.state_size))
        dx = np.empty((T, B, x.shape[2] if k == 0 else layer.state_size))
        for t in range(T - 1, -1, -1):
            valid = 1.0 if lengths is None else (lengths > t)[:, None]
            g[t] = dh + dout[t] * valid  # the output y_t = h_t, plus what flows in from t+1..
            dx_t, dh, dc = _step_backward(cell_type, dout[t:t + 1], dh, dc, caches[k][t])
            dx[t] = dx_t[0]
        grads[k] = g
        dout = dx
    return grads


def _time_major_grad(layer, grad, lengths, T, B):
    """The gradient of what ``layer.forward`` returned -> (dy (T, B, H_out) float64, per-layer
    final-state gradients), as the layer's own backward reads it."""
    L = layer.num_layers
    dstates = [None] * L
    if layer.return_state:
        dy, ds = grad
        if ds is not None:
            dstates = list(ds)
    else:
        dy = grad
    shape = (T, B, layer.output_size)
    if dy is None:
        return np.zeros(shape), dstates
    dy = np.asarray(dy, dtype=np.float64)
    if not layer.return_sequences:
        return last_step_backward(dy, lengths, shape, np.float64), dstates
    if layer.batch_first:
        dy = dy.transpose(1, 0, 2)
    return np.ascontiguousarray(dy), dstates


def _find_layer(model, name):
    if name is not None:
        found = dict(model.named_modules()).get(name)
        if not isinstance(found, _Recurrent):
            raise ValueError(f"layer={name!r} is not a recurrent layer (RNN/LSTM/GRU) of this "
                             f"{type(model).__name__}")
        return found
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, _Recurrent)]
    if len(layers) != 1:
        names = [n for n, _ in layers]
        raise ValueError(f"{type(model).__name__} holds {len(layers)} recurrent layers {names}; "
                         "name the one to inspect with layer=" if layers else
                         f"{type(model).__name__} holds no rnnkit.nn RNN/LSTM/GRU layer")
    return layers[0][1]


def _record_model(model, layer, x, y, lengths, loss):
    """Runs the model's forward, loss and backward (inference mode) with the layer's forward
    and backward watched: returns (the layer's input, its forward options, the gradient that
    reached its output). The model's parameter gradients are left as they were."""
    from .train.losses import get_loss

    seen = {}
    forward, backward = layer.forward, layer.backward

    def watch_forward(inp, **options):
        if "x" in seen:
            raise ValueError("the inspected layer ran more than once in one forward of the model")
        seen["x"], seen["options"] = inp, options
        return forward(inp, **options)

    def watch_backward(grad):
        seen["grad"] = grad
        return backward(grad)

    saved = {k: g.copy() for k, g in model.grads().items()}
    object.__setattr__(layer, "forward", watch_forward)
    object.__setattr__(layer, "backward", watch_backward)
    try:
        out = model.forward(x, lengths=lengths, training=False)
        res = get_loss(loss)(out, y, None)
        model.backward(res[1])
    finally:
        del layer.__dict__["forward"], layer.__dict__["backward"]
        for k, g in model.grads().items():
            g[...] = saved[k]
    if "grad" not in seen:
        raise ValueError("the model's backward did not call the inspected layer's backward")
    return seen["x"], seen["options"], seen["grad"]


def gradient_norms(layer_or_model, x, y=None, *, lengths=None, grad=None, initial_state=None,
                   loss="cross_entropy", layer=None, per_example=False):
    """||dLoss/dh_t|| for every time step t and every layer: an array (num_layers, T), layer 0
    the bottom one, each entry the mean over the batch rows of the L2 norm of one row's gradient
    (rows past their length at step t are left out; NaN where no row is valid).
    ``per_example=True`` returns (num_layers, B, T) instead, NaN at padded steps.

    With an ``rnnkit.nn`` RNN/LSTM/GRU layer: ``x`` as its forward takes it (with ``lengths``
    and ``initial_state``); the loss is given by ``grad``, its gradient with respect to what
    the layer's forward returns (what you would pass to its backward). By default the loss is
    L = sum(h_last) / sqrt(H) on each sequence's last valid output of the top layer, so that
    ||dL/dh_last|| = 1 and every other entry reads as the gain from that step back to t.

    With a model (a Module following the Trainer contract holding one such layer, or name it
    with ``layer=``, its dotted module name such as "rnn"): ``x``, ``y`` and ``lengths`` as for
    ``Trainer.fit``, ``loss`` as Trainer's (a name or callable); the model runs forward, loss
    and backward in inference mode, and the gradient reaching the layer's output is followed
    back through time. The model's gradients are left as they were.

    Supported layers: unidirectional, without norm and skip, any num_layers (the module
    docstring says how the kernels are used).
    """
    if isinstance(layer_or_model, _Recurrent):
        if y is not None:
            raise ValueError("y is for models; for a layer give grad (the loss gradient of its "
                             "output) or nothing (the default loss on the last step)")
        rec = layer_or_model
        inp, options = x, {"lengths": lengths, "initial_state": initial_state}
    else:
        if y is None:
            raise ValueError("a model needs targets y (its loss is followed back through time)")
        if grad is not None or initial_state is not None:
            raise ValueError("grad and initial_state are for a single layer, not a model")
        rec = _find_layer(layer_or_model, layer)
        inp, options, grad = _record_model(layer_or_model, rec, x, y, lengths, loss)
    _check_layer(rec)
    x = np.asarray(inp, dtype=np.float64)
    if x.ndim != 3 or x.shape[2] != rec.input_size:
        raise ValueError(f"x must be 3-D with {rec.input_size} features, got shape {x.shape}")
    if rec.batch_first:
        x = x.transpose(1, 0, 2)
    x = np.ascontiguousarray(x)
    T, B, _ = x.shape
    lengths = lengths_array(options.get("lengths"), B, T)
    init = options.get("initial_state") or [None] * rec.num_layers
    if grad is None:
        dy = np.zeros((T, B, rec.output_size))
        last = np.full(B, T - 1) if lengths is None else lengths - 1
        rows = np.flatnonzero(last >= 0)
        dy[last[rows], rows] = 1.0 / np.sqrt(rec.output_size)
        dstates = [None] * rec.num_layers
    else:
        dy, dstates = _time_major_grad(rec, grad, lengths, T, B)
    grads = _stack_gradients(rec, x, lengths, init, dy, dstates)
    norms = np.stack([np.linalg.norm(g, axis=2).T for g in grads])  # (L, B, T)
    if lengths is not None:
        norms[:, np.arange(T)[None, :] >= lengths[:, None]] = np.nan
    if per_example:
        return norms
    valid = ~np.isnan(norms[0])
    count = valid.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.nansum(norms, axis=1) / count, np.nan)


def plot_gradient_norms(norms, path=None, **options):
    """Draws gradient norms against the time step on a log scale (see rnnkit.plot)."""
    from .plot import plot_gradient_norms as draw

    return draw(norms, path, **options)
