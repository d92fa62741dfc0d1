"""rnnkit.dropin against plain NumPy versions of the classic functions (rnnkit.reference_dropin).

The NumPy versions are themselves checked against central finite differences and against
hand-computed gate-order cases below, so agreement with them means agreement with the math.
"""
from __future__ import annotations

import os
import sys
import zlib

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rnnkit import reference_dropin as P  # noqa: E402

from rnnkit import dropin as R  # noqa: E402

# (N, T, D, H): N = 1 and T = 1 edge cases, H never a multiple of 8 except one, so every SIMD
# remainder path runs; the last shape has D != H and a longer sequence.
SHAPES = [(1, 1, 1, 1), (1, 5, 3, 7), (3, 1, 4, 9), (2, 4, 6, 5), (4, 7, 10, 17), (3, 6, 16, 16)]
CELLS = {"rnn": 1, "lstm": 4, "gru": 3}

# float64: both sides evaluate the same expressions in double precision, differing only in
# summation order (BLAS blocking, time-major vs batch-first) and in rnnkit's vectorised
# exp/tanh (a few ulp). Values here are O(1)-O(10) and at most ~30 terms are summed per dot
# product over <= 7 steps, so differences are ~1e-14; 1e-10 (the drop-in contract) is the bound.
TOL64 = 1e-10
# float32: the kernels run in float32 (unit roundoff u = 6e-8) while the oracle runs in float64
# on the same float32-rounded inputs. A dot product of K <= 33 terms errs by at most ~K*u = 2e-6
# relative (typically sqrt(K)*u); <= 7 recurrent steps with |tanh'|, |sigmoid'| <= 1 and
# weights scaled to keep the recurrence contracting add little, and backward sums <= N*T such
# terms. Observed worst: 5e-7. 2e-5 bounds that with margin and still catches any real mistake
# (a wrong gate or a missing term is off by 1e-2 or more).
TOL32 = 2e-5


