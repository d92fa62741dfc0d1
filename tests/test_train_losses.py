"""rnnkit.train losses: values against direct formulas, gradients by central finite differences
in float64, masks / ignore_index / label smoothing, and bad input."""
from __future__ import annotations

import numpy as np
import pytest

from rnnkit.train import (BinaryCrossEntropy, CrossEntropy, MSE, binary_cross_entropy_with_logits,
                          cross_entropy, get_loss, mse)

# Central differences on float64 with eps=1e-6: truncation error O(eps^2 * f''') ~ 1e-12 and
# rounding error ~ 1e-16 / 1e-6 = 1e-10 for O(1) losses, so agreement to 1e-7 (relative to the
# largest gradient entry) leaves a wide margin while still catching any wrong term.
EPS = 1e-6
TOL = 1e-7


def numeric_grad(f, x):
    g = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        p = x.copy(); p[idx] += EPS
        m = x.copy(); m[idx] -= EPS
        g[idx] = (f(p) - f(m)) / (2 * EPS)
    return g


def assert_grad(f_value_grad, x):
    _, grad, _ = f_value_grad(x)
    num = numeric_grad(lambda v: f_value_grad(v)[0], x)
    scale = max(1.0, np.abs(num).max())
    np.testing.assert_allclose(grad, num, atol=TOL * scale, rtol=0)


rng = np.random.default_rng(0)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("shape", [(5,), (3, 4)])
def test_cross_entropy_gradient_and_value(shape, smoothing):
    C = 6
    z = rng.standard_normal(shape + (C,))
    t = rng.integers(0, C, size=shape)
    f = lambda v: cross_entropy(v, t, label_smoothing=smoothing)
    assert_grad(f, z)
    loss, _, count = f(z)
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    q = np.full(z.shape, smoothing / C)
    np.put_along_axis(q, t[..., None], np.take_along_axis(q, t[..., None], -1) + 1 - smoothing, -1)
    expected = -(q * np.log(p)).sum(-1).mean()
    assert loss == pytest.approx(expected, rel=1e-12)
    assert count == np.prod(shape)


def test_cross_entropy_ignore_index_and_mask_exclude_elements():
    C = 5
    z = rng.standard_normal((4, 3, C))
    t = rng.integers(1, C, size=(4, 3))
    t[0, 1] = t[2, 2] = 0
    mask = np.ones((4, 3), bool)
    mask[3, 0] = False
    loss, grad, count = cross_entropy(z, t, ignore_index=0, mask=mask)
    assert count == 12 - 3
    assert np.all(grad[0, 1] == 0) and np.all(grad[2, 2] == 0) and np.all(grad[3, 0] == 0)
    keep = (t != 0) & mask
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    expected = -np.take_along_axis(logp, t[..., None], -1)[..., 0][keep].mean()
    assert loss == pytest.approx(expected, rel=1e-12)
    assert_grad(lambda v: cross_entropy(v, t, ignore_index=0, mask=mask), z)
    # nothing counts: zero loss, zero gradient, no division by zero
    loss0, grad0, c0 = cross_entropy(z, t, mask=np.zeros((4, 3), bool))
    assert loss0 == 0.0 and c0 == 0 and not grad0.any()


def test_cross_entropy_is_stable_for_huge_logits_and_keeps_dtype():
    z = np.array([[1e4, -1e4, 0.0]], np.float32)
    loss, grad, _ = cross_entropy(z, np.array([1]))
    assert np.isfinite(loss) and loss == pytest.approx(2e4, rel=1e-6)
    assert grad.dtype == np.float32 and np.all(np.isfinite(grad))


def test_bce_with_logits_gradient_value_and_stability():
    z = rng.standard_normal((4, 3)) * 3
    t = rng.random((4, 3))
    assert_grad(lambda v: binary_cross_entropy_with_logits(v, t), z)
    assert_grad(lambda v: binary_cross_entropy_with_logits(v, t, pos_weight=2.5), z)
    s = 1 / (1 + np.exp(-z))
    expected = -(t * np.log(s) + (1 - t) * np.log(1 - s)).mean()
    assert binary_cross_entropy_with_logits(z, t)[0] == pytest.approx(expected, rel=1e-12)
    big = binary_cross_entropy_with_logits(np.array([800.0, -800.0]), np.array([0.0, 1.0]))[0]
    assert big == pytest.approx(800.0)


def test_mse_gradient_and_broadcast_mask():
    y = rng.standard_normal((3, 4, 2))
    t = rng.standard_normal((3, 4, 2))
    assert_grad(lambda v: mse(v, t), y)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], bool)
    loss, grad, count = mse(y, t, mask=mask)
    assert count == mask.sum() * 2
    assert loss == pytest.approx(((y - t) ** 2)[mask].mean(), rel=1e-12)
    assert not grad[~mask].any()
    assert_grad(lambda v: mse(v, t, mask=mask), y)


def test_loss_objects_match_functions():
    z = rng.standard_normal((5, 3))
    t = rng.integers(0, 3, 5)
    assert CrossEntropy(label_smoothing=0.1)(z, t)[0] == cross_entropy(z, t, label_smoothing=0.1)[0]
    tb = rng.random((5, 3))
    assert BinaryCrossEntropy()(z, tb)[0] == binary_cross_entropy_with_logits(z, tb)[0]
    assert MSE()(z, tb)[0] == mse(z, tb)[0]
    assert isinstance(get_loss("cross_entropy"), CrossEntropy)
    with pytest.raises(ValueError, match="unknown loss"):
        get_loss("hinge")


def test_bad_input_names_the_problem():
    z = np.zeros((4, 3))
    with pytest.raises(IndexError, match=r"class 3 at position \(2,\).*3 classes"):
        cross_entropy(z, np.array([0, 1, 3, 2]))
    with pytest.raises(IndexError, match="class -1"):
        cross_entropy(z, np.array([0, 1, -1, 2]))
    cross_entropy(z, np.array([0, 1, -100, 2]), ignore_index=-100)  # ignored: fine
    with pytest.raises(ValueError, match="targets must have shape"):
        cross_entropy(z, np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="integer class indices"):
        cross_entropy(z, np.array([0.5, 1, 2, 0]))
    with pytest.raises(ValueError, match="label_smoothing"):
        cross_entropy(z, np.array([0, 1, 2, 0]), label_smoothing=1.0)
    with pytest.raises(ValueError, match="mask must have"):
        cross_entropy(z, np.array([0, 1, 2, 0]), mask=np.ones(3, bool))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        binary_cross_entropy_with_logits(z, np.full((4, 3), 2.0))
    with pytest.raises(ValueError, match="shape"):
        mse(z, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="NaN"):
        mse(z, np.full((4, 3), np.nan))


def test_masked_out_targets_are_not_range_checked():
    z = np.zeros((2, 3, 4))
    t = np.array([[1, 2, 99], [3, -5, -5]])
    mask = np.array([[1, 1, 0], [1, 0, 0]], bool)
    loss, grad, count = cross_entropy(z, t, mask=mask)
    assert count == 3 and loss == pytest.approx(np.log(4))
