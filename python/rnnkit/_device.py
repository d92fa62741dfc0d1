"""Device backends of rnnkit.functional: the backend of a call is chosen by where its arrays
live (docs/design.md "Backends and cell descriptions").

Host arrays (NumPy, lists) run on the CPU core (``rnnkit._core``). Arrays in CUDA device
memory (CuPy arrays, or any object exposing ``__cuda_array_interface__``) run on the CUDA
backend (``rnnkit._cuda``, built with CMake ``RNNKIT_CUDA=ON``), which is imported lazily, on
the first device array: the CPU package never imports CuPy or the CUDA runtime. Mixing host
and device arrays in one call raises TypeError.

A backend here is a ``DeviceBackend``: its compiled module (forward/backward taking array
interfaces, see cpp/bindings/device_recurrent.h), how it recognises its arrays, makes new
ones and names its stream. The tests register a second one, the CUDA backend's algorithm run
on the host (``rnnkit._cuda_emulation``) over a marked NumPy array type.
"""
from __future__ import annotations

import contextlib
import os

import numpy as np

from . import _checks


class DeviceBackend:
    """One device backend as rnnkit.functional uses it.

    module: the compiled module (forward, backward, ForwardHandle); interface: the array
    interface attribute its arrays expose; claims(obj): whether obj is one of its arrays;
    asarray(obj): obj as its array type (no copy for its own arrays); empty(shape, dtype);
    stream(): the caller's current stream as an int; device_of(arr): the device ordinal;
    where(cond, a, b); to_host(arr): its values as a NumPy array.

    For rnnkit.nn and rnnkit.train (``model.to(name)``): xp, the array namespace the layers,
    losses and optimisers compute with on this device (cupy; numpy-like, see array_module);
    to_device(host_array): a copy on the device."""

    def __init__(self, name, module, interface, claims, asarray, empty, stream, device_of,
                 where, to_host, what, on_device=None, xp=None, to_device=None):
        self.name, self.module, self.interface = name, module, interface
        self.claims, self.asarray, self.empty = claims, asarray, empty
        self.stream, self.device_of, self.where, self.to_host = stream, device_of, where, to_host
        self.what = what
        self.xp = xp
        self.to_device = to_device or asarray
        # on_device(ordinal): a context in which new arrays and the current stream are that
        # device's
        self.on_device = on_device or (lambda ordinal: contextlib.nullcontext())

    def float_array(self, value, name, ndim, dtype=None):
        """``value`` as a C-contiguous float32/float64 array of this backend (as
        _checks.float_array does on the host)."""
        if value is None:
            raise TypeError(f"{name} must be an array, got None")
        if not self.claims(value):  # never a silent host-to-device copy
            raise TypeError(f"{name} must be {self.what} like the call's other arrays, got "
                            f"{type(value).__name__} (move it with cupy.asarray(...))")
        arr = self.asarray(value)
        if arr.dtype not in _checks.FLOAT_DTYPES:
            raise TypeError(f"{name} must be a float32 or float64 array, got dtype {arr.dtype}")
        if dtype is not None and arr.dtype != dtype:
            raise TypeError(f"{name} has dtype {arr.dtype} but x has {np.dtype(dtype)}; all "
                            "floating arguments of one call must share one dtype")
        if ndim is not None and arr.ndim != ndim:
            raise ValueError(f"{name} must be {ndim}-D, got {arr.ndim}-D array of shape "
                             f"{_checks.shape_str(arr.shape)}")
        if not arr.flags.c_contiguous:
            arr = self.asarray(arr.copy())  # device copy, C order
        return arr

    def optional_float(self, value, name, shape, meaning, dtype):
        if value is None:
            return None
        arr = self.float_array(value, name, len(shape), dtype)
        _checks.expect_shape(arr, name, shape, meaning)
        return arr


_registered: list = []  # backends registered by tests (claimed before CUDA is considered)
_cuda_backend = None
_cuda_error = None


