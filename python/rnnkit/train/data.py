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

Models with several inputs declare a ``DataLayout`` as their ``data_layout`` attribute: the
names of their data arrays, which go to ``forward`` and which one the loss compares the outputs
with. ``Seq2Seq`` trains on ``(src, tgt, src_lengths, tgt_lengths)``: ``forward(src, tgt,
src_lengths=, tgt_lengths=, training=)`` with ``tgt`` also the target, masked by
``tgt_lengths``. Models without one get ``DEFAULT_LAYOUT``, the ``(X, y, lengths)`` above.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["DataLayout", "DEFAULT_LAYOUT", "Data", "Batch", "plan_batches"]


@dataclass(frozen=True)
class DataLayout:
    """How a model's data set is laid out and fed to its ``forward``.

    Args:
        inputs: the names of forward's positional arguments, in order, e.g. ``("src", "tgt")``.
        target: the array the loss compares the outputs with; it may also be an input (a
            teacher-forced decoder reads its targets).
        lengths: the names of forward's keyword arguments holding each row's valid steps
            ``(N,)``; optional in the data (forward then gets None).
        steps: ``{array: lengths}`` for the arrays whose axis 1 is time and counted by those
            lengths: each batch is cut to its longest row, and a target listed here gets the
            loss mask ``t < lengths``.
        bucket_by: the lengths that ``bucket=True`` groups batches by.

    A data set is a dict with these names, or a tuple in the order inputs, target (unless it
    is an input), lengths.
    """

    inputs: tuple
    target: str
    lengths: tuple = ()
    steps: dict = field(default_factory=dict)
    bucket_by: str | None = None

    def __post_init__(self):
        names = self.fields
        if len(set(names)) != len(names):
            raise ValueError(f"DataLayout names must be distinct, got {names}")
        for array, lengths in self.steps.items():
            if array not in names or lengths not in self.lengths:
                raise ValueError(f"DataLayout steps: {array!r} -> {lengths!r} must map an array to one of "
                                 f"the lengths {self.lengths}")
        if self.bucket_by is not None and self.bucket_by not in self.lengths:
            raise ValueError(f"DataLayout bucket_by={self.bucket_by!r} is not one of the lengths {self.lengths}")

    @property
    def fields(self) -> tuple:
        """Every array's name, in the order of a tuple data set."""
        target = () if self.target in self.inputs else (self.target,)
        return tuple(self.inputs) + target + tuple(self.lengths)

    def forward(self, model, arrays: dict, *, training: bool):
        """``model.forward`` on one batch's arrays."""
        return model.forward(*(arrays[k] for k in self.inputs), training=training,
                             **{k: arrays.get(k) for k in self.lengths})


DEFAULT_LAYOUT = DataLayout(inputs=("x",), target="y", lengths=("lengths",), steps={"x": "lengths"},
                            bucket_by="lengths")


def shown_name(name: str) -> str:
    """How messages name the array ``name``."""
    # the single-input data set calls its input X (docs, messages), its dict key is x
    return "X" if name == "x" else name


def _n_rows(a) -> int:
    return int(a.shape[0])


@dataclass
class Batch:
    """One batch: ``arrays`` by name (cut to the batch's longest rows), the ``target`` and
    the loss ``mask`` (None without lengths for the target)."""

    arrays: dict
    target: object
    mask: object


