"""rnnkit.functional (C++ kernels) against rnnkit.reference (plain NumPy), every SIMD ISA
against the scalar one, and the vectorised exp / sigmoid / tanh against NumPy.

Hidden sizes H in {1, 3, 7, 8, 9, 15, 16, 17, 33, 64} hit the SIMD remainder loops (vector
widths 4/8/16 lanes) and the full-vector paths; I = 7 does the same for the input projection.
Lengths include 0 and T. All comparisons use the scaled error
    err(got, expected) = max|got - expected| / max(1, max|expected|),
i.e. absolute for O(1) values and relative for larger gradient sums.
"""
from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from rnnkit import _core
from rnnkit import functional as F
from rnnkit import reference as ref

import emulated_device
import cuda_support as gpu
from compare import scaled_error
from conftest import ALL_VARIANTS

CELLS = list(ALL_VARIANTS)
HIDDEN = [1, 3, 7, 8, 9, 15, 16, 17, 33, 64]
T, B, I = 5, 4, 7
LENGTHS = np.array([5, 0, 3, 1])  # T, an empty row, partial rows
CONFIGS = {  # id -> forward keywords
    "full-fwd": dict(lengths=None, reverse=False),
    "full-rev": dict(lengths=None, reverse=True),
    "lengths-fwd": dict(lengths=LENGTHS, reverse=False),
    "lengths-rev": dict(lengths=LENGTHS, reverse=True),
}
VECTOR_ISAS = [isa for isa in rnnkit.supported_isas() if isa != "scalar"]
# The backends of the backend seam (docs/design.md) under test: name -> (put an input array
# where that backend computes, bring a result back to NumPy). The core picks the backend from
# where the arrays live, so a second backend (CUDA, CuPy arrays) joins every backend-vs-reference
# test below with one entry here.
BACKENDS = {"cpu": (np.asarray, np.asarray)}
# The CUDA backend's time loops and kernels run on the host (rnnkit._cuda_emulation, every
# build): its maths and indexing against the reference on machines without a GPU.
if emulated_device.BACKEND is not None:
    BACKENDS["cuda_emulated"] = (emulated_device.to_device, np.asarray)
# The CUDA backend itself, where a GPU is visible (CuPy arrays in and out).
if gpu.available():
    BACKENDS["cuda"] = (gpu.cupy().asarray, gpu.cupy().asnumpy)

# Tolerances (scaled error as above).
# float64 kernel vs float64 reference: both evaluate the same expressions with ~1e-16 unit
# round-off; they differ in summation order (BLAS blocking, FMA) and the kernels' exp/tanh are
# within a few ulp. Over T=5 steps with contracting O(1) Jacobians and H <= 64 term dot
# products that is ~1e-15 (measured <= 1.1e-15); docs/design.md promises ~1e-12, which we assert.
TOL_F64 = 1e-12
# float32 kernel vs float64 reference: float32 unit round-off is 6e-8; each output passes
# through ~T * (dot products of up to H + I terms + a few pointwise ops) roundings, and
# gradients additionally sum over T*B rows: a few times 1e-7 (measured <= 7e-7). 1e-5 is
# ~80 float32 ulps of 1: loose enough for any summation order, tight enough to catch a wrong
# term (O(1e-2)) or a float32 kernel quietly computing in half-precision-like accuracy.
TOL_F32 = 1e-5
# A vector ISA vs the scalar ISA, same dtype: only summation order / FMA contraction and the
# few-ulp exp/tanh approximations differ, so the gap is at most the sum of each side's error
# against exact maths: the float64 bound (measured ~1e-15) and the float32 bound (~5e-7).
TOL_ISA = {np.float64: 1e-12, np.float32: 1e-5}


def _cast(d, dtype):
    return {k: None if v is None else v.astype(dtype) for k, v in d.items()}


def _run(harness, impl, cell, inputs, douts, **kwargs):
    outs, cache = harness.forward(impl, cell, inputs, **kwargs)
    return outs, harness.backward(impl, cell, cache, douts)


def _run_on(backend, harness, cell, inputs, douts, **kwargs):
    """rnnkit.functional on ``backend``: inputs moved there, results brought back."""
    to_backend, to_numpy = BACKENDS[backend]

    def moved(d, move):
        return {k: None if v is None else move(v) for k, v in d.items()}

    outs, cache = harness.forward(F, cell, moved(inputs, to_backend), **kwargs)
    assert {h.backend for h in cache.handles} == {backend}
    grads = harness.backward(F, cell, cache, moved(douts, to_backend))
    return moved(outs, to_numpy), moved(grads, to_numpy)


