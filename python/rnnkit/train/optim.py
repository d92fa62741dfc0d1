"""Optimisers (SGD with momentum / Nesterov, Adam, AdamW, RMSprop) and gradient clipping.

An optimiser is built on the live parameter arrays, ``opt = Adam(model.parameters(), lr=1e-3)``
(a Module is accepted too, its ``parameters()`` are taken), and ``opt.step(grads)`` updates them
IN PLACE from a dict of gradients with the same keys (``model.grads()``). ``lr`` is an attribute
a schedule may change between steps. ``state_dict()`` / ``load_state_dict()`` hold everything
(step count, lr, per-parameter buffers) a checkpoint needs for an exact resume.

Update rules (PyTorch's, so results can be compared):

- SGD: ``g += wd * p``; ``v = mu * v + g``; ``p -= lr * (g + mu * v if nesterov else v)``.
- Adam: ``g += wd * p`` (coupled L2); ``m = b1 m + (1-b1) g``; ``v = b2 v + (1-b2) g^2``;
  ``p -= lr * m_hat / (sqrt(v_hat) + eps)`` with bias corrections.
- AdamW: Adam with decoupled weight decay ``p -= lr * wd * p`` (by default only on weights,
  not on biases or normalisation parameters: ``decay_kinds``).
- RMSprop: ``s = alpha s + (1-alpha) g^2``; ``p -= lr * g / (sqrt(s) + eps)`` (with momentum:
  ``buf = mu buf + g / (sqrt(s) + eps)``; ``p -= lr * buf``).

Buffers are kept in each parameter's dtype and where the parameter lives (NumPy or a device:
a model moved with ``model.to("cuda")`` before the optimiser was built); ``state_dict()`` holds
NumPy copies.
"""
from __future__ import annotations

import numpy as np

from .. import _device
from .regularizers import KINDS, param_kind

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "clip_grad_norm", "clip_grad_value",
           "global_norm", "get_optimizer"]


def _positive(value, name: str, *, allow_zero: bool = False, upper: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    ok = np.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if upper is not None:
        ok = ok and value < upper
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}" + (f" and < {upper}" if upper else "")
                         + f", got {value}")
    return value


def _param_dict(params) -> dict:
    if hasattr(params, "parameters") and callable(params.parameters):
        params = params.parameters()
    if not isinstance(params, dict):
        raise TypeError("params must be a dict name -> array (module.parameters()) or a module, "
                        f"got {type(params).__name__}")
    if not params:
        raise ValueError("params is empty: nothing to optimise")
    for name, p in params.items():
        if not (isinstance(p, np.ndarray) or _device.backend_of(p) is not None) or p.dtype.kind != "f":
            raise TypeError(f"parameter {name!r} must be a float numpy (or device) array, got "
                            f"{type(p).__name__}")
        if not getattr(p.flags, "writeable", True):  # CuPy arrays have no such flag
            raise ValueError(f"parameter {name!r} is read-only; optimisers update parameters in place")
    return params


class Optimizer:
    """Base class: subclasses implement ``_update(name, p, g, state)``."""

    _hyper: tuple = ()

    def __init__(self, params, lr: float):
        self.params = _param_dict(params)
        self.lr = _positive(lr, "lr")
        self.steps = 0
        self.state: dict[str, dict] = {name: {} for name in self.params}

    def step(self, grads) -> None:
        """One update of every parameter from ``grads`` (dict with the parameters' keys)."""
        missing = [n for n in self.params if n not in grads]
        if missing:
            raise KeyError(f"grads lack the parameters {missing[:5]}")
        self.steps += 1
        for name, p in self.params.items():
            g = grads[name]
            if g.shape != p.shape:
                raise ValueError(f"gradient of {name!r} has shape {g.shape}, parameter has {p.shape}")
            where = _device.backend_of(p)
            if _device.backend_of(g) is not where:
                raise TypeError(f"gradient of {name!r} is {_device.describe(_device.backend_of(g))} "
                                f"but the parameter is {_device.describe(where)} (was the model "
                                f"moved with model.to(...) after this optimiser was built? build "
                                f"it after moving the model)")
            g = np.asarray(g, dtype=p.dtype) if where is None else g.astype(p.dtype, copy=False)
            self._update(name, p, g, self.state[name])

    def _update(self, name, p, g, state):  # pragma: no cover - abstract
        raise NotImplementedError

    def _buffer(self, state, key, p):
        buf = state.get(key)
        if buf is None:
            buf = state[key] = _device.array_module(p).zeros_like(p)
        return buf

    def state_dict(self) -> dict:
        """Everything a resume needs; the buffers as NumPy copies wherever they live."""
        return {"type": type(self).__name__, "lr": self.lr, "steps": self.steps,
                "hyper": {k: getattr(self, k) for k in self._hyper},
                "state": {n: {k: np.array(_device.to_host(v), copy=True) for k, v in s.items()}
                          for n, s in self.state.items()}}

    def load_state_dict(self, d: dict) -> None:
        if d.get("type") != type(self).__name__:
            raise ValueError(f"state is for a {d.get('type')} optimiser, this is a {type(self).__name__}")
        if set(d["state"]) != set(self.params):
            raise ValueError("optimiser state is for different parameters: "
                             f"{sorted(set(d['state']) ^ set(self.params))[:5]}")
        self.lr = float(d["lr"])
        self.steps = int(d["steps"])
        for k, v in d.get("hyper", {}).items():
            setattr(self, k, v)
        self.state = {n: {k: _device.put_like(np.array(_device.to_host(v), dtype=self.params[n].dtype,
                                                       copy=True), self.params[n])
                          for k, v in s.items()}
                      for n, s in d["state"].items()}

    def __repr__(self) -> str:
        hyper = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._hyper)
        return f"{type(self).__name__}({len(self.params)} parameters, lr={self.lr}, {hyper})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and coupled weight decay."""

    _hyper = ("momentum", "nesterov", "weight_decay")

    def __init__(self, params, lr: float = 0.01, *, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0):
        super().__init__(params, lr)
        self.momentum = _positive(momentum, "momentum", allow_zero=True, upper=1.0)
        self.weight_decay = _positive(weight_decay, "weight_decay", allow_zero=True)
        if nesterov and not self.momentum:
            raise ValueError("nesterov=True needs momentum > 0")
        self.nesterov = bool(nesterov)

    def _update(self, name, p, g, state):
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self.momentum:
            v = self._buffer(state, "momentum", p)
            v *= self.momentum
            v += g
            g = g + self.momentum * v if self.nesterov else v
        p -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; ``weight_decay`` is the coupled L2 form."""

    _hyper = ("beta1", "beta2", "eps", "weight_decay")

    def __init__(self, params, lr: float = 1e-3, *, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params, lr)
        self.beta1 = _positive(betas[0], "betas[0]", allow_zero=True, upper=1.0)
        self.beta2 = _positive(betas[1], "betas[1]", allow_zero=True, upper=1.0)
        self.eps = _positive(eps, "eps")
        self.weight_decay = _positive(weight_decay, "weight_decay", allow_zero=True)

    def _decay(self, name, p, g):
        return g + self.weight_decay * p if self.weight_decay else g

    def _update(self, name, p, g, state):
        g = self._decay(name, p, g)
        m = self._buffer(state, "m", p)
        v = self._buffer(state, "v", p)
        m *= self.beta1
        m += (1 - self.beta1) * g
        v *= self.beta2
        v += (1 - self.beta2) * (g * g)
        c1 = 1 - self.beta1 ** self.steps
        c2 = 1 - self.beta2 ** self.steps
        p -= (self.lr / c1) * m / (_device.array_module(v).sqrt(v / c2) + self.eps)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``p -= lr * wd * p`` before the
    Adam step, applied to the parameter kinds in ``decay_kinds`` (default: weights only)."""

    _hyper = ("beta1", "beta2", "eps", "weight_decay", "decay_kinds")

    def __init__(self, params, lr: float = 1e-3, *, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01, decay_kinds=("input", "recurrent", "other")):
        super().__init__(params, lr, betas=betas, eps=eps, weight_decay=weight_decay)
        unknown = set(decay_kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"decay_kinds must be among {KINDS}, got {sorted(unknown)}")
        self.decay_kinds = tuple(decay_kinds)

    def _decay(self, name, p, g):
        if self.weight_decay and param_kind(name) in self.decay_kinds:
            p *= 1 - self.lr * self.weight_decay
        return g


