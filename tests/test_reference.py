"""Checks of rnnkit.reference itself: the oracle every other test trusts.

1. Gradients: float64 central finite differences of a random scalar loss
   L = sum(y Gy) + sum(hT GhT) (+ sum(cT GcT)) for every argument, every cell and every
   combination of lengths / reverse / initial states / recurrent bias.
2. Forward: the cell equations of docs/design.md, restated independently per time step below.
3. Variable-length semantics: zero outputs past lengths, final state at each row's last valid
   step, reverse = running the reversed valid prefix, padding never leaking.
"""
from __future__ import annotations

import numpy as np
import pytest

from rnnkit import reference as ref
from conftest import ALL_VARIANTS, VARIANTS

T, B, I, H = 4, 3, 3, 3
LENGTHS = np.array([4, 0, 2])  # a full row, an empty row and a partial row

# Finite-difference tolerance. Central differences with eps = 1e-6 in float64: the truncation
# error is eps^2 / 6 * |L'''| ~ 1e-12 (all inputs are O(1), so derivatives are O(1)), and the
# round-off is ~ 1e-16 * sum|terms of L| / (2 eps); L sums ~50 O(1) terms, so <= ~1e-8.
# Measured discrepancies are ~1e-9 for gradients of size ~1-5; a wrong or missing term gives
# errors of O(1e-2) or more. So atol 1e-7 (10x over the worst-case round-off) plus rtol 1e-6
# for the few larger gradient entries.
FD_EPS = 1e-6
FD_RTOL, FD_ATOL = 1e-6, 1e-7
# Two float64 computations of the same quantity by different but equally exact routes (e.g. a
# batch vs one row at a time, a different summation order): a handful of roundings of O(1)
# values over T=4 steps, so agreement within 1e-12 (about 1e4 ulp) is a safe, still tight bound.
EXACT_TOL = 1e-12


def _check_gradients(harness, cell, inputs, douts, **kwargs):
    outs, cache = harness.forward(ref, cell, inputs, **kwargs)
    grads = harness.backward(ref, cell, cache, douts)
    numeric = harness.numerical_gradients(ref, cell, inputs, douts, eps=FD_EPS, **kwargs)
    if inputs["bh"] is None:
        assert grads["bh"] is None, "dbh must be None exactly when bh was None"
    expected_names = {"x", "h0", "Wx", "Wh", "b"} | ({"c0"} if harness.has_cell_state(cell) else set())
    expected_names |= {"bh"} if inputs["bh"] is not None else set()
    expected_names |= {"Wr", "peepholes"} & set(inputs)  # the variants' extra parameters
    assert set(numeric) == expected_names
    for name, num in numeric.items():
        assert grads[name].shape == num.shape, name
        assert grads[name].dtype == np.float64, name
        np.testing.assert_allclose(grads[name], num, rtol=FD_RTOL, atol=FD_ATOL,
                                   err_msg=f"{cell}: d{name}")


@pytest.mark.parametrize("bh", [True, False], ids=["bh", "no_bh"])
@pytest.mark.parametrize("h0", [True, False], ids=["h0", "no_h0"])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "lengths"])
@pytest.mark.parametrize("cell", ALL_VARIANTS)
def test_gradients_match_finite_differences(harness, cell, lengths, reverse, h0, bh):
    inputs = harness.make_inputs(cell, T, B, I, H, h0=h0, bh=bh, seed=7)
    douts = harness.make_output_grads(cell, T, B, H, seed=8)
    _check_gradients(harness, cell, inputs, douts, lengths=lengths, reverse=reverse)


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
def test_gradients_with_only_some_output_gradients(harness, cell):
    """dy / dhT / dcT may be None: the same as zeros."""
    inputs = harness.make_inputs(cell, T, B, I, H, seed=3)
    douts = harness.make_output_grads(cell, T, B, H, seed=4)
    _, cache = harness.forward(ref, cell, inputs, lengths=LENGTHS)
    for missing in douts:
        zeroed = dict(douts, **{missing: np.zeros_like(douts[missing])})
        expected = harness.backward(ref, cell, cache, zeroed)
        got = harness.backward(ref, cell, cache, {k: v for k, v in douts.items() if k != missing})
        for name in expected:
            np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


# ----------------------------------------------------------------------------- forward equations

def _sig(a):
    return 1 / (1 + np.exp(-a))


