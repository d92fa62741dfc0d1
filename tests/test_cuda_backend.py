"""The CUDA backend without and with a GPU.

Everywhere: the CUDA backend's time loops and kernels run on the host (rnnkit._cuda_emulation,
tests/emulated_device.py) against the reference and the CPU backend beyond test_parity.py's
grid (empty and long shapes, gate orders, recurrent masks, non-finite input and padding);
the backend is chosen by where arrays live and mixing raises; the CPU package never imports
CuPy or the CUDA module; `rnnkit info` reports CUDA support. With a GPU (tests/cuda_support.py): CuPy
results, streams, and the two directions of a layer overlapping."""
from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from rnnkit import _device
from rnnkit import functional as F
from rnnkit import reference as ref

import emulated_device as E
import cuda_support as gpu
from child_process import run_python
from compare import scaled_error
from conftest import ALL_VARIANTS

requires_emulation = pytest.mark.skipif(E.BACKEND is None, reason="built without RNNKIT_CUDA_EMULATION")
TOL = 1e-12


def _moved(d, move):
    return {k: None if v is None else move(v) for k, v in d.items()}


def _run(harness, cell, inputs, douts, *, device=False, **kwargs):
    """Forward and backward: device=None the reference, False rnnkit.functional on the host
    arrays, True on the emulated device (results brought back to NumPy)."""
    impl = F if device is not None else ref
    if device:
        inputs, douts = _moved(inputs, E.to_device), _moved(douts, E.to_device)
    outs, cache = harness.forward(impl, cell, inputs, **kwargs)
    grads = harness.backward(impl, cell, cache, douts)
    if device:
        assert {h.backend for h in cache.handles} == {"cuda_emulated"}
        assert all(isinstance(v, E.EmulatedArray) for v in outs.values())
        assert all(isinstance(v, E.EmulatedArray) for v in grads.values() if v is not None)
    return _moved(outs, np.asarray), _moved(grads, np.asarray)


def _assert_close(got, want, tol, what):
    for part_got, part_want in zip(got, want):
        for k in part_want:
            if part_want[k] is None:
                assert part_got[k] is None, f"{what}: {k}"
                continue
            err = scaled_error(part_got[k], part_want[k])
            assert err <= tol, f"{what}: {k} differs by {err:.2e}"


@requires_emulation
@pytest.mark.parametrize("T_,B_", [(0, 3), (4, 0), (1, 1), (40, 9)], ids=["T0", "B0", "T1B1", "T40B9"])
@pytest.mark.parametrize("cell", ALL_VARIANTS)
def test_emulated_other_shapes_match_reference(harness, cell, T_, B_):
    H = 9
    rng = np.random.default_rng(T_ * 100 + B_)
    lengths = rng.integers(0, T_ + 1, size=B_)
    inputs = harness.make_inputs(cell, T_, B_, 7, H, seed=10 + T_)
    douts = harness.make_output_grads(cell, T_, B_, H, seed=20 + T_)
    for reverse in (False, True):
        want = _run(harness, cell, inputs, douts, device=None, lengths=lengths, reverse=reverse)
        got = _run(harness, cell, inputs, douts, device=True, lengths=lengths, reverse=reverse)
        _assert_close(got, want, TOL, f"{cell} T={T_} B={B_} reverse={reverse}")


@requires_emulation
@pytest.mark.parametrize("cell", ALL_VARIANTS)
def test_emulated_recurrent_mask_matches_cpu(harness, cell):
    """Variational recurrent dropout, with lengths and reverse: the emulated CUDA loops against
    the CPU backend (whose mask handling test_recurrent_mask.py checks against the reference)."""
    T_, B_, H = 6, 5, 7
    inputs = harness.make_inputs(cell, T_, B_, 4, H, seed=31)
    douts = harness.make_output_grads(cell, T_, B_, H, seed=32)
    S = harness.state_width(cell, H)
    mask = (np.random.default_rng(33).random((B_, S)) > 0.3) / 0.7
    lengths = np.array([6, 2, 0, 5, 6])
    for reverse in (False, True):
        kw = dict(lengths=lengths, reverse=reverse, recurrent_mask=mask)
        outs, cache = harness.forward(F, cell, inputs, **kw)
        want = outs, harness.backward(F, cell, cache, douts)
        kw["recurrent_mask"] = E.to_device(mask)
        got = _run(harness, cell, inputs, douts, device=True, **kw)
        _assert_close(got, want, TOL, f"{cell} mask reverse={reverse}")


