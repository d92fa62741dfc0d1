"""Feed-forward layers of ``rnnkit.nn``: Linear, Embedding, Dropout.

Initialisation (documented choice, Keras-like): ``Linear.W`` Glorot/Xavier uniform
U(-a, a), a = sqrt(6 / (in + out)), ``Linear.b`` zeros; ``Embedding.W`` N(0, 1) (PyTorch's
choice) with the ``padding_idx`` row zero.
"""
from __future__ import annotations

import numpy as np

from .. import _device
from .._checks import layout_note, lengths_array, shape_str
from .._linalg import matmul
from ..embedding import embedding_backward, embedding_forward
from .module import Module, check_dtype, check_positive_int, check_probability, float_input, placed

__all__ = ["Linear", "Embedding", "Dropout", "glorot_uniform", "valid_mask", "dropout_mask"]


def glorot_uniform(rng, fan_in: int, fan_out: int, dtype) -> np.ndarray:
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(dtype)


def valid_mask(lengths, T: int, B: int, dtype, batch_first: bool = False, like=None) -> np.ndarray:
    """(T, B, 1) (or (B, T, 1) if batch_first) array: 1 where t < lengths[b], else 0; made from
    the host ``lengths`` and put where ``like`` lives."""
    m = (np.arange(T)[:, None] < np.asarray(lengths)[None, :]).astype(dtype)[:, :, None]
    return _device.put_like(m.transpose(1, 0, 2) if batch_first else m, like)


def dropout_mask(rng, shape, p: float, dtype, like):
    """An inverted-dropout mask of ``shape``: 0 with probability ``p``, else 1/(1-p), where
    ``like`` lives. Drawn by the module's host generator whatever the device, so a model draws
    the same masks on either and ``rng_state()`` stays a host state; the keep pattern crosses
    to a device as one byte per element."""
    keep = _device.put_like(rng.random(shape) >= p, like)
    return (keep / (1.0 - p)).astype(dtype)


class Linear(Module):
    """y = x @ W + b with W (in_features, out_features), b (out_features,).

    Works on (N, in) and on sequences (B, T, in) per time step (or time-major (T, B, in) with
    ``batch_first=False``). With ``lengths`` and 3-D input, outputs at padded steps are zero and
    get no gradient, so padding never leaks into later layers or losses; 2-D input ignores
    ``lengths`` (so a Linear after a pooling head inside a Sequential just works).
    """

    def __init__(self, in_features, out_features, *, bias=True, batch_first=True,
                 dtype=np.float32, seed=None):
        super().__init__(seed)
        self.in_features = check_positive_int(in_features, "in_features")
        self.out_features = check_positive_int(out_features, "out_features")
        self.dtype = check_dtype(dtype)
        self.batch_first = bool(batch_first)
        self.output_size = self.out_features
        init = np.random.default_rng(seed)
        self.add_parameter("W", glorot_uniform(init, self.in_features, self.out_features, self.dtype))
        if bias:
            self.add_parameter("b", np.zeros(self.out_features, dtype=self.dtype))
        self._cache = None

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, dtype={self.dtype}"

    def forward(self, x, *, lengths=None, training=False):
        x = float_input(x, "x", self.dtype, ndims=(2, 3), last=self.in_features,
                        meaning=" (N, in_features) or a sequence "
                                + ("(B, T, in_features)" if self.batch_first else "(T, B, in_features)"),
                        device=self._backend())
        y = matmul(x.reshape(-1, self.in_features), self.W).reshape(x.shape[:-1] + (self.out_features,))
        if "b" in self._params:
            y += self.b
        mask = None
        if lengths is not None and x.ndim == 3:  # 2-D input (e.g. after a head) ignores lengths
            T, B = (x.shape[1], x.shape[0]) if self.batch_first else x.shape[:2]
            lengths = lengths_array(lengths, B, T, layout=layout_note("x", x.shape, self.batch_first, "in_features"))
            mask = valid_mask(lengths, T, B, self.dtype, self.batch_first, like=x)
            y *= mask
        self._cache = (x, mask)
        return y

    def backward(self, grad):
        if self._cache is None:
            raise RuntimeError("Linear.backward called before forward")
        x, mask = self._cache
        grad = float_input(grad, "grad", self.dtype, ndims=(x.ndim,), device=self._backend())
        if grad.shape[:-1] != x.shape[:-1] or grad.shape[-1] != self.out_features:
            raise ValueError(f"grad must have the forward output's shape "
                             f"{shape_str(x.shape[:-1] + (self.out_features,))}, got {shape_str(grad.shape)}")
        if mask is not None:
            grad = grad * mask
        g2 = grad.reshape(-1, self.out_features)
        matmul(x.reshape(-1, self.in_features).T, g2, out=self._grads["W"], accumulate=True)
        if "b" in self._params:
            self._grads["b"] += g2.sum(axis=0)
        return matmul(g2, self.W.T).reshape(x.shape)


