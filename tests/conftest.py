"""Shared helpers for the recurrent-cell tests: one way to build inputs, call any
implementation with the rnnkit.functional / rnnkit.reference signatures, and take central
finite differences. Exposed through the ``harness`` fixture."""
from __future__ import annotations

import numpy as np
import pytest

# cell name -> (function prefix, gates G, extra forward keywords)
CELLS = {
    "rnn_tanh": ("rnn", 1, {"nonlinearity": "tanh"}),
    "rnn_relu": ("rnn", 1, {"nonlinearity": "relu"}),
    "lstm": ("lstm", 4, {}),
    "gru": ("gru", 3, {"linear_before_reset": True}),
    "gru_cho": ("gru", 3, {"linear_before_reset": False}),
}
GRAD_NAMES = ("x", "h0", "c0", "Wx", "Wh", "b", "bh")


class Harness:
    cells = tuple(CELLS)

    @staticmethod
    def is_lstm(cell):
        return CELLS[cell][0] == "lstm"

    @staticmethod
    def make_inputs(cell, T, B, I, H, *, dtype=np.float64, seed=0, h0=True, bh=True):
        """Random inputs scaled so pre-activations stay O(1) (no saturation, no relu blow-up).
        With h0=False the initial states are None; with bh=False there is no recurrent bias."""
        rng = np.random.default_rng(seed)
        G = CELLS[cell][1]

        def normal(*shape, scale=1.0):
            return (scale * rng.standard_normal(shape)).astype(dtype)

        inputs = {
            "x": normal(T, B, I),
            "h0": normal(B, H, scale=0.5) if h0 else None,
            "Wx": normal(I, G * H, scale=0.8 / np.sqrt(I)),
            "Wh": normal(H, G * H, scale=0.8 / np.sqrt(H)),
            "b": normal(G * H, scale=0.3),
            "bh": normal(G * H, scale=0.3) if bh else None,
        }
        if Harness.is_lstm(cell):
            inputs["c0"] = normal(B, H, scale=0.5) if h0 else None
        return inputs

    @staticmethod
    def make_output_grads(cell, T, B, H, *, dtype=np.float64, seed=1):
        """Random weights Gy, GhT (, GcT) of the scalar loss L = sum(y Gy) + sum(hT GhT) (+ ...)."""
        rng = np.random.default_rng(seed)
        douts = {"y": rng.standard_normal((T, B, H)).astype(dtype),
                 "hT": rng.standard_normal((B, H)).astype(dtype)}
        if Harness.is_lstm(cell):
            douts["cT"] = rng.standard_normal((B, H)).astype(dtype)
        return douts

    @staticmethod
    def forward(impl, cell, inputs, **kwargs):
        """Calls impl.<cell>_forward; returns ({'y', 'hT'[, 'cT']}, cache)."""
        prefix, _, extra = CELLS[cell]
        fn = getattr(impl, prefix + "_forward")
        kw = dict(extra, **kwargs)
        i = inputs
        if prefix == "lstm":
            y, hT, cT, cache = fn(i["x"], i["h0"], i["c0"], i["Wx"], i["Wh"], i["b"], i["bh"], **kw)
            return {"y": y, "hT": hT, "cT": cT}, cache
        y, hT, cache = fn(i["x"], i["h0"], i["Wx"], i["Wh"], i["b"], i["bh"], **kw)
        return {"y": y, "hT": hT}, cache

    @staticmethod
    def backward(impl, cell, cache, douts):
        """Calls impl.<cell>_backward; returns the gradients keyed by argument name."""
        prefix = CELLS[cell][0]
        fn = getattr(impl, prefix + "_backward")
        if prefix == "lstm":
            grads = fn(douts.get("y"), douts.get("hT"), douts.get("cT"), cache)
            return dict(zip(("x", "h0", "c0", "Wx", "Wh", "b", "bh"), grads))
        grads = fn(douts.get("y"), douts.get("hT"), cache)
        return dict(zip(("x", "h0", "Wx", "Wh", "b", "bh"), grads))

    @staticmethod
    def loss(outs, douts):
        return sum(float(np.sum(outs[k] * douts[k])) for k in douts)

    @staticmethod
    def numerical_gradients(impl, cell, inputs, douts, eps=1e-6, **kwargs):
        """Central differences (L(p + eps) - L(p - eps)) / (2 eps) for every element of every
        floating argument. A None initial state is differentiated at zero (which is what None
        means); a None bh has no gradient.

        Batch rows are independent sequences, so for the per-row arguments (x, h0, c0) one
        element is perturbed in every row at once and the loss is split per row: B derivatives
        per pair of calls. (A kernel that mixed rows would fail the forward parity tests.)"""
        B, H = inputs["x"].shape[1], inputs["Wh"].shape[0]
        grads = {}
        for name, value in inputs.items():
            if value is None and name in ("h0", "c0"):
                value = np.zeros((B, H), dtype=inputs["x"].dtype)
            if value is None:
                continue
            batch_axis = {"x": 1, "h0": 0, "c0": 0}.get(name)
            grad = np.zeros_like(value)
            shape = list(value.shape)
            if batch_axis is not None:
                shape[batch_axis] = 1
            for idx in np.ndindex(*shape):
                if batch_axis is not None:
                    idx = idx[:batch_axis] + (slice(None),) + idx[batch_axis + 1:]
                losses = []
                for sign in (1, -1):
                    p = value.copy()
                    p[idx] += sign * eps
                    outs, _ = Harness.forward(impl, cell, dict(inputs, **{name: p}), **kwargs)
                    losses.append(Harness.row_losses(outs, douts))
                diff = (losses[0] - losses[1]) / (2 * eps)
                grad[idx] = diff if batch_axis is not None else diff.sum()
            grads[name] = grad
        return grads

    @staticmethod
    def row_losses(outs, douts):
        """The loss split into each batch row's share, (B,)."""
        total = 0.0
        for k, d in douts.items():
            prod = outs[k] * d
            total = total + (prod.sum(axis=(0, 2)) if prod.ndim == 3 else prod.sum(axis=1))
        return total


@pytest.fixture(scope="session")
def harness():
    return Harness


@pytest.fixture
def restore_isa_and_threads():
    """Lets a test switch rnnkit.set_isa / set_num_threads; puts back what was active."""
    import rnnkit

    isa, threads = rnnkit.get_isa(), rnnkit.get_num_threads()
    try:
        yield rnnkit
    finally:
        rnnkit.set_isa(isa)
        rnnkit.set_num_threads(threads)
