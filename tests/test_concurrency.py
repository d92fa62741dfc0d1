"""Concurrent use of the core from Python threads (the GIL is released inside every call):
forward/backward from many threads while another switches the thread count and the ISA,
fork after (and during) use, and an exception inside a pool task reaching the caller. Every
wait is bounded: a deadlock fails the test with all threads' stacks (fuzz_support.watchdog)."""
from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

import rnnkit
from rnnkit import _core, functional as F

from child_process import run_python
from fuzz_support import watchdog

# big enough for the pool (T*B*(I+H)*G*H multiply-adds well past the core's threshold)
BIG = dict(T=12, B=64, I=48, H=96)
SMALL = dict(T=3, B=5, I=4, H=7)
# a batch too small to split by rows: the forward's hidden units split across a thread team
TEAM = dict(T=40, B=3, I=16, H=144)


def make_call(cell, T, B, I, H, seed):
    rng = np.random.default_rng(seed)
    G = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    x = rng.standard_normal((T, B, I))
    Wx = rng.standard_normal((I, G * H)) * 0.2
    Wh = rng.standard_normal((H, G * H)) * 0.1
    b = rng.standard_normal(G * H) * 0.1
    dy = rng.standard_normal((T, B, H))
    lengths = rng.integers(0, T + 1, B)
    return cell, x, Wx, Wh, b, dy, lengths


def run_call(call):
    cell, x, Wx, Wh, b, dy, lengths = call
    states = [None, None] if cell == "lstm" else [None]
    *outs, cache = getattr(F, f"{cell}_forward")(x, *states, Wx, Wh, b, lengths=lengths)
    grads = getattr(F, f"{cell}_backward")(dy, *([None] * len(states)), cache)
    return [o for o in outs if o is not None] + [g for g in grads if g is not None]


def assert_same(got, want, exact):
    for g, w in zip(got, want):
        if exact:
            np.testing.assert_array_equal(g, w)
        else:  # another ISA's exp/tanh: float64 results agree to rounding
            np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("switch_isa", [False, True])
def test_threads_with_thread_count_and_isa_switching_equal_serial(restore_isa_and_threads, switch_isa):
    calls = [make_call(cell, **(BIG if i % 2 else SMALL), seed=i)
             for i, cell in enumerate(["lstm", "gru", "rnn", "lstm", "gru", "lstm"])]
    rnnkit.set_num_threads(2)
    expected = [run_call(c) for c in calls]
    errors, stop = [], threading.Event()

    def worker(k):
        try:
            for _ in range(6):
                for j in range(len(calls)):
                    i = (j + k) % len(calls)
                    assert_same(run_call(calls[i]), expected[i], exact=False)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    def switcher():
        isas = rnnkit.supported_isas()
        n = 0
        while not stop.is_set():
            rnnkit.set_num_threads(1 + n % 4)
            if switch_isa:
                rnnkit.set_isa(isas[n % len(isas)])
            n += 1
            time.sleep(0.0005)

    with watchdog(300):
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
        switch = threading.Thread(target=switcher)
        switch.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join(240)
        stop.set()
        switch.join(30)
    assert not any(t.is_alive() for t in threads + [switch]), "a thread did not finish"
    if errors:
        raise errors[0]


@pytest.mark.parametrize("shape", [BIG, TEAM], ids=["rows", "team"])
def test_results_do_not_depend_on_thread_count(restore_isa_and_threads, shape):
    """Batch rows, or a small batch's hidden units, are split between threads, never a
    reduction: bit-identical results for rows; a team projects x @ Wx with rnnkit's packed
    kernel instead of the BLAS (other summation order), so its float64 results agree to
    rounding."""
    call = make_call("lstm", **shape, seed=3)
    runs = []
    for n in (1, 2, 3, 4):
        rnnkit.set_num_threads(n)
        runs.append(run_call(call))
    for r in runs[1:]:
        assert_same(r, runs[0], exact=shape is BIG)


@pytest.mark.parametrize("shape", [BIG, TEAM], ids=["rows", "team"])
def test_exception_in_a_pool_task_reaches_the_caller(restore_isa_and_threads, shape):
    """A std::bad_alloc thrown on a pool worker (test hook) comes back as MemoryError from the
    call; the pool and the scratch arenas stay usable and the next results are right. In a
    team, the other members leave their barrier instead of waiting for the failed one."""
    rnnkit.set_num_threads(4)
    call = make_call("lstm", **shape, seed=5)
    expected = run_call(call)
    raised = 0
    with watchdog(120):
        for _ in range(50):  # a worker must take a task before the caller has drained them all
            _core._inject_allocation_failure(1, workers_only=True)
            try:
                run_call(call)
            except MemoryError:
                raised += 1
            finally:
                _core._inject_allocation_failure(0)
            assert_same(run_call(call), expected, exact=True)
            if raised >= 3:
                break
    assert raised >= 1, "no pool worker ever took a task"
    assert_same(run_call(call), expected, exact=True)


@pytest.mark.parametrize("shape", [BIG, TEAM], ids=["rows", "team"])
@pytest.mark.parametrize("nth", range(1, 12))
def test_allocation_failure_at_any_point_is_an_exception(restore_isa_and_threads, nth, shape):
    """The nth scratch allocation of a forward/backward fails (on whichever thread): MemoryError
    or, past the call's last allocation, a normal result; the next call is right either way."""
    rnnkit.set_num_threads(2)
    call = make_call("gru", **shape, seed=nth)
    expected = run_call(call)
    with watchdog(60):
        _core._inject_allocation_failure(nth)
        try:
            assert_same(run_call(call), expected, exact=True)
        except MemoryError:
            pass
        finally:
            _core._inject_allocation_failure(0)
        assert_same(run_call(call), expected, exact=True)


FORK_SCRIPT = r"""
import os, sys, threading, time
import numpy as np
sys.path.insert(0, sys.argv[1])
import rnnkit
from test_concurrency import BIG, make_call, run_call, assert_same

rnnkit.set_num_threads(2)
call = make_call("lstm", **BIG, seed=11)
expected = run_call(call)          # the pool has started
stop = threading.Event()

def busy():                        # a thread inside the core while the main thread forks
    while not stop.is_set():
        run_call(call)

background = threading.Thread(target=busy)
background.start()
children = []
for k in range(6):
    time.sleep(0.01 * k)
    pid = os.fork()
    if pid == 0:
        try:
            rnnkit.set_num_threads(2)
            assert_same(run_call(call), expected, exact=True)   # a pool of its own
            rnnkit.release_memory()
            assert_same(run_call(call), expected, exact=True)
            os._exit(0)
        except BaseException as exc:
            print("child failed:", repr(exc), flush=True)
            os._exit(1)
    children.append(pid)
stop.set()
background.join()
deadline = time.time() + 90
failed = 0
for pid in children:
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            failed += os.waitstatus_to_exitcode(status) != 0
            break
        if time.time() > deadline:
            os.kill(pid, 9)
            print("child hung", pid, flush=True)
            failed += 1
            os.waitpid(pid, 0)
            break
        time.sleep(0.01)
assert_same(run_call(call), expected, exact=True)
print("children failed:", failed, flush=True)
sys.exit(1 if failed else 0)
"""


def test_fork_after_and_during_use():
    """Children forked after the pool started, some while another thread is inside a parallel
    call, run their own pool and get the parent's results; nobody deadlocks."""
    code, out = run_python(["-c", FORK_SCRIPT, os.path.dirname(__file__)], timeout=180)
    assert code == 0, out
    assert "children failed: 0" in out
