"""Dense products of the layers on rnnkit's own thread pool.

``matmul`` is ``a @ b`` for 2-D float arrays through ``rnnkit._core.gemm`` (OpenBLAS kept at one
thread and called in parallel from rnnkit's pool), so a training loop never wakes NumPy's BLAS
pool as well: two pools on the same cores make each other's threads wait (see
``rnnkit.govern_blas``). Transposed views are passed to the BLAS as transposes, not copied.
"""
from __future__ import annotations

import numpy as np

from . import _core
from . import _device


def _operand(a: np.ndarray):
    """(C-contiguous array, transposed?) holding ``a`` without a copy where the strides allow."""
    if a.flags.c_contiguous:
        return a, False
    if a.T.flags.c_contiguous:
        return a.T, True
    return np.ascontiguousarray(a), False


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None, *,
           accumulate: bool = False) -> np.ndarray:
    """``a @ b`` for 2-D arrays of one float dtype (callers check dtypes and shapes); with
    ``out`` the product is written (or, with ``accumulate``, added) into that C-contiguous
    array, which is returned."""
    if _device.backend_of(a) is not None:  # device arrays: the device's own product (cuBLAS)
        if out is None:
            return a @ b
        if accumulate:
            out += a @ b
        else:
            out[...] = a @ b
        return out
    M, K = a.shape
    N = b.shape[1]
    if out is None:
        out = np.empty((M, N), dtype=a.dtype)
        accumulate = False
    if K == 0:  # an empty sum; kept from the BLAS, which rejects a leading dimension of 0
        if not accumulate:
            out.fill(0)
        return out
    A, trans_a = _operand(a)
    B, trans_b = _operand(b)
    _core.gemm(A, trans_a, B, trans_b, out, 1.0, 1.0 if accumulate else 0.0)
    return out
