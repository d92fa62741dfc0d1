"""Whole-model finite-difference gradient checker for rnnkit.nn modules (used by the other
test_nn_* files) and tests that it does catch wrong gradients.

Randomness is fixed by calling ``model.seed(SEED)`` before *every* forward (the analytic one and
each perturbed one), so dropout and recurrent-dropout masks are the same in all of them.

Tolerance: central differences with eps = 1e-6 in float64 have truncation error
O(eps^2 * |L'''|) ~ 1e-12 and round-off ~ 1e-16 * |L| / eps ~ 1e-10 * |L| for the O(1..10)
losses used here, so |numeric - analytic| <= 1e-6 + 1e-5 * |analytic| is far above both yet far
below any real mistake (a wrong term is O(1e-2..1)).
"""
from __future__ import annotations

import numpy as np

SEED = 1234
EPS = 1e-6
ATOL, RTOL = 1e-6, 1e-5


def _loss(out, G):
    if isinstance(out, (tuple, list)):
        return sum(_loss(o, g) for o, g in zip(out, G) if g is not None)
    return float(np.sum(out * G))


def random_like_output(out, rng):
    if isinstance(out, tuple):
        return tuple(random_like_output(o, rng) for o in out)
    if isinstance(out, list):
        return [random_like_output(o, rng) for o in out]
    return rng.standard_normal(out.shape)


def check_module(model, x, *, fwd_kwargs=None, max_per_param=6, max_x=12, seed=0,
                 check_x=True, extra_inputs=None):
    """Compares model.backward with central differences of L = sum(out * G) for a random G.

    Checks up to ``max_per_param`` random elements of every parameter and ``max_x`` elements of
    x (floating x only). extra_inputs: {name: (array, getter)} more inputs to perturb, with
    ``getter(model)`` returning their analytic gradient after backward (e.g. initial states).
    Returns the number of derivatives compared."""
    fwd_kwargs = fwd_kwargs or {}
    rng = np.random.default_rng(seed)

    def run():
        model.seed(SEED)
        return model.forward(x, **fwd_kwargs)

    out = run()
    G = random_like_output(out, rng)
    model.zero_grad()
    model.seed(SEED)
    model.forward(x, **fwd_kwargs)
    dx = model.backward(G)
    grads = {k: v.copy() for k, v in model.grads().items()}
    targets = [(name, p, grads[name]) for name, p in model.parameters().items()]
    if check_x and x.dtype.kind == "f":
        targets.append(("x", x, dx))
    for name, (arr, getter) in (extra_inputs or {}).items():
        targets.append((name, arr, getter(model)))
    count = 0
    for name, arr, analytic in targets:
        flat = arr.reshape(-1)
        limit = max_x if name == "x" else max_per_param
        idx = rng.choice(flat.size, size=min(limit, flat.size), replace=False)
        for i in idx:
            old = flat[i]
            flat[i] = old + EPS
            lp = _loss(run(), G)
            flat[i] = old - EPS
            lm = _loss(run(), G)
            flat[i] = old
            numeric = (lp - lm) / (2 * EPS)
            a = analytic.reshape(-1)[i]
            assert abs(numeric - a) <= ATOL + RTOL * abs(a), \
                f"{name}[{np.unravel_index(i, arr.shape)}]: analytic {a} vs numeric {numeric}"
            count += 1
    return count


def test_checker_catches_a_wrong_gradient():
    """The checker must be able to fail: break Linear's weight gradient by 1 % and expect an
    AssertionError naming the parameter."""
    import pytest

    import rnnkit.nn as nn

    class Broken(nn.Linear):
        def backward(self, grad):
            before = self._grads["W"].copy()
            dx = super().backward(grad)
            self._grads["W"] += 0.01 * (self._grads["W"] - before)
            return dx

    lin = Broken(3, 2, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((4, 3))
    with pytest.raises(AssertionError, match="W"):
        check_module(lin, x)
    assert check_module(nn.Linear(3, 2, dtype=np.float64, seed=0), x) == 6 + 2 + 12
