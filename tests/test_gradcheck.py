"""float64 central finite-difference checks of rnnkit.functional (the C++ kernels), for every
cell, ISA and combination of lengths / reverse / initial states / recurrent bias.

The loss is L = sum(y Gy) + sum(hT GhT) (+ sum(cT GcT)) with random G; every gradient the
backward returns (dx, dh0, dc0, dWx, dWh, db, dbh) is compared with the central differences.
"""
from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from rnnkit import functional as F
from conftest import ALL_VARIANTS

T, B, I, H = 4, 3, 3, 3
LENGTHS = np.array([4, 0, 2])  # a full row, an empty row and a partial row

# Same reasoning as tests/test_reference.py: with eps = 1e-6 in float64 the truncation error
# is ~eps^2 |L'''| ~ 1e-12 and the round-off ~1e-16 * sum|terms of L| / (2 eps) <= ~1e-8.
# The kernels' own exp/tanh are accurate to a few ulp (vec_math.h), i.e. ~1e-15 absolute,
# which adds ~1e-15 / 1e-6 = 1e-9 of noise to a difference quotient. Measured discrepancies
# are ~1e-9; a wrong or missing term gives O(1e-2) or more, so atol 1e-7 plus rtol 1e-6.
FD_EPS = 1e-6
FD_RTOL, FD_ATOL = 1e-6, 1e-7


@pytest.mark.parametrize("bh", [True, False], ids=["bh", "no_bh"])
@pytest.mark.parametrize("h0", [True, False], ids=["h0", "no_h0"])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "lengths"])
@pytest.mark.parametrize("cell", ALL_VARIANTS)
@pytest.mark.parametrize("isa", rnnkit.supported_isas())
def test_functional_gradients_match_finite_differences(harness, restore_isa_and_threads, isa, cell,
                                                       lengths, reverse, h0, bh):
    rnnkit.set_isa(isa)
    kwargs = dict(lengths=lengths, reverse=reverse)
    inputs = harness.make_inputs(cell, T, B, I, H, h0=h0, bh=bh, seed=21)
    douts = harness.make_output_grads(cell, T, B, H, seed=22)
    outs, cache = harness.forward(F, cell, inputs, **kwargs)
    grads = harness.backward(F, cell, cache, douts)
    numeric = harness.numerical_gradients(F, cell, inputs, douts, eps=FD_EPS, **kwargs)
    assert (grads["bh"] is None) == (not bh), "dbh must be None exactly when bh was None"
    if lengths is not None:
        padded = np.arange(T)[:, None] >= lengths[None, :]
        assert np.all(outs["y"][padded] == 0), "outputs past lengths must be zero"
    for name, num in numeric.items():
        got = grads[name]
        assert got.shape == num.shape and got.dtype == np.float64, name
        np.testing.assert_allclose(got, num, rtol=FD_RTOL, atol=FD_ATOL,
                                   err_msg=f"{cell} isa={isa} {kwargs}: d{name}")
