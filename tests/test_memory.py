"""Memory: resident memory stays flat over 10,000 forward/backward calls of varying shapes
(tools/memory_soak.py, in a fresh process so the numbers are its own), forward handles held
in reference cycles or by layers are freed by the collector, and the scratch arenas' retained
memory is counted and released by rnnkit.release_memory()."""
from __future__ import annotations

import gc
import os
import threading

import numpy as np
import pytest

import rnnkit
from rnnkit import _core, functional as F, nn

from child_process import run_python

SOAK = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools", "memory_soak.py")


@pytest.mark.skipif(bool(os.environ.get("RNNKIT_SANITIZED")),
                    reason="ASan's shadow memory and quarantine grow RSS by design")
def test_resident_memory_is_flat_over_10000_calls():
    code, out = run_python([SOAK, "--calls", "10000", "--warmup", "1000", "--max-growth-mib", "24"],
                           timeout=300)
    print(out)
    assert code == 0, out
    assert "live forward handles 0" in out


def _lstm_call(T=6, B=4, I=5, H=8, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((T, B, I)), None, None, rng.standard_normal((I, 4 * H)) * 0.3,
            rng.standard_normal((H, 4 * H)) * 0.3, np.zeros(4 * H))


def test_handles_in_reference_cycles_are_freed():
    gc.collect()
    before = _core._live_forward_handles()

    class Holder:
        pass

    holders = []
    for k in range(50):
        *_, cache = F.lstm_forward(*_lstm_call(seed=k), segment=2 if k % 2 else None)
        h = Holder()
        h.cache, h.me = cache, h  # a cycle: only the collector frees it
        holders.append(h)
    assert _core._live_forward_handles() >= before + 50
    del holders, h, cache
    gc.collect()
    assert _core._live_forward_handles() == before


def test_layers_and_failed_calls_leave_no_handles():
    gc.collect()
    before = _core._live_forward_handles()
    layer = nn.LSTM(5, 8, 2, bidirectional=True, seed=0)
    x = np.random.default_rng(0).standard_normal((6, 4, 5)).astype(np.float32)
    for _ in range(20):
        layer.forward(x, training=True)  # each call replaces the layer's caches
    assert _core._live_forward_handles() > before
    layer.me = layer  # a cycle through the layer too
    del layer
    gc.collect()
    assert _core._live_forward_handles() == before
    # a forward that fails after checking (backward of a mismatched gradient) keeps nothing
    *_, cache = F.lstm_forward(*_lstm_call())
    for _ in range(10):
        try:
            F.lstm_backward(np.zeros((1, 1, 1)), None, None, cache)
        except ValueError:
            pass
    del cache
    gc.collect()
    assert _core._live_forward_handles() == before


def test_release_memory_frees_the_scratch_arenas(restore_isa_and_threads):
    rnnkit.set_num_threads(2)
    args = _lstm_call(T=20, B=64, I=48, H=96)
    *outs, cache = F.lstm_forward(*args)
    grads = F.lstm_backward(np.ones_like(outs[0]), None, None, cache)
    held = rnnkit.retained_memory()
    assert held > 1 << 20  # the arenas keep this call's buffers for the next one
    assert rnnkit.info()["retained_memory"] == held
    freed = rnnkit.release_memory()
    assert freed == held and rnnkit.retained_memory() == 0
    # the pool restarts and the arena refills on the next call, with the same results
    *outs2, cache2 = F.lstm_forward(*args)
    grads2 = F.lstm_backward(np.ones_like(outs2[0]), None, None, cache2)
    for a, b in zip(outs + list(grads), outs2 + list(grads2)):
        assert (a is None and b is None) or np.array_equal(a, b)
    assert rnnkit.retained_memory() > 0


def test_release_memory_reaches_other_threads_at_their_next_call():
    """Another Python thread's arena is freed when that thread next runs a call, so its size
    stays that of its newest call, not of its biggest one."""
    ran = threading.Event()
    go_on = threading.Event()

    def other():
        F.lstm_forward(*_lstm_call(T=40, B=64, I=64, H=128))  # a big arena on this thread
        ran.set()
        go_on.wait(30)
        F.lstm_forward(*_lstm_call(T=2, B=2, I=2, H=2))  # frees it, keeps only a small one

    t = threading.Thread(target=other)
    t.start()
    assert ran.wait(60)
    big = rnnkit.retained_memory()
    rnnkit.release_memory()
    go_on.set()
    t.join(60)
    assert not t.is_alive()
    assert rnnkit.retained_memory() < big / 10
