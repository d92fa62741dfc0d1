"""Bad and unusual input to rnnkit.functional and the runtime controls: clear exceptions that
name the argument, never a crash; unusual-but-valid input (non-contiguous, empty, non-finite)
gives correct results."""
import platform
import sys

import numpy as np
import pytest

import rnnkit
from rnnkit import _core
from rnnkit import functional as F

from child_process import run_python

T, B, I, H = 4, 3, 5, 6
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def make(cell, dtype=np.float64, T=T, B=B, I=I, H=H, seed=0):
    rng = np.random.default_rng(seed)
    G = GATES[cell]
    return dict(
        x=rng.standard_normal((T, B, I)).astype(dtype),
        h0=rng.standard_normal((B, H)).astype(dtype),
        Wx=(rng.standard_normal((I, G * H)) / np.sqrt(I)).astype(dtype),
        Wh=(rng.standard_normal((H, G * H)) / np.sqrt(H)).astype(dtype),
        b=rng.standard_normal(G * H).astype(dtype),
        bh=rng.standard_normal(G * H).astype(dtype),
    )


def forward(cell, a, **kw):
    """Runs the cell's forward; returns (y, hT, cache) for every cell."""
    if cell == "rnn":
        return F.rnn_forward(a["x"], a["h0"], a["Wx"], a["Wh"], a["b"], a.get("bh"), **kw)
    if cell == "lstm":
        y, hT, _, cache = F.lstm_forward(a["x"], a["h0"], a.get("c0"), a["Wx"], a["Wh"], a["b"], a.get("bh"), **kw)
        return y, hT, cache
    return F.gru_forward(a["x"], a["h0"], a["Wx"], a["Wh"], a["b"], a.get("bh"), **kw)


def backward(cell, dy, dhT, cache):
    if cell == "lstm":
        return F.lstm_backward(dy, dhT, None, cache)
    return (F.rnn_backward if cell == "rnn" else F.gru_backward)(dy, dhT, cache)


CELLS = ["rnn", "lstm", "gru"]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(
    "name, shape, pattern",
    [
        ("x", (T, B), r"x must be 3-D"),
        ("h0", (B, H + 1), r"h0 must have shape \(B, H\) = \(3, 6\), got \(3, 7\)"),
        ("Wx", (I + 1, None), r"Wx must have shape"),
        ("Wh", (H, None), None),
        ("b", (None,), r"b must have shape"),
        ("bh", (None,), r"bh must have shape"),
    ],
)
def test_wrong_shapes_name_the_argument(cell, name, shape, pattern):
    a = make(cell)
    G = GATES[cell]
    if name == "Wh":
        a["Wh"] = np.zeros((H, G * H + 1))
        pattern = r"Wh must have shape \(H, %d\*H\)" % G
    elif name in ("b", "bh"):
        a[name] = np.zeros(G * H + 2)
    elif name == "Wx":
        a["Wx"] = np.zeros((I + 1, G * H))
    else:
        a[name] = np.zeros(shape)
    with pytest.raises(ValueError, match=pattern):
        forward(cell, a)


@pytest.mark.parametrize("cell", CELLS)
def test_mixed_dtypes_rejected(cell):
    a = make(cell)
    a["Wh"] = a["Wh"].astype(np.float32)
    with pytest.raises(TypeError, match=r"Wh has dtype float32 but x has float64"):
        forward(cell, a)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bad", [np.int64, np.complex128, object, np.float16])
def test_non_float_arrays_rejected(cell, bad):
    a = make(cell)
    a["x"] = np.ones((T, B, I)).astype(bad)
    with pytest.raises(TypeError, match=r"x must be a float32 or float64 array"):
        forward(cell, a)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(
    "lengths, err, pattern",
    [
        ([1, 2], ValueError, r"lengths must have shape \(B,\) = \(3,\), got \(2,\)"),
        ([1, 2, T + 1], ValueError, r"lengths\[2\] = 5 is outside \[0, T=4\]"),
        ([1, -1, 2], ValueError, r"lengths\[1\] = -1 is outside"),
        ([1.0, 2.0, 3.0], TypeError, r"lengths must be an integer array"),
        ([[1, 2, 3]], ValueError, r"lengths must have shape"),
    ],
)
def test_bad_lengths(cell, lengths, err, pattern):
    with pytest.raises(err, match=pattern):
        forward(cell, make(cell), lengths=np.array(lengths))


