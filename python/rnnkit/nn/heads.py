"""Heads that turn a sequence (T, B, H) into one vector per sequence (B, H), respecting
``lengths``: ``LastStep`` (the output at each sequence's last valid step), ``MeanPool`` (mean
over valid steps) and ``MaxPool`` (element-wise max over valid steps; the gradient goes to the
first step holding the max). A sequence of length 0 gives a zero vector and no gradient.
Input is batch-first ``(B, T, H)`` unless ``batch_first=False`` (time-major ``(T, B, H)``). The heads have no parameters and accept
float32 and float64, on the host or a device (they run where their input lives; ``lengths``
is read on the host).
"""
from __future__ import annotations

import numpy as np

from .. import _device
from .._checks import layout_note, lengths_array, shape_str
from .module import Module, placed

__all__ = ["LastStep", "MeanPool", "MaxPool", "last_step", "last_step_backward"]


def last_step(y, lengths):
    """y (T, B, H), lengths (B,) or None -> (B, H): y[lengths[b]-1, b] (zeros if length 0)."""
    T, B, _ = y.shape
    xp = _device.array_module(y)
    if lengths is None:
        return y[-1].copy() if T else xp.zeros(y.shape[1:], y.dtype)
    idx = _device.put_like(np.maximum(lengths - 1, 0), y)
    out = y[idx, _device.put_like(np.arange(B), y)] if T else xp.zeros(y.shape[1:], y.dtype)
    out[_device.put_like(lengths == 0, y)] = 0
    return out


def last_step_backward(grad, lengths, shape, dtype):
    """Gradient of ``last_step`` for y of ``shape`` (T, B, H)."""
    T, B, _ = shape
    dy = _device.array_module(grad).zeros(shape, dtype=dtype)
    if T == 0:
        return dy
    if lengths is None:
        dy[-1] = grad
    else:
        rows = np.flatnonzero(lengths > 0)
        at = _device.put_like(rows, grad)
        dy[_device.put_like(lengths[rows] - 1, grad), at] = grad[at]
    return dy


class _Head(Module):
    def __init__(self, *, batch_first=True):
        super().__init__()
        self.batch_first = bool(batch_first)
        self._cache = None
        self._cache_device = "cpu"

    def extra_repr(self):
        return "" if self.batch_first else "batch_first=False"

    def _input(self, y, lengths):
        y = placed(y, "y", _device.backend_of(y))  # no parameters: it runs where y lives
        if y.dtype.kind != "f":
            raise TypeError(f"y must be a floating array, got dtype {y.dtype}")
        if y.ndim != 3:
            layout = "(B, T, H)" if self.batch_first else "(T, B, H)"
            raise ValueError(f"y must be 3-D {layout}, got shape {shape_str(y.shape)}")
        where = _device.backend_of(y)  # backward's gradient must live there too (by name: picklable)
        self._cache_device = "cpu" if where is None else where.name
        note = layout_note("y", y.shape, self.batch_first, "H")
        if self.batch_first:
            y = y.transpose(1, 0, 2)
        T, B, _ = y.shape
        return y, lengths_array(lengths, B, T, layout=note)

    def _grad(self, grad):
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        shape, dtype = self._cache[0], self._cache[1]
        grad = placed(grad, "grad", _device.backend_named(self._cache_device))
        if grad.shape != (shape[1], shape[2]):
            raise ValueError(f"grad must have shape (B, H) = {shape_str((shape[1], shape[2]))}, "
                             f"got {shape_str(grad.shape)}")
        if grad.dtype != dtype:
            raise TypeError(f"grad must have dtype {dtype}, got {grad.dtype}")
        return grad

    def _out(self, dy):
        return dy.transpose(1, 0, 2) if self.batch_first else dy


class LastStep(_Head):
    """(T, B, H) -> (B, H): each sequence's output at its last valid step."""

    def forward(self, y, *, lengths=None, training=False):
        y, lengths = self._input(y, lengths)
        self._cache = (y.shape, y.dtype, lengths)
        return last_step(y, lengths)

    def backward(self, grad):
        grad = self._grad(grad)
        shape, dtype, lengths = self._cache
        return self._out(last_step_backward(grad, lengths, shape, dtype))


class MeanPool(_Head):
    """(T, B, H) -> (B, H): mean over each sequence's valid steps."""

    def forward(self, y, *, lengths=None, training=False):
        y, lengths = self._input(y, lengths)
        T, B, _ = y.shape
        if lengths is None:
            weights = np.full((T, B, 1), 1.0 / max(T, 1), dtype=y.dtype)
        else:
            mask = np.arange(T)[:, None] < lengths[None, :]
            weights = (mask / np.maximum(lengths, 1)[None, :]).astype(y.dtype)[:, :, None]
        weights = _device.put_like(weights, y)
        self._cache = (y.shape, y.dtype, weights)
        return (y * weights).sum(axis=0)

    def backward(self, grad):
        grad = self._grad(grad)
        _, _, weights = self._cache
        return self._out(weights * grad[None])


class MaxPool(_Head):
    """(T, B, H) -> (B, H): element-wise max over each sequence's valid steps."""

    def forward(self, y, *, lengths=None, training=False):
        y, lengths = self._input(y, lengths)
        T, B, H = y.shape
        xp = _device.array_module(y)
        if T == 0:
            self._cache = (y.shape, y.dtype, None, None)
            return xp.zeros((B, H), y.dtype)
        masked = y
        if lengths is not None:
            invalid = (np.arange(T)[:, None] >= lengths[None, :])[:, :, None]
            masked = xp.where(_device.put_like(invalid, y), -np.inf, y)
        arg = xp.argmax(masked, axis=0)  # first maximum
        out = xp.take_along_axis(y, arg[None], axis=0)[0]
        empty = None
        if lengths is not None:
            empty = _device.put_like(lengths == 0, y)
            out[empty] = 0
        self._cache = (y.shape, y.dtype, arg, empty)
        return out

    def backward(self, grad):
        grad = self._grad(grad)
        shape, dtype, arg, empty = self._cache
        xp = _device.array_module(grad)
        if arg is None:
            return self._out(xp.zeros(shape, dtype))
        g = grad.copy()
        if empty is not None:
            g[empty] = 0
        # the gradient goes to the step holding the max: a select, the same on every device
        at_max = xp.arange(shape[0])[:, None, None] == arg[None]
        return self._out(xp.where(at_max, g[None], dtype.type(0)))
