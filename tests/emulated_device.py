"""The CUDA backend's algorithm run on the host (rnnkit._cuda_emulation) as a device backend of
rnnkit.functional, for tests on machines without a GPU.

Its "device arrays" are NumPy arrays of the marker subclass ``EmulatedArray``: rnnkit picks
the backend by where arrays live, and these live on the emulated device. Everything of the
CUDA backend runs (the Python dispatch, the device bindings' checks, the time loops, the
element-wise kernels, the row-major-to-cuBLAS GEMM mapping) except the CUDA runtime and cuBLAS.
"""
from __future__ import annotations

import functools
import types

import numpy as np

from rnnkit import _device

try:
    from rnnkit import _cuda_emulation
except ImportError:  # built with RNNKIT_CUDA_EMULATION=OFF
    _cuda_emulation = None


class EmulatedArray(np.ndarray):
    """A NumPy array that counts as memory of the emulated device. As CuPy does, it refuses to
    be combined with a host (NumPy) array in one operation (TypeError), so host arrays leaking
    into device code paths fail here as they would on a GPU."""

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        _refuse_host(ufunc.__name__, inputs + (out or ()))
        inputs = tuple(_plain(a) for a in inputs)
        if out is not None:
            kwargs["out"] = tuple(_plain(o) for o in out)
        result = getattr(ufunc, method)(*inputs, **kwargs)
        if method == "at":
            return None
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _onto(result)

    def __array_function__(self, func, types, args, kwargs):
        if func.__name__ in _COMBINING:  # not everywhere: NumPy's own helpers mix internally
            _refuse_host(func.__name__, _leaves(args) + _leaves(tuple(kwargs.values())))
        return super().__array_function__(func, types, args, kwargs)


# the functions that combine arrays, which CuPy refuses to give a NumPy array to
_COMBINING = {"concatenate", "stack", "where", "dot", "matmul", "take", "take_along_axis",
              "put_along_axis", "clip"}


def _plain(a):
    return a.view(np.ndarray) if isinstance(a, EmulatedArray) else a


def _leaves(values) -> tuple:
    """The arrays among ``values`` and inside their lists and tuples (np.concatenate's)."""
    out = []
    for v in values:
        if isinstance(v, (list, tuple)):
            out.extend(_leaves(v))
        else:
            out.append(v)
    return tuple(out)


def _refuse_host(what, values):
    if any(type(v) is np.ndarray and v.ndim > 0 for v in values):
        raise TypeError(f"{what}: a host (NumPy) array meets arrays on the emulated device "
                        f"(CuPy refuses such a mix too)")


def _onto(result):
    """Array results on the emulated device; scalars stay host numbers."""
    if type(result) is np.ndarray:
        return result.view(EmulatedArray)
    if isinstance(result, tuple):
        return tuple(_onto(r) for r in result)
    return result


def to_device(a):
    """A copy of ``a`` on the emulated device."""
    return np.array(a, copy=True, order="C").view(EmulatedArray)


class _Namespace:
    """The emulated device's array module, in CuPy's role for rnnkit.nn and rnnkit.train:
    numpy, except that the arrays its functions return live on the emulated device and
    asarray copies a host array there (as cupy.asarray does). ufuncs, types, constants and
    submodules are numpy's."""

    def asarray(self, a, dtype=None):
        if isinstance(a, EmulatedArray):
            return a if dtype is None else a.astype(dtype, copy=False)
        return np.array(a, dtype=dtype, copy=True).view(EmulatedArray)

    def __getattr__(self, name):
        attr = getattr(np, name)
        if isinstance(attr, (np.ufunc, type, types.ModuleType)) or not callable(attr):
            return attr

        @functools.wraps(attr)
        def on_device(*args, **kwargs):
            return _onto(attr(*args, **kwargs))

        setattr(self, name, on_device)  # made once per name
        return on_device


xp = _Namespace()


def _empty(shape, dtype):
    return np.empty(shape, dtype).view(EmulatedArray)


def _where(cond, a, b):
    return np.where(cond, a, b).view(EmulatedArray)


BACKEND = None if _cuda_emulation is None else _device.DeviceBackend(
    name="cuda_emulated", module=_cuda_emulation, interface="__array_interface__",
    claims=lambda obj: isinstance(obj, EmulatedArray),
    asarray=lambda obj: np.asarray(obj).view(EmulatedArray), empty=_empty,
    stream=lambda: 0, device_of=lambda arr: 0, where=_where,
    to_host=lambda a: np.array(a, copy=True).view(np.ndarray),
    what="on the emulated device", xp=xp, to_device=to_device)

if BACKEND is not None:
    _device.register(BACKEND)
