"""rnnkit.train optimisers, clipping, regularisers and schedules: update rules against
hand-written formulas (PyTorch's), state round trips, convergence on a quadratic."""
from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from rnnkit.train import (SGD, Adam, AdamW, CosineLR, ReduceLROnPlateau, Regularizer, RMSprop, StepLR,
                          clip_grad_norm, clip_grad_value, get_optimizer, global_norm, param_kind)


def params_and_grads(seed=0):
    rng = np.random.default_rng(seed)
    p = {"rnn.l0.Wx": rng.standard_normal((3, 4)), "rnn.l0.Wh": rng.standard_normal((4, 4)),
         "rnn.l0.b": rng.standard_normal(4), "norm.gamma": rng.standard_normal(4),
         "embed.table": rng.standard_normal((5, 3))}
    g = {k: rng.standard_normal(v.shape) for k, v in p.items()}
    return p, g


def test_sgd_momentum_and_nesterov_match_formula():
    for nesterov in (False, True):
        p, g = params_and_grads()
        ref = {k: v.copy() for k, v in p.items()}
        buf = {k: np.zeros_like(v) for k, v in p.items()}
        opt = SGD(p, lr=0.1, momentum=0.9, nesterov=nesterov, weight_decay=0.01)
        for _ in range(3):
            opt.step(g)
            for k in ref:
                gg = g[k] + 0.01 * ref[k]
                buf[k] = 0.9 * buf[k] + gg
                ref[k] = ref[k] - 0.1 * (gg + 0.9 * buf[k] if nesterov else buf[k])
        for k in p:
            np.testing.assert_allclose(p[k], ref[k], rtol=1e-13)  # same operations, rounding only


