"""Shared helpers for the recurrent-cell tests: one way to build inputs, call any
implementation with the rnnkit.functional / rnnkit.reference signatures, and take central
finite differences. Exposed through the ``harness`` fixture."""
from __future__ import annotations

import numpy as np
import pytest

from rnnkit.cells import CELLS as REGISTERED_CELLS, get_cell

# test variant -> (rnnkit.cells cell, its forward options, its parameter options): every option
# value of every cell ("gru_cho": the reset-before variant of Cho et al.; "lstm_proj": a
# projection of width P = proj_width(H), "lstm_peepholes": peephole connections). Parameter
# options add the arrays Wr / peepholes to the inputs. Tests parametrised over ALL_VARIANTS
# cover a new cell or option by its entry here.
VARIANTS = {
    "rnn_tanh": (get_cell("rnn"), {"nonlinearity": "tanh"}, {}),
    "rnn_relu": (get_cell("rnn"), {"nonlinearity": "relu"}, {}),
    "lstm": (get_cell("lstm"), {}, {}),
    "lstm_proj": (get_cell("lstm"), {}, {"proj_size": True}),
    "lstm_peepholes": (get_cell("lstm"), {}, {"peepholes": True}),
    "gru": (get_cell("gru"), {"linear_before_reset": True}, {}),
    "gru_cho": (get_cell("gru"), {"linear_before_reset": False}, {}),
}
ALL_VARIANTS = tuple(VARIANTS)
assert {cell.name for cell, _, _ in VARIANTS.values()} == {cell.name for cell in REGISTERED_CELLS}
assert {option for cell, _, extra in VARIANTS.values() for option in extra} == {
    option for cell in REGISTERED_CELLS for option in cell.parameter_options}
GRAD_NAMES = ("x", "h0", "c0", "Wx", "Wh", "b", "bh", "Wr", "peepholes")


def proj_width(H):
    """The projection width of the lstm_proj variant: narrower than H, and not a multiple of any
    vector width for most H (so the projected products hit their remainder paths too)."""
    return H // 2 + 1


class Harness:
    cells = tuple(VARIANTS)

    @staticmethod
    def has_cell_state(cell):
        return VARIANTS[cell][0].has_cell_state

    @staticmethod
    def state_width(cell, H):
        """S, the width of h and y: the projection's for lstm_proj, else H."""
        return proj_width(H) if "proj_size" in VARIANTS[cell][2] else H

    @staticmethod
    def make_inputs(cell, T, B, I, H, *, dtype=np.float64, seed=0, h0=True, bh=True):
        """Random inputs scaled so pre-activations stay O(1) (no saturation, no relu blow-up).
        With h0=False the initial states are None; with bh=False there is no recurrent bias."""
        rng = np.random.default_rng(seed)
        cell_type, _, extra = VARIANTS[cell]
        G, S = cell_type.num_gates, Harness.state_width(cell, H)

        def normal(*shape, scale=1.0):
            return (scale * rng.standard_normal(shape)).astype(dtype)

        inputs = {
            "x": normal(T, B, I),
            "h0": normal(B, S, scale=0.5) if h0 else None,
            "Wx": normal(I, G * H, scale=0.8 / np.sqrt(I)),
            "Wh": normal(S, G * H, scale=0.8 / np.sqrt(S)),
            "b": normal(G * H, scale=0.3),
            "bh": normal(G * H, scale=0.3) if bh else None,
        }
        if Harness.has_cell_state(cell):
            inputs["c0"] = normal(B, H, scale=0.5) if h0 else None
        if "proj_size" in extra:
            inputs["Wr"] = normal(H, S, scale=1.0 / np.sqrt(H))
        if "peepholes" in extra:
            inputs["peepholes"] = normal(3, H, scale=0.5)
        return inputs

    @staticmethod
    def make_output_grads(cell, T, B, H, *, dtype=np.float64, seed=1):
        """Random weights Gy, GhT (, GcT) of the scalar loss L = sum(y Gy) + sum(hT GhT) (+ ...)."""
        rng = np.random.default_rng(seed)
        S = Harness.state_width(cell, H)
        douts = {"y": rng.standard_normal((T, B, S)).astype(dtype),
                 "hT": rng.standard_normal((B, S)).astype(dtype)}
        if Harness.has_cell_state(cell):
            douts["cT"] = rng.standard_normal((B, H)).astype(dtype)
        return douts

    @staticmethod
    def forward(impl, cell, inputs, **kwargs):
        """Calls impl.<cell>_forward; returns ({'y', 'hT'[, 'cT']}, cache)."""
        cell_type, options, _ = VARIANTS[cell]
        fn = getattr(impl, cell_type.name + "_forward")
        i = inputs
        states = [i[f"{s}0"] for s in cell_type.state_names]
        params = {name: i[name] for name in ("Wr", "peepholes") if name in i}
        y, *final, cache = fn(i["x"], *states, i["Wx"], i["Wh"], i["b"], i["bh"],
                              **dict(options, **params, **kwargs))
        return dict(y=y, **{f"{s}T": v for s, v in zip(cell_type.state_names, final)}), cache

    @staticmethod
    def backward(impl, cell, cache, douts):
        """Calls impl.<cell>_backward; returns the gradients keyed by argument name."""
        cell_type = VARIANTS[cell][0]
        fn = getattr(impl, cell_type.name + "_backward")
        grads = fn(douts.get("y"), *(douts.get(f"{s}T") for s in cell_type.state_names), cache)
        names = ("x", *(f"{s}0" for s in cell_type.state_names), "Wx", "Wh", "b", "bh", "Wr",
                 "peepholes")
        return {name: g for name, g in zip(names, grads) if name in GRAD_NAMES[:7] or g is not None}

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
        B, S = inputs["x"].shape[1], inputs["Wh"].shape[0]  # S: the width of h
        H = inputs["Wh"].shape[1] // VARIANTS[cell][0].num_gates  # the width of c
        grads = {}
        for name, value in inputs.items():
            if value is None and name in ("h0", "c0"):
                value = np.zeros((B, S if name == "h0" else H), dtype=inputs["x"].dtype)
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
