"""The training loop: ``Trainer`` / ``fit``, ``evaluate``, ``predict``.

The pieces live beside it: ``data`` (the data sets, batching and length bucketing),
``metrics`` (loss and metric sums, the epoch's logs), ``callbacks`` (``History``,
``EarlyStopping``) and ``checkpoint`` (atomic checkpoint files); their public names are
importable from here as well.

The model follows the rnnkit.nn Module contract: ``forward(x, *, lengths=None,
training=False)``, ``backward(grad)`` accumulating into ``grads()``, ``zero_grad()``,
``parameters()``, ``state_dict()`` / ``load_state_dict()`` and, optionally, ``rng_state()`` /
``set_rng_state()``. A model whose forward takes several inputs (a decoder reading its targets,
an encoder-decoder) declares them in a ``data_layout`` attribute (``rnnkit.train.DataLayout``);
its data sets then hold those named arrays, see ``rnnkit.train.data``.

Reproducibility: the Trainer's ``seed`` drives its shuffling; the model's own generators drive
dropout (seed the model). Same seeds, same numbers. A checkpoint holds the model state, the
optimiser and schedule state, epoch/batch counters, the current epoch's batch plan, running
sums, history, early-stopping state and every RNG state, so ``fit(..., resume=True)`` after an
interruption gives bit-identical results to an uninterrupted run. ``fit`` checks that the
checkpoint can be written before the first epoch.

A non-finite loss or gradient stops training with ``NonFiniteLossError`` naming the epoch and
batch, before the parameters are updated and without writing a checkpoint.

``distributed="mpi"`` trains one model on several MPI ranks: each global batch is split between
them and their gradients averaged (``rnnkit.distributed``; docs/distributed.md).

Devices: a model moved with ``model.to("cuda")`` (before building the Trainer) trains there:
the data sets stay NumPy arrays on the host and each batch's inputs, targets and loss mask are
copied to the model's device (lengths stay on the host, where the kernels read them);
``predict`` returns NumPy arrays. Distributed training runs on the host.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import os

import numpy as np

from .. import _device
from .._checks import check_ids, check_positive_int
from .._runtime import govern_blas
from ..distributed import fingerprint
from ..persistence import _check_generator_states
from .callbacks import EarlyStopping, History
from .checkpoint import CHECKPOINT_FORMAT, check_checkpoint_writable, load_checkpoint, save_checkpoint
from .data import DEFAULT_LAYOUT, Batch, Data, DataLayout, plan_batches, shown_name
from .losses import get_loss
from .metrics import add_sums, batch_sums, check_metrics, empty_sums, epoch_logs
from .optim import clip_grad_norm, clip_grad_value, get_optimizer, global_norm
from .regularizers import Regularizer
from .schedules import ReduceLROnPlateau, Schedule

__all__ = ["Trainer", "fit", "History", "EarlyStopping", "NonFiniteLossError", "save_checkpoint",
           "load_checkpoint"]


class NonFiniteLossError(FloatingPointError):
    """The loss or a gradient became NaN/inf; the message names the epoch and batch."""


def _guarded(method):
    """Runs ``method`` under the Trainer's ``Group.guard`` when it is distributed: a rank that
    fails ends the job instead of leaving the others waiting. NonFiniteLossError is computed
    from the reduced loss and gradients, so every rank raises it at once."""
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        if self.dist is None:
            return method(self, *args, **kwargs)
        with self.dist.guard(f"Trainer.{method.__name__}", every_rank=(NonFiniteLossError,)):
            return method(self, *args, **kwargs)
    return run


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
        distributed: None (this process alone), "mpi" (every rank of ``mpiexec``), an mpi4py
            communicator or a ``rnnkit.distributed.Group``. Every rank then builds the same
            Trainer and calls ``fit`` with the same data and arguments; ``batch_size`` is per
            rank, so N ranks train as one process with ``N * batch_size``. Rank 0 alone shows
            progress and writes checkpoints. See docs/distributed.md.
    """

    def __init__(self, model, *, loss="cross_entropy", optimizer="adam", lr: float | None = 1e-3,
                 optimizer_options: dict | None = None, regularizer: Regularizer | None = None,
                 clip_norm: float | None = None, clip_value: float | None = None,
                 schedule: Schedule | None = None, metrics=(), early_stopping=None,
                 checkpoint=None, checkpoint_every: int | None = None, seed: int | None = 0,
                 quiet: bool = False, bucket_pool: int = 32, distributed=None):
        for method in ("forward", "backward", "parameters", "grads", "zero_grad", "state_dict", "load_state_dict"):
            if not callable(getattr(model, method, None)):
                raise TypeError(f"model must follow the rnnkit.nn Module contract; it has no {method}()")
        self.model = model
        self.layout = getattr(model, "data_layout", None) or DEFAULT_LAYOUT
        if not isinstance(self.layout, DataLayout):
            raise TypeError(f"model.data_layout must be a rnnkit.train.DataLayout, got {type(self.layout).__name__}")
        self.loss = get_loss(loss)
        self.optimizer = get_optimizer(optimizer, model.parameters(), lr, **(optimizer_options or {}))
        if regularizer is not None and not isinstance(regularizer, Regularizer):
            raise TypeError(f"regularizer must be a rnnkit.train.Regularizer, got {type(regularizer).__name__}")
        self.regularizer = regularizer if regularizer else None
        self.clip_norm, self.clip_value = clip_norm, clip_value
        if schedule is not None and not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a rnnkit.train Schedule, got {type(schedule).__name__}")
        self.schedule = schedule
        self.metrics = check_metrics(metrics)
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
        self.dist = None
        if distributed is not None:
            from ..distributed import group

            self.dist = group(distributed)

    # ------------------------------------------------------------------ pieces
    def _on_model_device(self, batch: Batch) -> Batch:
        """``batch`` with the model's inputs, the target and the mask where the model lives."""
        return _batch_on(batch, self.layout, _model_backend(self.model))

    def _check_optimizer_arrays(self) -> None:
        """ValueError when the model's parameters are no longer the arrays the optimiser updates
        (the model was moved after the Trainer was built): it would train stale copies."""
        own = self.model.parameters()
        if any(k in own and own[k] is not p for k, p in getattr(self.optimizer, "params", {}).items()):
            raise ValueError("the model's parameters are not the arrays this Trainer's optimiser "
                             "updates: was the model moved with model.to(...) after the Trainer "
                             "was built? Move the model first, then build the Trainer")

    def _ignore_index(self):
        return getattr(self.loss, "ignore_index", None)

    def _loss(self, out, y, mask):
        res = self.loss(out, y, mask)
        if len(res) == 3:
            return float(res[0]), res[1], float(res[2])
        return float(res[0]), res[1], float(len(out))

    def _check_class_targets(self, data: Data, num_classes: int, name: str) -> None:
        y = data.y
        if y is None or y.dtype.kind not in "iu":
            return
        ignore = self._ignore_index()
        valid = np.ones(y.shape, bool) if ignore is None else y != ignore
        if data.target_lengths is not None:
            lengths = data.arrays[data.target_lengths]
            valid &= np.arange(y.shape[1]).reshape((1, -1) + (1,) * (y.ndim - 2)) < lengths.reshape(
                (-1,) + (1,) * (y.ndim - 1))
        bad = valid & ((y < 0) | (y >= num_classes))
        if bad.any():
            pos = tuple(int(i) for i in np.argwhere(bad)[0])
            raise IndexError(f"{name}: {shown_name(data.layout.target)}{list(pos)} = {int(y[pos])} is out of range "
                             f"for the model's {num_classes} classes (valid labels: 0..{num_classes - 1})")

    def _check_token_ids(self, data: Data, name: str) -> None:
        """Integer inputs of a model whose first Embedding reads them are checked before any
        batch runs, so a bad id is reported at its row and column of the data set (not of a
        shuffled, transposed batch). Only the first input: the one that Embedding reads."""
        x = data.x
        if not isinstance(x, np.ndarray) or x.dtype.kind not in "iu" or not callable(
                getattr(self.model, "named_modules", None)):
            return
        from ..nn import Embedding

        embedding = next((m for _, m in self.model.named_modules() if isinstance(m, Embedding)), None)
        if embedding is not None:
            first = data.layout.inputs[0]
            check_ids(x, embedding.num_embeddings, f"{name} {shown_name(first)}", lengths=data.lengths_of(first),
                      pad_id=embedding.padding_idx or 0)

    def _state(self, epoch: int, batch: int, plan, sums) -> dict:
        model = self.model
        return {
            "format": CHECKPOINT_FORMAT, "version": 1,
            "model": model.state_dict(),
            "model_rng": model.rng_state() if callable(getattr(model, "rng_state", None)) else None,
            "optimizer": self.optimizer.state_dict(),
            "schedule": None if self.schedule is None else self.schedule.state_dict(),
            "early_stopping": None if self.early_stopping is None else self.early_stopping.state_dict(),
            "epoch": epoch, "batch": batch, "plan": plan, "sums": copy.deepcopy(sums),
            "trainer_rng": copy.deepcopy(self.rng.bit_generator.state),
            "history": self.history.to_dict(),
        }

    def _on_root(self, fn, *args):
        """``fn(*args)``; when distributed, on rank 0 alone, with its result or exception on
        every rank."""
        return fn(*args) if self.dist is None else self.dist.root_call(fn, *args)

    def _save(self, epoch, batch, plan, sums) -> None:
        if self.checkpoint:
            self._on_root(lambda: save_checkpoint(self.checkpoint, self._state(epoch, batch, plan, sums)))
            self.last_checkpoint = (epoch, batch)

    def _load_if_present(self):
        return load_checkpoint(self.checkpoint) if os.path.exists(self.checkpoint) else None

    def _sync_from_root(self) -> None:
        """Every rank takes rank 0's model, optimiser, schedule, generators and history (all a
        checkpoint holds), so ranks built with other seeds still train one model."""
        state = self.dist.bcast(self._state(0, 0, None, None) if self.dist.root else None)
        if not self.dist.root:
            last = self.last_checkpoint
            self._restore(state)
            self.last_checkpoint = last

    def _setup(self) -> tuple:
        """What every rank's Trainer must agree on for one Allreduce buffer and one training:
        the parameters' names, shapes and dtypes and the training options."""
        def name(f):  # of a callable: the same on every rank (a repr may hold an address)
            return f if isinstance(f, str) else getattr(f, "__qualname__", type(f).__qualname__)

        return (tuple((k, v.shape, v.dtype.str) for k, v in self.model.parameters().items()), repr(self.optimizer),
                repr(self.regularizer), self.clip_norm, self.clip_value, type(self.schedule).__name__,
                tuple(map(name, self.metrics)), name(self.loss), self.bucket_pool)

    def _check_finite_loss(self, value, epoch, b, n_batches) -> None:
        if not np.isfinite(value):
            raise NonFiniteLossError(
                f"loss is {value} at epoch {epoch + 1}, batch {b + 1} of {n_batches}; training "
                f"stopped before updating the parameters; {self._where()}. Lower the learning "
                f"rate, clip gradients (clip_norm=) or check the data for NaN/inf")

    def _restore(self, state: dict):
        self.model.load_state_dict(state["model"])
        if state["model_rng"] is not None:
            _check_generator_states(state["model_rng"])
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

    def _restore_best_weights(self) -> None:
        """At the end of fit: the best epoch's weights when early stopping keeps them, also
        when the epochs ran out after the best one (as Keras 3). Checkpoints keep the last
        epoch's weights, so a resumed run continues from where training was."""
        if self.early_stopping is not None and self.history.epochs:
            self.early_stopping.restore_best_weights(self.model, self.history.epochs[-1])

    # ------------------------------------------------------------------ fit
    @govern_blas()
    @_guarded
    def fit(self, train, val=None, *, epochs: int = 1, batch_size: int = 32, shuffle: bool = True,
            bucket: bool = True, resume: bool = False) -> History:
        """Trains for ``epochs`` epochs (counted from the start of training, so a resumed run
        stops at the same place). Returns the History (also ``self.history``). Distributed,
        ``batch_size`` is each rank's share of a global batch of ``batch_size * ranks``."""
        epochs = check_positive_int(epochs, "epochs", 0)
        batch_size = check_positive_int(batch_size, "batch_size", 1)
        train = Data(train, "train", self.layout)
        val = None if val is None else Data(val, "val", self.layout)
        self._check_token_ids(train, "train")
        if val is not None:
            self._check_token_ids(val, "val")
        model, opt, dist = self.model, self.optimizer, self.dist
        params = model.parameters()
        self._check_optimizer_arrays()
        if dist is not None and _model_backend(model) is not None:
            raise ValueError(f"distributed training runs on the host, but the model is on "
                             f"{model.device!r}; move it with model.to('cpu')")
        if dist is not None:
            dist.check_same((epochs, batch_size, shuffle, bucket, resume, fingerprint(train.arrays),
                             None if val is None else fingerprint(val.arrays), self._setup()),
                            "Trainer.fit arguments, data, model layout or Trainer options")
        global_batch = batch_size * (1 if dist is None else dist.size)

        if self.checkpoint:
            self._on_root(check_checkpoint_writable, self.checkpoint)
        start_epoch, start_batch, plan, sums, state = 0, 0, None, None, None
        if resume:
            if not self.checkpoint:
                raise ValueError("resume=True needs checkpoint= (the file to resume from)")
            state = self._on_root(self._load_if_present)
        if state is not None:
            start_epoch, start_batch, plan, sums = self._restore(state)
            if self.history.stopped_early:
                # the checkpoint holds the last epoch's weights, as the stopped run did
                # before it restored the best ones
                self._restore_best_weights()
                return self.history
        elif dist is not None:
            self._sync_from_root()
        if self.schedule is not None:
            self.schedule.start(opt)
        checked = False
        quiet = self.quiet or (dist is not None and not dist.root)  # rank 0 alone shows progress

        tqdm = _progress_bar_class(quiet)
        for epoch in range(start_epoch, epochs):
            if plan is None:
                plan = plan_batches(train.n, global_batch, train.bucket_lengths, shuffle=shuffle, bucket=bucket,
                                    pool=self.bucket_pool, rng=self.rng)
                sums, start_batch = {"loss": [0.0, 0.0]}, 0
            bar = tqdm(total=len(plan), initial=start_batch, desc=f"epoch {epoch + 1}/{epochs}", unit="batch",
                       disable=quiet, leave=True, dynamic_ncols=True)
            try:
                for b in range(start_batch, len(plan)):
                    rows = plan[b] if dist is None else dist.shard(plan[b])
                    model.zero_grad()
                    if len(rows):  # distributed, a global batch smaller than the ranks leaves some none
                        batch = self._on_model_device(train.batch(rows))
                        y, mask = batch.target, batch.mask
                        with contextlib.nullcontext() if dist is None else dist.rank_streams(model, (epoch, b)):
                            out = self.layout.forward(model, batch.arrays, training=True)
                        if not checked:
                            checked = True
                            if np.ndim(out) == np.ndim(y) + 1:
                                self._check_class_targets(train, out.shape[-1], "train")
                                if val is not None:
                                    self._check_class_targets(val, out.shape[-1], "val")
                        value, grad, count = self._loss(out, y, mask)
                        step = batch_sums(self.metrics, value, count, out, y, mask, self._ignore_index())
                        if dist is None:
                            self._check_finite_loss(value, epoch, b, len(plan))
                        model.backward(grad)
                    else:
                        step = empty_sums(self.metrics)
                    grads = model.grads()
                    if dist is not None:
                        step = dist.average_gradients(grads, step)
                        loss_sum, count = step["loss"]
                        value = loss_sum / count if count else 0.0
                        self._check_finite_loss(value, epoch, b, len(plan))
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
                    add_sums(sums, step)
                    bar.update(1)
                    if not quiet and (b % 10 == 0 or b == len(plan) - 1):
                        running = epoch_logs(sums, self.metrics)
                        bar.set_postfix({k: f"{v:.4g}" for k, v in running.items()}, refresh=False)
                    if self.checkpoint_every and (b + 1) % self.checkpoint_every == 0 and b + 1 < len(plan):
                        self._save(epoch, b + 1, plan, sums)
                if dist is not None and callable(getattr(model, "buffers", None)):
                    # statistics a forward updates (batch norm's running means) saw each rank's
                    # rows only: rank 0's are kept, as PyTorch's DistributedDataParallel does
                    dist.copy_from_root(model.buffers())
                logs = epoch_logs(sums, self.metrics)
                if val is not None:
                    logs.update({"val_" + k: v for k, v in self.evaluate(val, batch_size=batch_size).items()})
                logs["lr"] = opt.lr
                if not quiet:
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
            if dist is not None:  # each rank updates its own copy: they must not drift apart
                dist.check_same(fingerprint(params, sample=None), f"the parameters after epoch {epoch + 1}",
                                "the MPI library's Allreduce gave the ranks different sums")
            self._save(epoch + 1, 0, None, None)
            if stop:
                break
        self._restore_best_weights()
        return self.history

    # ------------------------------------------------------------------ evaluate / predict
    @govern_blas()
    @_guarded
    def evaluate(self, data, *, batch_size: int = 64) -> dict:
        """Mean loss (and metrics) over ``data`` in inference mode: ``{"loss": ..., ...}``.
        Distributed, each rank evaluates its share of the rows and the sums are added up."""
        data = data if isinstance(data, Data) else Data(data, "data", self.layout)
        batch_size = check_positive_int(batch_size, "batch_size", 1)
        sums = empty_sums(self.metrics)
        rows = _rows(data.n, self.dist)
        for idx in _inference_plan(data, rows, batch_size, self.bucket_pool):
            batch = self._on_model_device(data.batch(idx))
            y, mask = batch.target, batch.mask
            out = self.layout.forward(self.model, batch.arrays, training=False)
            value, _, count = self._loss(out, y, mask)
            add_sums(sums, batch_sums(self.metrics, value, count, out, y, mask, self._ignore_index()))
        if self.dist is not None:
            sums = self.dist.sum(sums)
        return epoch_logs(sums, self.metrics)

    @_guarded
    def predict(self, x, lengths=None, *, batch_size: int = 64) -> np.ndarray:
        """Model outputs for every row of ``x``, in order. Batches are cut to their longest
        sequence; outputs with a time axis ((N, T, ...), ndim >= 3) are padded back to T.
        For models with the single input ``x`` (the default ``DataLayout``); models with
        several inputs bring their own prediction (``Seq2Seq.predict``...). Distributed, each
        rank predicts its share of the rows and every rank gets all outputs, in order."""
        if self.dist is None:
            return predict(self.model, x, lengths, batch_size=batch_size)
        return self.dist.gather_rows(_predict_share(self.model, x, lengths, batch_size, self.dist))


