"""The training loop: ``Trainer`` / ``fit``, ``evaluate``, ``predict``, early stopping,
atomic checkpoints and exact resume.

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

The model follows the rnnkit.nn Module contract: ``forward(x, *, lengths=None,
training=False)``, ``backward(grad)`` accumulating into ``grads()``, ``zero_grad()``,
``parameters()``, ``state_dict()`` / ``load_state_dict()`` and, optionally, ``rng_state()`` /
``set_rng_state()``.

Reproducibility: the Trainer's ``seed`` drives its shuffling; the model's own generators drive
dropout (seed the model). Same seeds, same numbers. A checkpoint holds the model state, the
optimiser and schedule state, epoch/batch counters, the current epoch's batch plan, running
sums, history, early-stopping state and every RNG state, so ``fit(..., resume=True)`` after an
interruption gives bit-identical results to an uninterrupted run. Checkpoints are written to
a temporary file in the same directory, flushed to disk and renamed over the old one
(``os.replace``), so a crash mid-write leaves the last good checkpoint intact; temporary files
left by a killed writer are removed at the next successful write. ``fit`` checks that the
checkpoint can be written before the first epoch.

A non-finite loss or gradient stops training with ``NonFiniteLossError`` naming the epoch and
batch, before the parameters are updated and without writing a checkpoint.
"""
from __future__ import annotations

import contextlib
import copy
import errno
import os
import pickle
import re
import tempfile

import numpy as np

from .._checks import check_ids, check_positive_int
from .._runtime import govern_blas
from .losses import get_loss
from .optim import clip_grad_norm, clip_grad_value, get_optimizer, global_norm
from .regularizers import Regularizer
from .schedules import ReduceLROnPlateau, Schedule

__all__ = ["Trainer", "fit", "History", "EarlyStopping", "NonFiniteLossError", "save_checkpoint",
           "load_checkpoint"]

_CKPT_FORMAT = "rnnkit.train.checkpoint"


class NonFiniteLossError(FloatingPointError):
    """The loss or a gradient became NaN/inf; the message names the epoch and batch."""


