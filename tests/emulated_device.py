"""The CUDA backend's algorithm run on the host (rnnkit._cuda_emulation) as a device backend of
rnnkit.functional, for tests on machines without a GPU.

Its "device arrays" are NumPy arrays of the marker subclass ``EmulatedArray``: rnnkit picks
the backend by where arrays live, and these live on the emulated device. Everything of the
CUDA backend runs (the Python dispatch, the device bindings' checks, the time loops, the
element-wise kernels, the row-major-to-cuBLAS GEMM mapping) except the CUDA runtime and cuBLAS.
"""
from __future__ import annotations

import numpy as np

from rnnkit import _device

try:
    from rnnkit import _cuda_emulation
except ImportError:  # built with RNNKIT_CUDA_EMULATION=OFF
    _cuda_emulation = None


class EmulatedArray(np.ndarray):
    """A NumPy array that counts as memory of the emulated device."""


def to_device(a):
    """A copy of ``a`` on the emulated device."""
    return np.array(a, copy=True, order="C").view(EmulatedArray)


def _empty(shape, dtype):
    return np.empty(shape, dtype).view(EmulatedArray)


def _where(cond, a, b):
    return np.where(cond, a, b).view(EmulatedArray)


BACKEND = None if _cuda_emulation is None else _device.DeviceBackend(
    name="cuda_emulated", module=_cuda_emulation, interface="__array_interface__",
    claims=lambda obj: isinstance(obj, EmulatedArray),
    asarray=lambda obj: np.asarray(obj).view(EmulatedArray), empty=_empty,
    stream=lambda: 0, device_of=lambda arr: 0, where=_where, to_host=np.asarray,
    what="on the emulated device")

if BACKEND is not None:
    _device.register(BACKEND)