def register(backend: DeviceBackend) -> None:
    """Adds a device backend (tests: the emulated CUDA backend)."""
    if backend not in _registered:
        _registered.append(backend)


def unregister(backend: DeviceBackend) -> None:
    if backend in _registered:
        _registered.remove(backend)


def _preload_cublas() -> None:
    """Loads cuBLAS from the nvidia-cublas wheel when the module's rpath does not reach it
    (e.g. a build directory outside site-packages)."""
    import ctypes
    import importlib.util

    spec = importlib.util.find_spec("nvidia")
    for root in (spec.submodule_search_locations or []) if spec else []:
        lib = os.path.join(root, "cu13", "lib")
        for name in ("libcublasLt.so.13", "libcublas.so.13"):
            path = os.path.join(lib, name)
            if os.path.exists(path):
                ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)


def cuda_module():
    """rnnkit._cuda, or None when this build has no CUDA backend or it cannot load (the
    reason is then cuda_import_error())."""
    global _cuda_error
    try:
        from . import _cuda
        return _cuda
    except ImportError as exc:
        first = exc
    try:  # cuBLAS not found by the loader: try the wheel's copy
        _preload_cublas()
        from . import _cuda
        return _cuda
    except (ImportError, OSError):
        _cuda_error = str(first)
        return None


def cuda_import_error() -> str:
    return _cuda_error or ""


def cuda_backend(wanted: str = "a CUDA device array was passed") -> DeviceBackend:
    """The CUDA backend (CuPy arrays); ImportError saying what is missing otherwise (``wanted``:
    what asked for it, for the message)."""
    global _cuda_backend
    if _cuda_backend is not None:
        return _cuda_backend
    module = cuda_module()
    if module is None:
        raise ImportError(
            f"{wanted}, but this rnnkit has no CUDA backend "
            f"({cuda_import_error()}); build it with "
            "pip install . --config-settings=cmake.define.RNNKIT_CUDA=ON (docs/core.md, CUDA)")
    try:
        import cupy
    except ImportError as exc:
        raise ImportError(f"the CUDA backend returns CuPy arrays: pip install cupy-cuda13x "
                          f"(the rnnkit[cuda] extra) ({exc})") from exc
    _cuda_backend = DeviceBackend(
        name="cuda", module=module, interface="__cuda_array_interface__",
        claims=lambda obj: isinstance(obj, cupy.ndarray) or hasattr(type(obj), "__cuda_array_interface__"),
        asarray=cupy.asarray, empty=cupy.empty,
        stream=lambda: cupy.cuda.get_current_stream().ptr,
        device_of=lambda arr: arr.device.id, where=cupy.where, to_host=cupy.asnumpy,
        what="on the CUDA device (CuPy)", on_device=cupy.cuda.Device, xp=cupy)
    return _cuda_backend


def _on_cuda_device(value) -> bool:
    return hasattr(type(value), "__cuda_array_interface__")


def backend_for(arrays: dict):
    """The device backend the floating arrays ``arrays`` (name -> array or None) live on, or
    None for host arrays. TypeError when some are on a device and others are not, or on
    different devices' backends."""
    for value in arrays.values():  # the common case, plain NumPy arrays, costs one pass
        if value is not None and type(value) is not np.ndarray:
            break
    else:
        return None
    found = {name: backend_of(value) for name, value in arrays.items() if value is not None}
    owners = set(found.values())
    if len(owners) <= 1:
        return next(iter(owners), None)
    by_owner = {}
    for name, owner in found.items():
        by_owner.setdefault(owner, []).append(name)
    parts = [f"{', '.join(names)} {'are' if len(names) > 1 else 'is'} {describe(owner)}"
             for owner, names in by_owner.items()]
    raise TypeError("arrays of one call must all live in one place: " + "; ".join(parts) +
                    " (move them with cupy.asarray(...) or cupy.asnumpy(...))")