def _model_backend(model):
    """The _device backend the model's parameters live on (None: the host)."""
    return _device.backend_named(getattr(model, "device", "cpu"))


def _batch_on(batch: Batch, layout: DataLayout, backend) -> Batch:
    """``batch`` with the inputs, target and mask copied to ``backend`` (None: as it is).
    Lengths stay on the host; a scipy.sparse input stays as it is (the model says where it
    can run)."""
    if backend is None:
        return batch

    def move(a):
        return a if a is None or not hasattr(a, "dtype") or hasattr(a, "tocsr") else backend.to_device(a)

    arrays = {k: move(a) if k in layout.inputs else a for k, a in batch.arrays.items()}
    return Batch(arrays, move(batch.target), move(batch.mask))


def _rows(n: int, dist) -> np.ndarray:
    """The rows of an n-row data set that this process evaluates: all, or its rank's share."""
    rows = np.arange(n)
    return rows if dist is None else dist.shard(rows)


def _inference_plan(data: Data, rows, batch_size: int, pool: int) -> list:
    """Batches of ``rows`` (indices into ``data``) in row order, grouped by length."""
    lengths = data.bucket_lengths
    plan = plan_batches(len(rows), batch_size, None if lengths is None else lengths[rows], shuffle=False,
                        bucket=True, pool=pool, rng=None)
    return [rows[idx] for idx in plan]


