"""Which thread pools run while rnnkit works: ``govern_blas``.

rnnkit's own pool (``rnnkit.set_num_threads``) runs the kernels and the layers' dense products,
with its OpenBLAS at one thread. NumPy's BLAS has a pool of its own whose threads keep spinning
for a while after each NumPy product; when a training loop alternates NumPy products with
rnnkit calls, those spinning threads take the cores rnnkit's threads need (measured: an LSTM
language model trained at about half speed on 2 cores). Inside ``govern_blas`` every other
BLAS pool in the process runs single-threaded, so rnnkit's pool alone uses the cores.
"""
from __future__ import annotations

import contextlib
import threading

_lock = threading.Lock()
_depth = 0       # nesting depth over all Python threads: the outermost entry limits,
_limiter = None  # the outermost exit restores


@contextlib.contextmanager
def govern_blas():
    """Context manager (and decorator: ``@govern_blas()``) that keeps every BLAS pool other
    than rnnkit's single-threaded while it is active and restores their thread counts after.

    ``Trainer.fit``/``evaluate``/``predict`` and the models' ``fit``/``predict`` run inside it;
    wrap your own NumPy training loops that call ``rnnkit.functional`` in it too. Nestable; the
    limit holds until the last of several Python threads inside it leaves. Enter it from the
    thread that starts the work (OpenBLAS 0.3.31 was seen to ignore a thread-count change made
    from a second thread).
    """
    global _depth, _limiter
    with _lock:
        if _depth == 0:
            from threadpoolctl import ThreadpoolController

            # The libraries are looked up on every outermost entry (~2 ms), so one loaded since
            # (e.g. by a framework imported later) is governed too.
            _limiter = ThreadpoolController().limit(limits=1, user_api="blas")
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _limiter.restore_original_limits()
                _limiter = None