@pytest.mark.parametrize("cell", CELLS)
def test_non_contiguous_inputs_give_the_same_result(cell):
    a = make(cell)
    y_ref, hT_ref, cache = forward(cell, a)
    g_ref = backward(cell, np.ones_like(y_ref), None, cache)
    # Fortran-order and strided views of the same values
    b = dict(a)
    b["x"] = np.asfortranarray(a["x"])
    b["Wh"] = np.asfortranarray(a["Wh"])
    wide = np.zeros((a["Wx"].shape[0], 2 * a["Wx"].shape[1]))
    wide[:, ::2] = a["Wx"]
    b["Wx"] = wide[:, ::2]
    assert not b["Wx"].flags.c_contiguous
    y, hT, cache = forward(cell, b)
    g = backward(cell, np.ones_like(y), None, cache)
    np.testing.assert_array_equal(y, y_ref)  # same arithmetic on the same values: bit-identical
    np.testing.assert_array_equal(hT, hT_ref)
    for got, want in zip(g, g_ref):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("cell", CELLS)
def test_non_finite_values_propagate(cell):
    a = make(cell)
    a["x"][1, 0, 0] = np.nan
    a["x"][2, 1, 0] = np.inf
    y, hT, cache = forward(cell, a)
    # row 0 is NaN from step 1 on, rows 2 never saw a non-finite input
    assert np.isnan(y[1:, 0]).all()
    assert np.isfinite(y[:, 2]).all()
    assert np.isfinite(y[:2, 1]).all()
    grads = backward(cell, np.ones_like(y), None, cache)
    assert all(g.shape for g in grads if g is not None)  # returns, no crash


@pytest.mark.parametrize("cell", CELLS)
def test_large_inputs_saturate_without_nan(cell):
    a = make(cell)
    a["x"] *= 1e30
    a["h0"] = None  # from a zero state, every cell's h is a convex mix of tanh values: |h| <= 1
    y, hT, cache = forward(cell, a)
    assert np.isfinite(y).all()
    assert np.abs(y).max() <= 1.0


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dims", [dict(B=0), dict(T=0), dict(T=0, B=0), dict(I=0)])
def test_empty_batch_or_sequence(cell, dims):
    a = make(cell, **dims)
    y, hT, cache = forward(cell, a)
    Tn, Bn = a["x"].shape[:2]
    assert y.shape == (Tn, Bn, H) and hT.shape == (Bn, H)
    if Tn == 0:
        np.testing.assert_array_equal(hT, a["h0"])  # no step: the initial state is final
    grads = backward(cell, np.ones_like(y), np.ones_like(hT), cache)
    dx, dh0 = grads[0], grads[1]
    assert dx.shape == a["x"].shape and dh0.shape == (Bn, H)
    if Tn == 0:
        np.testing.assert_array_equal(dh0, np.ones_like(hT))
        assert not np.any(grads[-3]) and not np.any(grads[-4])  # dWh, dWx are zero


def test_zero_lengths_keep_initial_state_and_zero_outputs():
    a = make("lstm")
    a["c0"] = np.random.default_rng(1).standard_normal((B, H))
    y, hT, cT, cache = F.lstm_forward(a["x"], a["h0"], a["c0"], a["Wx"], a["Wh"], a["b"],
                                      lengths=np.array([0, T, 2]))
    np.testing.assert_array_equal(y[:, 0], 0)
    np.testing.assert_array_equal(y[2:, 2], 0)
    np.testing.assert_array_equal(hT[0], a["h0"][0])
    np.testing.assert_array_equal(cT[0], a["c0"][0])
    np.testing.assert_array_equal(hT[1], y[T - 1, 1])
    np.testing.assert_array_equal(hT[2], y[1, 2])


