"""Type stubs of rnnkit's compiled core (``rnnkit._core``, the pybind11 module).

Written from the module's own signatures (``pybind11-stubgen rnnkit._core``), tidied by hand;
``tests/test_core_stubs.py`` checks that every function and parameter here matches the
compiled module. Use the rnnkit Python package, not this module directly.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, SupportsFloat, SupportsIndex, SupportsInt

import numpy

__all__: list[str] = [
    "ForwardHandle", "active_isa", "backward", "blas_corename", "blas_name", "blas_num_threads",
    "build_info", "cells", "default_num_threads", "elementwise", "embedding_backward",
    "fma_peak_gflops", "forward",
    "gemm", "get_num_threads", "isa_environment_note", "load_blas", "release_memory",
    "scratch_bytes", "set_isa", "set_num_threads", "supported_isas",
]

class ForwardHandle:
    """What a training-mode forward keeps for backward: its checked inputs and the backend's
    reserve. Opaque; pass it to backward."""

    def __reduce__(self) -> Any: ...
    @property
    def backend(self) -> str: ...
    @property
    def batch_statistics(self) -> Any:
        """A batch-normalised forward's (4, G*H) mean and unbiased variance of x @ Wx, then of
        h @ Wh, averaged over the steps with a valid row; None otherwise."""
    @property
    def cell(self) -> str: ...
    @property
    def dims(self) -> tuple[int, int, int, int]:
        """(T, B, I, H) of the forward."""
    @property
    def dtype(self) -> numpy.dtype[Any]: ...
    @property
    def keeps_reserve(self) -> bool:
        """False for a checkpoint handle: backward recomputes the forward first."""
    @property
    def nbytes(self) -> int:
        """Bytes kept for backward besides the inputs: the reserve, or for a checkpoint handle
        the initial states it holds."""
    @property
    def state_size(self) -> int:
        """S, the width of h and of the outputs: the projection width P, or H."""

def forward(
    cell: str,
    x: numpy.ndarray,
    h0: Any,
    c0: Any,
    Wx: numpy.ndarray,
    Wh: numpy.ndarray,
    b: Any,
    bh: Any,
    lengths: Any,
    reverse: bool,
    recurrent_mask: Any,
    linear_before_reset: bool,
    gate_block: Sequence[SupportsInt | SupportsIndex],
    training: bool,
    keep_reserve: bool = True,
    Wr: Any = None,
    peepholes: Any = None,
    norm: Any = None,
) -> tuple:
    """One layer, one direction. Returns (y, hT, cT or None, handle or None); the handle
    (training only) is backward's input. keep_reserve=False keeps the inputs only and backward
    recomputes the forward (checkpointing). Wr (H, P): output projection, h and y are then P
    wide and Wh is (P, G*H); peepholes (3, H): p_i, p_f, p_o (LSTM). norm: None, or {'kind':
    'layer' | 'batch', 'gamma_x': (G*H,), 'gamma_h': (G*H,)[, 'gamma_c': (H,), 'beta_c':
    (H,)]} to normalise x @ Wx and h @ Wh (and an LSTM's cell state) inside the recurrence
    (batch: training only; not with keep_reserve=False)."""

def backward(handle: ForwardHandle, dy: Any, dhT: Any, dcT: Any) -> tuple:
    """BPTT of one layer, one direction, over a training forward's handle. Returns (dx, dh0,
    dc0 or None, dWx, dWh, db, dbh or None, dWr or None, dpeepholes or None, gains): gains is
    a dict of the gains' gradients by the names of forward's norm dict after a normalised
    forward, else None."""

def cells() -> list:
    """The core's cell table: name, gates (G), has_cell_state, gate_names (canonical order),
    takes_peepholes, takes_projection."""

def embedding_backward(
    ids: numpy.ndarray, dout: numpy.ndarray, dW: numpy.ndarray, skip_id: SupportsInt | SupportsIndex
) -> None:
    """dW[ids[n]] += dout[n] in place; ids: (N,) int64, dout: (N, D), dW: (V, D). Rows whose id
    equals skip_id are skipped (-1 for none)."""

def gemm(
    A: numpy.ndarray,
    trans_a: bool,
    B: numpy.ndarray,
    trans_b: bool,
    C: numpy.ndarray,
    alpha: SupportsFloat | SupportsIndex = 1.0,
    beta: SupportsFloat | SupportsIndex = 0.0,
) -> None:
    """C = alpha * op(A) @ op(B) + beta * C in place, on rnnkit's thread pool; all
    C-contiguous."""

def release_memory() -> bool:
    """Frees the scratch arenas and stops the pool's workers (they restart when needed); False
    when another thread was running a parallel region, whose workers were kept."""

def scratch_bytes() -> int:
    """Bytes the threads' scratch arenas hold now."""

def fma_peak_gflops(isa: str, dtype: str = "float32", runs: SupportsInt = 5) -> float:
    """GFLOP/s of a register-only FMA loop of `isa` on every pool thread at once (best of `runs`)."""

def elementwise(fn: str, x: numpy.ndarray, isa: str) -> numpy.ndarray:
    """Vectorised exp/sigmoid/tanh of a 1-D array with the given ISA's kernels (for tests)."""

def active_isa() -> str:
    """The SIMD kernels in use: "scalar", "avx2" or "avx512"."""

def supported_isas() -> list[str]:
    """The ISAs this CPU and build can run."""

def set_isa(arg0: str) -> None:
    """Switch the SIMD kernels: "scalar", "avx2" or "avx512"; an unsupported choice raises
    ValueError."""

def isa_environment_note() -> str:
    """Why RNNKIT_ISA was not followed (unknown value, ISA missing on this CPU), or ""."""

def get_num_threads() -> int:
    """rnnkit's thread setting (default_num_threads() until set)."""

def set_num_threads(arg0: SupportsInt | SupportsIndex) -> None:
    """Threads for rnnkit's next parallel calls (n >= 1; smaller raises ValueError)."""

def default_num_threads() -> int:
    """The cores this process may run on."""

def build_info() -> dict:
    """Compiler, SIMD mode and build type of this build."""

def load_blas(arg0: str) -> tuple[bool, str]:
    """dlopen OpenBLAS from path; returns (ok, error message)."""

def blas_name() -> str:
    """The BLAS library loaded."""

def blas_corename() -> str:
    """OpenBLAS's name for the CPU core it tuned its kernels for."""

def blas_num_threads() -> int:
    """Threads of the BLAS library (kept at one: rnnkit calls it from its own pool)."""
