"""L1 / L2 weight penalties, set separately for input weights, recurrent weights and biases.

A parameter's kind comes from the last component of its dotted name (the rnnkit.nn
convention): ``Wx`` / ``W`` -> "input", ``Wh`` -> "recurrent", ``b`` / ``bh`` -> "bias",
``gamma`` / ``beta`` -> "norm"; anything else (e.g. an embedding table) -> "other".

Penalty (Keras' convention): ``l1 * sum(|w|) + l2 * sum(w ** 2)`` per parameter, with the l1/l2
of its kind; its gradient ``l1 * sign(w) + 2 * l2 * w`` is added to the parameter's gradient.
"norm" and "other" parameters get no penalty unless asked for.
"""
from __future__ import annotations

import numpy as np

from .. import _device

__all__ = ["param_kind", "Regularizer", "KINDS"]

KINDS = ("input", "recurrent", "bias", "norm", "other")
_KIND_OF_LAST = {"Wx": "input", "W": "input", "Wh": "recurrent", "b": "bias", "bh": "bias",
                 "gamma": "norm", "beta": "norm"}


def param_kind(name: str) -> str:
    """'input', 'recurrent', 'bias', 'norm' or 'other' from a dotted parameter name."""
    return _KIND_OF_LAST.get(str(name).rsplit(".", 1)[-1], "other")


def _coef(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


class Regularizer:
    """L1/L2 penalties by parameter kind.

    ``Regularizer(input_l2=1e-4, recurrent_l2=1e-4, bias_l1=0.0, ...)``: each of
    ``{input, recurrent, bias, norm, other}_{l1, l2}`` defaults to 0.
    ``penalty(params)`` is the value; ``add_gradients(params, grads)`` adds its gradient to
    ``grads`` in place and returns the value.
    """

    def __init__(self, *, input_l1=0.0, input_l2=0.0, recurrent_l1=0.0, recurrent_l2=0.0,
                 bias_l1=0.0, bias_l2=0.0, norm_l1=0.0, norm_l2=0.0, other_l1=0.0, other_l2=0.0):
        given = dict(input_l1=input_l1, input_l2=input_l2, recurrent_l1=recurrent_l1,
                     recurrent_l2=recurrent_l2, bias_l1=bias_l1, bias_l2=bias_l2, norm_l1=norm_l1,
                     norm_l2=norm_l2, other_l1=other_l1, other_l2=other_l2)
        self.coefficients = {}
        for kind in KINDS:
            self.coefficients[kind] = (_coef(given[kind + "_l1"], kind + "_l1"),
                                       _coef(given[kind + "_l2"], kind + "_l2"))

    def _each(self, params):
        for name, w in params.items():
            l1, l2 = self.coefficients[param_kind(name)]
            if l1 or l2:
                yield name, w, l1, l2

    def penalty(self, params) -> float:
        total = 0.0
        for _, w, l1, l2 in self._each(params):
            xp = _device.array_module(w)  # the parameters may live on a device
            w64 = w.astype(np.float64, copy=False)
            if l1:
                total += l1 * float(xp.abs(w64).sum())
            if l2:
                total += l2 * float(xp.dot(w64.ravel(), w64.ravel()))
        return total

    def add_gradients(self, params, grads) -> float:
        """grads[name] += d penalty / d params[name] (in place); returns the penalty."""
        for name, w, l1, l2 in self._each(params):
            g = grads[name]
            if l1:
                g += (l1 * _device.array_module(w).sign(w)).astype(g.dtype, copy=False)
            if l2:
                g += (2.0 * l2 * w).astype(g.dtype, copy=False)
        return self.penalty(params)

    def __bool__(self) -> bool:
        return any(l1 or l2 for l1, l2 in self.coefficients.values())

    def __repr__(self) -> str:
        parts = [f"{k}_{n}={v}" for k, (a, b) in self.coefficients.items() for n, v in (("l1", a), ("l2", b)) if v]
        return f"Regularizer({', '.join(parts)})"