@pytest.mark.parametrize("cell", CELLS)
def test_inference_mode_has_no_cache_and_backward_explains(cell):
    a = make(cell)
    y, hT, cache = forward(cell, a, inference=True)
    y2, _, cache2 = forward(cell, a)
    assert cache is None and cache2.nbytes > 0
    np.testing.assert_array_equal(y, y2)
    with pytest.raises(ValueError, match=r"inference=True"):
        backward(cell, np.ones_like(y), None, None)


def test_wrong_cache_rejected():
    a = make("rnn")
    _, _, cache = forward("rnn", a)
    with pytest.raises(TypeError, match=r"cache must come from the matching forward"):
        F.gru_backward(None, None, cache)
    with pytest.raises(TypeError, match=r"cache must come from the matching forward"):
        F.rnn_backward(None, None, {"not": "a cache"})


@pytest.mark.parametrize("cell", CELLS)
def test_backward_gradient_shapes_checked(cell):
    a = make(cell)
    y, hT, cache = forward(cell, a)
    with pytest.raises(ValueError, match=r"dy must have shape \(T, B, H\)"):
        backward(cell, np.ones((T, B, H + 1)), None, cache)
    with pytest.raises(ValueError, match=r"dhT must have shape \(B, H\)"):
        backward(cell, None, np.ones((B + 1, H)), cache)
    with pytest.raises(TypeError, match=r"dy has dtype float32"):
        backward(cell, np.ones((T, B, H), np.float32), None, cache)


def test_cache_is_independent_of_later_changes_to_outputs():
    """Changing y in place after forward (a common NumPy habit) must not corrupt backward."""
    a = make("lstm")
    y, hT, cache = forward("lstm", a)
    g1 = backward("lstm", np.ones_like(y), None, cache)
    y *= 0.0
    g2 = backward("lstm", np.ones_like(y), None, cache)
    for u, v in zip(g1, g2):
        if u is not None:
            np.testing.assert_array_equal(u, v)


def test_dbh_is_none_exactly_when_bh_is_none():
    a = make("gru")
    a_no = dict(a, bh=None)
    for args, expect_none in ((a, False), (a_no, True)):
        y, hT, cache = forward("gru", args)
        dbh = backward("gru", np.ones_like(y), None, cache)[-1]
        assert (dbh is None) == expect_none


def test_bad_options():
    a = make("rnn")
    with pytest.raises(ValueError, match=r"nonlinearity must be 'tanh' or 'relu'"):
        F.rnn_forward(a["x"], None, a["Wx"], a["Wh"], a["b"], nonlinearity="sigmoid")
    a = make("lstm")
    with pytest.raises(ValueError, match=r"gate_order must be a permutation of 'ifgo'"):
        F.lstm_forward(a["x"], None, None, a["Wx"], a["Wh"], a["b"], gate_order="iffo")


def test_gate_order_reads_permuted_columns_in_place():
    a = make("lstm")
    H4 = a["Wx"].shape[1]
    h = H4 // 4
    perm = np.r_[0:h, h:2 * h, 3 * h:4 * h, 2 * h:3 * h]  # ifgo -> ifog columns
    y_ref, hT_ref, cT_ref, _ = F.lstm_forward(a["x"], a["h0"], None, a["Wx"], a["Wh"], a["b"])
    y, hT, cT, _ = F.lstm_forward(a["x"], a["h0"], None, a["Wx"][:, perm], a["Wh"][:, perm],
                                  a["b"][perm], gate_order="ifog")
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-15)  # same maths, permuted storage


def test_threads_and_isa_controls():
    n = rnnkit.get_num_threads()
    try:
        rnnkit.set_num_threads(1)
        assert rnnkit.get_num_threads() == 1 and _core.blas_num_threads() == 1
    finally:
        rnnkit.set_num_threads(n)
    assert rnnkit.get_num_threads() == n
    with pytest.raises(ValueError, match=r"n must be >= 1"):
        rnnkit.set_num_threads(0)
    with pytest.raises(TypeError, match=r"n must be an int"):
        rnnkit.set_num_threads(1.5)
    assert "scalar" in rnnkit.supported_isas()
    with pytest.raises(ValueError, match=r"isa must be one of"):
        rnnkit.set_isa("sse9")
    unsupported = [i for i in ("avx2", "avx512") if i not in rnnkit.supported_isas()]
    for name in unsupported:
        with pytest.raises(ValueError, match=r"not supported"):
            rnnkit.set_isa(name)