def assert_close(actual, expected, tol, name=""):
    """max |actual - expected| <= tol * max(1, max |expected|): relative to the array's scale,
    absolute for arrays of small values."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    err = float(np.max(np.abs(actual.astype(np.float64) - expected))) if expected.size else 0.0
    assert err <= tol * scale, f"{name}: max error {err:.3e} > {tol:.1e} * {scale:.3g}"


def make_params(rng, D, H, G, dtype=np.float64):
    # Scaled like a trained network (some saturated units, mostly not).
    Wx = rng.standard_normal((D, G * H)) / np.sqrt(D)
    Wh = rng.standard_normal((H, G * H)) / np.sqrt(H)
    b = 0.5 * rng.standard_normal(G * H)
    return [a.astype(dtype) for a in (Wx, Wh, b)]


def _seed(*key):
    # Deterministic per case (str hashes are salted per process).
    return zlib.crc32(repr(key).encode())


def f64(*arrays):
    return [np.asarray(a, dtype=np.float64) for a in arrays]


# ----------------------------------------------------------------------------- oracle sanity

def _numeric_grad(f, arr, eps=1e-6):
    g = np.zeros_like(arr)
    it = np.nditer(arr, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = arr[i]
        arr[i] = old + eps
        fp = f()
        arr[i] = old - eps
        fm = f()
        arr[i] = old
        g[i] = (fp - fm) / (2 * eps)
    return g


@pytest.mark.parametrize("cell", CELLS)
def test_numpy_oracle_matches_finite_differences(cell):
    rng = np.random.default_rng(7)
    N, T, D, H = 2, 3, 4, 3
    x = rng.standard_normal((N, T, D))
    h0 = rng.standard_normal((N, H))
    Wx, Wh, b = make_params(rng, D, H, CELLS[cell])
    G = rng.standard_normal((N, T, H))
    fwd = getattr(P, cell + "_forward")
    bwd = getattr(P, cell + "_backward")

    def loss():
        return float(np.sum(fwd(x, h0, Wx, Wh, b)[0] * G))

    grads = bwd(G, fwd(x, h0, Wx, Wh, b)[1])
    # Central differences with eps = 1e-6 on a loss of O(1): truncation ~eps^2 = 1e-12 and
    # rounding ~1e-16 / eps = 1e-10, so 1e-7 separates a correct gradient from a wrong one.
    for name, arr, g in zip(("x", "h0", "Wx", "Wh", "b"), (x, h0, Wx, Wh, b), grads):
        assert_close(g, _numeric_grad(loss, arr), 1e-7, f"{cell} d{name}")


def test_lstm_gate_order_is_i_f_o_g():
    # With zero weights the gates are the bias: i = 1, f = 0, o = 1 (saturated), g = 0.5.
    H = 3
    b = np.concatenate([np.full(H, 40.0), np.full(H, -40.0), np.full(H, 40.0),
                        np.full(H, np.arctanh(0.5))])
    x = np.ones((2, 2))
    h, c, _ = R.lstm_step_forward(x, np.ones((2, H)), np.full((2, H), 9.0), np.zeros((2, 4 * H)),
                                  np.zeros((H, 4 * H)), b)
    # c = f * prev_c + i * g = 0.5 up to exp(-40) ~ 4e-18 of saturation; h = o * tanh(c).
    assert_close(c, np.full((2, H), 0.5), 1e-12, "next_c")
    assert_close(h, np.full((2, H), np.tanh(0.5)), 1e-12, "next_h")


def test_gru_convention():
    # z = 1 keeps the state; z = 0 and r = 0 give n = tanh(x Wx_n + b_n), dropping h Wh_n.
    H = 2
    prev_h = np.array([[0.3, -0.7]])
    Wh = np.ones((H, 3 * H))
    b_keep = np.concatenate([np.zeros(H), np.full(H, 40.0), np.zeros(H)])
    h, _ = R.gru_step_forward(np.zeros((1, 1)), prev_h, np.zeros((1, 3 * H)), Wh, b_keep)
    assert_close(h, prev_h, 1e-12, "z=1")
    b_new = np.concatenate([np.full(H, -40.0), np.full(H, -40.0), np.full(H, 0.2)])
    h, _ = R.gru_step_forward(np.zeros((1, 1)), prev_h, np.zeros((1, 3 * H)), Wh, b_new)
    assert_close(h, np.full((1, H), np.tanh(0.2)), 1e-12, "z=0,r=0")


# ----------------------------------------------------------------------------- recurrent cells

def _run_step(mod, cell, x, h, c, Wx, Wh, b, dh, dc):
    if cell == "lstm":
        nh, nc, cache = mod.lstm_step_forward(x, h, c, Wx, Wh, b)
        return (nh, nc), mod.lstm_step_backward(dh, dc, cache)
    nh, cache = getattr(mod, cell + "_step_forward")(x, h, Wx, Wh, b)
    return (nh,), getattr(mod, cell + "_step_backward")(dh, cache)


def _run_seq(mod, cell, x, h0, Wx, Wh, b, dh):
    h, cache = getattr(mod, cell + "_forward")(x, h0, Wx, Wh, b)
    return h, getattr(mod, cell + "_backward")(dh, cache)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype,tol", [(np.float64, TOL64), (np.float32, TOL32)])
def test_step_matches_numpy(cell, shape, dtype, tol):
    N, _, D, H = shape
    rng = np.random.default_rng(_seed(cell, shape))
    x = rng.standard_normal((N, D)).astype(dtype)
    h = rng.standard_normal((N, H)).astype(dtype)
    c = rng.standard_normal((N, H)).astype(dtype)
    dh = rng.standard_normal((N, H)).astype(dtype)
    dc = rng.standard_normal((N, H)).astype(dtype)
    Wx, Wh, b = make_params(rng, D, H, CELLS[cell], dtype)
    out_r, grads_r = _run_step(R, cell, x, h, c, Wx, Wh, b, dh, dc)
    out_p, grads_p = _run_step(P, cell, *f64(x, h, c, Wx, Wh, b, dh, dc))
    for i, (a, e) in enumerate(zip(out_r, out_p)):
        assert a.dtype == dtype
        assert_close(a, e, tol, f"{cell} step output {i}")
    assert len(grads_r) == len(grads_p)
    for i, (a, e) in enumerate(zip(grads_r, grads_p)):
        assert a.dtype == dtype
        assert_close(a, e, tol, f"{cell} step grad {i}")


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype,tol", [(np.float64, TOL64), (np.float32, TOL32)])
def test_sequence_matches_numpy(cell, shape, dtype, tol):
    N, T, D, H = shape
    rng = np.random.default_rng(_seed(cell, shape, 1))
    x = rng.standard_normal((N, T, D)).astype(dtype)
    h0 = rng.standard_normal((N, H)).astype(dtype)
    dh = rng.standard_normal((N, T, H)).astype(dtype)
    Wx, Wh, b = make_params(rng, D, H, CELLS[cell], dtype)
    h_r, grads_r = _run_seq(R, cell, x, h0, Wx, Wh, b, dh)
    h_p, grads_p = _run_seq(P, cell, *f64(x, h0, Wx, Wh, b, dh))
    assert h_r.dtype == dtype
    assert_close(h_r, h_p, tol, f"{cell} h")
    assert len(grads_r) == 5
    for name, a, e in zip(("dx", "dh0", "dWx", "dWh", "db"), grads_r, grads_p):
        assert a.dtype == dtype
        assert_close(a, e, tol, f"{cell} {name}")


@pytest.mark.parametrize("cell", CELLS)
def test_sequence_accepts_non_contiguous_inputs(cell):
    rng = np.random.default_rng(3)
    N, T, D, H = 3, 4, 5, 6
    G = CELLS[cell]
    x = np.asfortranarray(rng.standard_normal((N, T, D)))
    h0 = rng.standard_normal((H, N)).T  # transposed view
    Wx = rng.standard_normal((D, 2 * G * H))[:, ::2] / 3
    Wh, b = rng.standard_normal((H, G * H)) / 3, rng.standard_normal(G * H)
    dh = rng.standard_normal((T, N, H)).transpose(1, 0, 2)
    h_r, grads_r = _run_seq(R, cell, x, h0, Wx, Wh, b, dh)
    h_p, grads_p = _run_seq(P, cell, x, h0, Wx, Wh, b, dh)
    assert_close(h_r, h_p, TOL64, "h")
    for a, e in zip(grads_r, grads_p):
        assert_close(a, e, TOL64)


@pytest.mark.parametrize("cell", CELLS)
def test_sequence_and_steps_agree(cell):
    # Chaining the step functions over time must give the sequence result.
    rng = np.random.default_rng(4)
    N, T, D, H = 2, 5, 3, 4
    x = rng.standard_normal((N, T, D))
    h0 = rng.standard_normal((N, H))
    Wx, Wh, b = make_params(rng, D, H, CELLS[cell])
    h_seq, _ = getattr(R, cell + "_forward")(x, h0, Wx, Wh, b)
    h, c = h0, np.zeros_like(h0)
    for t in range(T):
        if cell == "lstm":
            h, c, _ = R.lstm_step_forward(x[:, t], h, c, Wx, Wh, b)
        else:
            h, _ = getattr(R, cell + "_step_forward")(x[:, t], h, Wx, Wh, b)
        assert_close(h, h_seq[:, t], TOL64, f"t={t}")


def _read_only(a):
    a = np.array(a)
    a.setflags(write=False)
    return a


@pytest.mark.parametrize("cell", CELLS)
def test_read_only_inputs_give_the_same_result(cell):
    """Read-only arrays (np.load(mmap_mode="r"), np.frombuffer, np.broadcast_to) are accepted by
    every step and sequence function, forward and backward, with unchanged results."""
    rng = np.random.default_rng(9)
    N, T, D, H = 2, 3, 4, 5
    Wx, Wh, b = make_params(rng, D, H, CELLS[cell])
    step = [rng.standard_normal(s) for s in ((N, D), (N, H), (N, H))] + [Wx, Wh, b] + \
        [rng.standard_normal((N, H)) for _ in range(2)]
    seq = [rng.standard_normal((N, T, D)), rng.standard_normal((N, H)), Wx, Wh, b,
           rng.standard_normal((N, T, H))]
    for run, args in ((_run_step, step), (_run_seq, seq)):
        want = _flat(run(R, cell, *args))
        got = _flat(run(R, cell, *[_read_only(a) for a in args]))
        assert len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
    # a zero-stride h0: one state row repeated over the batch
    h0 = np.broadcast_to(seq[1][:1], (N, H))
    want = _flat(_run_seq(R, cell, seq[0], np.array(h0), *seq[2:]))
    for g, w in zip(_flat(_run_seq(R, cell, seq[0], h0, *seq[2:])), want):
        np.testing.assert_array_equal(g, w)


def _flat(result):
    """(outputs, grads) of _run_step / _run_seq as one list of arrays."""
    out, grads = result
    return list(out if isinstance(out, tuple) else (out,)) + list(grads)


# ----------------------------------------------------------------------------- embedding, affine, loss

@pytest.mark.parametrize("N,T,V,D", [(1, 1, 1, 1), (2, 3, 4, 5), (5, 7, 3, 9), (4, 6, 50, 17)])
@pytest.mark.parametrize("dtype,tol", [(np.float64, TOL64), (np.float32, TOL32)])
def test_word_embedding_matches_numpy(N, T, V, D, dtype, tol):
    rng = np.random.default_rng(N * 100 + V)
    x = rng.integers(0, V, size=(N, T))  # V small: many repeated ids
    W = rng.standard_normal((V, D)).astype(dtype)
    dout = rng.standard_normal((N, T, D)).astype(dtype)
    out_r, cache_r = R.word_embedding_forward(x, W)
    out_p, cache_p = P.word_embedding_forward(x, W)
    np.testing.assert_array_equal(out_r, out_p)  # a lookup copies values exactly
    dW_r = R.word_embedding_backward(dout, cache_r)
    dW_p = P.word_embedding_backward(dout.astype(np.float64), cache_p)
    assert dW_r.dtype == dtype and dW_r.shape == (V, D)
    # float64: the same additions in the same order as np.add.at; float32: <= N*T rows summed
    # in float32, relative error well under TOL32.
    assert_close(dW_r, dW_p, tol, "dW")


def test_word_embedding_read_only_inputs():
    rng = np.random.default_rng(11)
    x, W, dout = rng.integers(0, 6, size=(2, 3)), rng.standard_normal((6, 4)), rng.standard_normal((2, 3, 4))
    out_p, cache_p = P.word_embedding_forward(x, W)
    dW_p = P.word_embedding_backward(dout, cache_p)
    out, cache = R.word_embedding_forward(_read_only(x), _read_only(W))
    np.testing.assert_array_equal(out, out_p)
    assert_close(R.word_embedding_backward(_read_only(dout), cache), dW_p, TOL64)


def test_word_embedding_zero_dim():
    x, W = np.array([[0, 3], [2, 2]]), np.zeros((4, 0))
    out_r, cache_r = R.word_embedding_forward(x, W)
    out_p, cache_p = P.word_embedding_forward(x, W)
    assert out_r.shape == out_p.shape == (2, 2, 0)
    dW = R.word_embedding_backward(np.zeros((2, 2, 0)), cache_r)
    assert dW.shape == P.word_embedding_backward(np.zeros((2, 2, 0)), cache_p).shape == (4, 0)


def test_word_embedding_broadcast_ids():
    """A broadcast x is checked over its stored ids; a lookup larger than memory fails fast."""
    W = np.random.default_rng(12).standard_normal((6, 3))
    x = np.broadcast_to(np.array([[2], [5]]), (2, 4))
    out, cache = R.word_embedding_forward(x, W)
    np.testing.assert_array_equal(out, W[np.array(x)])
    dout = np.ones((2, 4, 3))
    np.testing.assert_array_equal(R.word_embedding_backward(dout, cache),
                                  P.word_embedding_backward(dout, P.word_embedding_forward(np.array(x), W)[1]))
    with pytest.raises(IndexError, match=r"\bx\b.*6 at position \(0, 0\)"):
        R.word_embedding_forward(np.broadcast_to(np.int64(6), (10**6, 10**6)), W)
    with pytest.raises(MemoryError, match=r"\bx\b of shape \(1000000, 1000000\)"):
        R.word_embedding_forward(np.broadcast_to(np.int64(5), (10**6, 10**6)), W)


@pytest.mark.parametrize("N,T,D,M", [(1, 1, 1, 1), (2, 3, 4, 5), (4, 7, 17, 9)])
@pytest.mark.parametrize("dtype,tol", [(np.float64, TOL64), (np.float32, TOL32)])
def test_temporal_affine_matches_numpy(N, T, D, M, dtype, tol):
    rng = np.random.default_rng(D * M)
    x = rng.standard_normal((N, T, D)).astype(dtype)
    w = rng.standard_normal((D, M)).astype(dtype)
    b = rng.standard_normal(M).astype(dtype)
    dout = rng.standard_normal((N, T, M)).astype(dtype)
    out_r, cache_r = R.temporal_affine_forward(x, w, b)
    out_p, cache_p = P.temporal_affine_forward(*f64(x, w, b))
    assert out_r.dtype == dtype
    assert_close(out_r, out_p, tol, "out")
    for name, a, e in zip(("dx", "dw", "db"), R.temporal_affine_backward(dout, cache_r),
                          P.temporal_affine_backward(dout.astype(np.float64), cache_p)):
        assert a.dtype == dtype
        assert_close(a, e, tol, name)


@pytest.mark.parametrize("N,T,V", [(1, 1, 1), (1, 1, 2), (2, 3, 4), (5, 7, 30), (3, 4, 200)])
@pytest.mark.parametrize("dtype,tol", [(np.float64, TOL64), (np.float32, TOL32)])
def test_temporal_softmax_loss_matches_numpy(N, T, V, dtype, tol):
    rng = np.random.default_rng(N * T * V)
    x = (3 * rng.standard_normal((N, T, V))).astype(dtype)
    y = rng.integers(0, V, size=(N, T))
    mask = rng.random((N, T)) < 0.7
    mask[0, 0] = True
    loss_r, dx_r = R.temporal_softmax_loss(x, y, mask)
    loss_p, dx_p = P.temporal_softmax_loss(x.astype(np.float64), y, mask)
    assert dx_r.dtype == dtype and dx_r.shape == (N, T, V)
    assert_close(loss_r, loss_p, tol, "loss")
    assert_close(dx_r, dx_p, tol, "dx")
    assert np.all(dx_r[~mask] == 0)  # masked steps get exactly no gradient


def test_temporal_softmax_loss_large_scores_and_verbose(capsys):
    # Scores of 1e4 would overflow a naive exp; the loss must stay finite.
    x = np.array([[[1e4, 0.0, -1e4], [0.0, 0.0, 0.0]]])
    y = np.array([[1, 2]])
    mask = np.array([[True, True]])
    loss, dx = R.temporal_softmax_loss(x, y, mask, verbose=True)
    assert_close(loss, 1e4 + np.log(3.0), TOL64, "loss")
    assert np.all(np.isfinite(dx))
    assert "dx" in capsys.readouterr().out


# ----------------------------------------------------------------------------- bad input

def _seq_args(cell, N=2, T=3, D=4, H=5, dtype=np.float64):
    rng = np.random.default_rng(0)
    G = CELLS[cell]
    return [rng.standard_normal(s).astype(dtype) for s in ((N, T, D), (N, H), (D, G * H),
                                                            (H, G * H), (G * H,))]


@pytest.mark.parametrize("cell", CELLS)
def test_sequence_bad_input(cell):
    fwd = getattr(R, cell + "_forward")
    bwd = getattr(R, cell + "_backward")
    x, h0, Wx, Wh, b = _seq_args(cell)
    with pytest.raises(ValueError, match=r"\bx\b.*\(N, T, D\)"):
        fwd(x[:, 0], h0, Wx, Wh, b)
    with pytest.raises(ValueError, match="h0"):
        fwd(x, h0[:, :-1], Wx, Wh, b)
    with pytest.raises(ValueError, match="h0"):
        fwd(x, h0[:1], Wx, Wh, b)
    with pytest.raises(ValueError, match="Wx"):
        fwd(x, h0, Wx[:-1], Wh, b)
    with pytest.raises(ValueError, match="Wh"):
        fwd(x, h0, Wx, Wh[:, :-1], b)
    with pytest.raises(ValueError, match=r"\bb\b"):
        fwd(x, h0, Wx, Wh, b[:-1])
    with pytest.raises(TypeError, match="Wh"):
        fwd(x, h0, Wx, Wh.astype(np.float32), b)
    with pytest.raises(TypeError, match=r"\bx\b"):
        fwd(x.astype(np.int64), h0, Wx, Wh, b)
    h, cache = fwd(x, h0, Wx, Wh, b)
    with pytest.raises(ValueError, match="dh"):
        bwd(h[:, :-1], cache)
    with pytest.raises(TypeError, match="dh"):
        bwd(h.astype(np.float32), cache)
    with pytest.raises(TypeError, match="cache"):
        bwd(h, ("not", "a", "cache"))
    other = "gru" if cell != "gru" else "rnn"
    _, other_cache = getattr(R, other + "_forward")(*_seq_args(other))
    with pytest.raises(TypeError, match="cache"):
        bwd(h, other_cache)


@pytest.mark.parametrize("cell", CELLS)
def test_step_bad_input(cell):
    x, h, Wx, Wh, b = _seq_args(cell)
    x = x[:, 0]
    fwd = getattr(R, cell + "_step_forward")
    bwd = getattr(R, cell + "_step_backward")
    states = (h, h) if cell == "lstm" else (h,)
    with pytest.raises(ValueError, match=r"\bx\b"):
        fwd(x[:, None], *states, Wx, Wh, b)
    with pytest.raises(ValueError, match="prev_h"):
        fwd(x, h[:, 1:], *states[1:], Wx, Wh, b)
    if cell == "lstm":
        with pytest.raises(ValueError, match="prev_c"):
            fwd(x, h, h[1:], Wx, Wh, b)
    with pytest.raises(ValueError, match="Wx"):
        fwd(x, *states, Wx[1:], Wh, b)
    out = fwd(x, *states, Wx, Wh, b)
    cache = out[-1]
    grads = (h[:, 1:],) + ((h,) if cell == "lstm" else ())
    with pytest.raises(ValueError, match="dnext_h"):
        bwd(*grads, cache)
    if cell == "lstm":
        with pytest.raises(ValueError, match="dnext_c"):
            bwd(h, h[1:], cache)
    # A sequence cache is not a step cache.
    _, seq_cache = getattr(R, cell + "_forward")(*_seq_args(cell))
    with pytest.raises(TypeError, match="cache"):
        bwd(*((h, h) if cell == "lstm" else (h,)), seq_cache)


def test_word_embedding_bad_input():
    W = np.zeros((4, 3))
    with pytest.raises(IndexError, match=r"\bx\b.*4"):
        R.word_embedding_forward(np.array([[0, 4]]), W)
    with pytest.raises(IndexError, match=r"\bx\b.*-1"):
        R.word_embedding_forward(np.array([[0, -1]]), W)
    with pytest.raises(TypeError, match=r"\bx\b"):
        R.word_embedding_forward(np.array([[0.0, 1.0]]), W)
    with pytest.raises(ValueError, match=r"\bx\b"):
        R.word_embedding_forward(np.array([0, 1]), W)
    with pytest.raises(ValueError, match=r"\bW\b"):
        R.word_embedding_forward(np.array([[0, 1]]), np.zeros(4))
    with pytest.raises(TypeError, match=r"\bW\b"):
        R.word_embedding_forward(np.array([[0, 1]]), np.zeros((4, 3), dtype=np.int64))
    _, cache = R.word_embedding_forward(np.array([[0, 1]]), W)
    with pytest.raises(ValueError, match="dout"):
        R.word_embedding_backward(np.zeros((1, 2, 2)), cache)
    with pytest.raises(TypeError, match="dout"):
        R.word_embedding_backward(np.zeros((1, 2, 3), dtype=np.float32), cache)


def test_temporal_affine_bad_input():
    x, w, b = np.zeros((2, 3, 4)), np.zeros((4, 5)), np.zeros(5)
    with pytest.raises(ValueError, match=r"\bx\b"):
        R.temporal_affine_forward(x[0], w, b)
    with pytest.raises(ValueError, match=r"\bw\b"):
        R.temporal_affine_forward(x, w[1:], b)
    with pytest.raises(ValueError, match=r"\bb\b"):
        R.temporal_affine_forward(x, w, b[1:])
    with pytest.raises(TypeError, match=r"\bw\b"):
        R.temporal_affine_forward(x, w.astype(np.float32), b)
    _, cache = R.temporal_affine_forward(x, w, b)
    with pytest.raises(ValueError, match="dout"):
        R.temporal_affine_backward(np.zeros((2, 3, 4)), cache)


def test_foreign_or_edited_caches_are_named():
    """A cache from the classic NumPy code (another library's tuple), a cache of another
    function or an edited cache gives a TypeError/ValueError naming cache, not an unpacking
    error, AttributeError or pybind11's 'Unable to cast'."""
    import dataclasses

    rng = np.random.default_rng(13)
    N, T, D, H = 2, 3, 4, 5
    x, h, c = rng.standard_normal((N, D)), rng.standard_normal((N, H)), rng.standard_normal((N, H))
    xs = rng.standard_normal((N, T, D))
    for cell, G in CELLS.items():
        Wx, Wh, b = make_params(rng, D, H, G)
        step = (x, h, c) if cell == "lstm" else (x, h)
        step_p = getattr(P, cell + "_step_forward")(*step, Wx, Wh, b)[-1]
        seq_p = getattr(P, cell + "_forward")(xs, h, Wx, Wh, b)[1]
        step_bwd = getattr(R, cell + "_step_backward")
        step_grads = (h, c) if cell == "lstm" else (h,)
        seq_bwd = getattr(R, cell + "_backward")
        for foreign in (step_p, ("not", "a", "cache"), None):
            with pytest.raises(TypeError, match=r"^cache must .*(rnn_step_forward|matching step forward)"):
                step_bwd(*step_grads, foreign)
        for foreign in (seq_p, ("not", "a", "cache"), None):
            with pytest.raises(TypeError, match=r"^cache must come from the matching forward"):
                seq_bwd(np.zeros((N, T, H)), foreign)
        if cell != "rnn":  # the kernel-backed caches: edited fields are named
            _, cache = getattr(R, cell + "_forward")(xs, h, Wx, Wh, b)
            with pytest.raises(TypeError, match=r"cache\.handles must be the tuple of ForwardHandles"):
                seq_bwd(np.zeros((N, T, H)), dataclasses.replace(cache, handles=None))
            cache = getattr(R, cell + "_step_forward")(*step, Wx, Wh, b)[-1]
            with pytest.raises(ValueError, match=r"cache\.spans .* do not tile \[0, 2\)"):
                step_bwd(*step_grads, dataclasses.replace(cache, spans=((0, 2),)))
    ids, W = np.array([[0, 2]]), rng.standard_normal((3, 4))
    for foreign in (P.word_embedding_forward(ids, W)[1], (ids, W.shape), None):
        with pytest.raises(TypeError, match=r"^cache must be the cache word_embedding_forward returned, got"):
            R.word_embedding_backward(np.zeros((1, 2, 4)), foreign)
    xa, w, ba = rng.standard_normal((N, T, D)), rng.standard_normal((D, 3)), np.zeros(3)
    for foreign in (P.temporal_affine_forward(xa, w, ba)[1], R.word_embedding_forward(ids, W)[1]):
        with pytest.raises(TypeError, match=r"^cache must be the cache temporal_affine_forward returned, got"):
            R.temporal_affine_backward(np.zeros((N, T, 3)), foreign)


def test_temporal_softmax_loss_bad_input():
    x = np.zeros((2, 3, 4))
    y = np.zeros((2, 3), dtype=np.int64)
    mask = np.ones((2, 3), dtype=bool)
    bad_y = y.copy()
    bad_y[1, 2] = 4
    with pytest.raises(IndexError, match=r"\by\b.*4"):
        R.temporal_softmax_loss(x, bad_y, mask)
    bad_y[1, 2] = -1
    with pytest.raises(IndexError, match=r"\by\b"):
        R.temporal_softmax_loss(x, bad_y, mask)
    with pytest.raises(TypeError, match=r"\by\b"):
        R.temporal_softmax_loss(x, y.astype(np.float64), mask)
    with pytest.raises(ValueError, match=r"\by\b"):
        R.temporal_softmax_loss(x, y[:, :2], mask)
    with pytest.raises(ValueError, match="mask"):
        R.temporal_softmax_loss(x, y, mask[:, :2])
    with pytest.raises(ValueError, match="mask"):
        R.temporal_softmax_loss(x, y, mask.ravel())
    with pytest.raises(TypeError, match="mask"):
        R.temporal_softmax_loss(x, y, mask.astype(object))
    with pytest.raises(ValueError, match=r"\bx\b"):
        R.temporal_softmax_loss(x[0], y, mask)


def test_messages_name_the_real_mistake():
    """What a newcomer hit: a label out of range named 'embeddings', a time-major x blamed on
    h0, and a Python list reported as a bare dtype clash."""
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((2, 4, 3))
    labels = np.zeros((2, 4), dtype=np.int64)
    labels[1, 2] = 7
    with pytest.raises(IndexError, match=r"y contains id 7 at position \(1, 2\), out of range for 3 classes"):
        R.temporal_softmax_loss(scores, labels, np.ones((2, 4), bool))

    N, T, D, H = 3, 5, 4, 6
    x_time_major = rng.standard_normal((T, N, D))
    h0, Wx, Wh, b = np.zeros((N, H)), rng.standard_normal((D, H)), rng.standard_normal((H, H)), np.zeros(H)
    with pytest.raises(ValueError, match=r"x must be batch-first \(N, T, D\) with N = h0.shape\[0\] = 3.*"
                                         r"time-major \(T, N, D\); pass x.transpose\(1, 0, 2\)"):
        R.rnn_forward(x_time_major, h0, Wx, Wh, b)

    f32 = [a.astype(np.float32) for a in (h0, Wx, Wh, b)]
    with pytest.raises(TypeError, match=r"reads a Python list or float as float64.*np.asarray\(x, dtype=np.float32\)"):
        R.rnn_forward(x_time_major.transpose(1, 0, 2).tolist(), *f32)
