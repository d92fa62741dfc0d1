"""Losses with their gradients: ``loss(outputs, targets, mask=None) -> (value, grad, count)``.

``value`` is the mean loss over the counted elements (a Python float, computed in float64),
``grad`` is d value / d outputs (outputs' dtype and shape) and ``count`` is the number of
elements the mean ran over, so a caller can combine batches into an exact overall mean
(the Trainer does: sum(value * count) / sum(count)).

Shapes: class axis last. ``cross_entropy`` takes logits ``S + (C,)`` and integer class indices
``S`` - S is ``(B,)`` for one label per sequence or ``(B, T)`` / ``(T, B)`` for a label per time
step. ``mask`` has shape S: bool (or 0/1) marking the elements that count; ``ignore_index``
marks targets that do not count (PyTorch's convention). Elements that do not count get zero
gradient.

The functional forms (``cross_entropy``, ``binary_cross_entropy_with_logits``, ``mse``) and
the callable objects (``CrossEntropy``, ``BinaryCrossEntropy``, ``MSE``) compute the same
thing; the objects hold the options so a Trainer can call them with (outputs, targets, mask).

Outputs may live on a device (CuPy arrays): targets and mask must then live there too
(TypeError naming them otherwise), and the gradient is computed there.
"""
from __future__ import annotations

import numpy as np

from .. import _device
from .._checks import shape_str

__all__ = ["cross_entropy", "binary_cross_entropy_with_logits", "mse", "log_softmax", "softmax",
           "CrossEntropy", "BinaryCrossEntropy", "MSE", "get_loss"]


def _float_outputs(outputs, name: str) -> np.ndarray:
    arr = outputs if _device.backend_of(outputs) is not None else np.asarray(outputs)
    if arr.dtype.kind != "f":
        raise TypeError(f"{name} must be a float array, got dtype {arr.dtype}")
    return arr


def _with(value, name: str, outputs):
    """``value`` (targets, a mask) as an array where ``outputs`` live (see _device.placed)."""
    return _device.placed(value, name, _device.backend_of(outputs), "the outputs")


def _check_mask(mask, shape, name: str = "mask", outputs=None) -> np.ndarray | None:
    """mask -> float64 weights of shape ``shape`` (0 or 1 for bool masks) where ``outputs``
    live, or None."""
    if mask is None:
        return None
    m = _with(mask, name, outputs)
    xp = _device.array_module(m)
    if m.shape != tuple(shape):
        raise ValueError(f"{name} must have the targets' shape {shape_str(shape)}, got {shape_str(m.shape)}")
    if m.dtype == np.bool_:
        return m.astype(np.float64)
    if m.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be bool or numeric, got dtype {m.dtype}")
    m = m.astype(np.float64)
    if not xp.all(xp.isfinite(m)) or xp.any(m < 0):
        raise ValueError(f"{name} must hold finite non-negative weights")
    return m


def log_softmax(logits, axis: int = -1) -> np.ndarray:
    """Numerically stable log-softmax (max subtracted first)."""
    xp = _device.array_module(logits)
    z = xp.asarray(logits)
    z = z - z.max(axis=axis, keepdims=True)
    return z - xp.log(xp.exp(z).sum(axis=axis, keepdims=True))


def softmax(logits, axis: int = -1) -> np.ndarray:
    xp = _device.array_module(logits)
    z = xp.asarray(logits)
    e = xp.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _check_class_targets(targets, lead_shape, num_classes: int, ignore_index, weights=None,
                         outputs=None) -> np.ndarray:
    t = _with(targets, "targets", outputs)
    xp = _device.array_module(t)
    if t.dtype == np.bool_ or t.dtype.kind not in "iu":
        if t.dtype.kind == "f" and t.size and xp.all(xp.isfinite(t)) and xp.all(t == xp.round(t)):
            t = t.astype(np.int64)
        else:
            raise TypeError(f"targets must be integer class indices, got dtype {t.dtype}")
    if t.shape != tuple(lead_shape):
        raise ValueError(f"targets must have shape {shape_str(lead_shape)} (the logits' shape without the "
                         f"class axis {shape_str(tuple(lead_shape) + (num_classes,))}), got {shape_str(t.shape)}")
    t = t.astype(np.int64, copy=False)
    valid = xp.ones(t.shape, bool) if ignore_index is None else (t != ignore_index)
    if weights is not None:
        valid &= weights > 0  # masked-out targets (e.g. padding) may hold anything
    bad = valid & ((t < 0) | (t >= num_classes))
    if bad.any():
        pos = tuple(int(i) for i in np.argwhere(_device.to_host(bad))[0])
        raise IndexError(f"targets contain class {int(t[pos])} at position {pos}, out of range for "
                         f"{num_classes} classes (valid: 0..{num_classes - 1}"
                         + ("" if ignore_index is None else f", or ignore_index={ignore_index}") + ")")
    return t