def test_info_reports_openblas():
    info = rnnkit.info()
    assert info["version"] == rnnkit.__version__
    assert "OpenBLAS" in info["blas"]
    assert info["isa_active"] in info["isa_supported"]


# big enough (T*B*H*4H multiply-adds >= 2^22) for the pool to be used, in parent and child
POOL_SIZED = dict(T=40, B=32, I=8, H=64)


def _forward_in_child(queue):
    a = make("lstm", **POOL_SIZED)
    y, _, _ = forward("lstm", a)
    queue.put(float(np.abs(y).sum()))


def test_thread_pool_survives_fork():
    """A forked child (multiprocessing's default on Linux) has none of the parent's pool
    threads: its first parallel call must start its own pool, not wait forever."""
    import multiprocessing as mp

    n = rnnkit.get_num_threads()
    try:
        rnnkit.set_num_threads(2)
        a = make("lstm", **POOL_SIZED)
        want = float(np.abs(forward("lstm", a)[0]).sum())  # the parent's pool is running now
        ctx = mp.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_forward_in_child, args=(queue,))
        child.start()
        child.join(timeout=60)
        assert child.exitcode == 0, "child hung or crashed"
        assert queue.get(timeout=5) == want
    finally:
        rnnkit.set_num_threads(n)


_FORKED_CHILD_EXITS = """
import os, sys, time
import numpy as np
import rnnkit
from rnnkit import functional as F

rng = np.random.default_rng(0)
T, B, I, H = 40, 32, 8, 64  # big enough for the pool
rnnkit.set_num_threads(2)
F.lstm_forward(rng.standard_normal((T, B, I)), None, None, rng.standard_normal((I, 4 * H)),
               rng.standard_normal((H, 4 * H)) * 0.1, np.zeros(4 * H), inference=True)
pid = os.fork()
if pid == 0:
    sys.exit(0)  # a normal exit: runs the extension's static destructors
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        sys.exit(os.waitstatus_to_exitcode(status))
    time.sleep(0.05)
os.kill(pid, 9)
sys.exit("the forked child hung at exit")
"""


def test_forked_child_exits_without_touching_the_parents_pool():
    """At exit a forked child must not stop the pool it inherited: joining threads that do
    not exist in it, or destroying condition variables they waited on, hangs."""
    status, output = run_python(["-c", _FORKED_CHILD_EXITS])
    assert status == 0, output


