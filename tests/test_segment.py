"""Memory for recomputation: functional forwards with ``segment=k`` keep only the states entering
each k-step segment and recompute the rest in backward. Results must equal the plain run."""
import numpy as np
import pytest

from rnnkit import functional as F
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