def _equations_forward(cell, inputs):
    """The cell equations of docs/design.md, one time step at a time, each gate from its own weight
    column block: an independent restatement of the forward pass (no lengths, no reverse)."""
    x, Wx, Wh, b = inputs["x"], inputs["Wx"], inputs["Wh"], inputs["b"]
    bh = inputs["bh"] if inputs["bh"] is not None else np.zeros_like(b)
    Hn = Wx.shape[1] // VARIANTS[cell][0].num_gates  # gate width; h is Wh.shape[0] wide
    h = inputs["h0"] if inputs["h0"] is not None else np.zeros((x.shape[1], Wh.shape[0]))
    c = inputs.get("c0")
    c = c if c is not None else np.zeros((x.shape[1], Hn))
    Wr = inputs.get("Wr")  # lstm_proj: h = (o * tanh(c)) @ Wr
    p_i, p_f, p_o = inputs.get("peepholes", np.zeros((3, Hn)))  # lstm_peepholes

    def gate(k, x_t, h_in):
        cols = slice(k * Hn, (k + 1) * Hn)
        return x_t @ Wx[:, cols] + b[cols] + h_in @ Wh[:, cols] + bh[cols]

    ys = []
    for x_t in x:
        if cell in ("rnn_tanh", "rnn_relu"):
            a = gate(0, x_t, h)
            h = np.tanh(a) if cell == "rnn_tanh" else np.where(a > 0, a, 0.0)
        elif cell.startswith("lstm"):
            i, f = _sig(gate(0, x_t, h) + p_i * c), _sig(gate(1, x_t, h) + p_f * c)
            g = np.tanh(gate(2, x_t, h))
            c = f * c + i * g
            o = _sig(gate(3, x_t, h) + p_o * c)  # the new c
            h = o * np.tanh(c)
            if Wr is not None:
                h = h @ Wr
        else:
            r, z = _sig(gate(0, x_t, h)), _sig(gate(1, x_t, h))
            n_cols = slice(2 * Hn, 3 * Hn)
            x_part = x_t @ Wx[:, n_cols] + b[n_cols]
            if cell == "gru":
                n = np.tanh(x_part + r * (h @ Wh[:, n_cols] + bh[n_cols]))
            else:
                n = np.tanh(x_part + (r * h) @ Wh[:, n_cols] + bh[n_cols])
            h = (1 - z) * n + z * h
        ys.append(h)
    return np.stack(ys), h, c


@pytest.mark.parametrize("bh", [True, False], ids=["bh", "no_bh"])
@pytest.mark.parametrize("cell", ALL_VARIANTS)
def test_forward_matches_cell_equations(harness, cell, bh):
    inputs = harness.make_inputs(cell, T, B, I, H, bh=bh, seed=11)
    outs, _ = harness.forward(ref, cell, inputs)
    y, hT, cT = _equations_forward(cell, inputs)
    np.testing.assert_allclose(outs["y"], y, rtol=0, atol=EXACT_TOL)
    np.testing.assert_allclose(outs["hT"], hT, rtol=0, atol=EXACT_TOL)
    np.testing.assert_array_equal(outs["hT"], outs["y"][-1])
    if harness.has_cell_state(cell):
        np.testing.assert_allclose(outs["cT"], cT, rtol=0, atol=EXACT_TOL)


def test_gru_variants_differ():
    """linear_before_reset must change the result (r multiplies before vs after Wh_n)."""
    rng = np.random.default_rng(0)
    x, h0 = rng.standard_normal((T, B, I)), rng.standard_normal((B, H))
    Wx, Wh = rng.standard_normal((I, 3 * H)), rng.standard_normal((H, 3 * H))
    b, bh = rng.standard_normal(3 * H), rng.standard_normal(3 * H)
    y1, _, _ = ref.gru_forward(x, h0, Wx, Wh, b, bh, linear_before_reset=True)
    y2, _, _ = ref.gru_forward(x, h0, Wx, Wh, b, bh, linear_before_reset=False)
    assert np.abs(y1 - y2).max() > 1e-3


def test_sigmoid_saturates_without_warnings():
    a = np.array([-np.inf, -1000.0, -40.0, 0.0, 40.0, 1000.0, np.inf])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is the point
        s = ref.sigmoid(a)
        s32 = ref.sigmoid(a.astype(np.float32))
    np.testing.assert_array_equal(s[[0, 1, 3, 5, 6]], [0.0, 0.0, 0.5, 1.0, 1.0])
    assert s32.dtype == np.float32 and np.all(np.isfinite(s32))


# ----------------------------------------------------------------------------- variable lengths