# In a process whose address space has room for only a few thread stacks, a pool of 64
# threads cannot start. glibc sizes thread stacks by RLIMIT_STACK: at 64 MiB, 160 MiB of room
# holds 2 workers' stacks and leaves ~30 MiB for the computation.
_THREAD_LIMITED_CHILD = """
import resource, warnings
import numpy as np
import rnnkit
from rnnkit import functional as F

rng = np.random.default_rng(0)
# T*B*H*4H multiply-adds put the recurrence on the pool; I = 1 keeps the input projection
# under the parallel threshold, so OpenBLAS (which exits when it cannot map its buffer) runs
# on this thread only.
T, B, I, H = 50, 64, 1, 256
args = (rng.standard_normal((T, B, I)).astype(np.float32), None, None,
        (rng.standard_normal((I, 4 * H)) * 0.5).astype(np.float32),
        (rng.standard_normal((H, 4 * H)) * 0.05).astype(np.float32),
        (rng.standard_normal(4 * H) * 0.1).astype(np.float32))
rnnkit.set_num_threads(1)
want = F.lstm_forward(*args, inference=True)[0]
with open("/proc/self/status") as f:
    in_use = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
hard = resource.getrlimit(resource.RLIMIT_AS)[1]
resource.setrlimit(resource.RLIMIT_AS, (in_use + (160 << 20), hard))
rnnkit.set_num_threads(64)
for call in (1, 2):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = F.lstm_forward(*args, inference=True)[0]
    print("call", call, "max_error", float(np.abs(got - want).max()))
    for w in caught:
        print("call", call, w.category.__name__ + ":", w.message)
print("threads", rnnkit.get_num_threads(), rnnkit.info()["threads"])
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="needs glibc (thread stacks sized by RLIMIT_STACK) and /proc")
@pytest.mark.skipif(bool(__import__("os").environ.get("RNNKIT_SANITIZED")),
                    reason="the child limits its address space, which ASan's shadow memory needs")
def test_pool_runs_with_the_threads_it_could_start():
    """When the process's limits let only some threads start, the call runs on those, returns
    the right result, and one RuntimeWarning says how many of how many started and why
    (before: a hang in pthread_cond_destroy, or std::terminate)."""
    import re

    status, output = run_python(["-c", _THREAD_LIMITED_CHILD], shell_prefix="ulimit -s 65536 && ")
    assert status == 0, output
    threads = re.search(r"^threads (\d+) (\d+)$", output, re.M)
    assert threads, output
    started = int(threads[1])
    assert 1 <= started < 64 and int(threads[2]) == started, output
    for call in (1, 2):
        error = re.search(rf"^call {call} max_error (\S+)$", output, re.M)
        assert error and float(error[1]) <= 1e-6, output
    warnings = re.findall(r"^call (\d) (.*)$", output, re.M)
    warnings = [(call, text) for call, text in warnings if not text.startswith("max_error")]
    assert len(warnings) == 1 and warnings[0][0] == "1", output  # once, when the pool started
    text = warnings[0][1]
    assert text.startswith(f"RuntimeWarning: rnnkit could start only {started} of the 64 "), output
    assert "Resource temporarily unavailable" in text, output


def test_results_do_not_depend_on_threads():
    """Rows are split across threads and big GEMMs into row/column panels. OpenBLAS may take
    a different edge kernel for a narrower panel, which reorders a few float64 sums:
    differences stay at rounding level (a few ulp of O(1..100) values, so 1e-12 absolute)."""
    n = rnnkit.get_num_threads()
    a = make("gru", T=20, B=40, I=64, H=65)  # big enough for the row split and GEMM panels
    try:
        outs = []
        for threads in (1, 2, 3):
            rnnkit.set_num_threads(threads)
            y, hT, cache = forward("gru", a)
            outs.append((y, hT) + tuple(backward("gru", np.ones_like(y), None, cache)))
        for other in outs[1:]:
            for u, v in zip(outs[0], other):
                np.testing.assert_allclose(u, v, rtol=0, atol=1e-12)
    finally:
        rnnkit.set_num_threads(n)


def _forward_backward(cell, a, kw, dy, dhT, dcT):
    """Every output of the cell's forward and backward with every optional array given."""
    if cell == "lstm":
        y, hT, cT, cache = F.lstm_forward(a["x"], a["h0"], a["c0"], a["Wx"], a["Wh"], a["b"],
                                          a["bh"], **kw)
        return (y, hT, cT) + F.lstm_backward(dy, dhT, dcT, cache)
    fwd, bwd = (F.rnn_forward, F.rnn_backward) if cell == "rnn" else (F.gru_forward, F.gru_backward)
    y, hT, cache = fwd(a["x"], a["h0"], a["Wx"], a["Wh"], a["b"], a["bh"], **kw)
    return (y, hT) + bwd(dy, dhT, cache)


def _read_only(a):
    a = np.array(a)
    a.setflags(write=False)
    return a


def _one_row_broadcast(a):
    """A read-only zero-stride view (np.broadcast_to) repeating a's first row along axis 0."""
    return np.broadcast_to(a[:1], a.shape)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("segment", [None, 2])