class Data:
    """Checked arrays of one data set laid out by ``layout``, and batch slicing (with
    trimming to the longest row)."""

    def __init__(self, data, name: str, layout: DataLayout = DEFAULT_LAYOUT, need_y: bool = True):
        self.layout = layout
        fields = layout.fields
        given = self._by_name(data, name, layout)
        first = layout.inputs[0]
        for k in layout.inputs:
            if given.get(k) is None:
                raise ValueError(f"{name}: {shown_name(k)} is missing")
        arrays = {}
        for k in fields:
            a = given.get(k)
            if a is not None:
                # a scipy.sparse X keeps its type; everything else becomes an array
                arrays[k] = a if (k == first and hasattr(a, "shape")) else np.asarray(a)
        x = arrays[first]
        if len(x.shape) < 1 or x.shape[0] == 0:
            raise ValueError(f"{name}: {shown_name(first)} is empty (shape {tuple(x.shape)}); "
                             f"need at least one sample")
        n = _n_rows(x)
        if need_y and layout.target not in arrays:
            raise ValueError(f"{name}: {shown_name(layout.target)} (the targets) is missing")
        for k, a in arrays.items():
            if k == first or k in layout.lengths:
                continue
            if a.ndim == 0 or a.shape[0] != n:
                raise ValueError(f"{name}: {shown_name(first)} has {n} samples but {shown_name(k)} has "
                                 f"{a.shape[0] if a.ndim else 'a scalar'}; they must match (samples along axis 0)")
        for k in layout.lengths:
            if k in arrays:
                arrays[k] = self._check_lengths(arrays[k], k, arrays, n, name)
        self.arrays, self.n = arrays, n
        self.target_lengths = self._target_lengths()

    @staticmethod
    def _by_name(data, name, layout) -> dict:
        fields = layout.fields
        if isinstance(data, dict):
            aliases = {shown_name(k): k for k in fields}
            unknown = set(data) - set(fields) - set(aliases)
            if unknown:
                raise ValueError(f"{name}: unknown keys {sorted(unknown)}; use {', '.join(fields)}")
            return {k: data.get(k, data.get(shown_name(k))) for k in fields}
        if isinstance(data, (tuple, list)) and 1 <= len(data) <= len(fields):
            return dict(zip(fields, data))
        if layout is DEFAULT_LAYOUT:
            expected = "(X, y), (X, y, lengths) or a dict with x, y, lengths"
        else:
            expected = f"({', '.join(fields)}) or a dict with those keys"
        raise TypeError(f"{name} must be {expected}; got {type(data).__name__}")

    def _check_lengths(self, lengths, key, arrays, n, name):
        if lengths.dtype.kind not in "iu" or lengths.ndim != 1:
            raise TypeError(f"{name}: {key} must be a 1-D integer array, got {lengths.dtype} {lengths.shape}")
        first = shown_name(self.layout.inputs[0])
        if lengths.shape[0] != n:
            raise ValueError(f"{name}: {first} has {n} samples but {key} has {lengths.shape[0]}; they must match")
        counted = [k for k, v in self.layout.steps.items() if v == key and k in arrays]
        for k in counted:
            a = arrays[k]
            if len(a.shape) < 2:
                raise ValueError(f"{name}: {key} given but {shown_name(k)} has no time axis "
                                 f"(shape {tuple(a.shape)})")
            T = a.shape[1]
            bad = (lengths < 0) | (lengths > T)
            if bad.any():
                i = int(np.argmax(bad))
                raise ValueError(f"{name}: {key}[{i}] = {int(lengths[i])} is outside [0, {T}] "
                                 f"({shown_name(k)} has T = {T})")
        return lengths.astype(np.int64)

    def _target_lengths(self):
        """The lengths that cut and mask the target: its own, or else - per-step targets of a
        single sequence input (tagging) - those of the first input when the time axes match."""
        layout, arrays = self.layout, self.arrays
        y = arrays.get(layout.target)
        if y is None:
            return None
        own = layout.steps.get(layout.target)
        if own is not None:
            return own if own in arrays else None
        first = layout.inputs[0]
        key = layout.steps.get(first)
        if key in arrays and y.ndim >= 2 and y.shape[1] == arrays[first].shape[1]:
            return key
        return None

    @property
    def x(self):
        """The first input (the one a token-id pre-check reads)."""
        return self.arrays[self.layout.inputs[0]]

    @property
    def y(self):
        return self.arrays.get(self.layout.target)

    def lengths_of(self, name):
        """The lengths counting the steps of array ``name`` (None if it has none)."""
        return self.arrays.get(self.layout.steps.get(name))

    @property
    def bucket_lengths(self):
        return self.arrays.get(self.layout.bucket_by)

    def batch(self, idx) -> Batch:
        layout = self.layout
        arrays = {k: a[idx] for k, a in self.arrays.items()}
        for k, key in layout.steps.items():
            if k in arrays and key in arrays:
                arrays[k] = arrays[k][:, :max(int(arrays[key].max()), 1)]
        y = arrays.get(layout.target)
        mask = None
        if self.target_lengths is not None:
            lengths = arrays[self.target_lengths]
            T = max(int(lengths.max()), 1)
            y = y[:, :T]
            mask = np.arange(T)[None, :] < lengths[:, None]
        return Batch(arrays, y, mask)


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