def cross_entropy(logits, targets, *, mask=None, ignore_index: int | None = None,
                  label_smoothing: float = 0.0):
    """Softmax cross-entropy from logits ``S + (C,)`` and class indices ``S``.

    With ``label_smoothing = e`` the target distribution is ``(1 - e) * onehot + e / C``
    (as PyTorch). Returns ``(mean loss, dlogits, count)``; the mean runs over the elements
    that count (not ignored, mask weight > 0, weighted by the mask). When nothing counts the
    loss is 0 with a zero gradient.
    """
    z = _float_outputs(logits, "logits")
    if z.ndim < 1 or z.shape[-1] < 1:
        raise ValueError(f"logits must have a class axis last, got shape {shape_str(z.shape)}")
    if not 0.0 <= float(label_smoothing) < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
    C = z.shape[-1]
    lead = z.shape[:-1]
    xp = _device.array_module(z)
    w = None if mask is None else _check_mask(mask, lead, outputs=z)
    t = _check_class_targets(targets, lead, C, ignore_index, w, outputs=z)
    if w is None:
        w = xp.ones(lead)
    if ignore_index is not None:
        w = w * (t != ignore_index)
    count = float(w.sum())
    logp = log_softmax(z.astype(np.float64))
    safe_t = xp.where(w > 0, t, 0)
    nll = -xp.take_along_axis(logp, safe_t[..., None], axis=-1)[..., 0]
    if label_smoothing:
        e = float(label_smoothing)
        per = (1 - e) * nll - e * logp.mean(axis=-1)
    else:
        per = nll
    if count == 0:
        return 0.0, xp.zeros_like(z), 0.0
    loss = float((per * w).sum() / count)
    grad = xp.exp(logp)
    if label_smoothing:
        grad -= float(label_smoothing) / C
        xp.put_along_axis(grad, safe_t[..., None],
                          xp.take_along_axis(grad, safe_t[..., None], axis=-1) - (1 - float(label_smoothing)),
                          axis=-1)
    else:
        xp.put_along_axis(grad, safe_t[..., None], xp.take_along_axis(grad, safe_t[..., None], axis=-1) - 1,
                          axis=-1)
    grad *= (w / count)[..., None]
    return loss, grad.astype(z.dtype, copy=False), count


def _check_sameshape_str(outputs, targets, what: str) -> np.ndarray:
    t = _with(targets, "targets", outputs)
    if t.dtype.kind not in "biuf":
        raise TypeError(f"targets must be numeric, got dtype {t.dtype}")
    if t.shape != outputs.shape:
        raise ValueError(f"targets must have the {what}' shape {shape_str(outputs.shape)}, got {shape_str(t.shape)}")
    t = t.astype(np.float64)
    xp = _device.array_module(t)
    if not xp.all(xp.isfinite(t)):
        raise ValueError("targets contain NaN or inf")
    return t


