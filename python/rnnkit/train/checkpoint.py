"""Training checkpoints: ``save_checkpoint`` / ``load_checkpoint``.

Checkpoints are written to a temporary file in the same directory, flushed to disk and renamed
over the old one (``os.replace``), so a crash mid-write leaves the last good checkpoint intact;
temporary files left by a killed writer are removed at the next successful write.
``check_checkpoint_writable`` lets ``Trainer.fit`` report an unwritable location before the first
epoch. What a checkpoint holds is the Trainer's business (see ``rnnkit.train.trainer``).
"""
from __future__ import annotations

import contextlib
import errno
import os
import pickle
import re
import tempfile

__all__ = ["save_checkpoint", "load_checkpoint", "check_checkpoint_writable", "CHECKPOINT_FORMAT"]

# the "format" entry of every Trainer checkpoint; load_checkpoint rejects other pickles
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
    with open(os.fspath(path), "rb") as f:
        state = pickle.load(f)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{os.fspath(path)!r} is not an rnnkit training checkpoint")
    return state

