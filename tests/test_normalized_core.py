"""The fused kernels' normalised recurrences (``_core.forward(..., norm=...)``) against the
per-step NumPy recurrence of rnnkit.nn.normalized (itself checked against finite differences in
test_nn_recurrent_grad.py), on every ISA, on one and two threads, with lengths, reverse and
recurrent masks; the inference-mode batch norm folded into the weights; the core's guards.

Tolerances: float64 runs the same equations in another order (vector lanes, per-row sums), so
results agree to ~1e-13; 1e-10 leaves room for the longest gradient sums here. float32: 2e-4
relative to the largest value, the float32 rounding (6e-8) times the depth of the sums (T
steps of G*H-wide normalisations feeding each other).
"""
from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from rnnkit import _core, nn
from rnnkit.nn import normalized as N

CELLS = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}
TOL = {np.float64: 1e-10, np.float32: 2e-4}


def _problem(cell, norm, T, B, I, H, dtype, lengths, mask, seed=0):
    rng = np.random.default_rng(seed)
    G = CELLS[cell]

    def draw(*shape, scale=0.5, offset=0.0):
        return (offset + scale * rng.standard_normal(shape)).astype(dtype)

    P = {"Wx": draw(I, G * H), "Wh": draw(H, G * H), "b": draw(G * H, scale=0.1),
         "bh": draw(G * H, scale=0.1), "gamma_x": draw(G * H, scale=0.1, offset=1.0),
         "gamma_h": draw(G * H, scale=0.1, offset=1.0)}
    if cell == "lstm" and norm == "layer":
        P["gamma_c"], P["beta_c"] = draw(H, scale=0.1, offset=1.0), draw(H, scale=0.1)
    x = draw(T, B, I, scale=1.0)
    if lengths is not None:  # what rnnkit.functional does with padding before training
        x[np.arange(T)[:, None] >= lengths[None, :]] = 0
    h0, c0 = draw(B, H, scale=1.0), draw(B, H, scale=1.0) if cell == "lstm" else None
    rmask = (rng.random((B, H)) > 0.3).astype(dtype) / dtype(0.7) if mask else None
    grads = draw(T, B, H, scale=1.0), draw(B, H, scale=1.0), draw(B, H, scale=1.0) if cell == "lstm" else None
    return P, x, h0, c0, rmask, grads


def _buffers(G, H, dtype):
    return {f"running_{stat}_{site}": (np.zeros if stat == "mean" else np.ones)(G * H, dtype)
            for stat in ("mean", "var") for site in "xh"}


def _core_run(cell, norm, P, x, h0, c0, lengths, reverse, rmask, grads):
    spec = N.core_norm(norm, P["gamma_x"], P["gamma_h"], P.get("gamma_c"), P.get("beta_c"))
    y, hT, cT, handle = _core.forward(cell, x, h0, c0, P["Wx"], P["Wh"], P["b"], P["bh"],
                                      lengths, reverse, rmask, True, [], True, norm=spec)
    dx, dh0, dc0, dWx, dWh, db, dbh, _, _, dnorm = _core.backward(handle, *grads)
    out = {"y": y, "hT": hT, "dx": dx, "dh0": dh0, "Wx": dWx, "Wh": dWh, "b": db, "bh": dbh,
           **dnorm}
    if cT is not None:
        out.update(cT=cT, dc0=dc0)
    return out, handle


def _reference_run(cell, norm, P, x, h0, c0, lengths, reverse, rmask, grads, buffers):
    y, hT, cT, cache = N.normalized_forward(cell, x, h0, c0, P, norm, lengths, reverse, rmask,
                                            True, buffers)
    dx, dh0, dc0, g = N.normalized_backward(cache, *grads)
    out = {"y": y, "hT": hT, "dx": dx, "dh0": dh0, **g}
    if cT is not None:
        out.update(cT=cT, dc0=dc0)
    return out


def _assert_close(got, want, tol, what):
    for key, w in want.items():
        g = got[key]
        scale = max(1.0, float(np.abs(w).max()) if w.size else 1.0)
        err = float(np.abs(g - w).max()) / scale if w.size else 0.0
        assert err <= tol, f"{what}: {key} differs by {err:.2e} (scaled), tolerance {tol:.0e}"