def _compare(outs, grads, ref_outs, ref_grads, tol, what):
    for k in ref_outs:
        err = scaled_error(outs[k], ref_outs[k])
        assert err <= tol, f"{what}: {k} differs by {err:.2e} (tolerance {tol:.0e})"
    for k in ref_grads:
        if ref_grads[k] is None:
            assert grads[k] is None, f"{what}: d{k} should be None"
            continue
        err = scaled_error(grads[k], ref_grads[k])
        assert err <= tol, f"{what}: d{k} differs by {err:.2e} (tolerance {tol:.0e})"


# ----------------------------------------------------------------------------- vs reference

@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("H", HIDDEN)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("backend", list(BACKENDS))
def test_functional_matches_reference(harness, backend, dtype, cell, H, config):
    """Forward outputs, final states and every gradient, against the float64 reference."""
    kwargs = CONFIGS[config]
    bh = H % 2 == 1 or cell.startswith("gru")  # RNN/LSTM alternate between with and without bh
    inputs = harness.make_inputs(cell, T, B, I, H, bh=bh, h0=H != 8, seed=100 + H)
    douts = harness.make_output_grads(cell, T, B, H, seed=200 + H)
    ref_outs, ref_grads = _run(harness, ref, cell, inputs, douts, **kwargs)
    outs, grads = _run_on(backend, harness, cell, _cast(inputs, dtype), _cast(douts, dtype),
                          **kwargs)
    for k, v in list(outs.items()) + [(k, v) for k, v in grads.items() if v is not None]:
        assert v.dtype == dtype, f"{k} has dtype {v.dtype}"
    if kwargs["lengths"] is not None:
        padded = np.arange(T)[:, None] >= LENGTHS[None, :]
        assert np.all(outs["y"][padded] == 0) and np.all(grads["x"][padded] == 0)
    tol = TOL_F64 if dtype == np.float64 else TOL_F32
    _compare(outs, grads, ref_outs, ref_grads, tol, f"{cell} H={H} {config} {np.dtype(dtype)}")


# Batch sizes that reach every row-block size of the packed GEMM (rows split evenly into
# blocks of at most 4 on AVX2/scalar, 6 on AVX-512: 1, 2, 3, 5 = 3+2, 6, 7 = 4+3, 9, 13 = 5+4+4
# or 7+6) and hidden sizes with one partial wide tile (H=7, span 24 or 32 units) and a full one
# plus a partial one (H=30, 37); T and I odd so the k-phase split (KS = 2..4 interleaved
# accumulators for small blocks) leaves a remainder in every product.
@pytest.mark.parametrize("rows", [1, 2, 3, 5, 6, 7, 9, 13])
@pytest.mark.parametrize("H", [7, 30, 37])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("isa", rnnkit.supported_isas())
def test_row_blocks_match_reference(harness, restore_isa_and_threads, isa, cell, H, rows):
    rnnkit.set_isa(isa)
    inputs = harness.make_inputs(cell, 3, rows, 5, H, seed=500 + rows + H)
    douts = harness.make_output_grads(cell, 3, rows, H, seed=600 + rows + H)
    ref_outs, ref_grads = _run(harness, ref, cell, inputs, douts)
    outs, grads = _run_on("cpu", harness, cell, inputs, douts)  # the CPU's ISAs
    _compare(outs, grads, ref_outs, ref_grads, TOL_F64, f"{isa} {cell} H={H} B={rows}")


# Small batches whose forward splits the hidden units across a thread team (B < 16, enough
# work per step: cpu/recurrent.cpp unit_team_size): 144 units are 3 AVX-512 tiles of 64 (the
# members get 1 and 2, the last one partial) and 6 AVX2/scalar tiles of 24; lengths with 0 and
# T, reverse, and the recurrent mask. Cells the team does not run (projection, two stages)
# take the row path here, which the test also covers. With the mask, the team's results are
# compared with one thread's (the same loop; x @ Wx in another summation order).
@pytest.mark.parametrize("rows", [1, 3])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("isa", rnnkit.supported_isas())
def test_hidden_unit_team_matches_reference(harness, restore_isa_and_threads, isa, cell, rows):
    rnnkit.set_isa(isa)
    rnnkit.set_num_threads(2)
    T_team, H = 9, 144
    inputs = harness.make_inputs(cell, T_team, rows, 5, H, seed=700 + rows)
    douts = harness.make_output_grads(cell, T_team, rows, H, seed=800 + rows)
    kwargs = dict(lengths=np.array([T_team, 0, 4][:rows]), reverse=True)
    ref_outs, ref_grads = _run(harness, ref, cell, inputs, douts, **kwargs)
    outs, grads = _run(harness, F, cell, inputs, douts, **kwargs)
    _compare(outs, grads, ref_outs, ref_grads, TOL_F64, f"{isa} team {cell} B={rows}")
    mask = np.random.default_rng(rows).uniform(0.5, 1.5, (rows, inputs["Wh"].shape[0]))
    team = _run(harness, F, cell, inputs, douts, recurrent_mask=mask, **kwargs)
    rnnkit.set_num_threads(1)
    alone = _run(harness, F, cell, inputs, douts, recurrent_mask=mask, **kwargs)
    _compare(*team, *alone, TOL_F64, f"{isa} team {cell} B={rows} masked, 2 threads vs 1")