class RMSprop(Optimizer):
    """RMSprop (Hinton): running mean of squared gradients, optional momentum, coupled L2."""

    _hyper = ("alpha", "eps", "momentum", "weight_decay")

    def __init__(self, params, lr: float = 1e-3, *, alpha: float = 0.99, eps: float = 1e-8,
                 momentum: float = 0.0, weight_decay: float = 0.0):
        super().__init__(params, lr)
        self.alpha = _positive(alpha, "alpha", allow_zero=True, upper=1.0)
        self.eps = _positive(eps, "eps")
        self.momentum = _positive(momentum, "momentum", allow_zero=True, upper=1.0)
        self.weight_decay = _positive(weight_decay, "weight_decay", allow_zero=True)

    def _update(self, name, p, g, state):
        if self.weight_decay:
            g = g + self.weight_decay * p
        s = self._buffer(state, "square_avg", p)
        s *= self.alpha
        s += (1 - self.alpha) * (g * g)
        step = g / (_device.array_module(s).sqrt(s) + self.eps)
        if self.momentum:
            buf = self._buffer(state, "momentum", p)
            buf *= self.momentum
            buf += step
            step = buf
        p -= self.lr * step


_OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop}


def get_optimizer(optimizer, params, lr: float | None = None, **options) -> Optimizer:
    """An optimiser from a name ('sgd', 'adam', 'adamw', 'rmsprop'), a class / factory
    ``f(params, lr=..., **options)`` or an existing Optimizer (returned as is)."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str):
        key = optimizer.lower()
        if key not in _OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {sorted(_OPTIMIZERS)}")
        optimizer = _OPTIMIZERS[key]
    if not callable(optimizer):
        raise TypeError(f"optimizer must be a name, an Optimizer or a factory, got {type(optimizer).__name__}")
    if lr is not None:
        options["lr"] = lr
    return optimizer(params, **options)


# ---------------------------------------------------------------------- clipping
def global_norm(grads) -> float:
    """sqrt of the sum of squares of every gradient (float64 accumulation), as a host float."""
    total = 0.0
    for g in grads.values():
        xp = _device.array_module(g)
        g64 = xp.asarray(g, dtype=np.float64).ravel()
        total += float(xp.dot(g64, g64))
    return float(np.sqrt(total))


def clip_grad_norm(grads, max_norm: float) -> float:
    """Scales every gradient in place by ``max_norm / global_norm`` when the global norm
    exceeds ``max_norm``; returns the norm before clipping (as PyTorch's clip_grad_norm_)."""
    max_norm = _positive(max_norm, "max_norm")
    norm = global_norm(grads)
    if np.isfinite(norm) and norm > max_norm:
        scale = max_norm / (norm + 1e-12)
        for g in grads.values():
            g *= scale
    return norm


def clip_grad_value(grads, clip_value: float) -> None:
    """Clamps every gradient element to [-clip_value, clip_value] in place."""
    clip_value = _positive(clip_value, "clip_value")
    for g in grads.values():
        _device.array_module(g).clip(g, -clip_value, clip_value, out=g)
