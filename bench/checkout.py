"""Lets the scripts in bench/ run from a checkout either way: against a developer build (cmake
puts the compiled core into python/rnnkit, which is then put first on sys.path) or, without
one, against the installed rnnkit (`pip install .`). Putting python/ on the path without a
compiled core there would shadow the installed package with sources that cannot import."""
import importlib.machinery
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def use_checkout() -> None:
    """Puts the checkout's python/ first when it holds a built core."""
    package = os.path.join(ROOT, "python")
    # the compiled module itself (_core.cpython-311-x86_64-linux-gnu.so, ...), not its stubs
    if any(os.path.exists(os.path.join(package, "rnnkit", "_core" + suffix))
           for suffix in importlib.machinery.EXTENSION_SUFFIXES):
        sys.path.insert(0, package)