@pytest.mark.parametrize("view", [_read_only, _one_row_broadcast])
def test_read_only_inputs_give_the_same_result(cell, segment, view):
    """np.load(mmap_mode="r"), np.frombuffer and np.broadcast_to give read-only arrays: every
    array argument of forward and backward must accept them (the kernel only reads inputs)."""
    rng = np.random.default_rng(4)
    a = make(cell)
    a["c0"] = rng.standard_normal((B, H))
    arrays = dict(a, dy=rng.standard_normal((T, B, H)), dhT=rng.standard_normal((B, H)),
                  dcT=rng.standard_normal((B, H)), recurrent_mask=rng.random((B, H)) + 0.5,
                  lengths=np.array([T, 2, 3], dtype=np.int64))
    views = {k: view(v) for k, v in arrays.items()}
    assert not any(v.flags.writeable for v in views.values())
    if view is _one_row_broadcast:
        assert views["h0"].strides[0] == 0
    # the reference: writeable contiguous copies of the same values
    ref = {k: np.array(v) for k, v in views.items()}

    def run(d):
        kw = dict(lengths=d["lengths"], recurrent_mask=d["recurrent_mask"], segment=segment)
        return _forward_backward(cell, d, kw, d["dy"], d["dhT"], d["dcT"] if cell == "lstm" else None)

    got, want = run(views), run(ref)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        if w is None:
            assert g is None
        else:
            np.testing.assert_array_equal(g, w)
    for k, v in views.items():  # the inputs are untouched
        np.testing.assert_array_equal(v, ref[k])


def test_core_accepts_read_only_inputs_and_names_an_unwriteable_output():
    """The binding itself: read-only inputs pass straight to the kernel (no copy in between),
    an in-place output that is read-only is named."""
    a = make("gru")
    ro = {k: _read_only(v) for k, v in a.items()}
    y, hT, _, handle = _core.forward("gru", ro["x"], ro["h0"], None, ro["Wx"], ro["Wh"], ro["b"],
                                     ro["bh"], None, False, None, True, [0, 1, 2], True)
    y_ref, hT_ref, _ = F.gru_forward(a["x"], a["h0"], a["Wx"], a["Wh"], a["b"], a["bh"])
    np.testing.assert_array_equal(y, y_ref)
    grads = _core.backward(handle, _read_only(np.ones_like(y)), None, None)
    assert grads[0].shape == a["x"].shape
    ids, dout = _read_only(np.array([0, 2, 2])), _read_only(np.ones((3, 4)))
    dW = np.zeros((3, 4))
    _core.embedding_backward(ids, dout, dW, -1)
    np.testing.assert_array_equal(dW, [[1] * 4, [0] * 4, [2] * 4])
    with pytest.raises(ValueError, match=r"dW must be writeable"):
        _core.embedding_backward(ids, dout, _read_only(dW), -1)