def backend_of(value):
    """The device backend whose array ``value`` is, or None for anything else (NumPy arrays,
    lists, scalars: host values)."""
    if type(value) is np.ndarray or value is None:  # the common case costs one check
        return None
    owner = next((b for b in _registered if b.claims(value)), None)
    if owner is None and _on_cuda_device(value):
        owner = cuda_backend()
    return owner


def describe(backend) -> str:
    """Where a backend's arrays live, for messages ("on the host (NumPy)" for None)."""
    return backend.what if backend is not None else "on the host (NumPy)"


def backend_named(device):
    """The backend a device name means: None for "cpu", the CUDA backend for "cuda", a
    registered backend by its name; ValueError naming ``device`` otherwise."""
    if device == "cpu":
        return None
    if device == "cuda":
        return cuda_backend("device 'cuda' was asked for")
    for b in _registered:
        if device == b.name:
            return b
    names = ["cpu", "cuda"] + [b.name for b in _registered]
    raise ValueError(f"device must be one of {names}, got {device!r}")


def array_module(value):
    """The array namespace to compute on ``value`` with: numpy for host arrays, the device
    backend's ``xp`` (cupy for CuPy arrays) for device arrays. rnnkit.nn and rnnkit.train
    create and combine arrays through it, so one code path serves both (as
    cupy.get_array_module)."""
    owner = backend_of(value)
    return np if owner is None else owner.xp


def placed(value, name: str, backend, owner: str, hint: str = ""):
    """``value`` as an array where ``backend`` computes (None: the host; host values such as
    lists become NumPy arrays); a TypeError naming ``name`` and how to move it when it lives
    elsewhere: rnnkit never copies between host and device behind the caller's back. ``owner``
    says whose arrays decide the place ("this layer's parameters", "the outputs")."""
    where = backend_of(value)
    if where is not backend:
        move = f"cupy.asarray({name})" if backend is not None else f"cupy.asnumpy({name})"
        raise TypeError(f"{name} is {describe(where)} but {owner} are {describe(backend)}; "
                        f"move {name} there ({move}){hint}")
    return value if where is not None or isinstance(value, np.ndarray) else np.asarray(value)


def put_like(host, like):
    """``host`` (a NumPy array made on the host: a mask from lengths, random numbers) where
    ``like`` lives: itself for a host ``like``, a device copy otherwise."""
    owner = backend_of(like)
    return host if owner is None else owner.to_device(host)


def to_host(value):
    """``value`` as a NumPy array (a copy from a device; host values as np.asarray)."""
    owner = backend_of(value)
    return np.asarray(value) if owner is None else np.asarray(owner.to_host(value))


def is_handle(obj) -> bool:
    if isinstance(obj, SegmentCheckpoint):
        return True
    mods = [b.module for b in _registered] + ([_cuda_backend.module] if _cuda_backend else [])
    return any(isinstance(obj, m.ForwardHandle) for m in mods)


def handle_backend(handle):
    """The device backend whose forward made ``handle``; None for the CPU core's handles."""
    if isinstance(handle, SegmentCheckpoint):
        return handle.dev
    for b in _registered + ([_cuda_backend] if _cuda_backend else []):
        if isinstance(handle, b.module.ForwardHandle):
            return b
    return None


def _owner_of_handle(handle) -> DeviceBackend:
    owner = handle_backend(handle)
    if owner is None:
        raise TypeError(f"not a device forward handle: {type(handle).__name__}")
    return owner