def test_adam_and_adamw_match_formula():
    p, g = params_and_grads()
    p2 = {k: v.copy() for k, v in p.items()}
    ref = {k: v.copy() for k, v in p.items()}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v_ = {k: np.zeros_like(v) for k, v in p.items()}
    adam = Adam(p, lr=0.01)
    adamw = AdamW(p2, lr=0.01, weight_decay=0.1)
    refw = {k: v.copy() for k, v in p2.items()}
    for t in range(1, 4):
        adam.step(g)
        adamw.step(g)
        for k in ref:
            m[k] = 0.9 * m[k] + 0.1 * g[k]
            v_[k] = 0.999 * v_[k] + 0.001 * g[k] ** 2
            upd = 0.01 * (m[k] / (1 - 0.9 ** t)) / (np.sqrt(v_[k] / (1 - 0.999 ** t)) + 1e-8)
            ref[k] = ref[k] - upd
            decay = param_kind(k) in ("input", "recurrent", "other")
            refw[k] = refw[k] * (1 - 0.01 * 0.1 if decay else 1.0) - upd
    for k in p:
        np.testing.assert_allclose(p[k], ref[k], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(p2[k], refw[k], rtol=1e-12, atol=1e-14)


def test_rmsprop_matches_formula():
    p, g = params_and_grads()
    ref = {k: v.copy() for k, v in p.items()}
    s = {k: np.zeros_like(v) for k, v in p.items()}
    b = {k: np.zeros_like(v) for k, v in p.items()}
    opt = RMSprop(p, lr=0.01, alpha=0.9, momentum=0.5)
    for _ in range(3):
        opt.step(g)
        for k in ref:
            s[k] = 0.9 * s[k] + 0.1 * g[k] ** 2
            b[k] = 0.5 * b[k] + g[k] / (np.sqrt(s[k]) + 1e-8)
            ref[k] = ref[k] - 0.01 * b[k]
    for k in p:
        np.testing.assert_allclose(p[k], ref[k], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop"])
def test_optimisers_minimise_a_quadratic_and_state_round_trips(name):
    target = np.linspace(-1, 1, 6)
    p = {"w.W": np.zeros(6)}
    opt = get_optimizer(name, p, lr=0.05, **({"momentum": 0.9} if name == "sgd" else {}))
    for _ in range(300):
        opt.step({"w.W": 2 * (p["w.W"] - target)})
    assert np.abs(p["w.W"] - target).max() < 0.05
    # state_dict -> pickle -> load into a fresh optimiser: identical continuation
    snap = pickle.loads(pickle.dumps(opt.state_dict()))
    q = {"w.W": p["w.W"].copy()}
    opt2 = get_optimizer(name, q, lr=1.0)
    opt2.load_state_dict(snap)
    g = {"w.W": np.full(6, 0.3)}
    opt.step(g)
    opt2.step(g)
    assert np.array_equal(p["w.W"], q["w.W"])


def test_optimizer_checks():
    p, g = params_and_grads()
    with pytest.raises(ValueError, match="lr"):
        Adam(p, lr=-1)
    with pytest.raises(ValueError, match="nesterov"):
        SGD(p, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="empty"):
        Adam({}, lr=0.1)
    with pytest.raises(KeyError, match="lack"):
        Adam(p).step({})
    with pytest.raises(ValueError, match="unknown optimizer"):
        get_optimizer("lbfgs", p)
    with pytest.raises(ValueError, match="SGD"):
        Adam(p).load_state_dict(SGD(p).state_dict())


def test_clipping():
    _, g = params_and_grads()
    norm = global_norm(g)
    before = {k: v.copy() for k, v in g.items()}
    assert clip_grad_norm(g, norm * 2) == pytest.approx(norm)
    assert all(np.array_equal(g[k], before[k]) for k in g)  # under the limit: untouched
    clip_grad_norm(g, 1.0)
    assert global_norm(g) == pytest.approx(1.0, rel=1e-9)
    for k in g:  # direction kept
        np.testing.assert_allclose(g[k], before[k] / norm, rtol=1e-9)
    clip_grad_value(g, 0.1)
    assert max(np.abs(v).max() for v in g.values()) <= 0.1


def test_regularizer_by_kind_value_and_gradient():
    p, _ = params_and_grads()
    assert [param_kind(k) for k in p] == ["input", "recurrent", "bias", "norm", "other"]
    assert param_kind("fc.W") == "input" and param_kind("fc.bh") == "bias" and param_kind("x.beta") == "norm"
    reg = Regularizer(input_l2=0.1, recurrent_l1=0.2, bias_l2=0.3)
    expected = (0.1 * (p["rnn.l0.Wx"] ** 2).sum() + 0.2 * np.abs(p["rnn.l0.Wh"]).sum()
                + 0.3 * (p["rnn.l0.b"] ** 2).sum())
    assert reg.penalty(p) == pytest.approx(expected, rel=1e-12)
    grads = {k: np.zeros_like(v) for k, v in p.items()}
    assert reg.add_gradients(p, grads) == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(grads["rnn.l0.Wx"], 0.2 * p["rnn.l0.Wx"])
    np.testing.assert_allclose(grads["rnn.l0.Wh"], 0.2 * np.sign(p["rnn.l0.Wh"]))
    np.testing.assert_allclose(grads["rnn.l0.b"], 0.6 * p["rnn.l0.b"])
    assert not grads["norm.gamma"].any() and not grads["embed.table"].any()
    # finite differences of the L2 part (the L1 part is piecewise linear: checked exactly above)
    eps, w = 1e-6, p["rnn.l0.Wx"]
    w[0, 0] += eps; up = reg.penalty(p)
    w[0, 0] -= 2 * eps; down = reg.penalty(p)
    w[0, 0] += eps
    assert (up - down) / (2 * eps) == pytest.approx(grads["rnn.l0.Wx"][0, 0], rel=1e-6)
    with pytest.raises(ValueError, match="input_l2"):
        Regularizer(input_l2=-1)
    assert not Regularizer()


class _Opt:
    lr = 1.0


def test_step_and_cosine_schedules():
    opt = _Opt()
    s = StepLR(step_size=2, gamma=0.5)
    s.start(opt)
    assert [s.step() for _ in range(5)] == [1.0, 0.5, 0.5, 0.25, 0.25]
    opt = _Opt()
    c = CosineLR(T_max=4, eta_min=0.1)
    c.start(opt)
    lrs = [c.step() for _ in range(6)]
    expected = [0.1 + 0.9 * (1 + math.cos(math.pi * e / 4)) / 2 for e in (1, 2, 3, 4, 4, 4)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-12)


def test_reduce_on_plateau_and_state():
    opt = _Opt()
    r = ReduceLROnPlateau(factor=0.5, patience=1)
    r.start(opt)
    lrs = [r.step(m) for m in (1.0, 0.9, 0.95, 0.95, 0.95, 0.5)]
    assert lrs == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5]  # reduced once after 2 bad epochs
    state = r.state_dict()
    opt2 = _Opt()
    r2 = ReduceLROnPlateau(factor=0.5, patience=1)
    r2.load_state_dict(state)
    opt2.lr = opt.lr
    r2.start(opt2)
    assert [r.step(m) for m in (0.6, 0.7)] == [r2.step(m) for m in (0.6, 0.7)]
    with pytest.raises(ValueError, match="metric"):
        r.step(None)
