"""rnnkit: fast recurrent networks (RNN, LSTM, GRU) for NumPy users.

The C++ core (``rnnkit._core``) runs fused forward passes and backpropagation through time;
this package wraps it with NumPy-in/NumPy-out functions (``rnnkit.functional``), drop-in
replacements for the classic NumPy RNN functions (``rnnkit.dropin``) and a readable NumPy
reference (``rnnkit.reference``).
"""
from __future__ import annotations

import os as _os

try:
    from . import _core
except ImportError as exc:  # the sources without their compiled core, e.g. PYTHONPATH=python
    raise ImportError(
        f"rnnkit's compiled core (_core) is missing from {_os.path.dirname(__file__)}: {exc}. "
        "Use the installed package (pip install .; run without PYTHONPATH=python), or build the "
        "core into this source tree first (cmake -S . -B build/dev && cmake --build build/dev)"
    ) from exc
from ._runtime import govern_blas
from .persistence import FormatError, load, save

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "set_num_threads",
    "get_num_threads",
    "get_isa",
    "set_isa",
    "supported_isas",
    "info",
    "cuda_info",
    "release_memory",
    "retained_memory",
    "govern_blas",
    "save",
    "load",
    "FormatError",
]


def _load_openblas() -> str:
    """Loads OpenBLAS from the scipy-openblas32 wheel; returns '' or why it failed."""
    try:
        import scipy_openblas32
    except ImportError as exc:  # pragma: no cover - it is a declared dependency
        return f"scipy-openblas32 is not installed ({exc})"
    path = _os.path.join(scipy_openblas32.get_lib_dir(), scipy_openblas32.get_library(fullname=True))
    ok, error = _core.load_blas(path)
    return "" if ok else error


if _core.isa_environment_note():
    import warnings

    warnings.warn(f"rnnkit: {_core.isa_environment_note()}", RuntimeWarning, stacklevel=2)

_blas_error = _load_openblas()
if _blas_error:  # pragma: no cover - only on broken installs
    import warnings

    warnings.warn(f"rnnkit: OpenBLAS could not be loaded, using a slow fallback GEMM: {_blas_error}")


def set_num_threads(n: int) -> None:
    """Sets the number of threads of every pool rnnkit uses (its own and OpenBLAS's).

    The pool starts at the first call big enough to use it. If the process's limits (threads,
    address space for their stacks) let only k < n threads start, rnnkit runs with those k,
    get_num_threads() reports k from then on, and that call emits one RuntimeWarning saying
    so; calling set_num_threads again tries again.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    _core.set_num_threads(n)


def get_num_threads() -> int:
    """Number of threads rnnkit uses (default: the cores this process may run on); lowered to
    the threads that could be started if the pool could not start them all."""
    return _core.get_num_threads()


def retained_memory() -> int:
    """Bytes the core's scratch arenas hold between calls, summed over every thread that has run
    a call (each keeps the buffers of its largest call so far, about T*B*G*H elements of it)."""
    return int(_core.scratch_bytes())


def release_memory() -> int:
    """Frees the scratch memory the core keeps between calls and returns how many bytes that
    was. The pool's worker threads stop (their arenas go with them; they restart at the next
    call that needs them); other Python threads free theirs at their next call. While another
    thread is inside a call the pool keeps its workers (their arenas then stay until the next
    release). Arrays you hold (outputs, caches) are yours and are not touched."""
    before = retained_memory()
    _core.release_memory()
    return max(0, before - retained_memory())


def supported_isas() -> list[str]:
    """SIMD instruction sets usable on this CPU, from 'scalar' up."""
    return list(_core.supported_isas())


def get_isa() -> str:
    """The SIMD instruction set the kernels run with now."""
    return _core.active_isa()


def set_isa(name: str) -> None:
    """Selects the SIMD kernels ('scalar', 'avx2', 'avx512'); ValueError when unsupported.

    The environment variable RNNKIT_ISA sets the initial choice at import.
    """
    _core.set_isa(name)


def cuda_info() -> dict:
    """Whether this build has the CUDA backend (rnnkit._cuda, CMake RNNKIT_CUDA=ON) and what
    the CUDA runtime sees: {'built', 'error' (why it is not built or cannot load),
    'device_count', 'device_error' (the runtime's error when it sees no device), 'devices'
    (name, compute capability, memory), 'build' (runtime and driver versions,
    architectures)}. Imports the module (not CuPy)."""
    from . import _device

    module = _device.cuda_module()
    if module is None:
        return {"built": False, "error": _device.cuda_import_error(), "device_count": 0,
                "device_error": "", "devices": [], "build": {}}
    count, error = module.device_count()
    return {"built": True, "error": "", "device_count": int(count), "device_error": error,
            "devices": list(module.devices()), "build": dict(module.build_info())}


def info() -> dict:
    """Version, build flags, SIMD ISAs, threads, BLAS and CUDA support, as a dict."""
    build = dict(_core.build_info())
    return {
        "version": __version__,
        "build": build,
        "isa_supported": supported_isas(),
        "isa_active": get_isa(),
        "isa_env_override": _os.environ.get("RNNKIT_ISA", ""),
        "threads": get_num_threads(),
        "blas": _core.blas_name(),
        "blas_core": _core.blas_corename(),
        "blas_threads": _core.blas_num_threads(),
        "cuda": cuda_info(),
        "retained_memory": retained_memory(),
    }