LENGTHS = np.array([6, 4, 0, 5, 6, 1])


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("norm", ["layer", "batch"])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_core_matches_the_numpy_recurrence(cell, norm, reverse, padded, dtype):
    T, B, I, H = 6, 6, 5, 7
    lengths = LENGTHS if padded else None
    P, x, h0, c0, rmask, grads = _problem(cell, norm, T, B, I, H, dtype, lengths, mask=reverse)
    buffers = _buffers(CELLS[cell], H, dtype)
    want = _reference_run(cell, norm, P, x, h0, c0, lengths, reverse, rmask, grads, buffers)
    got, handle = _core_run(cell, norm, P, x, h0, c0, lengths, reverse, rmask, grads)
    _assert_close(got, want, TOL[dtype], f"{cell} {norm} reverse={reverse} padded={padded}")
    if norm == "batch":  # the running statistics the layers derive from the handle
        mine = _buffers(CELLS[cell], H, dtype)
        N.update_running_statistics(mine, handle.batch_statistics)
        _assert_close(mine, buffers, TOL[dtype], f"{cell} running statistics")
    else:
        assert handle.batch_statistics is None


@pytest.mark.parametrize("isa", rnnkit.supported_isas())
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("norm", ["layer", "batch"])
@pytest.mark.parametrize("H", [37, 80])
def test_every_isa_and_thread_count(restore_isa_and_threads, isa, threads, cell, norm, H):
    """Large enough (T*B*H*G*H >= 2^22 multiply-adds, B >= 16) that two threads split the
    batch (layer norm) or, for the batch norm, the hidden units across a team (which needs two
    tiles: H = 80 has two on every ISA, H = 37 two on AVX2 and one on AVX-512); H leaves a tail
    in every vector width; lengths include 0 and T."""
    rnnkit.set_isa(isa)
    rnnkit.set_num_threads(threads)
    T, B, I = 12, 20, 9
    lengths = np.resize(np.array([12, 7, 0, 12, 3]), B)
    P, x, h0, c0, rmask, grads = _problem(cell, norm, T, B, I, H, np.float64, lengths, mask=True)
    want = _reference_run(cell, norm, P, x, h0, c0, lengths, True, rmask, grads,
                          _buffers(CELLS[cell], H, np.float64))
    got, _ = _core_run(cell, norm, P, x, h0, c0, lengths, True, rmask, grads)
    _assert_close(got, want, TOL[np.float64], f"{isa} {threads} threads {cell} {norm}")


@pytest.mark.parametrize("layer_class", [nn.LSTM, nn.GRU, nn.RNN])
def test_inference_batch_norm_is_folded_into_the_weights(layer_class):
    """An eval-mode batch-normalised layer (running statistics) runs as the plain kernels on
    folded weights: same outputs and gradients as the NumPy recurrence in inference mode."""
    T, B, I, H = 5, 3, 4, 6
    layer = layer_class(I, H, norm="batch", dtype=np.float64, seed=3, batch_first=False)
    rng = np.random.default_rng(1)
    d = layer.l0.fwd
    for site in "xh":  # running statistics away from their initial 0 / 1
        d._buffers[f"running_mean_{site}"][:] = rng.standard_normal(d.Wx.shape[1])
        d._buffers[f"running_var_{site}"][:] = rng.uniform(0.5, 2.0, d.Wx.shape[1])
    x = rng.standard_normal((T, B, I))
    dy = rng.standard_normal((T, B, H))
    y = layer.forward(x, training=False)
    layer.zero_grad()
    dx = layer.backward(dy)
    params = {**d.kernel_params(), **d._norm_gains()}
    ry, _, _, cache = N.normalized_forward(d.cell, x, None, None, params, "batch", None, False,
                                           None, False, dict(d._buffers))
    rdx, _, _, rgrads = N.normalized_backward(cache, dy, None, None)
    np.testing.assert_allclose(y, ry, atol=1e-12)
    np.testing.assert_allclose(dx, rdx, atol=1e-12)
    grads = layer.grads()
    for name, ref in (("Wx", rgrads["Wx"]), ("Wh", rgrads["Wh"]), ("b", rgrads["b"]),
                      ("bh", rgrads["bh"]), ("norm_x.gamma", rgrads["gamma_x"]),
                      ("norm_h.gamma", rgrads["gamma_h"])):
        np.testing.assert_allclose(grads[f"l0.fwd.{name}"], ref, atol=1e-11, err_msg=name)


