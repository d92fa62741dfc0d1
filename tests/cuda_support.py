"""Whether the CUDA backend can run here: rnnkit._cuda built, CuPy installed and at least one
GPU visible. Tests that need it skip with the reason otherwise (tests/gpu/device_check.sh runs
them on a machine with a GPU)."""
from __future__ import annotations

import functools

import pytest


@functools.lru_cache(maxsize=None)
def why_not() -> str:
    """'' when the CUDA backend can run, else the reason it cannot."""
    from rnnkit import _device

    if _device.cuda_module() is None:
        return f"rnnkit._cuda is not built ({_device.cuda_import_error()})"
    try:
        import cupy
    except ImportError as exc:
        return f"CuPy is not installed ({exc})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError: no driver, no device
        return f"no GPU visible ({exc})"
    return "" if count > 0 else "no GPU visible (0 devices)"


def available() -> bool:
    return not why_not()


def cupy():
    import cupy as cp

    return cp


requires_gpu = pytest.mark.skipif(not available(), reason=f"needs a GPU: {why_not() or 'ok'}")