@pytest.mark.parametrize("cell", CELLS)
def test_edited_or_foreign_cache_is_named(cell):
    """Caches are opaque, but an edited or foreign one must give a TypeError/ValueError naming
    cache and what was expected - never AttributeError, pybind11's 'Unable to cast' or a crash."""
    import dataclasses

    a = make(cell)
    a["c0"] = a["h0"] * 0.5
    y, hT, cache = forward(cell, a, lengths=np.array([T, 1, 2]))
    _, _, cache32 = forward(cell, {k: v.astype(np.float32) for k, v in a.items()})
    other_cell = "gru" if cell == "lstm" else "lstm"
    _, _, other_cell_cache = forward(other_cell, make(other_cell))
    _, _, longer = forward(cell, {**a, "x": np.zeros((T + 1, B, I))})
    edits = [
        (dict(handles=None), TypeError,
         r"cache\.handles must be the tuple of ForwardHandles a training forward returns, got NoneType"),
        (dict(handles=(object(),)), TypeError, r"cache\.handles must be the tuple .* got tuple"),
        (dict(handles=()), TypeError, r"cache\.handles must be the tuple .* got tuple"),
        (dict(handles=list(cache.handles)), TypeError, r"cache\.handles must be the tuple .* got list"),
        (dict(handles=other_cell_cache.handles), ValueError,
         rf"cache\.cell is '{cache.cell}' but cache\.handles come from a {other_cell} forward"),
        (dict(handles=cache.handles + cache32.handles, spans=((0, T), (T, 2 * T))), ValueError,
         r"cache\.handles come from different forwards \(dtype or \(B, I, H\) differ: float64"),
        (dict(handles=longer.handles), ValueError,
         rf"cache\.spans \(\(0, {T}\),\) do not tile \[0, {T}\) with the handles' lengths \[{T + 1}\]"),
        (dict(spans=None), ValueError, r"cache\.spans must be a \(first, end\) pair per handle, got None"),
        (dict(spans=((1, T + 1),)), ValueError, r"cache\.spans .* do not tile"),
    ]
    if cell == "rnn":  # the other nonlinearity: named as a cell mismatch
        edits.append((dict(cell="rnn_relu"), ValueError,
                      r"cache\.cell is 'rnn_relu' but cache\.handles come from a rnn_tanh forward"))
    dy = np.ones_like(y)
    for edit, err, pattern in edits:
        with pytest.raises(err, match=pattern):
            backward(cell, dy, None, dataclasses.replace(cache, **edit))
    # the untouched cache still works
    assert backward(cell, dy, None, cache)[0].shape == a["x"].shape
    # a cache of another cell, of another kind, or no cache object at all
    other = "gru" if cell == "lstm" else "lstm"
    _, _, other_cache = forward(other, make(other))
    want = {"rnn": "rnn_tanh/rnn_relu", "lstm": "lstm", "gru": "gru"}[cell]
    for foreign, kind in ((other_cache, other), (object(), "object"), ((cache.cell, cache.handles), "tuple")):
        pattern = rf"cache must come from the matching forward \({want}\), got {kind}"
        with pytest.raises(TypeError, match=pattern):
            backward(cell, dy, None, foreign)


def test_edited_segmented_cache_is_named():
    import dataclasses

    a = make("lstm")
    y, _, cache = forward("lstm", a, segment=2)
    assert cache.segmented and len(cache.handles) == 2
    with pytest.raises(ValueError, match=r"cache\.spans \(\(2, 4\), \(0, 2\)\) do not tile|"
                                         r"cache\.spans must be"):
        backward("lstm", np.ones_like(y), None, dataclasses.replace(cache, spans=((0, 2),)))
    with pytest.raises(TypeError, match=r"cache\.handles must be"):
        backward("lstm", np.ones_like(y), None, dataclasses.replace(cache, handles=(cache.handles[0], None)))
    with pytest.raises(ValueError, match=r"cache\.spans \(\(0, 2\), \(1, 3\)\) do not tile"):
        backward("lstm", np.ones_like(y), None, dataclasses.replace(cache, spans=((0, 2), (1, 3))))
    with pytest.raises(TypeError, match=r"cache must come from the matching forward \(gru\), got lstm"):
        F.gru_backward(np.ones_like(y), None, cache)


_REPORT_ISA = "import warnings; warnings.simplefilter('always'); import rnnkit; print('isa', rnnkit.get_isa())"


@pytest.mark.parametrize("value", ["SCALAR", "Scalar", "scalar"])
def test_isa_environment_override_in_any_case(value, monkeypatch):
    monkeypatch.setenv("RNNKIT_ISA", value)
    status, output = run_python(["-c", _REPORT_ISA])
    assert status == 0, output
    assert "isa scalar" in output and "RuntimeWarning" not in output


def test_unknown_isa_environment_value_warns_and_keeps_the_best(monkeypatch):
    monkeypatch.setenv("RNNKIT_ISA", "bogus")
    status, output = run_python(["-c", _REPORT_ISA])
    assert status == 0, output
    best = rnnkit.supported_isas()[-1]
    assert f"isa {best}" in output
    assert "RuntimeWarning" in output and "RNNKIT_ISA='bogus' is not one of scalar, avx2, avx512" in output