def _core_args(cell="lstm", T=3, B=2, I=4, H=5, dtype=np.float64):
    G = CELLS[cell]
    z = np.zeros
    return dict(cell=cell, x=z((T, B, I), dtype), h0=None, c0=None, Wx=z((I, G * H), dtype),
                Wh=z((H, G * H), dtype), b=z(G * H, dtype), bh=None, lengths=None,
                reverse=False, recurrent_mask=None, linear_before_reset=True, gate_block=[],
                training=True), G * H


def test_core_refuses_bad_normalisation_arguments():
    args, GH = _core_args()
    ok = {"kind": "layer", "gamma_x": np.ones(GH), "gamma_h": np.ones(GH)}
    with pytest.raises(ValueError, match="norm\\['kind'\\] must be 'layer' or 'batch'"):
        _core.forward(**args, norm={**ok, "kind": "group"})
    with pytest.raises(ValueError, match="norm\\['gamma_h'\\] must have shape \\(20,\\)"):
        _core.forward(**args, norm={**ok, "gamma_h": np.ones(GH + 1)})
    with pytest.raises(TypeError, match="norm\\['gamma_x'\\] must be an array"):
        _core.forward(**args, norm={"kind": "layer", "gamma_h": np.ones(GH)})
    with pytest.raises(TypeError, match="norm must be a dict"):
        _core.forward(**args, norm=[1, 2])
    with pytest.raises(ValueError, match="batch.*training"):
        _core.forward(**{**args, "training": False}, norm={**ok, "kind": "batch"})
    with pytest.raises(ValueError, match="keep_reserve"):
        _core.forward(**args, keep_reserve=False, norm=ok)
    with pytest.raises(ValueError, match="gamma_c.*cell state"):
        _core.forward(**{**_core_args("gru")[0]}, norm={
            "kind": "layer", "gamma_x": np.ones(15), "gamma_h": np.ones(15),
            "gamma_c": np.ones(5), "beta_c": np.zeros(5)})
    with pytest.raises(ValueError, match="no normalised form"):
        _core.forward(**args, peepholes=np.zeros((3, 5)), norm=ok)
    gru, GH3 = _core_args("gru")
    with pytest.raises(ValueError, match="no normalised form"):
        _core.forward(**{**gru, "linear_before_reset": False},
                      norm={"kind": "layer", "gamma_x": np.ones(GH3), "gamma_h": np.ones(GH3)})


def test_layer_norm_runs_in_inference_mode():
    """A layer norm needs no batch: the inference-mode forward gives the training one's
    outputs and keeps nothing."""
    T, B, I, H = 4, 3, 5, 6
    P, x, h0, c0, _, _ = _problem("lstm", "layer", T, B, I, H, np.float64, None, mask=False)
    spec = N.core_norm("layer", P["gamma_x"], P["gamma_h"], P["gamma_c"], P["beta_c"])
    args = ("lstm", x, h0, c0, P["Wx"], P["Wh"], P["b"], P["bh"], None, False, None, True, [])
    y, hT, cT, handle = _core.forward(*args, True, norm=spec)
    yi, hTi, cTi, none = _core.forward(*args, False, norm=spec)
    assert none is None
    np.testing.assert_allclose(yi, y, atol=1e-14)
    np.testing.assert_allclose(cTi, cT, atol=1e-14)


@pytest.mark.parametrize("norm", ["layer", "batch"])
def test_large_call_splits_its_passes_across_threads(restore_isa_and_threads, norm):
    """Big enough (T*B*G*H*8 >= 2^22) that the passes after the loop (the input-side copy, the
    gains' sums, the input normalisation's backward) split rows or columns across 2 threads."""
    rnnkit.set_num_threads(2)
    T, B, I, H = 50, 40, 6, 80
    lengths = np.resize(np.array([50, 31, 0, 50, 7]), B)
    P, x, h0, c0, rmask, grads = _problem("lstm", norm, T, B, I, H, np.float64, lengths, mask=False)
    want = _reference_run("lstm", norm, P, x, h0, c0, lengths, False, rmask, grads,
                          _buffers(4, H, np.float64))
    got, _ = _core_run("lstm", norm, P, x, h0, c0, lengths, False, rmask, grads)
    _assert_close(got, want, TOL[np.float64], f"2 threads, large lstm {norm}")