def binary_cross_entropy_with_logits(logits, targets, *, mask=None, pos_weight=None):
    """Sigmoid + binary cross-entropy in one stable formula, elementwise; targets in [0, 1]
    with the logits' shape (multi-label: one column per label). ``pos_weight`` scales the
    positive term (PyTorch's meaning). Returns ``(mean loss, dlogits, count)``."""
    z = _float_outputs(logits, "logits")
    xp = _device.array_module(z)
    t = _check_sameshape_str(z, targets, "logits")
    if xp.any((t < 0) | (t > 1)):
        raise ValueError("binary targets must lie in [0, 1]")
    w = xp.ones(z.shape) if mask is None else _check_mask(mask, z.shape, outputs=z)
    count = float(w.sum())
    if count == 0:
        return 0.0, xp.zeros_like(z), 0.0
    x = z.astype(np.float64)
    # log(1 + exp(-|x|)) avoids overflow; log sigmoid(x) = min(x, 0) - log1p(exp(-|x|))
    soft = xp.log1p(xp.exp(-xp.abs(x)))
    log_sig = xp.minimum(x, 0) - soft
    log_one_minus = xp.minimum(-x, 0) - soft
    pw = 1.0 if pos_weight is None else xp.asarray(pos_weight, dtype=np.float64)
    per = -(pw * t * log_sig + (1 - t) * log_one_minus)
    loss = float((per * w).sum() / count)
    sig = xp.exp(log_sig)
    # d/dx of -(pw t log s + (1-t) log(1-s)) = -pw t (1-s) + (1-t) s
    grad = (-(pw * t) * (1 - sig) + (1 - t) * sig) * (w / count)
    return loss, grad.astype(z.dtype, copy=False), count


def mse(outputs, targets, *, mask=None):
    """Mean squared error over all (counted) elements. ``mask`` may have the outputs' shape or
    their shape without trailing feature axes (e.g. (B, T) for outputs (B, T, F)); a masked
    element's features all drop out. Returns ``(mean loss, doutputs, count)``."""
    y = _float_outputs(outputs, "outputs")
    xp = _device.array_module(y)
    t = _check_sameshape_str(y, targets, "outputs")
    diff = y.astype(np.float64) - t
    if mask is None:
        w = xp.ones(y.shape)
    else:
        m = _with(mask, "mask", y)
        if m.shape != y.shape and m.shape == y.shape[:m.ndim]:
            m = xp.broadcast_to(m.reshape(m.shape + (1,) * (y.ndim - m.ndim)), y.shape)
        w = _check_mask(m, y.shape, outputs=y)
    count = float(w.sum())
    if count == 0:
        return 0.0, xp.zeros_like(y), 0.0
    loss = float((diff * diff * w).sum() / count)
    grad = 2.0 * diff * w / count
    return loss, grad.astype(y.dtype, copy=False), count


class CrossEntropy:
    """``cross_entropy`` with its options held: ``CrossEntropy(ignore_index=0)(logits, y, mask)``."""

    def __init__(self, *, ignore_index: int | None = None, label_smoothing: float = 0.0):
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def __call__(self, outputs, targets, mask=None):
        return cross_entropy(outputs, targets, mask=mask, ignore_index=self.ignore_index,
                             label_smoothing=self.label_smoothing)

    def __repr__(self) -> str:
        return f"CrossEntropy(ignore_index={self.ignore_index!r}, label_smoothing={self.label_smoothing!r})"


class BinaryCrossEntropy:
    """``binary_cross_entropy_with_logits`` as a callable."""

    def __init__(self, *, pos_weight=None):
        self.pos_weight = pos_weight

    def __call__(self, outputs, targets, mask=None):
        return binary_cross_entropy_with_logits(outputs, targets, mask=mask, pos_weight=self.pos_weight)

    def __repr__(self) -> str:
        return f"BinaryCrossEntropy(pos_weight={self.pos_weight!r})"


class MSE:
    """``mse`` as a callable."""

    def __call__(self, outputs, targets, mask=None):
        return mse(outputs, targets, mask=mask)

    def __repr__(self) -> str:
        return "MSE()"


_NAMES = {"cross_entropy": CrossEntropy, "ce": CrossEntropy, "binary_cross_entropy": BinaryCrossEntropy,
          "bce": BinaryCrossEntropy, "mse": MSE}


def get_loss(loss):
    """A loss callable from a name ('cross_entropy', 'binary_cross_entropy', 'mse') or a
    callable ``(outputs, targets, mask) -> (value, grad[, count])``."""
    if isinstance(loss, str):
        if loss not in _NAMES:
            raise ValueError(f"unknown loss {loss!r}; choose one of {sorted(_NAMES)} or pass a callable")
        return _NAMES[loss]()
    if not callable(loss):
        raise TypeError(f"loss must be a name or a callable, got {type(loss).__name__}")
    return loss