@requires_emulation
@pytest.mark.parametrize("cell,order", [("lstm", "ifog"), ("lstm_peepholes", "oigf"), ("gru", "nzr"),
                                        ("gru_cho", "zrn"), ("gru_cho", "nzr")])
def test_emulated_gate_orders_match_cpu(harness, cell, order):
    inputs = harness.make_inputs(cell, 5, 3, 4, 6, seed=41)
    douts = harness.make_output_grads(cell, 5, 3, 6, seed=42)
    kw = dict(lengths=np.array([5, 3, 1]), gate_order=order)
    outs, cache = harness.forward(F, cell, inputs, **kw)
    want = outs, harness.backward(F, cell, cache, douts)
    got = _run(harness, cell, inputs, douts, device=True, **kw)
    _assert_close(got, want, TOL, f"{cell} {order}")


@requires_emulation
def test_emulated_gru_cho_rejects_split_rz_blocks(harness):
    inputs = _moved(harness.make_inputs("gru_cho", 3, 2, 4, 5), E.to_device)
    with pytest.raises(ValueError, match="adjacent"):
        harness.forward(F, "gru_cho", inputs, gate_order="rnz")


@requires_emulation
@pytest.mark.parametrize("cell", ALL_VARIANTS)
def test_emulated_nonfinite_rows_and_padding_stay_put(harness, cell):
    """NaN in one sequence stays in that sequence; NaN and inf in the padding reach nothing;
    inference gives the training forward's outputs."""
    T_, B_, H = 5, 3, 6
    inputs = harness.make_inputs(cell, T_, B_, 4, H, seed=51)
    lengths = np.array([5, 3, 2])
    x = inputs["x"].copy()
    x[1, 0, 2] = np.nan      # a valid step of row 0
    x[3:, 1] = np.inf        # padding of row 1
    x[2:, 2] = np.nan        # padding of row 2
    inputs["x"] = x
    douts = harness.make_output_grads(cell, T_, B_, H, seed=52)
    (outs, grads) = _run(harness, cell, inputs, douts, device=True, lengths=lengths)
    assert np.isnan(outs["y"][1:, 0]).any()
    for k, v in list(outs.items()) + list(grads.items()):
        if v is None or k in ("x",):
            continue
        if v.ndim == 3:  # per position: rows 1 and 2 stay finite
            assert np.all(np.isfinite(v[:, 1:])), k
        elif k in ("hT", "cT", "h0", "c0"):
            assert np.all(np.isfinite(v[1:])), k
    assert np.all(grads["x"][3:, 1] == 0) and np.all(grads["x"][2:, 2] == 0)
    dev_inputs = _moved(inputs, E.to_device)
    inf_outs, cache = harness.forward(F, cell, dev_inputs, lengths=lengths, inference=True)
    assert cache is None
    for k in outs:
        np.testing.assert_array_equal(np.asarray(inf_outs[k]), outs[k])


@requires_emulation
def test_emulated_noncontiguous_device_input_is_copied(harness):
    inputs = harness.make_inputs("lstm", 4, 3, 5, 6, seed=61)
    want, _ = harness.forward(F, "lstm", inputs)
    wide = E.to_device(np.concatenate([inputs["Wx"], inputs["Wx"]], axis=1))
    dev = _moved(inputs, E.to_device)
    dev["Wx"] = wide[:, : inputs["Wx"].shape[1]]
    assert not dev["Wx"].flags.c_contiguous
    got, _ = harness.forward(F, "lstm", dev)
    for k in want:
        assert scaled_error(np.asarray(got[k]), want[k]) <= TOL


# ----------------------------------------------------------------------------- dispatch, errors