def forward(dev: DeviceBackend, cell, x, h0, c0, Wx, Wh, b, bh, lengths, reverse,
            linear_before_reset, block, inference, recurrent_mask, Wr, peepholes, has_cell_state):
    """The device core's forward on checked arrays of ``dev``: returns (y, hT, cT or None,
    handle or None)."""
    T, B, _ = x.shape
    S = Wh.shape[0]
    H = Wr.shape[0] if Wr is not None else S
    device = dev.device_of(x)
    with dev.on_device(device):  # the call runs on the device of x
        if lengths is not None and not inference and B and lengths.min() < T:
            # as on the host: padded rows of x would meet zeros of dA in dWx (0 * NaN = NaN)
            valid = dev.asarray((np.arange(T)[:, None] < lengths[None, :])[:, :, None])
            x = dev.where(valid, x, x.dtype.type(0))
        # the kernels read lengths on the device: copied here, in the stream's order, so the
        # call itself makes no pageable copy the host would wait for
        lengths_device = None if lengths is None else dev.asarray(lengths)
        y = dev.empty((T, B, S), x.dtype)
        hT = dev.empty((B, S), x.dtype)
        cT = dev.empty((B, H), x.dtype) if has_cell_state else None
        handle = dev.module.forward(
            cell, x, h0, c0, Wx, Wh, b, bh, lengths, bool(reverse), recurrent_mask,
            bool(linear_before_reset), block, not inference, Wr, peepholes, y, hT, cT,
            device, dev.stream(), lengths_device)
    return y, hT, cT, handle


class SegmentCheckpoint:
    """One segment of a segmented forward (functional's ``segment=``) on a device backend: the
    segment's inputs and the states entering it, no reserve. The device modules have no
    reserve-free handle (the CPU core's ``keep_reserve=False``), so the recomputation is driven
    from here: backward reruns the segment's training forward, then backpropagates it.

    ``kwargs``: forward's arguments after ``dev`` and ``cell``, ``inference`` excepted. Has
    the attributes of a handle that functional.check_cache and RecurrentCache read."""

    def __init__(self, dev, cell, kwargs):
        self.dev, self.cell, self.kwargs = dev, cell, kwargs
        x, Wh, Wr = kwargs["x"], kwargs["Wh"], kwargs["Wr"]
        T, B, I = x.shape
        self.state_size = Wh.shape[0]
        self.dims = (T, B, I, Wr.shape[0] if Wr is not None else self.state_size)
        self.dtype = x.dtype
        self.backend = dev.name
        self.device = dev.device_of(x)

    @property
    def nbytes(self) -> int:
        """The states entering the segment (its inputs are the caller's)."""
        return int(sum(self.kwargs[k].nbytes for k in ("h0", "c0") if self.kwargs[k] is not None))

    def backward(self, dy, dhT, dcT):
        *_, handle = forward(self.dev, self.cell, inference=False, **self.kwargs)
        return backward(handle, dy, dhT, dcT)


def backward(handle, dy, dhT, dcT):
    """Backward over a device handle on checked gradients: (dx, dh0, dc0 or None, dWx, dWh,
    db, dbh or None, dWr or None, dpeepholes or None), arrays of the handle's backend."""
    dev = _owner_of_handle(handle)
    T, B, I, H = handle.dims
    S, dtype = handle.state_size, handle.dtype
    G = handle.gates
    empty = dev.empty
    with dev.on_device(handle.device):
        dx, dh0 = empty((T, B, I), dtype), empty((B, S), dtype)
        dc0 = empty((B, H), dtype) if handle.cell == "lstm" else None
        dWx, dWh, db = empty((I, G * H), dtype), empty((S, G * H), dtype), empty((G * H,), dtype)
        dbh = empty((G * H,), dtype) if handle.has_bh else None
        dWr = empty((H, S), dtype) if handle.proj_size else None
        dpeep = empty((3, H), dtype) if handle.peepholes else None
        dev.module.backward(handle, dy, dhT, dcT, dx, dh0, dc0, dWx, dWh, db, dbh, dWr, dpeep,
                            dev.stream())
    return dx, dh0, dc0, dWx, dWh, db, dbh, dWr, dpeep, None  # None: no normalised gains here


def lengths_to_host(dev, lengths):
    """lengths from either side as the host array the core reads (the device backend copies
    it back: the time loop's step count comes from it)."""
    if lengths is not None and dev is not None and hasattr(type(lengths), dev.interface) \
            and dev.claims(lengths):
        return dev.to_host(lengths)
    return lengths
