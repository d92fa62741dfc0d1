"""Variational recurrent dropout on the fast path (functional ``recurrent_mask=``)."""
import numpy as np
import pytest

from rnnkit import functional as F
from rnnkit import reference as R
from conftest import ALL_VARIANTS

T, B, I, H = 5, 3, 4, 6


def mask_for(B, H, dtype=np.float64, seed=7, p=0.4):
    rng = np.random.default_rng(seed)
    return ((rng.random((B, H)) > p) / (1 - p)).astype(dtype)


@pytest.mark.parametrize("cell", ALL_VARIANTS)
@pytest.mark.parametrize("lengths", [None, [5, 2, 0]])
@pytest.mark.parametrize("reverse", [False, True])
def test_mask_equals_row_scaled_recurrent_weights(harness, cell, lengths, reverse):
    """For one sequence, (h * m) @ Wh == h @ (diag(m) Wh): the masked kernel must match the
    NumPy reference run row by row with Wh's rows scaled by that row's mask, in every cell
    (a GRU's direct z * h path stays unmasked in both)."""
    inputs = harness.make_inputs(cell, T, B, I, H)
    mask = mask_for(B, harness.state_width(cell, H))  # it multiplies h, S wide
    lengths = None if lengths is None else np.array(lengths)
    outs, cache = harness.forward(F, cell, inputs, recurrent_mask=mask, lengths=lengths, reverse=reverse)
    douts = harness.make_output_grads(cell, T, B, H)
    grads = harness.backward(F, cell, cache, douts)
    dWh_total = np.zeros_like(inputs["Wh"])
    for b in range(B):
        row = {k: (v[:, b:b + 1] if k == "x" else v[b:b + 1] if k in ("h0", "c0") else v)
               for k, v in inputs.items() if v is not None}
        row = dict({k: None for k in inputs}, **row)
        row["Wh"] = mask[b][:, None] * inputs["Wh"]
        row_len = None if lengths is None else lengths[b:b + 1]
        ref_outs, ref_cache = harness.forward(R, cell, row, lengths=row_len, reverse=reverse)
        # float64 kernels vs the float64 reference: same operations up to summation order,
        # so agreement is at the 1e-15 level; 1e-12 leaves room for the BLAS's blocking.
        np.testing.assert_allclose(outs["y"][:, b:b + 1], ref_outs["y"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(outs["hT"][b:b + 1], ref_outs["hT"], rtol=0, atol=1e-12)
        row_douts = {k: (v[:, b:b + 1] if v.ndim == 3 else v[b:b + 1]) for k, v in douts.items()}
        ref_grads = harness.backward(R, cell, ref_cache, row_douts)
        np.testing.assert_allclose(grads["x"][:, b:b + 1], ref_grads["x"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(grads["h0"][b:b + 1], ref_grads["h0"], rtol=0, atol=1e-12)
        # d/dWh of L(diag(m) Wh) is diag(m) times the gradient w.r.t. the scaled matrix
        dWh_total += mask[b][:, None] * ref_grads["Wh"]
    np.testing.assert_allclose(grads["Wh"], dWh_total, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru", "gru_cho"])
def test_mask_gradients_match_finite_differences(harness, cell):
    inputs = harness.make_inputs(cell, 4, 2, 3, 3)
    mask = mask_for(2, 3)
    douts = harness.make_output_grads(cell, 4, 2, 3)
    _, cache = harness.forward(F, cell, inputs, recurrent_mask=mask)
    grads = harness.backward(F, cell, cache, douts)
    numeric = harness.numerical_gradients(F, cell, inputs, douts, recurrent_mask=mask)
    for name, want in numeric.items():
        # central differences, eps=1e-6 in float64: truncation O(eps^2) ~ 1e-12 and round-off
        # ~ 1e-16 / eps ~ 1e-10 relative to O(1) losses; 1e-7 is far above both.
        np.testing.assert_allclose(grads[name], want, rtol=1e-6, atol=1e-7, err_msg=name)


def test_mask_of_ones_changes_nothing(harness):
    inputs = harness.make_inputs("lstm", T, B, I, H)
    plain, _ = harness.forward(F, "lstm", inputs)
    masked, _ = harness.forward(F, "lstm", inputs, recurrent_mask=np.ones((B, H)))
    np.testing.assert_array_equal(plain["y"], masked["y"])


def test_mask_shape_and_dtype_checked(harness):
    inputs = harness.make_inputs("gru", T, B, I, H)
    with pytest.raises(ValueError, match=r"recurrent_mask must have shape \(B, H\)"):
        harness.forward(F, "gru", inputs, recurrent_mask=np.ones((B, H + 1)))
    with pytest.raises(TypeError, match=r"recurrent_mask has dtype float32"):
        harness.forward(F, "gru", inputs, recurrent_mask=np.ones((B, H), np.float32))
