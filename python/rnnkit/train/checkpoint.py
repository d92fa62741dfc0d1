"""Training checkpoints: ``save_checkpoint`` / ``load_checkpoint``.

A checkpoint is a file of rnnkit's own format (``rnnkit.persistence``: an ``.npz`` whose
JSON document holds the ``"checkpoint"`` value and whose other entries are its arrays), so
reading one never unpickles and never runs code: a file that is not such a checkpoint, pickles
included, raises ``FormatError``. The state saved is a dict of what that format describes
(numbers, strings, lists, tuples, dicts, arrays...); anything else is a TypeError at saving.

Checkpoints are written to a temporary file in the same directory, flushed to disk and renamed
over the old one (``os.replace``, then the directory is flushed too), so a crash mid-write leaves
the last good checkpoint intact;
temporary files left by a killed writer are removed at the next successful write.
``check_checkpoint_writable`` lets ``Trainer.fit`` report an unwritable location before the first
epoch. What a checkpoint holds is the Trainer's business (see ``rnnkit.train.trainer``).
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile

from ..persistence import FormatError, _file_bytes, _read_file, _Writer

__all__ = ["save_checkpoint", "load_checkpoint", "check_checkpoint_writable", "CHECKPOINT_FORMAT"]

# the "format" entry of every Trainer checkpoint; load_checkpoint rejects other states
CHECKPOINT_FORMAT = "rnnkit.train.checkpoint"


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


def _sync_directory(directory: str) -> None:
    """Flushes the rename itself to disk: without it a power cut soon after can bring back the
    directory entry of the old file (a killed process cannot: the kernel has the rename).
    Best effort: not every file system lets a directory be opened or synced."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(path, state: dict) -> None:
    """Writes ``state`` atomically: temp file in the same directory, fsync, os.replace. Then
    removes temp files left beside it by writers killed mid-write. TypeError, before anything
    is written, for a value the rnnkit format does not describe."""
    path = os.fspath(path)
    writer = _Writer()
    data = _file_bytes({"checkpoint": writer.value(state, "the checkpoint")}, writer)
    fd, tmp = _temp_file(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _sync_directory(os.path.dirname(os.path.abspath(path)))
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _remove_stale_temp_files(path)


def check_checkpoint_writable(path: str) -> None:
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
    """The state written by ``save_checkpoint``. FormatError (a ValueError) for any other file
    (a pickle, an ``rnnkit.save`` file, a truncated write); nothing in it is unpickled or run."""
    path = os.fspath(path)
    not_a_checkpoint = f"{path!r} is not an rnnkit training checkpoint"
    try:
        document, reader = _read_file(path)
    except FormatError as exc:
        raise FormatError(f"{not_a_checkpoint}: {exc}") from None
    if "checkpoint" not in document:
        raise FormatError(f"{not_a_checkpoint}: it is an rnnkit file without a checkpoint (rnnkit.load reads it)")
    try:
        state = reader.decode(document["checkpoint"])
    except FormatError as exc:
        raise FormatError(f"{not_a_checkpoint}: {exc}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise FormatError(not_a_checkpoint)
    return state
