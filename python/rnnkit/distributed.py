"""Data-parallel training and corpus building across MPI ranks, through mpi4py.

Under ``mpiexec -n N python -m mpi4py train.py`` every rank runs the same script on the same
arguments. ``Trainer(..., distributed="mpi")``, ``Vocabulary(..., distributed="mpi")`` and
``BagOfWords().fit(..., distributed="mpi")`` then work together through a ``Group``: the
ranks of an mpi4py communicator and the few collective operations rnnkit needs. The MPI work
itself is mpi4py's (the Allreduce of the gradients, broadcasts, gathers); this module decides
what is sent, how the rows are split and how a failure ends the job. Documentation:
docs/distributed.md.

``import rnnkit`` never imports mpi4py; making a Group does.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import pickle
import sys
import traceback

import numpy as np

__all__ = ["Group", "group", "fingerprint"]

_EVERY_RANK = "_rnnkit_raised_on_every_rank"
_MERGE_TAG = 7741


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError(f"distributed='mpi' needs mpi4py and an MPI library: pip install 'rnnkit[mpi]' "
                          f"({exc})") from exc
    return MPI


def group(distributed) -> "Group | None":
    """The ``Group`` a ``distributed=`` argument names: None for None (one process), the ranks
    of ``MPI.COMM_WORLD`` for "mpi", those of an mpi4py intracommunicator, or a Group itself."""
    if distributed is None:
        return None
    if isinstance(distributed, Group):
        return distributed
    if isinstance(distributed, str):
        if distributed != "mpi":
            raise ValueError(f"distributed must be None, 'mpi', an mpi4py communicator or a "
                             f"rnnkit.distributed.Group, got {distributed!r}")
        return Group()
    if isinstance(distributed, _mpi().Intracomm):
        return Group(distributed)
    raise TypeError(f"distributed must be None, 'mpi', an mpi4py communicator or a rnnkit.distributed.Group, "
                    f"got {type(distributed).__name__}")


def _on_every_rank(exc: BaseException) -> BaseException:
    """Marks ``exc`` as raised at the same point on every rank, so ``Group.guard`` lets it
    propagate (no rank is left waiting) instead of aborting the job."""
    setattr(exc, _EVERY_RANK, True)
    return exc


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling (to be raised on the other ranks), else a RuntimeError
    with its type and message."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def fingerprint(arrays: dict, sample: int | None = 256) -> str:
    """A digest of named arrays (dense or scipy.sparse): names, shapes, dtypes and the values
    of ``sample`` evenly spaced rows (cheap even for a memory-mapped data set, and different
    when ranks load other files or shuffle otherwise), or of every value for None."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = arrays[name]
        n = a.shape[0]
        h.update(repr((name, tuple(a.shape), str(a.dtype))).encode())
        if sample is None:
            part = a
        else:
            part = a[np.unique(np.linspace(0, n - 1, min(n, sample)).astype(np.int64)) if n else np.zeros(0, np.int64)]
        for piece in ((part.data, part.indices, part.indptr) if hasattr(part, "indptr") else (part,)):
            h.update(np.ascontiguousarray(piece).tobytes())
    return h.hexdigest()


def _state_entropy(state: dict) -> int:
    """An integer digest of a bit generator's state."""
    text = json.dumps(state, sort_keys=True, default=lambda a: np.asarray(a).tolist())
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:16], "little")