@pytest.mark.parametrize("cell", CELLS)
def test_inference_mode_same_outputs_no_cache(harness, cell):
    inputs = harness.make_inputs(cell, T, B, I, 9, seed=5)
    outs, cache = harness.forward(F, cell, inputs, lengths=LENGTHS, reverse=True)
    outs_inf, cache_inf = harness.forward(F, cell, inputs, lengths=LENGTHS, reverse=True, inference=True)
    assert cache is not None and cache_inf is None
    for k in outs:
        np.testing.assert_array_equal(outs_inf[k], outs[k])


@pytest.mark.parametrize("cell,order", [("lstm", "ifog"), ("lstm", "oigf"), ("gru", "zrn"), ("gru_cho", "nzr")])
def test_gate_order_equals_permuted_columns(harness, cell, order):
    """gate_order names the column blocks of the given weights; the result must equal the
    canonical-order call on the permuted weights, with gradients in the caller's order."""
    H = 7
    canonical = "ifgo" if cell == "lstm" else "rzn"
    inputs = harness.make_inputs(cell, T, B, I, H, seed=6)
    douts = harness.make_output_grads(cell, T, B, H, seed=7)

    def to_order(a, src, dst):  # reorder H-wide column blocks from order src to order dst
        blocks = np.split(a, len(src), axis=-1)
        return np.concatenate([blocks[src.index(g)] for g in dst], axis=-1)

    permuted = dict(inputs)
    for name in ("Wx", "Wh", "b", "bh"):
        permuted[name] = to_order(inputs[name], canonical, order)
    outs, grads = _run(harness, F, cell, inputs, douts, lengths=LENGTHS)
    p_outs, p_grads = _run(harness, F, cell, permuted, douts, lengths=LENGTHS, gate_order=order)
    for k in outs:
        assert scaled_error(p_outs[k], outs[k]) <= TOL_F64, k
    for k in grads:
        expected = to_order(grads[k], canonical, order) if k in ("Wx", "Wh", "b", "bh") else grads[k]
        assert scaled_error(p_grads[k], expected) <= TOL_F64, k


# ----------------------------------------------------------------------------- ISA vs scalar

@pytest.mark.skipif(not VECTOR_ISAS, reason="no vector ISA on this CPU")
@pytest.mark.parametrize("config", ["full-fwd", "lengths-rev"])
@pytest.mark.parametrize("H", HIDDEN)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("isa", VECTOR_ISAS or ["none"])
def test_isa_matches_scalar(harness, restore_isa_and_threads, isa, dtype, cell, H, config):
    kwargs = CONFIGS[config]
    inputs = _cast(harness.make_inputs(cell, T, B, I, H, seed=300 + H), dtype)
    douts = _cast(harness.make_output_grads(cell, T, B, H, seed=400 + H), dtype)
    rnnkit.set_isa("scalar")
    assert rnnkit.get_isa() == "scalar"
    s_outs, s_grads = _run(harness, F, cell, inputs, douts, **kwargs)
    rnnkit.set_isa(isa)
    assert rnnkit.get_isa() == isa
    outs, grads = _run(harness, F, cell, inputs, douts, **kwargs)
    _compare(outs, grads, s_outs, s_grads, TOL_ISA[dtype], f"{isa} vs scalar {cell} H={H} {config} {np.dtype(dtype)}")


@pytest.mark.parametrize("cell", CELLS)
def test_thread_count_does_not_change_results(harness, restore_isa_and_threads, cell):
    """Batch or hidden-unit splitting across threads must not change the maths beyond
    summation order (float64 bound as for the reference comparison)."""
    Bbig, H = 33, 17
    inputs = harness.make_inputs(cell, T, Bbig, I, H, seed=8)
    douts = harness.make_output_grads(cell, T, Bbig, H, seed=9)
    lengths = np.arange(Bbig) % (T + 1)
    rnnkit.set_num_threads(1)
    one = _run(harness, F, cell, inputs, douts, lengths=lengths, reverse=True)
    rnnkit.set_num_threads(4)
    many = _run(harness, F, cell, inputs, douts, lengths=lengths, reverse=True)
    _compare(*many, *one, TOL_F64, f"{cell} 4 threads vs 1")


