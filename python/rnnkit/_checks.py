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


def layout_note(name: str, shape, batch_first: bool, features: str) -> str:
    """How a layer read a sequence argument, for shape messages: which axis it took as B."""
    axes = f"(B, T, {features})" if batch_first else f"(T, B, {features})"
    flag = "batch_first=True" if batch_first else "batch_first=False"
    return f"{name} of shape {shape_str(shape)} read as {axes}, {flag}"


def shape_str(shape) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def float_array(value, name: str, ndim: int | None = None, dtype=None) -> np.ndarray:
    """Returns `value` as a C-contiguous float32/float64 array (copying only when needed).

    dtype: the dtype every floating argument of the call must share (None: take value's).
    """
    if value is None:
        raise TypeError(f"{name} must be an array, got None")
    arr = np.asarray(value)
    if arr.dtype not in FLOAT_DTYPES:  # native-order float32/float64 only (object, ints, '>f4' out)
        raise TypeError(f"{name} must be a float32 or float64 array, got dtype {arr.dtype}")
    if dtype is not None and arr.dtype != dtype:
        raise TypeError(
            f"{name} has dtype {arr.dtype} but x has {np.dtype(dtype)}; "
            "all floating arguments of one call must share one dtype (NumPy reads a Python list "
            "or float as float64: pass arrays of one dtype, e.g. np.asarray(x, dtype=np.float32))"
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


def lengths_array(lengths, batch: int, steps: int, name: str = "lengths", minimum: int = 0,
                  layout: str = "") -> np.ndarray | None:
    """Checks `lengths` (the argument called `name`): integers, shape (B,), each in
    [minimum, T]. None means all T (returned as None). ``layout`` says how the sequence's
    axes were read (e.g. "x read batch-first (B, T, F)"), for the message."""
    if lengths is None:
        return None
    arr = np.asarray(lengths)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must be an integer array of shape (B,), got dtype {arr.dtype}")
    if arr.ndim != 1 or arr.shape[0] != batch:
        read = f" ({layout})" if layout else ""
        raise ValueError(f"{name} must have shape (B,) = ({batch},){read}, got {shape_str(arr.shape)}")
    if batch and (arr.min() < minimum or arr.max() > steps):
        bad = int(np.flatnonzero((arr < minimum) | (arr > steps))[0])
        read = f"; {layout}" if layout else ""
        raise ValueError(f"{name}[{bad}] = {int(arr[bad])} is outside [{minimum}, T={steps}]; {name} must lie "
                         f"in that range (T = the padded length of the array{read})")
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


def check_ids(ids, num_embeddings: int, name: str = "ids", *, batch_first: bool = False,
              vocabulary: str | None = None, lengths=None, pad_id: int = 0,
              range_name: str = "embeddings") -> np.ndarray:
    """``ids`` as an int64 array, or TypeError (not integers) / IndexError (naming the first
    offending id and its position) when an id is negative or >= ``num_embeddings``.

    Positions are reported in ``ids``' own layout, so a model checks its batch-first input
    before transposing it. ``batch_first``: ids must be (B, T) token ids with at least one
    token. ``vocabulary``: the argument that sized the vocabulary (e.g. "vocab_size"), named
    when an id is out of range. ``lengths`` (B,), already checked: steps past them are padding,
    neither checked nor kept (returned as ``pad_id``). ``range_name``: what the ids index
    (e.g. "classes" for targets), named in the message.

    A broadcast view (zero strides) is checked, and converted, over its stored elements only."""
    arr = np.asarray(ids)
    if arr.size == 0 and arr.dtype.kind == "f" and not batch_first:
        arr = arr.astype(np.int64)  # np.asarray([]) is float64; an empty batch is fine
    if arr.dtype == bool or arr.dtype.kind not in "iu":
        hint = " (cast with .astype(np.int64) if they are whole numbers)" if arr.dtype.kind == "f" else ""
        raise TypeError(f"{name} must be an integer array, got dtype {arr.dtype}{hint}")
    if batch_first:
        if arr.ndim != 2:
            raise ValueError(f"{name} must be 2-D (B, T) batch-first token ids, got shape {shape_str(arr.shape)}")
        if arr.size == 0:
            raise ValueError(f"{name} is empty (shape {shape_str(arr.shape)}); need at least one sequence "
                             f"of at least one token")
    if arr.size == 0:
        return arr.astype(np.int64, copy=False)
    if lengths is not None:
        arr = np.where(np.arange(arr.shape[1])[None, :] < lengths[:, None], arr, pad_id)
    if vocabulary is None:
        valid = f"{num_embeddings} {range_name} (valid ids: 0..{num_embeddings - 1})"
    else:
        valid = (f"the vocabulary of {vocabulary}={num_embeddings} tokens; is {name} encoded with the "
                 f"vocabulary this model was built for?")
    core = _stored(arr)
    # core's first offending element in C order is arr's too: it sits at index 0 of every cut axis
    if core.dtype.kind == "i" and core.min() < 0:
        flat = int(np.argmax(core.reshape(-1) < 0))
        raise IndexError(f"{name} contains a negative id {int(core.reshape(-1)[flat])} at position "
                         f"{_position(core.shape, flat)}, out of range for {valid}")
    if core.max() >= num_embeddings:
        flat = int(np.argmax(core.reshape(-1) >= num_embeddings))
        raise IndexError(f"{name} contains id {int(core.reshape(-1)[flat])} at position "
                         f"{_position(core.shape, flat)}, out of range for {valid}")
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