class Group:
    """The ranks of an mpi4py communicator (default ``MPI.COMM_WORLD``) working as one.

    Every method but ``shard`` is collective: every rank calls it, in the same order, with
    arguments of the same layout. ``rank``, ``size``; ``root`` is rank 0, the one that writes
    files and prints.
    """

    def __init__(self, comm=None):
        MPI = _mpi()
        self._MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self._buffer = np.zeros(0)

    @property
    def root(self) -> bool:
        return self.rank == 0

    def __repr__(self) -> str:
        return f"Group(rank {self.rank} of {self.size})"

    # ------------------------------------------------------------------ splitting rows
    def shard(self, rows):
        """This rank's contiguous part of ``rows`` (an array, a list of documents...): the
        parts of ranks 0, 1, ... follow each other, and their sizes differ by at most one (the
        first ``len(rows) % size`` ranks take one more; a rank gets none when there are fewer
        rows than ranks)."""
        q, extra = divmod(len(rows), self.size)
        start = self.rank * q + min(self.rank, extra)
        return rows[start:start + q + (self.rank < extra)]

    # ------------------------------------------------------------------ the training step
    def average_gradients(self, grads: dict, sums: dict) -> dict:
        """The step's one Allreduce. On entry ``grads`` hold the gradient of this rank's mean
        loss over ``sums["loss"][1]`` counted elements (none for a rank without rows); on
        return, in place, the gradient of the mean over every rank's elements - the one a
        single process gets for the whole global batch, up to rounding. The batch's loss and
        metric ``sums`` travel at the end of the same buffer; returns their totals."""
        arrays = list(grads.values())
        dtype = np.result_type(*arrays)
        size = sum(a.size for a in arrays)
        n = size + 2 * len(sums)
        if self._buffer.size != n or self._buffer.dtype != dtype:
            self._buffer = np.empty(n, dtype)
        buf = self._buffer
        # the sum of (mean * count) over ranks, divided by the total count, is the global mean
        count = sums["loss"][1]
        at = 0
        for g in arrays:
            np.multiply(g, count, out=buf[at:at + g.size].reshape(g.shape))
            at += g.size
        buf[size:] = [v for pair in sums.values() for v in pair]
        self.comm.Allreduce(self._MPI.IN_PLACE, buf, op=self._MPI.SUM)
        totals = buf[size:].tolist()
        totals = {name: totals[2 * i:2 * i + 2] for i, name in enumerate(sums)}
        total = totals["loss"][1]
        at = 0
        for g in arrays:
            if total:
                np.divide(buf[at:at + g.size].reshape(g.shape), total, out=g)
            else:  # nothing counted anywhere: the single process's zero gradient
                g[...] = 0
            at += g.size
        return totals

    def total(self, n: int) -> int:
        """The sum of every rank's integer ``n``."""
        return int(self.comm.allreduce(int(n)))

    def sum(self, sums: dict) -> dict:
        """``{name: [sum, count]}`` added over the ranks (float64); every rank must hold the
        same names in the same order."""
        buf = np.array([v for pair in sums.values() for v in pair], dtype=np.float64)
        self.comm.Allreduce(self._MPI.IN_PLACE, buf, op=self._MPI.SUM)
        values = buf.tolist()
        return {name: values[2 * i:2 * i + 2] for i, name in enumerate(sums)}

    @contextlib.contextmanager
    def rank_streams(self, model, key: tuple):
        """Inside, each of the model's generators is this rank's stream for ``key`` (epoch,
        batch), seeded by the generator's own state, the key and the rank: dropout masks differ
        between ranks and steps, and a run resumed on as many ranks draws the same masks again.
        The model's own states are back, unchanged, after: they are what a checkpoint holds."""
        if not callable(getattr(model, "rng_state", None)):
            yield
            return
        own = model.rng_state()
        model.set_rng_state({path: np.random.PCG64(np.random.SeedSequence(_state_entropy(state),
                                                                          spawn_key=(*key, self.rank))).state
                             for path, state in own.items()})
        try:
            yield
        finally:
            model.set_rng_state(own)

    # ------------------------------------------------------------------ gathering
    def gather_rows(self, local) -> np.ndarray:
        """Every rank's rows (``local``: an array, or None for none), concatenated in rank
        order, on every rank."""
        meta = self.comm.allgather(None if local is None else (local.shape, local.dtype.str))
        given = [m for m in meta if m is not None]
        tail, dtype = tuple(given[0][0][1:]), np.dtype(given[0][1])
        if any(tuple(shape[1:]) != tail or np.dtype(dt) != dtype for shape, dt in given):
            raise _on_every_rank(RuntimeError(f"the ranks' outputs do not fit together: shapes and dtypes {meta}"))
        counts = [0 if m is None else m[0][0] for m in meta]
        out = np.empty((sum(counts),) + tail, dtype)
        send = np.empty((0,) + tail, dtype) if local is None else np.ascontiguousarray(local)
        width = int(np.prod(tail, dtype=np.int64))
        self.comm.Allgatherv(send, [out, [c * width for c in counts]])
        return out

    def merge_ordered(self, value, merge, finish=None):
        """``finish(merge(...merge(merge(v0, v1), v2)..., v_last))`` of every rank's ``value``
        in rank order (a tree of log2(size) rounds; ``merge`` must be associative), computed on
        rank 0 and returned on every rank. ``merge(a, b)`` may update and return ``a``."""
        step = 1
        while step < self.size:
            if self.rank % (2 * step):
                self.comm.send(value, dest=self.rank - step, tag=_MERGE_TAG)
                value = None
                break
            if self.rank + step < self.size:
                value = merge(value, self.comm.recv(source=self.rank + step, tag=_MERGE_TAG))
            step *= 2
        return self.root_call(finish or (lambda v: v), value)

    # ------------------------------------------------------------------ agreement and failure
    def bcast(self, value):
        """Rank 0's ``value`` on every rank."""
        return self.comm.bcast(value if self.root else None, root=0)

    def copy_from_root(self, arrays: dict) -> None:
        """Rank 0's values of ``arrays`` (name -> array), copied in place on every rank."""
        for a in arrays.values():
            if a.flags.c_contiguous:
                self.comm.Bcast(a, root=0)
            else:
                a[...] = self.bcast(a)

    def root_call(self, fn, *args):
        """``fn(*args)`` run on rank 0 alone (writing a file, reading a checkpoint); its result
        on every rank, or the exception it raised raised on every rank."""
        outcome, error = None, None
        if self.root:
            try:
                outcome = (True, fn(*args))
            except Exception as exc:
                error = exc
                outcome = (False, _portable(exc))
        ok, value = self.comm.bcast(outcome, root=0)
        if ok:
            return value
        raise _on_every_rank(error if self.root else value)

    def check_same(self, value, what: str,
                   why: str = "every rank must make the same call with the same data (they share the work)") -> None:
        """Raises ValueError on every rank, naming ``what`` and ``why``, unless every rank passed
        an equal ``value``."""
        values = self.comm.allgather(value)
        differ = [r for r, v in enumerate(values) if v != values[0]]
        if differ:
            raise _on_every_rank(ValueError(f"{what} differ between ranks: rank(s) {differ} do not match rank 0; {why}"))

    @contextlib.contextmanager
    def guard(self, what: str, every_rank: tuple = ()):
        """Around collective work: an exception on one rank would leave the others waiting in a
        collective, so it is printed to stderr with the rank and the whole job is ended with
        ``MPI_Abort``. Exceptions that every rank raises at the same point - those of
        ``root_call``/``check_same`` and the types in ``every_rank`` - propagate normally, as
        do all exceptions of a single-rank group."""
        try:
            yield
        except BaseException as exc:
            if self.size == 1 or isinstance(exc, every_rank) or getattr(exc, _EVERY_RANK, False):
                raise
            sys.stdout.flush()
            sys.stderr.write(f"rnnkit.distributed: rank {self.rank} of {self.size} failed in {what}; "
                             f"aborting every rank (MPI_Abort)\n{traceback.format_exc()}")
            sys.stderr.flush()
            self.comm.Abort(1)