# ----------------------------------------------------------------------------- exp/sigmoid/tanh
# Bounds (vec_math.h documents them): exp within a few ulp of the exact value wherever the
# result is a normal number; sigmoid and tanh within a few ulp *of 1* in absolute terms (their
# relative error may grow near 0, which gradients and states do not care about). "A few" = 4
# here: the float64 series truncation is 1.7e-16 (< 1 ulp) and the float32 one 5e-9 (< 0.1 ulp),
# the rest is a handful of correctly rounded operations. The exact values come from NumPy in
# long double (80-bit on x86: 11 more bits than float64), so their own error is negligible.
ULPS = 4
ISAS = rnnkit.supported_isas()


def _exact(fn, x):
    xl = x.astype(np.longdouble)
    with np.errstate(over="ignore"):
        if fn == "exp":
            return np.exp(xl)
        if fn == "sigmoid":
            return 1 / (1 + np.exp(-xl))
        return np.tanh(xl)


def _grid(dtype, lo, hi):
    """A dense grid on [lo, hi] plus the region around 0, with a length (odd, > 64) that
    leaves a remainder after every vector width."""
    x = np.concatenate([np.linspace(lo, hi, 20001), np.linspace(-20, 20, 8001),
                        np.geomspace(1e-30, 1, 1001), -np.geomspace(1e-30, 1, 1001)])
    x = x[(x >= lo) & (x <= hi)].astype(dtype)
    return np.ascontiguousarray(x)


def _ulp_error(got, exact, dtype):
    """|got - exact| in units of the spacing of dtype at the exact value."""
    spacing = np.spacing(exact.astype(dtype)).astype(np.longdouble)
    return np.abs(got.astype(np.longdouble) - exact) / np.abs(spacing)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("isa", ISAS)
def test_exp_accuracy_core_range(isa, dtype):
    """exp over [-80, 80] (float32) / [-700, 700] (float64): well inside the normal range."""
    limit = 80.0 if dtype == np.float32 else 700.0
    x = _grid(dtype, -limit, limit)
    got = _core.elementwise("exp", x, isa)
    assert got.dtype == dtype and got.shape == x.shape
    err = _ulp_error(got, _exact("exp", x), dtype)
    worst = int(np.argmax(err))
    assert err.max() <= ULPS, f"exp({x[worst]!r}) = {got[worst]!r}: {float(err.max()):.1f} ulp"


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("isa", ISAS)
def test_exp_accuracy_edges_of_normal_range(isa, dtype):
    """exp for x between the core range and the ends of the range where e^x is a normal
    number, [log(tiny), log(max)]: the documented few-ulp bound still applies there."""
    info = np.finfo(dtype)
    lo, hi = float(np.log(info.tiny)), float(np.log(info.max))
    core = 80.0 if dtype == np.float32 else 700.0
    x = np.concatenate([np.linspace(lo, -core, 4001), np.linspace(core, hi, 4001)]).astype(dtype)
    x = np.ascontiguousarray(x[(x > lo) & (x < hi)])
    got = _core.elementwise("exp", x, isa)
    err = _ulp_error(got, _exact("exp", x), dtype)
    bad = err > ULPS
    assert not bad.any(), (
        f"exp off by more than {ULPS} ulp for {int(bad.sum())} of {x.size} inputs in "
        f"[{x[bad].min()!r}, {x[bad].max()!r}]; worst: exp({x[np.argmax(err)]!r}) = "
        f"{got[np.argmax(err)]!r}, exact {float(_exact('exp', x[np.argmax(err):][:1])[0])!r}"
    )