# ---------------------------------------------------------------------- checkpoints
def _temp_file(path: str):
    """(fd, name) of a new temporary file beside ``path`` (same directory, so os.replace over
    ``path`` is atomic); the directory is created if missing."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    return tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=directory)


def _remove_stale_temp_files(path: str) -> None:
    """Removes temporary files of earlier writes of ``path`` that never reached os.replace (a
    killed writer; two live writers of one checkpoint are not supported anyway). Only this
    checkpoint's own names match: mkstemp's prefix + 8 characters of its alphabet (no dot, so
    "a.ckpt" never takes "a.ckpt.b.<8>.tmp") + ".tmp". Best effort: the checkpoint is written."""
    own = re.compile(re.escape(os.path.basename(path)) + r"\.[a-z0-9_]{8}\.tmp")
    try:
        with os.scandir(os.path.dirname(os.path.abspath(path))) as entries:
            stale = [e.path for e in entries if own.fullmatch(e.name) and e.is_file(follow_symlinks=False)]
    except OSError:
        return
    for name in stale:
        with contextlib.suppress(OSError):
            os.unlink(name)


def save_checkpoint(path, state: dict) -> None:
    """Pickles ``state`` atomically: temp file in the same directory, fsync, os.replace. Then
    removes temp files left beside it by writers killed mid-write."""
    path = os.fspath(path)
    fd, tmp = _temp_file(path)
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _remove_stale_temp_files(path)


def _check_checkpoint_writable(path: str) -> None:
    """Creates and removes a temporary file where save_checkpoint will write, so an unwritable
    location is reported before training rather than at the first checkpoint."""
    try:
        if os.path.isdir(path):
            raise IsADirectoryError(errno.EISDIR, "Is a directory")
        fd, tmp = _temp_file(path)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        where = f" ({e.filename})" if e.filename else ""
        raise OSError(e.errno, f"checkpoint={path!r} cannot be written: {e.strerror or e}{where}") from e


def load_checkpoint(path) -> dict:
    with open(os.fspath(path), "rb") as f:
        state = pickle.load(f)
    if not isinstance(state, dict) or state.get("format") != _CKPT_FORMAT:
        raise ValueError(f"{os.fspath(path)!r} is not an rnnkit training checkpoint")
    return state


# ---------------------------------------------------------------------- history / early stopping
class History:
    """Per-epoch records: ``history["loss"]``, ``history["val_loss"]``, ``history.epochs``...
    (Keras style: ``history.history`` is the dict of lists)."""

    def __init__(self):
        self.history: dict[str, list] = {}
        self.epochs: list[int] = []
        self.stopped_early = False

    def append(self, epoch: int, logs: dict) -> None:
        self.epochs.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)

    def __getitem__(self, key):
        return self.history[key]

    def __contains__(self, key):
        return key in self.history

    def keys(self):
        return self.history.keys()

    def last(self) -> dict:
        return {k: v[-1] for k, v in self.history.items()}

    def to_dict(self) -> dict:
        return {"history": copy.deepcopy(self.history), "epochs": list(self.epochs),
                "stopped_early": self.stopped_early}

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        h = cls()
        h.history, h.epochs, h.stopped_early = copy.deepcopy(d["history"]), list(d["epochs"]), d["stopped_early"]
        return h

    def plot(self, path=None, metrics=None):
        """Training curves (loss, metrics, training and validation, learning rate) as a
        matplotlib Figure, also written as PNG at ``path`` if given; needs the ``plot`` extra.
        See ``rnnkit.plot.plot_history``."""
        from ..plot import plot_history

        return plot_history(self, path, metrics)

    def __repr__(self) -> str:
        return f"History({len(self.epochs)} epochs, {self.last()})"


class EarlyStopping:
    """Stops when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs; with
    ``restore_best`` the model gets back the weights of its best epoch at the end."""

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                 mode: str = "auto", restore_best: bool = True):
        patience = check_positive_int(patience, "patience", 0)
        if mode == "auto":
            mode = "max" if any(s in monitor for s in ("acc", "score")) else "min"
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.monitor, self.patience, self.min_delta = monitor, patience, float(min_delta)
        self.mode, self.restore_best = mode, bool(restore_best)
        self.best = None
        self.best_epoch = None
        self.wait = 0
        self.best_state = None

    def update(self, epoch: int, logs: dict, model) -> bool:
        """Records the epoch; returns True when training should stop."""
        if self.monitor not in logs:
            raise KeyError(f"early stopping monitors {self.monitor!r}, but the epoch logs have only "
                           f"{sorted(logs)} (give validation data to monitor val_* values)")
        value = float(logs[self.monitor])
        better = (self.best is None or
                  (value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta))
        if better:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self.best_state = model.state_dict()
            return False
        self.wait += 1
        return self.wait >= self.patience

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait, "best_state": self.best_state}

    def load_state_dict(self, d: dict) -> None:
        self.best, self.best_epoch, self.wait, self.best_state = d["best"], d["best_epoch"], d["wait"], d["best_state"]


# ---------------------------------------------------------------------- data
def _n_rows(a) -> int:
    return int(a.shape[0])


class _Data:
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


def _plan(n: int, batch_size: int, lengths, *, shuffle: bool, bucket: bool, pool: int, rng) -> list:
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


# ---------------------------------------------------------------------- metrics
def _accuracy(outputs, targets, mask, ignore_index):
    out = np.asarray(outputs)
    t = np.asarray(targets)
    if out.ndim == t.ndim + 1:
        pred = out.argmax(axis=-1)
        valid = np.ones(t.shape, bool) if mask is None else np.asarray(mask, bool)
        if ignore_index is not None:
            valid &= t != ignore_index
    elif out.shape == t.shape:  # binary / multi-label logits
        pred, t = out > 0, t > 0.5
        valid = np.ones(t.shape, bool) if mask is None else np.broadcast_to(
            np.asarray(mask, bool).reshape(np.shape(mask) + (1,) * (t.ndim - np.ndim(mask))), t.shape)
    else:
        raise ValueError(f"accuracy needs outputs (..., C) with targets (...) or equal shapes; got "
                         f"{out.shape} and {t.shape}")
    return float(((pred == t) & valid).sum()), float(valid.sum())


# ---------------------------------------------------------------------- trainer
class Trainer:
    """Trains a Module. See the module docstring for data, checkpoints and resume.

    Args:
        model: an rnnkit.nn Module (or anything with the same methods).
        loss: 'cross_entropy', 'binary_cross_entropy', 'mse' or a callable
            ``(outputs, targets, mask) -> (mean, grad[, count])`` (e.g. ``CrossEntropy(ignore_index=0)``).
        optimizer: 'adam', 'adamw', 'sgd', 'rmsprop', an Optimizer class/factory or instance.
        lr: learning rate; optimizer_options: extra keyword arguments for the optimiser.
        regularizer: a ``Regularizer`` (L1/L2 by parameter kind) or None.
        clip_norm: clip gradients to this global norm; clip_value: clamp each element.
        schedule: a ``Schedule`` (stepped after every epoch; ReduceLROnPlateau gets val_loss,
            or loss without validation data).
        metrics: names ('accuracy', 'perplexity') or callables ``(outputs, targets, mask) ->
            (sum, count)`` named by their ``__name__``; reported for training and validation.
        early_stopping: an ``EarlyStopping`` or an int patience (monitoring val_loss).
        checkpoint: file path; written at the end of every epoch and every
            ``checkpoint_every`` batches.
        seed: seeds the shuffling generator.
        quiet: no progress bar. bucket_pool: batches per length-sorting pool.
    """

    def __init__(self, model, *, loss="cross_entropy", optimizer="adam", lr: float | None = 1e-3,
                 optimizer_options: dict | None = None, regularizer: Regularizer | None = None,
                 clip_norm: float | None = None, clip_value: float | None = None,
                 schedule: Schedule | None = None, metrics=(), early_stopping=None,
                 checkpoint=None, checkpoint_every: int | None = None, seed: int | None = 0,
                 quiet: bool = False, bucket_pool: int = 32):
        for method in ("forward", "backward", "parameters", "grads", "zero_grad", "state_dict", "load_state_dict"):
            if not callable(getattr(model, method, None)):
                raise TypeError(f"model must follow the rnnkit.nn Module contract; it has no {method}()")
        self.model = model
        self.loss = get_loss(loss)
        self.optimizer = get_optimizer(optimizer, model.parameters(), lr, **(optimizer_options or {}))
        if regularizer is not None and not isinstance(regularizer, Regularizer):
            raise TypeError(f"regularizer must be a rnnkit.train.Regularizer, got {type(regularizer).__name__}")
        self.regularizer = regularizer if regularizer else None
        self.clip_norm, self.clip_value = clip_norm, clip_value
        if schedule is not None and not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a rnnkit.train Schedule, got {type(schedule).__name__}")
        self.schedule = schedule
        if isinstance(metrics, str):
            metrics = (metrics,)
        for m in metrics:
            if not (callable(m) or m in ("accuracy", "perplexity")):
                raise ValueError(f"unknown metric {m!r}; use 'accuracy', 'perplexity' or a callable")
        self.metrics = tuple(metrics)
        if isinstance(early_stopping, int) and not isinstance(early_stopping, bool):
            early_stopping = EarlyStopping(patience=early_stopping)
        if early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
            raise TypeError("early_stopping must be an EarlyStopping, an int patience or None")
        self.early_stopping = early_stopping
        self.checkpoint = None if checkpoint is None else os.fspath(checkpoint)
        self.checkpoint_every = None if checkpoint_every is None else check_positive_int(checkpoint_every, "checkpoint_every", 1)
        if self.checkpoint_every and not self.checkpoint:
            raise ValueError("checkpoint_every needs checkpoint= (a file path)")
        self.seed = seed
        self.quiet = bool(quiet)
        self.bucket_pool = check_positive_int(bucket_pool, "bucket_pool", 1)
        self.rng = np.random.default_rng(seed)
        self.history = History()
        self.last_checkpoint = None  # (epoch, batch) of the last checkpoint written

    # ------------------------------------------------------------------ pieces
    def _ignore_index(self):
        return getattr(self.loss, "ignore_index", None)

    def _loss(self, out, y, mask):
        res = self.loss(out, y, mask)
        if len(res) == 3:
            return float(res[0]), res[1], float(res[2])
        return float(res[0]), res[1], float(len(out))

    def _metric_sums(self, out, y, mask, sums: dict) -> None:
        for m in self.metrics:
            if m == "perplexity":
                continue
            if m == "accuracy":
                s, c = _accuracy(out, y, mask, self._ignore_index())
                name = "accuracy"
            else:
                s, c = m(out, y, mask)
                name = getattr(m, "__name__", "metric")
            a = sums.setdefault(name, [0.0, 0.0])
            a[0] += float(s)
            a[1] += float(c)

    def _logs(self, sums: dict, prefix: str = "") -> dict:
        loss_sum, count = sums["loss"]
        logs = {prefix + "loss": loss_sum / count if count else float("nan")}
        if "perplexity" in self.metrics:
            logs[prefix + "perplexity"] = float(np.exp(min(logs[prefix + "loss"], 700.0)))
        for name, (s, c) in sums.items():
            if name not in ("loss", "penalty"):
                logs[prefix + name] = s / c if c else float("nan")
        if "penalty" in sums and sums["penalty"][1]:
            logs[prefix + "penalty"] = sums["penalty"][0] / sums["penalty"][1]
        return logs

    def _check_class_targets(self, data: _Data, num_classes: int, name: str) -> None:
        y = data.y
        if y is None or y.dtype.kind not in "iu":
            return
        ignore = self._ignore_index()
        valid = np.ones(y.shape, bool) if ignore is None else y != ignore
        if data.sequence_targets:
            valid &= np.arange(y.shape[1]).reshape((1, -1) + (1,) * (y.ndim - 2)) < data.lengths.reshape(
                (-1,) + (1,) * (y.ndim - 1))
        bad = valid & ((y < 0) | (y >= num_classes))
        if bad.any():
            pos = tuple(int(i) for i in np.argwhere(bad)[0])
            raise IndexError(f"{name}: y{list(pos)} = {int(y[pos])} is out of range for the model's "
                             f"{num_classes} classes (valid labels: 0..{num_classes - 1})")

    def _check_token_ids(self, data: _Data, name: str) -> None:
        """Integer inputs of a model whose first Embedding reads them are checked before any
        batch runs, so a bad id is reported at its row and column of the data set (not of a
        shuffled, transposed batch)."""
        x = data.x
        if not isinstance(x, np.ndarray) or x.dtype.kind not in "iu" or not callable(
                getattr(self.model, "named_modules", None)):
            return
        from ..nn import Embedding

        embedding = next((m for _, m in self.model.named_modules() if isinstance(m, Embedding)), None)
        if embedding is not None:
            check_ids(x, embedding.num_embeddings, f"{name} X", lengths=data.lengths,
                      pad_id=embedding.padding_idx or 0)

    def _state(self, epoch: int, batch: int, plan, sums) -> dict:
        model = self.model
        return {
            "format": _CKPT_FORMAT, "version": 1,
            "model": model.state_dict(),
            "model_rng": model.rng_state() if callable(getattr(model, "rng_state", None)) else None,
            "optimizer": self.optimizer.state_dict(),
            "schedule": None if self.schedule is None else self.schedule.state_dict(),
            "early_stopping": None if self.early_stopping is None else self.early_stopping.state_dict(),
            "epoch": epoch, "batch": batch, "plan": plan, "sums": copy.deepcopy(sums),
            "trainer_rng": copy.deepcopy(self.rng.bit_generator.state),
            "history": self.history.to_dict(),
        }

    def _save(self, epoch, batch, plan, sums) -> None:
        if self.checkpoint:
            save_checkpoint(self.checkpoint, self._state(epoch, batch, plan, sums))
            self.last_checkpoint = (epoch, batch)

    def _restore(self, state: dict):
        self.model.load_state_dict(state["model"])
        if state["model_rng"] is not None:
            self.model.set_rng_state(state["model_rng"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.schedule is not None:
            if state["schedule"] is None:
                raise ValueError("the checkpoint has no schedule state but this Trainer has a schedule")
            self.schedule.load_state_dict(state["schedule"])
        if self.early_stopping is not None and state["early_stopping"] is not None:
            self.early_stopping.load_state_dict(state["early_stopping"])
        self.rng.bit_generator.state = state["trainer_rng"]
        self.history = History.from_dict(state["history"])
        self.last_checkpoint = (state["epoch"], state["batch"])
        return state["epoch"], state["batch"], state["plan"], state["sums"]

    def _where(self) -> str:
        if self.last_checkpoint is None:
            return "no checkpoint was written" if self.checkpoint else "no checkpoint file was configured"
        e, b = self.last_checkpoint
        return (f"the last good checkpoint {self.checkpoint!r} (after epoch {e}" +
                (f", batch {b}" if b else "") + ") is kept")

    # ------------------------------------------------------------------ fit
    @govern_blas()
    def fit(self, train, val=None, *, epochs: int = 1, batch_size: int = 32, shuffle: bool = True,
            bucket: bool = True, resume: bool = False) -> History:
        """Trains for ``epochs`` epochs (counted from the start of training, so a resumed run
        stops at the same place). Returns the History (also ``self.history``)."""
        epochs = check_positive_int(epochs, "epochs", 0)
        batch_size = check_positive_int(batch_size, "batch_size", 1)
        train = _Data(train, "train")
        val = None if val is None else _Data(val, "val")
        self._check_token_ids(train, "train")
        if val is not None:
            self._check_token_ids(val, "val")
        model, opt = self.model, self.optimizer
        params = model.parameters()

        if self.checkpoint:
            _check_checkpoint_writable(self.checkpoint)
        start_epoch, start_batch, plan, sums = 0, 0, None, None
        if resume:
            if not self.checkpoint:
                raise ValueError("resume=True needs checkpoint= (the file to resume from)")
            if os.path.exists(self.checkpoint):
                start_epoch, start_batch, plan, sums = self._restore(load_checkpoint(self.checkpoint))
                if self.history.stopped_early:
                    return self.history
        if self.schedule is not None:
            self.schedule.start(opt)
        checked = False

        from tqdm.auto import tqdm

        for epoch in range(start_epoch, epochs):
            if plan is None:
                plan = _plan(train.n, batch_size, train.lengths, shuffle=shuffle, bucket=bucket,
                             pool=self.bucket_pool, rng=self.rng)
                sums, start_batch = {"loss": [0.0, 0.0]}, 0
            bar = tqdm(total=len(plan), initial=start_batch, desc=f"epoch {epoch + 1}/{epochs}",
                       unit="batch", disable=self.quiet, leave=True, dynamic_ncols=True)
            try:
                for b in range(start_batch, len(plan)):
                    x, y, lengths, mask = train.batch(plan[b])
                    model.zero_grad()
                    out = model.forward(x, lengths=lengths, training=True)
                    if not checked:
                        checked = True
                        if np.ndim(out) == np.ndim(y) + 1:
                            self._check_class_targets(train, out.shape[-1], "train")
                            if val is not None:
                                self._check_class_targets(val, out.shape[-1], "val")
                    value, grad, count = self._loss(out, y, mask)
                    if not np.isfinite(value):
                        raise NonFiniteLossError(
                            f"loss is {value} at epoch {epoch + 1}, batch {b + 1} of {len(plan)}; training "
                            f"stopped before updating the parameters; {self._where()}. Lower the learning "
                            f"rate, clip gradients (clip_norm=) or check the data for NaN/inf")
                    model.backward(grad)
                    grads = model.grads()
                    if self.regularizer is not None:
                        pen = self.regularizer.add_gradients(params, grads)
                        p = sums.setdefault("penalty", [0.0, 0.0])
                        p[0] += pen
                        p[1] += 1
                    if self.clip_value is not None:
                        clip_grad_value(grads, self.clip_value)
                    norm = clip_grad_norm(grads, self.clip_norm) if self.clip_norm is not None else global_norm(grads)
                    if not np.isfinite(norm):
                        raise NonFiniteLossError(
                            f"gradient norm is {norm} at epoch {epoch + 1}, batch {b + 1} of {len(plan)} "
                            f"(loss {value:.6g}); training stopped before updating the parameters; "
                            f"{self._where()}")
                    opt.step(grads)
                    sums["loss"][0] += value * count
                    sums["loss"][1] += count
                    self._metric_sums(out, y, mask, sums)
                    bar.update(1)
                    if not self.quiet and (b % 10 == 0 or b == len(plan) - 1):
                        bar.set_postfix({k: f"{v:.4g}" for k, v in self._logs(sums).items()}, refresh=False)
                    if self.checkpoint_every and (b + 1) % self.checkpoint_every == 0 and b + 1 < len(plan):
                        self._save(epoch, b + 1, plan, sums)
                logs = self._logs(sums)
                if val is not None:
                    logs.update({"val_" + k: v for k, v in self.evaluate(val, batch_size=batch_size).items()})
                logs["lr"] = opt.lr
                if not self.quiet:
                    bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items()}, refresh=True)
            finally:
                bar.close()
            self.history.append(epoch + 1, logs)
            if self.schedule is not None:
                metric = logs.get("val_loss", logs["loss"]) if isinstance(self.schedule, ReduceLROnPlateau) else None
                self.schedule.step(metric)
            stop = False
            if self.early_stopping is not None:
                stop = self.early_stopping.update(epoch + 1, logs, model)
                self.history.stopped_early = stop
            plan, sums = None, None
            self._save(epoch + 1, 0, None, None)
            if stop:
                break
        es = self.early_stopping
        if es is not None and es.restore_best and es.best_state is not None and self.history.stopped_early:
            model.load_state_dict(es.best_state)
        return self.history

    # ------------------------------------------------------------------ evaluate / predict
    @govern_blas()
    def evaluate(self, data, *, batch_size: int = 64) -> dict:
        """Mean loss (and metrics) over ``data`` in inference mode: ``{"loss": ..., ...}``."""
        data = data if isinstance(data, _Data) else _Data(data, "data")
        batch_size = check_positive_int(batch_size, "batch_size", 1)
        sums = {"loss": [0.0, 0.0]}
        plan = _plan(data.n, batch_size, data.lengths, shuffle=False, bucket=True, pool=self.bucket_pool,
                     rng=None)
        for idx in plan:
            x, y, lengths, mask = data.batch(idx)
            out = self.model.forward(x, lengths=lengths, training=False)
            value, _, count = self._loss(out, y, mask)
            sums["loss"][0] += value * count
            sums["loss"][1] += count
            self._metric_sums(out, y, mask, sums)
        return self._logs(sums)

    def predict(self, x, lengths=None, *, batch_size: int = 64) -> np.ndarray:
        """Model outputs for every row of ``x``, in order. Batches are cut to their longest
        sequence; outputs with a time axis ((N, T, ...), ndim >= 3) are padded back to T."""
        return predict(self.model, x, lengths, batch_size=batch_size)


@govern_blas()
def predict(model, x, lengths=None, *, batch_size: int = 64) -> np.ndarray:
    """See ``Trainer.predict``."""
    data = _Data((x, None, lengths), "x", need_y=False)
    batch_size = check_positive_int(batch_size, "batch_size", 1)
    plan = _plan(data.n, batch_size, data.lengths, shuffle=False, bucket=True, pool=32, rng=None)
    result = None
    T = data.x.shape[1] if len(data.x.shape) >= 2 else None
    for idx in plan:
        xb, _, lb, _ = data.batch(idx)
        out = np.asarray(model.forward(xb, lengths=lb, training=False))
        if result is None:
            shape = list(out.shape)
            shape[0] = data.n
            if out.ndim >= 3 and lb is not None:
                shape[1] = T
            result = np.zeros(shape, dtype=out.dtype)
        if out.ndim >= 3 and lb is not None:
            result[idx, :out.shape[1]] = out
        else:
            result[idx] = out
    return result


_FIT_ARGS = ("epochs", "batch_size", "shuffle", "bucket", "resume")


def fit(model, train, val=None, *, epochs: int = 1, batch_size: int = 32, **options) -> History:
    """``Trainer(model, **options).fit(train, val, epochs=, batch_size=, ...)``; returns the
    History (its ``trainer`` attribute is the Trainer, for evaluate/predict)."""
    fit_kw = {k: options.pop(k) for k in _FIT_ARGS if k in options}
    trainer = Trainer(model, **options)
    history = trainer.fit(train, val, epochs=epochs, batch_size=batch_size, **fit_kw)
    history.trainer = trainer
    return history