@requires_emulation
def test_mixing_host_and_device_arrays_raises(harness):
    inputs = harness.make_inputs("gru", 3, 2, 4, 5)
    mixed = dict(inputs, x=E.to_device(inputs["x"]), bh=E.to_device(inputs["bh"]))
    with pytest.raises(TypeError, match=r"x, bh are on the emulated device; .*Wx, Wh, b are on the host"):
        harness.forward(F, "gru", mixed)
    douts = harness.make_output_grads("gru", 3, 2, 5)
    _, cache = harness.forward(F, "gru", _moved(inputs, E.to_device))
    with pytest.raises(TypeError, match="dy must be on the emulated device"):
        harness.backward(F, "gru", cache, douts)  # host gradients for a device forward
    _, host_cache = harness.forward(F, "gru", inputs)
    with pytest.raises(TypeError, match="gradients are device arrays but the forward ran on host"):
        harness.backward(F, "gru", host_cache, _moved(douts, E.to_device))


@requires_emulation
def test_device_dtype_and_shape_errors(harness):
    dev = _moved(harness.make_inputs("lstm", 3, 2, 4, 5), E.to_device)
    with pytest.raises(TypeError, match="Wh has dtype float32 but x has float64"):
        harness.forward(F, "lstm", dict(dev, Wh=dev["Wh"].astype(np.float32)))
    with pytest.raises(ValueError, match=r"h0 must have shape \(B, H\)"):
        harness.forward(F, "lstm", dict(dev, h0=dev["h0"][:1]))


@requires_emulation
def test_device_bindings_check_arrays_themselves():
    """The compiled module checks what Python already checked: it trusts no pointer."""
    m = E._cuda_emulation
    f64 = np.zeros
    args = dict(cell="rnn_tanh", x=f64((2, 3, 4)), h0=None, c0=None, Wx=f64((4, 5)), Wh=f64((5, 5)),
                b=f64(5), bh=None, lengths=None, reverse=False, recurrent_mask=None,
                linear_before_reset=True, gate_block=[], training=True, Wr=None, peepholes=None,
                y=f64((2, 3, 5)), hT=f64((3, 5)), cT=None, device=0, stream=0)
    assert m.forward(**args).backend == "cuda_emulated"
    with pytest.raises(ValueError, match=r"Wx must have shape \(4, 5\), got \(5, 5\)"):
        m.forward(**dict(args, Wx=f64((5, 5))))
    with pytest.raises(TypeError, match="b must have dtype float64"):
        m.forward(**dict(args, b=np.zeros(5, np.float32)))
    with pytest.raises(ValueError, match="y must be C-contiguous"):
        m.forward(**dict(args, y=f64((2, 5, 3)).transpose(0, 2, 1)))
    with pytest.raises(ValueError, match="hT must be writeable"):
        ro = f64((3, 5))
        ro.flags.writeable = False
        m.forward(**dict(args, hT=ro))
    with pytest.raises(ValueError, match=r"lengths\[1\] = 7 is outside"):
        m.forward(**dict(args, lengths=np.array([1, 7, 0])))
    with pytest.raises(TypeError, match="x must be a NumPy array"):
        m.forward(**dict(args, x=[[[0.0]]]))


def test_cpu_import_does_not_load_cuda_or_cupy():
    code = ("import sys, numpy as np, rnnkit; from rnnkit import functional as F\n"
            "F.rnn_forward(np.zeros((2, 1, 3)), None, np.zeros((3, 4)), np.zeros((4, 4)), np.zeros(4))\n"
            "print(sorted(m for m in sys.modules if m == 'cupy' or m.startswith('rnnkit._cuda')))")
    status, out = run_python(["-c", code])
    assert status == 0, out
    assert out.strip().splitlines()[-1] == "[]"


def test_device_array_without_cuda_build_says_how_to_build(monkeypatch, harness):
    class FakeDeviceArray:  # any object exposing the CUDA array interface counts as device memory
        __cuda_array_interface__ = {}

    monkeypatch.setattr(_device, "_cuda_backend", None)
    monkeypatch.setattr(_device, "cuda_module", lambda: None)
    inputs = harness.make_inputs("rnn_tanh", 2, 1, 3, 4)
    with pytest.raises(ImportError, match="RNNKIT_CUDA=ON"):
        harness.forward(F, "rnn_tanh", dict(inputs, x=FakeDeviceArray()))