def _one_row(harness, cell, inputs, row, length):
    """The inputs of batch row `row`, cut to its first `length` steps, as a batch of one."""
    one = {}
    for name, value in inputs.items():
        if value is None or name in ("Wx", "Wh", "b", "bh", "Wr", "peepholes"):
            one[name] = value
        elif name == "x":
            one[name] = value[:length, row:row + 1]
        else:
            one[name] = value[row:row + 1]
    return one


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("cell", ALL_VARIANTS)
def test_lengths_equal_running_each_row_alone(harness, cell, reverse):
    """With lengths, each row behaves exactly as if it were run alone on its valid prefix:
    outputs (zero past the length), final states (those after its own last step, h0 for an
    empty row), and every gradient (parameter gradients are the sum over rows)."""
    lengths = np.array([4, 0, 2, 1])
    nb = len(lengths)
    inputs = harness.make_inputs(cell, T, nb, I, H, seed=5)
    douts = harness.make_output_grads(cell, T, nb, H, seed=6)
    outs, cache = harness.forward(ref, cell, inputs, lengths=lengths, reverse=reverse)
    grads = harness.backward(ref, cell, cache, douts)

    summed = {name: np.zeros_like(inputs[name])
              for name in ("Wx", "Wh", "b", "bh", "Wr", "peepholes") if name in inputs}
    for row, length in enumerate(lengths):
        one = _one_row(harness, cell, inputs, row, length)
        one_outs, one_cache = harness.forward(ref, cell, one, reverse=reverse)
        np.testing.assert_array_equal(outs["y"][length:, row], 0.0)
        np.testing.assert_allclose(outs["y"][:length, row], one_outs["y"][:, 0], rtol=0, atol=EXACT_TOL)
        for state in ("hT", "cT"):
            if state in outs:
                np.testing.assert_allclose(outs[state][row], one_outs[state][0], rtol=0, atol=EXACT_TOL)
        if length == 0:
            np.testing.assert_array_equal(outs["hT"][row], inputs["h0"][row])

        one_douts = {"y": douts["y"][:length, row:row + 1]}
        one_douts.update({k: douts[k][row:row + 1] for k in ("hT", "cT") if k in douts})
        one_grads = harness.backward(ref, cell, one_cache, one_douts)
        np.testing.assert_array_equal(grads["x"][length:, row], 0.0)
        np.testing.assert_allclose(grads["x"][:length, row], one_grads["x"][:, 0], rtol=0, atol=EXACT_TOL)
        for state in ("h0", "c0"):
            if state in grads:
                np.testing.assert_allclose(grads[state][row], one_grads[state][0], rtol=0, atol=EXACT_TOL)
        for name in summed:
            summed[name] += one_grads[name]
    for name, total in summed.items():
        np.testing.assert_allclose(grads[name], total, rtol=0, atol=EXACT_TOL, err_msg=name)


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru", "gru_cho"])
def test_reverse_with_lengths_equals_reversed_valid_prefix(harness, cell):
    """reverse=True reads each row from lengths[b]-1 down to 0 and writes outputs at the
    positions it read: the same as flipping the valid prefix, running forward, flipping back."""
    lengths = np.array([3, 4, 0, 1])
    nb = len(lengths)
    inputs = harness.make_inputs(cell, T, nb, I, H, seed=9)
    outs, _ = harness.forward(ref, cell, inputs, lengths=lengths, reverse=True)
    for row, length in enumerate(lengths):
        one = _one_row(harness, cell, inputs, row, length)
        one["x"] = one["x"][::-1]
        one_outs, _ = harness.forward(ref, cell, one)
        np.testing.assert_allclose(outs["y"][:length, row], one_outs["y"][::-1, 0], rtol=0, atol=EXACT_TOL)
        np.testing.assert_array_equal(outs["y"][length:, row], 0.0)
        np.testing.assert_allclose(outs["hT"][row], one_outs["hT"][0], rtol=0, atol=EXACT_TOL)