def test_unsupported_isa_environment_value_warns_and_falls_back(monkeypatch):
    missing = [isa for isa in ("avx2", "avx512") if isa not in rnnkit.supported_isas()]
    if not missing:
        pytest.skip("this CPU and build support every ISA")
    monkeypatch.setenv("RNNKIT_ISA", missing[-1].upper())
    status, output = run_python(["-c", _REPORT_ISA])
    assert status == 0, output
    assert f"isa {rnnkit.supported_isas()[-1]}" in output and "is not supported by this CPU" in output


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_non_finite_padding_never_reaches_the_gradients(cell):
    """Padded steps may hold anything (NaN, inf): outputs and every gradient equal those of the
    same batch padded with zeros."""
    rng = np.random.default_rng(3)
    T, B, I, H = 5, 3, 4, 6
    G = GATES[cell]
    lengths = np.array([5, 2, 0])
    x = rng.standard_normal((T, B, I))
    x[2:, 1] = 0.0
    x[:, 2] = 0.0
    dirty = x.copy()
    dirty[2:, 1] = np.nan
    dirty[:, 2] = np.inf
    Wx, Wh = rng.standard_normal((I, G * H)) * 0.3, rng.standard_normal((H, G * H)) * 0.3
    b, bh = rng.standard_normal(G * H) * 0.1, rng.standard_normal(G * H) * 0.1
    dy = rng.standard_normal((T, B, H))
    forward, backward = getattr(F, cell + "_forward"), getattr(F, cell + "_backward")
    states = (None, None) if cell == "lstm" else (None,)
    clean_out = forward(x, *states, Wx, Wh, b, bh, lengths=lengths)
    dirty_out = forward(dirty, *states, Wx, Wh, b, bh, lengths=lengths)
    np.testing.assert_array_equal(dirty_out[0], clean_out[0])
    grads = [backward(dy, *states, out[-1]) for out in (clean_out, dirty_out)]
    for clean, got in zip(*grads):
        if clean is not None:
            assert np.all(np.isfinite(got))
            np.testing.assert_array_equal(got, clean)


def test_projection_and_peephole_arguments_are_checked():
    """Wr (H, P) sets the widths of h, y and Wh's rows; peepholes are (3, H); each mismatch
    names the argument and the expected shape."""
    T_, B_, I_, H_, P_ = 3, 2, 4, 5, 2
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T_, B_, I_))
    Wx, b = rng.standard_normal((I_, 4 * H_)), np.zeros(4 * H_)
    Wh, Wr = rng.standard_normal((P_, 4 * H_)), rng.standard_normal((H_, P_))
    y, hT, cT, _ = F.lstm_forward(x, None, None, Wx, Wh, b, Wr=Wr)
    assert y.shape == (T_, B_, P_) and hT.shape == (B_, P_) and cT.shape == (B_, H_)
    with pytest.raises(ValueError, match=r"Wh .*\(P, 4\*H\) with \(H, P\) = Wr.shape"):
        F.lstm_forward(x, None, None, Wx, rng.standard_normal((H_, 4 * H_)), b, Wr=Wr)
    with pytest.raises(ValueError, match=r"h0 .*\(B, P\)"):
        F.lstm_forward(x, np.zeros((B_, H_)), None, Wx, Wh, b, Wr=Wr)
    with pytest.raises(ValueError, match=r"peepholes must be 2-D"):
        F.lstm_forward(x, None, None, Wx, Wh, b, Wr=Wr, peepholes=np.zeros(3 * H_))
    with pytest.raises(ValueError, match=r"peepholes .*\(3, H\)"):
        F.lstm_forward(x, None, None, Wx, Wh, b, Wr=Wr, peepholes=np.zeros((3, H_ + 1)))
    with pytest.raises(ValueError, match=r"dy .*\(T, B, P\)"):
        _, _, _, cache = F.lstm_forward(x, None, None, Wx, Wh, b, Wr=Wr)
        F.lstm_backward(np.zeros((T_, B_, H_)), None, None, cache)
    grads = F.lstm_backward(None, np.ones((B_, P_)), None,
                            F.lstm_forward(x, None, None, Wx, Wh, b, Wr=Wr)[3])
    assert len(grads) == 9 and grads[7].shape == (H_, P_) and grads[8] is None