@pytest.mark.parametrize("fn", ["sigmoid", "tanh"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("isa", ISAS)
def test_sigmoid_tanh_accuracy(isa, dtype, fn):
    """Absolute error <= 4 ulp of 1 over [-1000, 1000] (dense near 0)."""
    x = _grid(dtype, -1000.0, 1000.0)
    got = _core.elementwise(fn, x, isa)
    assert got.dtype == dtype and got.shape == x.shape
    err = np.abs(got.astype(np.longdouble) - _exact(fn, x)) / np.finfo(dtype).eps
    worst = int(np.argmax(err))
    assert err.max() <= ULPS, f"{fn}({x[worst]!r}) = {got[worst]!r}: {float(err.max()):.1f} ulp of 1"


def _specials(values, dtype):
    """Each special value at every position of a 37-long array, so it is seen by every
    vector lane and by the scalar remainder loop."""
    values = np.asarray(values, dtype=dtype)
    n = 37
    x = np.resize(np.asarray(values), n * len(values)).reshape(len(values), n)
    for k in range(len(values)):
        x[k] = np.roll(np.resize(values, n), k)
    return np.ascontiguousarray(x.ravel())


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("isa", ISAS)
def test_saturation_and_nan(isa, dtype):
    """+-1000 and +-inf saturate cleanly (no NaN; sigmoid -> 0 / 1, tanh -> -1 / 1 exactly
    at the positive/negative ends, within the absolute bound near 0); NaN stays NaN."""
    x = _specials([-np.inf, -1000.0, 1000.0, np.inf, np.nan, 0.0, -1.0], dtype)
    eps = np.finfo(dtype).eps
    nan = np.isnan(x)
    sig = _core.elementwise("sigmoid", x, isa)
    th = _core.elementwise("tanh", x, isa)
    ex = _core.elementwise("exp", x, isa)
    for name, out in (("sigmoid", sig), ("tanh", th), ("exp", ex)):
        assert np.all(np.isnan(out[nan])), f"{name}(nan) must be nan"
        assert not np.any(np.isnan(out[~nan])), f"{name} produced NaN from {x[~nan][np.isnan(out[~nan])]}"
    big, small = x >= 1000, x <= -1000
    assert np.all(sig[big] == 1) and np.all(th[big] == 1) and np.all(th[small] == -1)
    # sigmoid of -1000 / -inf is 0 to within the documented absolute bound
    assert np.all((sig[small] >= 0) & (sig[small] <= ULPS * eps)), sig[small]
    # exp overflows to +inf or saturates at a huge finite value; never below that
    assert np.all(ex[big] >= np.finfo(dtype).max / 2)
    # exp of -1000 is far below the smallest positive number: 0, or at worst a value no
    # larger than the smallest normal number (clamped argument)
    assert np.all((ex[small] >= 0) & (ex[small] <= 2 * np.finfo(dtype).tiny)), ex[small]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("isa", ISAS)
def test_exp_of_minus_inf_is_zero(isa, dtype):
    """exp(-inf) = 0 exactly (the contract asks for it; a clamp that yields the smallest
    normal number instead is a (tiny) error that NumPy users would not expect)."""
    x = _specials([-np.inf, 0.0], dtype)
    ex = _core.elementwise("exp", x, isa)
    at_minus_inf = np.unique(ex[np.isneginf(x)])
    assert np.all(at_minus_inf == 0), f"exp(-inf) gave {at_minus_inf.tolist()} ({isa}, {np.dtype(dtype)})"
    assert np.all(ex[x == 0] == 1)


@pytest.mark.parametrize("isa", ISAS)
def test_elementwise_empty_and_rejects_bad_fn(isa):
    assert _core.elementwise("tanh", np.zeros(0), isa).shape == (0,)
    with pytest.raises(ValueError, match="fn"):
        _core.elementwise("log", np.zeros(3), isa)


# ----------------------------------------------------------------------------- other shapes

@pytest.mark.parametrize("T_,B_", [(0, 3), (4, 0), (1, 1), (40, 9)], ids=["T0", "B0", "T1B1", "T40B9"])
@pytest.mark.parametrize("cell", CELLS)
def test_other_shapes_match_reference(harness, cell, T_, B_):
    """Empty sequences and batches, a single step, and a longer sequence (T=40: errors
    accumulate over more steps, but the cells' Jacobians are contracting at these weight
    scales, so the float64 bound still holds with room to spare), with random lengths."""
    H = 9
    rng = np.random.default_rng(T_ * 100 + B_)
    lengths = rng.integers(0, T_ + 1, size=B_)
    inputs = harness.make_inputs(cell, T_, B_, I, H, seed=10 + T_)
    douts = harness.make_output_grads(cell, T_, B_, H, seed=20 + T_)
    for reverse in (False, True):
        ref_outs, ref_grads = _run(harness, ref, cell, inputs, douts, lengths=lengths, reverse=reverse)
        outs, grads = _run(harness, F, cell, inputs, douts, lengths=lengths, reverse=reverse)
        _compare(outs, grads, ref_outs, ref_grads, TOL_F64, f"{cell} T={T_} B={B_} reverse={reverse}")