@pytest.mark.parametrize("cell", ["rnn_relu", "lstm", "gru"])
def test_reverse_without_lengths_equals_flipped_forward(harness, cell):
    inputs = harness.make_inputs(cell, T, B, I, H, seed=10)
    outs, _ = harness.forward(ref, cell, inputs, reverse=True)
    flipped, _ = harness.forward(ref, cell, dict(inputs, x=inputs["x"][::-1]))
    np.testing.assert_array_equal(outs["y"], flipped["y"][::-1])
    np.testing.assert_array_equal(outs["hT"], flipped["hT"])


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru_cho"])
def test_full_lengths_equal_no_lengths(harness, cell, reverse):
    inputs = harness.make_inputs(cell, T, B, I, H, seed=12)
    douts = harness.make_output_grads(cell, T, B, H, seed=13)
    a, cache_a = harness.forward(ref, cell, inputs, reverse=reverse)
    b, cache_b = harness.forward(ref, cell, inputs, reverse=reverse, lengths=np.full(B, T))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    ga, gb = harness.backward(ref, cell, cache_a, douts), harness.backward(ref, cell, cache_b, douts)
    for k in ga:
        np.testing.assert_array_equal(ga[k], gb[k])


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("cell", ["rnn_relu", "lstm", "gru"])
def test_padding_never_leaks(harness, cell, reverse):
    """Garbage (NaN, inf) in padded x and in padded dy changes nothing, bit for bit."""
    inputs = harness.make_inputs(cell, T, B, I, H, seed=14)
    douts = harness.make_output_grads(cell, T, B, H, seed=15)
    clean, cache = harness.forward(ref, cell, inputs, lengths=LENGTHS, reverse=reverse)
    clean_grads = harness.backward(ref, cell, cache, douts)
    padded = np.arange(T)[:, None] >= LENGTHS[None, :]  # (T, B): True at padded positions
    dirty_x = inputs["x"].copy()
    dirty_x[padded] = np.nan
    dirty_x[padded & (np.arange(B)[None, :] == 0)] = np.inf
    dirty_dy = douts["y"].copy()
    dirty_dy[padded] = np.nan
    dirty, cache = harness.forward(ref, cell, dict(inputs, x=dirty_x), lengths=LENGTHS, reverse=reverse)
    dirty_grads = harness.backward(ref, cell, cache, dict(douts, y=dirty_dy))
    for k in clean:
        np.testing.assert_array_equal(dirty[k], clean[k], err_msg=k)
    for k in clean_grads:
        np.testing.assert_array_equal(dirty_grads[k], clean_grads[k], err_msg=k)


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
def test_all_empty_sequences(harness, cell):
    """lengths all 0: no step runs; outputs zero, states pass through in both directions."""
    inputs = harness.make_inputs(cell, T, B, I, H, seed=16)
    douts = harness.make_output_grads(cell, T, B, H, seed=17)
    outs, cache = harness.forward(ref, cell, inputs, lengths=np.zeros(B, dtype=np.int32))
    grads = harness.backward(ref, cell, cache, douts)
    np.testing.assert_array_equal(outs["y"], 0.0)
    np.testing.assert_array_equal(outs["hT"], inputs["h0"])
    np.testing.assert_array_equal(grads["h0"], douts["hT"])
    np.testing.assert_array_equal(grads["x"], 0.0)
    for name in ("Wx", "Wh", "b", "bh"):
        np.testing.assert_array_equal(grads[name], 0.0)
    if harness.has_cell_state(cell):
        np.testing.assert_array_equal(outs["cT"], inputs["c0"])
        np.testing.assert_array_equal(grads["c0"], douts["cT"])


# ----------------------------------------------------------------------------- dtypes, arguments

@pytest.mark.parametrize("cell", ALL_VARIANTS)
def test_float32_computes_in_float32(harness, cell):
    """float32 in -> float32 out, close to the float64 result. float32 has eps = 6e-8; over
    T=4 steps of O(1) values a few dozen roundings accumulate to ~1e-6, so 1e-5 absolute."""
    inputs64 = harness.make_inputs(cell, T, B, I, H, seed=18)
    inputs32 = {k: None if v is None else v.astype(np.float32) for k, v in inputs64.items()}
    douts64 = harness.make_output_grads(cell, T, B, H, seed=19)
    douts32 = {k: v.astype(np.float32) for k, v in douts64.items()}
    o64, c64 = harness.forward(ref, cell, inputs64, lengths=LENGTHS, reverse=True)
    o32, c32 = harness.forward(ref, cell, inputs32, lengths=LENGTHS, reverse=True)
    g64, g32 = harness.backward(ref, cell, c64, douts64), harness.backward(ref, cell, c32, douts32)
    for k in o64:
        assert o32[k].dtype == np.float32
        np.testing.assert_allclose(o32[k], o64[k], rtol=0, atol=1e-5)
    for k in g64:
        assert g32[k].dtype == np.float32, k
        np.testing.assert_allclose(g32[k], g64[k], rtol=0, atol=1e-5, err_msg=k)


def test_rejects_bad_arguments():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, I))
    Wx, Wh, b = rng.standard_normal((I, H)), rng.standard_normal((H, H)), rng.standard_normal(H)
    with pytest.raises(TypeError, match="Wx"):
        ref.rnn_forward(x, None, Wx.astype(np.float32), Wh, b)
    with pytest.raises(ValueError, match="Wh"):
        ref.rnn_forward(x, None, Wx, Wh[:, :2], b)
    with pytest.raises(ValueError, match="h0"):
        ref.rnn_forward(x, np.zeros((B + 1, H)), Wx, Wh, b)
    with pytest.raises(ValueError, match="lengths"):
        ref.rnn_forward(x, None, Wx, Wh, b, lengths=np.array([1, 2, T + 1]))
    with pytest.raises(ValueError, match="lengths"):
        ref.rnn_forward(x, None, Wx, Wh, b, lengths=np.array([1, -1, 2]))
    with pytest.raises(ValueError, match="nonlinearity"):
        ref.rnn_forward(x, None, Wx, Wh, b, nonlinearity="sigmoid")
    _, _, cache = ref.rnn_forward(x, None, Wx, Wh, b)
    with pytest.raises(TypeError, match="cache"):
        ref.gru_backward(None, None, cache)