def test_info_reports_cuda(capsys):
    info = rnnkit.cuda_info()
    assert set(info) == {"built", "error", "device_count", "device_error", "devices", "build"}
    if info["built"] and info["device_count"] == 0:  # a CUDA build on a machine without a GPU
        assert info["device_error"], "the runtime's reason should be reported"
    if not info["built"]:
        assert info["device_count"] == 0 and info["devices"] == []
    from rnnkit.cli import main

    assert main(["info"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("CUDA "))
    assert ("not built" in line) != info["built"]


def test_gpu_tests_skip_cleanly_without_gpu():
    """tests/cuda_support.py gives a reason whenever the CUDA backend cannot run; it never raises."""
    reason = gpu.why_not()
    assert isinstance(reason, str)
    if reason:
        assert not gpu.available()
        assert "cuda" not in __import__("test_parity").BACKENDS


# ----------------------------------------------------------------------------- on a GPU

@gpu.requires_gpu
@pytest.mark.parametrize("cell", ALL_VARIANTS)
def test_cuda_results_stay_on_device_and_match_cpu(harness, cell):
    cp = gpu.cupy()
    T_, B_, H = 7, 5, 33
    inputs = harness.make_inputs(cell, T_, B_, 9, H, seed=71)
    douts = harness.make_output_grads(cell, T_, B_, H, seed=72)
    lengths = np.array([7, 3, 0, 6, 7])
    outs, cache = harness.forward(F, cell, inputs, lengths=lengths, reverse=True)
    want = outs, harness.backward(F, cell, cache, douts)
    d_outs, d_cache = harness.forward(F, cell, _moved(inputs, cp.asarray), lengths=cp.asarray(lengths),
                                      reverse=True)
    d_grads = harness.backward(F, cell, d_cache, _moved(douts, cp.asarray))
    assert all(isinstance(v, cp.ndarray) for v in d_outs.values())
    assert all(isinstance(v, cp.ndarray) for v in d_grads.values() if v is not None)
    assert d_cache.handles[0].backend == "cuda" and d_cache.nbytes > 0
    _assert_close((_moved(d_outs, cp.asnumpy), _moved(d_grads, cp.asnumpy)), want, TOL, cell)


@gpu.requires_gpu
def test_cuda_two_directions_on_two_streams_match_host(harness):
    """The two directions of a layer issued under two CuPy streams (they run on the backend's
    two internal streams and may overlap), training forward and backward, with lengths: the
    results of the CPU backend."""
    cp = gpu.cupy()
    T_, B_, H = 50, 64, 128
    inputs = harness.make_inputs("lstm", T_, B_, 32, H, seed=81)
    douts = harness.make_output_grads("lstm", T_, B_, H, seed=82)
    lengths = np.random.default_rng(83).integers(0, T_ + 1, size=B_)
    want = []
    for r in (False, True):
        outs, cache = harness.forward(F, "lstm", inputs, lengths=lengths, reverse=r)
        want.append((outs, harness.backward(F, "lstm", cache, douts)))
    dev, ddev = _moved(inputs, cp.asarray), _moved(douts, cp.asarray)
    cp.cuda.Device().synchronize()  # the copies ran on the default stream; the streams below do not wait for it
    streams = [cp.cuda.Stream(non_blocking=True) for _ in range(2)]
    got = []
    for r, stream in zip((False, True), streams):
        with stream:
            outs, cache = harness.forward(F, "lstm", dev, lengths=lengths, reverse=r)
            got.append((outs, harness.backward(F, "lstm", cache, ddev)))
    for stream in streams:
        stream.synchronize()
    for g, w in zip(got, want):
        _assert_close((_moved(g[0], cp.asnumpy), _moved(g[1], cp.asnumpy)), w, TOL, "two streams")


@gpu.requires_gpu
def test_cuda_mixing_raises(harness):
    cp = gpu.cupy()
    inputs = harness.make_inputs("rnn_tanh", 3, 2, 4, 5)
    with pytest.raises(TypeError, match="on the CUDA device"):
        harness.forward(F, "rnn_tanh", dict(inputs, Wh=cp.asarray(inputs["Wh"])))