def predict(model, x, lengths=None, *, batch_size: int = 64) -> np.ndarray:
    """See ``Trainer.predict``."""
    return _predict_share(model, x, lengths, batch_size, None)


@govern_blas()
def _predict_share(model, x, lengths, batch_size, dist):
    """The outputs for this process's share of the rows of ``x`` (all of them without
    ``dist``), in order; None for no rows."""
    data = Data((x, None, lengths), "x", DEFAULT_LAYOUT, need_y=False)
    batch_size = check_positive_int(batch_size, "batch_size", 1)
    rows = _rows(data.n, dist)
    result = None
    T = data.x.shape[1] if len(data.x.shape) >= 2 else None
    for idx in _inference_plan(data, rows, batch_size, 32):
        batch = _batch_on(data.batch(idx), DEFAULT_LAYOUT, _model_backend(model))
        lb = batch.arrays.get("lengths")
        out = _device.to_host(DEFAULT_LAYOUT.forward(model, batch.arrays, training=False))
        if result is None:
            shape = list(out.shape)
            shape[0] = len(rows)
            if out.ndim >= 3 and lb is not None:
                shape[1] = T
            result = np.zeros(shape, dtype=out.dtype)
        at = idx - rows[0]
        if out.ndim >= 3 and lb is not None:
            result[at, :out.shape[1]] = out
        else:
            result[at] = out
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


def _progress_bar_class(quiet: bool):
    """tqdm's notebook bar where Jupyter can draw it (ipywidgets installed), its text bar
    elsewhere and when quiet: tqdm.auto in a Jupyter without ipywidgets warns on every fit."""
    if not quiet:
        try:
            import ipywidgets  # noqa: F401 (what tqdm.auto's notebook bar needs)
        except ImportError:
            pass
        else:
            from tqdm.auto import tqdm
            return tqdm
    from tqdm import tqdm
    return tqdm
