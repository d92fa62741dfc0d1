"""Runs Python in a fresh interpreter that imports the rnnkit under test (for what must not
share a process with the test run: crashes, hangs, thread limits, google_benchmark's main)."""
import os
import subprocess
import sys

import pytest

import rnnkit


def run_python(args, timeout=120, shell_prefix=""):
    """Runs ``python *args`` (e.g. ``["-c", code]`` or ``["-m", "rnnkit.cli", ...]``) after
    ``shell_prefix`` (e.g. a ulimit) in sh; returns (exit status, stdout + stderr). A hang
    fails the test."""
    env = dict(os.environ)
    package_root = os.path.dirname(os.path.dirname(rnnkit.__file__))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    command = ["sh", "-c", shell_prefix + 'exec "$0" "$@"', sys.executable, *args]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the child hung (no exit within {timeout} s)")
    return done.returncode, done.stdout + done.stderr
