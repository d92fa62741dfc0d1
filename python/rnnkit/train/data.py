"""Training data: checked arrays of one data set (``Data``) and the epoch's batch plan
(``plan_batches``), used by ``rnnkit.train.trainer``.

Data: ``(X, y)``, ``(X, y, lengths)`` or a dict with keys ``x``, ``y`` and optionally
``lengths``. Samples run along axis 0 of every array (batch-first): ``X`` is e.g. padded ids
``(N, T)`` from ``rnnkit.text.to_sequences``, features ``(N, T, F)`` or ``(N, F)``, or a
scipy.sparse matrix ``(N, F)``; ``y`` is ``(N,)`` class indices, ``(N, T)`` per-step targets or
``(N, K)`` values; ``lengths`` ``(N,)`` the valid steps of each row.

With ``lengths`` each batch is cut to its own longest sequence, and ``bucket=True`` (the
default) groups sequences of similar length: the shuffled samples are split into pools of
``batch_size * bucket_pool`` that are sorted by length and cut into batches, whose order is
shuffled again - padding shrinks while batches stay random. When ``y`` has a time axis (its
shape[1] equals X's), it is cut with X and the loss gets ``mask = t < lengths``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["Data", "plan_batches"]


def _n_rows(a) -> int:
    return int(a.shape[0])


class Data:
    """Checked arrays of one data set, and batch slicing (with trimming to the longest row)."""

    def __init__(self, data, name: str, need_y: bool = True):
        if isinstance(data, dict):
            unknown = set(data) - {"x", "X", "y", "lengths"}
            if unknown:
                raise ValueError(f"{name}: unknown keys {sorted(unknown)}; use x, y, lengths")
            x, y, lengths = data.get("x", data.get("X")), data.get("y"), data.get("lengths")
        elif isinstance(data, (tuple, list)) and len(data) in (1, 2, 3):
            x, y, lengths = (tuple(data) + (None, None))[:3]
        else:
            raise TypeError(f"{name} must be (X, y), (X, y, lengths) or a dict with x, y, lengths; "
                            f"got {type(data).__name__}")
        if x is None:
            raise ValueError(f"{name}: X is missing")
        if not hasattr(x, "shape"):
            x = np.asarray(x)
        if len(x.shape) < 1 or x.shape[0] == 0:
            raise ValueError(f"{name}: X is empty (shape {tuple(x.shape)}); need at least one sample")
        n = _n_rows(x)
        if y is None and need_y:
            raise ValueError(f"{name}: y (the targets) is missing")
        if y is not None:
            y = np.asarray(y)
            if y.ndim == 0 or y.shape[0] != n:
                raise ValueError(f"{name}: X has {n} samples but y has "
                                 f"{y.shape[0] if y.ndim else 'a scalar'}; they must match (samples along axis 0)")
        if lengths is not None:
            lengths = np.asarray(lengths)
            if lengths.dtype.kind not in "iu" or lengths.ndim != 1:
                raise TypeError(f"{name}: lengths must be a 1-D integer array, got {lengths.dtype} {lengths.shape}")
            if lengths.shape[0] != n:
                raise ValueError(f"{name}: X has {n} samples but lengths has {lengths.shape[0]}; they must match")
            if len(x.shape) < 2:
                raise ValueError(f"{name}: lengths given but X has no time axis (shape {tuple(x.shape)})")
            T = x.shape[1]
            bad = (lengths < 0) | (lengths > T)
            if bad.any():
                i = int(np.argmax(bad))
                raise ValueError(f"{name}: lengths[{i}] = {int(lengths[i])} is outside [0, {T}] (X has T = {T})")
            lengths = lengths.astype(np.int64)
        self.x, self.y, self.lengths, self.n = x, y, lengths, n
        self.sequence_targets = (y is not None and lengths is not None and y.ndim >= 2
                                 and y.shape[1] == x.shape[1])

    def batch(self, idx):
        x = self.x[idx]
        y = None if self.y is None else self.y[idx]
        lengths = mask = None
        if self.lengths is not None:
            lengths = self.lengths[idx]
            T = max(int(lengths.max()), 1)
            x = x[:, :T]
            if self.sequence_targets:
                y = y[:, :T]
                mask = np.arange(T)[None, :] < lengths[:, None]
        return x, y, lengths, mask


def plan_batches(n: int, batch_size: int, lengths, *, shuffle: bool, bucket: bool, pool: int, rng) -> list:
    """The epoch's batches as index arrays."""
    order = rng.permutation(n) if shuffle else np.arange(n)
    if bucket and lengths is not None:
        size = batch_size * pool
        batches = []
        for start in range(0, n, size):
            chunk = order[start:start + size]
            chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
            batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
        if shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]

