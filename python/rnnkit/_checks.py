"""Argument checks shared by the public functions: every message names the argument and
says what was expected, so bad input fails in Python before it reaches the C++ core."""
from __future__ import annotations

import math
import os

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    """`value` as an int, if it is an integer (not a bool) >= minimum."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def shape_str(shape) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def float_array(value, name: str, ndim: int | None = None, dtype=None) -> np.ndarray:
    """Returns `value` as a C-contiguous float32/float64 array (copying only when needed).

    dtype: the dtype every floating argument of the call must share (None: take value's).
    """
    if value is None:
        raise TypeError(f"{name} must be an array, got None")
    arr = np.asarray(value)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.floating) or arr.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be a float32 or float64 array, got dtype {arr.dtype}")
    if dtype is not None and arr.dtype != dtype:
        raise TypeError(
            f"{name} has dtype {arr.dtype} but x has {np.dtype(dtype)}; "
            "all floating arguments of one call must share one dtype"
        )
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got {arr.ndim}-D array of shape {shape_str(arr.shape)}")
    return np.ascontiguousarray(arr)


def expect_shape(arr: np.ndarray, name: str, shape, meaning: str) -> None:
    if tuple(arr.shape) != tuple(shape):
        raise ValueError(
            f"{name} must have shape {meaning} = {shape_str(shape)}, got {shape_str(arr.shape)}"
        )


def optional_float(value, name: str, shape, meaning: str, dtype) -> np.ndarray | None:
    if value is None:
        return None
    arr = float_array(value, name, ndim=len(shape), dtype=dtype)
    expect_shape(arr, name, shape, meaning)
    return arr


def lengths_array(lengths, batch: int, steps: int) -> np.ndarray | None:
    """Checks `lengths`: integers, shape (B,), each in [0, T]. None means all T."""
    if lengths is None:
        return None
    arr = np.asarray(lengths)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"lengths must be an integer array of shape (B,), got dtype {arr.dtype}")
    if arr.ndim != 1 or arr.shape[0] != batch:
        raise ValueError(f"lengths must have shape (B,) = ({batch},), got {shape_str(arr.shape)}")
    if batch and (arr.min() < 0 or arr.max() > steps):
        bad = int(np.flatnonzero((arr < 0) | (arr > steps))[0])
        raise ValueError(f"lengths[{bad}] = {int(arr[bad])} is outside [0, T={steps}]")
    return np.ascontiguousarray(arr, dtype=np.int64)


def _position(shape, flat_index: int):
    pos = tuple(int(i) for i in np.unravel_index(flat_index, shape))
    return pos[0] if len(pos) == 1 else pos


def _stored(arr: np.ndarray) -> np.ndarray:
    """The part of `arr` that is distinct in memory: an axis with stride 0 (np.broadcast_to)
    repeats one element, so it is cut to length 1. Any index of the result is an index of arr
    with the same value, and checking it costs what the memory holds, not what the view shows."""
    if 0 not in arr.strides:
        return arr
    return arr[tuple(slice(0, 1) if st == 0 else slice(None) for st in arr.strides)]


def check_ids(ids, num_embeddings: int, name: str = "ids") -> np.ndarray:
    """``ids`` as an int64 array, or TypeError (not integers) / IndexError (naming the first
    offending id and its position) when an id is negative or >= ``num_embeddings``.

    A broadcast view (zero strides) is checked, and converted, over its stored elements only;
    positions are reported in ``ids``' own shape."""
    arr = np.asarray(ids)
    if arr.size == 0 and arr.dtype.kind == "f":
        arr = arr.astype(np.int64)  # np.asarray([]) is float64; an empty batch is fine
    if arr.dtype == bool or arr.dtype.kind not in "iu":
        hint = " (cast with .astype(np.int64) if they are whole numbers)" if arr.dtype.kind == "f" else ""
        raise TypeError(f"{name} must be an integer array, got dtype {arr.dtype}{hint}")
    if arr.size == 0:
        return arr.astype(np.int64, copy=False)
    core = _stored(arr)
    # core's first offending element in C order is arr's too: it sits at index 0 of every cut axis
    if core.dtype.kind == "i" and core.min() < 0:
        flat = int(np.argmax(core.reshape(-1) < 0))
        raise IndexError(f"{name} contains a negative id {int(core.reshape(-1)[flat])} at position "
                         f"{_position(core.shape, flat)}; ids must be in [0, {num_embeddings})")
    if core.max() >= num_embeddings:
        flat = int(np.argmax(core.reshape(-1) >= num_embeddings))
        raise IndexError(f"{name} contains id {int(core.reshape(-1)[flat])} at position "
                         f"{_position(core.shape, flat)}, out of range for {num_embeddings} "
                         f"embeddings (valid ids: 0..{num_embeddings - 1})")
    if core.size < arr.size:  # cast the stored ids only, then broadcast them back
        return np.broadcast_to(core.astype(np.int64, copy=False), arr.shape)
    return arr.astype(np.int64, copy=False)


def check_lookup_size(ids_shape, width: int, dtype, name: str) -> None:
    """MemoryError naming ``name`` when an embedding lookup's output ids_shape + (width,) plus
    the int64 copy of its ids exceed this machine's memory (a broadcast ``ids`` can be huge
    while holding one element). NumPy's own MemoryError comes at once only where the kernel
    refuses to overcommit; elsewhere such a request swaps or hangs."""
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): NumPy decides
        return
    need = math.prod(ids_shape) * (8 + width * np.dtype(dtype).itemsize)
    if need > memory:
        raise MemoryError(f"{name} of shape {shape_str(ids_shape)} gives a lookup output of shape "
                          f"{shape_str(tuple(ids_shape) + (width,))} {np.dtype(dtype)}: "
                          f"{need / 2**30:.1f} GiB with the ids, more than this machine's "
                          f"{memory / 2**30:.1f} GiB of memory")


def token_ids(value, name: str, vocab_size: int) -> np.ndarray:
    """(B, T) batch-first token ids as int64: integer, 2-D, not empty, every id in
    [0, vocab_size); an IndexError names the first offending position (a vocabulary mismatch)."""
    arr = np.asarray(value)
    if arr.dtype == bool or arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array of token ids (B, T), got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (B, T) batch-first token ids, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); need at least one sequence of at least one token")
    bad = (arr < 0) | (arr >= vocab_size)
    if bad.any():
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        raise IndexError(f"{name}{list(pos)} = {int(arr[pos])} is out of range for the model's vocabulary of "
                         f"{vocab_size} tokens (vocabulary mismatch?)")
    return arr.astype(np.int64)
