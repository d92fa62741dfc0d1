"""Faults while training: a process SIGKILLed at random moments while it writes checkpoints
always leaves a loadable previous checkpoint, and resuming from it is bit-identical to a run
that was never interrupted; a write that hits the file-size limit (what a full disk looks like
to the writer: the write fails part way) raises a clear OSError and keeps the old checkpoint.
(NaN mid-epoch keeping the last good checkpoint: tests/test_train_trainer.py.)

RNNKIT_FAULT_KILLS sets how many kills (default 3; the long local run uses more)."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import rnnkit
from rnnkit.train import fit, load_checkpoint, save_checkpoint
from rnnkit.train.checkpoint import CHECKPOINT_FORMAT

from child_process import run_python
from test_train_trainer import make_data, make_model, params_equal

KILLS = int(os.environ.get("RNNKIT_FAULT_KILLS", 3))
TESTS = os.path.dirname(os.path.abspath(__file__))
FIT_OPTIONS = dict(epochs=3, batch_size=16, lr=0.03, quiet=True, seed=5, optimizer="adamw",
                   clip_norm=1.0, checkpoint_every=1)

# The child trains with a checkpoint after every batch; its fsync sleeps a little, so most of
# its time is spent inside save_checkpoint (temp file open or written, not yet renamed) and a
# kill at a random moment usually lands in the middle of a write.
TRAIN_CHILD = r"""
import os, sys, time
sys.path.insert(0, sys.argv[1])
from rnnkit.train import fit
from rnnkit.train import checkpoint as checkpoint_mod
from test_faults import FIT_OPTIONS
from test_train_trainer import make_data, make_model

real_fsync = checkpoint_mod.os.fsync
def slow_fsync(fd):
    time.sleep(0.01)
    real_fsync(fd)
checkpoint_mod.os.fsync = slow_fsync
X, y, L = make_data()
print("training", flush=True)
fit(make_model(), (X, y, L), checkpoint=sys.argv[2], **FIT_OPTIONS)
print("finished", flush=True)
"""


def _env():
    env = dict(os.environ)
    package_root = os.path.dirname(os.path.dirname(rnnkit.__file__))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, TESTS, env.get("PYTHONPATH")]))
    return env


def test_sigkill_during_checkpoint_writes_keeps_a_loadable_checkpoint_and_resume_is_exact(tmp_path):
    X, y, L = make_data()
    reference = make_model()
    fit(reference, (X, y, L), checkpoint=tmp_path / "reference" / "ref.ckpt", **FIT_OPTIONS)
    rng = random.Random(int(os.environ.get("RNNKIT_FAULT_SEED", time.time())))
    mid_write = 0  # kills that left a half-written temporary file behind
    for k in range(KILLS):
        path = tmp_path / f"run{k}.ckpt"
        child = subprocess.Popen([sys.executable, "-c", TRAIN_CHILD, TESTS, str(path)], env=_env(),
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            assert child.stdout.readline().strip() == "training"
            deadline = time.time() + 60
            while not path.exists():  # the first checkpoint is on disk: kill after it
                assert time.time() < deadline and child.poll() is None, "the child never checkpointed"
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.6))
            child.send_signal(signal.SIGKILL)
        finally:
            child.kill()
            child.wait(30)
        mid_write += any(name.endswith(".tmp") for name in os.listdir(tmp_path))
        state = load_checkpoint(path)  # the previous checkpoint, whole
        assert state["format"] == CHECKPOINT_FORMAT
        resumed = make_model(seed=99)  # everything must come from the checkpoint
        fit(resumed, (X, y, L), checkpoint=path, resume=True, **FIT_OPTIONS)
        assert params_equal(resumed, reference), f"kill {k} at epoch {state['epoch']} batch {state['batch']}"
        # the killed writer's temporary file was removed by the resumed run's writes
        assert sorted(os.listdir(tmp_path)) == sorted([f"run{i}.ckpt" for i in range(k + 1)] + ["reference"])
    print(f"{KILLS} kills, {mid_write} in the middle of a checkpoint write")
    if KILLS >= 10:  # the child spends most of its time writing: some kills must land there
        assert mid_write >= 1


FULL_DISK_CHILD = r"""
import errno, os, resource, signal, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from rnnkit.train import load_checkpoint, save_checkpoint
from rnnkit.train.checkpoint import CHECKPOINT_FORMAT

path = sys.argv[2]
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
limit = int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
try:
    save_checkpoint(path, {"format": CHECKPOINT_FORMAT, "v": 2, "W": np.ones(limit // 4)})
except OSError as exc:
    print("error", exc.errno == errno.EFBIG, exc, flush=True)
    sys.exit(0)
print("no error", flush=True)
sys.exit(1)
"""


def test_a_write_that_cannot_complete_keeps_the_old_checkpoint(tmp_path):
    path = tmp_path / "c.ckpt"
    save_checkpoint(path, {"format": CHECKPOINT_FORMAT, "v": 1, "W": np.zeros(10)})
    good = path.read_bytes()
    code, out = run_python(["-c", FULL_DISK_CHILD, TESTS, str(path), str(64 * 1024)])
    assert code == 0 and "error True" in out, out
    assert path.read_bytes() == good and load_checkpoint(path)["v"] == 1
    assert os.listdir(tmp_path) == ["c.ckpt"]  # the partial temporary file was removed


def test_unwritable_checkpoint_path_is_a_clear_error_and_keeps_nothing_half_written(tmp_path):
    """Below a regular file nothing can be created (also as root): OSError naming the path."""
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "file" / "c.ckpt", {"format": CHECKPOINT_FORMAT})
    X, y, L = make_data(40)
    with pytest.raises(OSError, match="checkpoint=.*cannot be written"):
        fit(make_model(), (X, y, L), epochs=1, checkpoint=tmp_path / "file" / "c.ckpt", quiet=True)
    assert os.listdir(tmp_path) == ["file"]