class Embedding(Module):
    """Lookup table W (num_embeddings, dim): ids of any shape (e.g. (B, T) or (T, B)) ->
    ids.shape + (dim,). Ids are validated (IndexError naming the offending id and its
    position). ``padding_idx``: its row is initialised to zero, its outputs are zero and it
    gets no gradient. backward(grad) accumulates into ``grads()["W"]`` with the C++ scatter-add
    of ``rnnkit.embedding`` and returns None (integer input has no gradient).
    """

    def __init__(self, num_embeddings, dim, padding_idx=None, *, dtype=np.float32, seed=None):
        super().__init__(seed)
        self.num_embeddings = check_positive_int(num_embeddings, "num_embeddings")
        self.dim = check_positive_int(dim, "dim")
        self.dtype = check_dtype(dtype)
        self.output_size = self.dim
        if padding_idx is not None:
            if isinstance(padding_idx, bool) or not isinstance(padding_idx, (int, np.integer)):
                raise TypeError(f"padding_idx must be None or an int, got {type(padding_idx).__name__}")
            if not 0 <= padding_idx < self.num_embeddings:
                raise ValueError(f"padding_idx must be in [0, {self.num_embeddings}), got {padding_idx}")
            padding_idx = int(padding_idx)
        self.padding_idx = padding_idx
        W = np.random.default_rng(seed).standard_normal((self.num_embeddings, self.dim)).astype(self.dtype)
        if padding_idx is not None:
            W[padding_idx] = 0
        self.add_parameter("W", W)
        self._cache = None

    def extra_repr(self):
        pad = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        return f"{self.num_embeddings}, {self.dim}{pad}, dtype={self.dtype}"

    def forward(self, ids, *, lengths=None, training=False):
        out, self._cache = embedding_forward(ids, self.W, padding_idx=self.padding_idx)
        return out

    def backward(self, grad):
        if self._cache is None:
            raise RuntimeError("Embedding.backward called before forward")
        grad = placed(grad, "grad", self._backend())
        if grad.dtype != self.dtype:
            raise TypeError(f"grad must have dtype {self.dtype}, got {grad.dtype}")
        embedding_backward(grad, self._cache, out=self._grads["W"])
        return None


class Dropout(Module):
    """Inverted dropout: in training each element is zeroed with probability ``p`` and the rest
    scaled by 1/(1-p); identity otherwise. The mask comes from the module's generator (fix it
    with ``seed()``) and is reused by backward."""

    def __init__(self, p=0.5, *, seed=None):
        super().__init__(seed)
        self.p = check_probability(p, "p")
        self._mask = None

    def extra_repr(self):
        return f"p={self.p}"

    def forward(self, x, *, lengths=None, training=False):
        x = placed(x, "x", _device.backend_of(x))  # no parameters: it runs where x lives
        if x.dtype.kind != "f":
            raise TypeError(f"x must be a floating array, got dtype {x.dtype}")
        if not training or self.p == 0.0:
            self._mask = None
            return x
        self._mask = dropout_mask(self._rng, x.shape, self.p, x.dtype, like=x)
        return x * self._mask

    def backward(self, grad):
        return grad if self._mask is None else grad * self._mask
