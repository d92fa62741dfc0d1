"""Memory for recomputation: functional forwards with ``segment=k`` keep only the states entering
each k-step segment and recompute the rest in backward. Results must equal the plain run, on
the host and on a device backend (the CUDA backend's algorithm on the host, and CUDA itself
where a GPU is visible)."""
import numpy as np
import pytest

from rnnkit import functional as F
import cuda_support as gpu
import emulated_device as E
from conftest import ALL_VARIANTS

T, B, I, H = 11, 3, 4, 5


@pytest.mark.parametrize("cell", ALL_VARIANTS)
@pytest.mark.parametrize("segment", [1, 3, 4, 11, 50])
@pytest.mark.parametrize("lengths, reverse", [(None, False), ([11, 6, 0], False), (None, True)])
def test_segmented_equals_plain(harness, cell, segment, lengths, reverse):
    inputs = harness.make_inputs(cell, T, B, I, H)
    douts = harness.make_output_grads(cell, T, B, H)
    lengths = None if lengths is None else np.array(lengths)
    mask = (np.random.default_rng(3).random((B, harness.state_width(cell, H))) > 0.3) / 0.7
    kw = dict(lengths=lengths, reverse=reverse, recurrent_mask=mask)
    outs, cache = harness.forward(F, cell, inputs, **kw)
    seg_outs, seg_cache = harness.forward(F, cell, inputs, segment=segment, **kw)
    # Each segment runs the same kernels on the same values, so the forward is bit-identical;
    # backward sums the weight gradients segment by segment instead of in one GEMM over all
    # steps, which reorders float64 additions: rounding-level differences (1e-12 absolute on
    # O(1-10) gradients).
    for k in outs:
        np.testing.assert_array_equal(seg_outs[k], outs[k])
    grads = harness.backward(F, cell, cache, douts)
    seg_grads = harness.backward(F, cell, seg_cache, douts)
    for k, g in grads.items():
        if g is None:
            assert seg_grads[k] is None
        else:
            np.testing.assert_allclose(seg_grads[k], g, rtol=0, atol=1e-12, err_msg=k)
    assert seg_cache.nbytes <= cache.nbytes
    if 1 < segment < T:  # one state per segment instead of the whole reserve
        assert seg_cache.nbytes < cache.nbytes


def test_segment_arguments_checked(harness):
    inputs = harness.make_inputs("lstm", T, B, I, H)
    for bad in (0, -2, 2.5, True):
        with pytest.raises(ValueError, match=r"segment must be a positive int"):
            harness.forward(F, "lstm", inputs, segment=bad)
    with pytest.raises(ValueError, match=r"segment with reverse=True needs full-length"):
        harness.forward(F, "lstm", inputs, segment=3, reverse=True, lengths=np.array([11, 5, 2]))
    # inference keeps nothing anyway: segment is accepted and changes nothing
    plain, _ = harness.forward(F, "lstm", inputs, inference=True)
    seg, cache = harness.forward(F, "lstm", inputs, inference=True, segment=3)
    assert cache is None
    np.testing.assert_array_equal(plain["y"], seg["y"])


DEVICES = {}  # name -> (to the device, back to NumPy)
if E.BACKEND is not None:
    DEVICES["cuda_emulated"] = (E.to_device, np.asarray)
DEVICE_PARAMS = [pytest.param("cuda_emulated", id="cuda_emulated",
                              marks=pytest.mark.skipif(E.BACKEND is None, reason="no emulation build")),
                 pytest.param("cuda", id="cuda", marks=gpu.requires_gpu)]


def _moved(d, move):
    return {k: None if v is None else move(v) for k, v in d.items()}


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("cell", ALL_VARIANTS)
@pytest.mark.parametrize("segment", [1, 4, 11])
@pytest.mark.parametrize("lengths, reverse", [(None, False), ([11, 6, 0], False), (None, True)])
def test_segmented_on_device_equals_plain_device_and_host(harness, device, cell, segment, lengths,
                                                          reverse):
    """segment= on device arrays: each segment's outputs come from an inference forward and
    backward reruns the segment's training forward, so the results are those of the plain
    device run (forward: the same kernels on the same values, bit for bit; gradients summed
    segment by segment: float64 rounding) and of the host run (the CPU backend vs the CUDA
    algorithm: test_cuda_backend.py's 1e-12 scaled bound)."""
    if device == "cuda":
        cp = gpu.cupy()
        to_dev, to_host = cp.asarray, cp.asnumpy
    else:
        to_dev, to_host = DEVICES[device]
    inputs = harness.make_inputs(cell, T, B, I, H)
    douts = harness.make_output_grads(cell, T, B, H)
    lengths = None if lengths is None else np.array(lengths)
    mask = (np.random.default_rng(3).random((B, harness.state_width(cell, H))) > 0.3) / 0.7
    kw = dict(lengths=lengths, reverse=reverse)
    host_outs, host_cache = harness.forward(F, cell, inputs, recurrent_mask=mask, **kw)
    host_grads = harness.backward(F, cell, host_cache, douts)
    dev_in, dev_douts = _moved(inputs, to_dev), _moved(douts, to_dev)
    kw["recurrent_mask"] = to_dev(mask)
    outs, cache = harness.forward(F, cell, dev_in, **kw)
    seg_outs, seg_cache = harness.forward(F, cell, dev_in, segment=segment, **kw)
    assert len(seg_cache.handles) == -(-T // segment)
    assert {h.backend for h in seg_cache.handles} == {device}
    for k in outs:
        assert type(seg_outs[k]) is type(outs[k])
        if device == "cuda_emulated":  # the same loops on the same values
            np.testing.assert_array_equal(to_host(seg_outs[k]), to_host(outs[k]))
        np.testing.assert_allclose(to_host(seg_outs[k]), host_outs[k], rtol=0, atol=1e-12, err_msg=k)
    grads = harness.backward(F, cell, cache, dev_douts)
    seg_grads = harness.backward(F, cell, seg_cache, dev_douts)
    for k, g in grads.items():
        if g is None:
            assert seg_grads[k] is None and host_grads[k] is None
            continue
        assert type(seg_grads[k]) is type(g), k
        np.testing.assert_allclose(to_host(seg_grads[k]), to_host(g), rtol=0, atol=1e-12, err_msg=k)
        np.testing.assert_allclose(to_host(seg_grads[k]), host_grads[k], rtol=0, atol=1e-12, err_msg=k)
    if 1 < segment < T:  # the states entering each segment instead of the whole reserve
        assert seg_cache.nbytes < cache.nbytes


@pytest.mark.skipif(E.BACKEND is None, reason="no emulation build")
def test_segment_arguments_checked_on_device(harness):
    inputs = _moved(harness.make_inputs("gru", T, B, I, H), E.to_device)
    with pytest.raises(ValueError, match=r"segment must be a positive int"):
        harness.forward(F, "gru", inputs, segment=0)
    with pytest.raises(ValueError, match=r"segment with reverse=True needs full-length"):
        harness.forward(F, "gru", inputs, segment=3, reverse=True, lengths=np.array([11, 5, 2]))
    _, cache = harness.forward(F, "gru", inputs, segment=3)
    with pytest.raises(TypeError, match="dy must be on the emulated device"):
        harness.backward(F, "gru", cache, harness.make_output_grads("gru", T, B, H))
