"""rnnkit.functional against torch.nn.RNN (tanh, relu), torch.nn.LSTM and torch.nn.GRU in
float64: forward outputs, final states and every gradient (autograd on torch's side),
unidirectional and bidirectional, with and without variable lengths (packed sequences).

Mapping (docs/design.md): torch's weight_ih_l0 is (G*H, I), so Wx = weight_ih_l0.T,
Wh = weight_hh_l0.T, b = bias_ih_l0, bh = bias_hh_l0; the *_reverse parameters drive the
reverse=True call. Gate orders match (LSTM i,f,g,o; GRU r,z,n) and torch's GRU applies the
reset gate after the recurrent product (our linear_before_reset=True).
A bidirectional layer is two calls: the forward direction and reverse=True, sharing lengths;
the outputs concatenate on the feature axis and dx is the sum of both directions' dx.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rnnkit import functional as F  # noqa: E402
from compare import scaled_error  # noqa: E402
from torch_reference import _torch_single_thread  # noqa: E402,F401 (autouse fixture)

T, B, I = 5, 4, 6
TORCH_LENGTHS = np.array([5, 3, 1, 4])  # torch's packing needs every length >= 1; includes T
# Both sides compute in float64 with the same equations but different summation orders and
# exp/tanh implementations (a few ulp each): measured differences are ~1e-15 of the values'
# scale. docs/design.md promises float64 agreement to ~1e-12; asserted on the scaled error
# max|a - b| / max(1, max|b|) (absolute for O(1) values, relative for larger gradient sums).
TOL = 1e-12

TORCH_CELLS = {  # our cell name -> (torch module factory, our functional call name)
    "rnn_tanh": lambda I, H, bi: torch.nn.RNN(I, H, nonlinearity="tanh", bidirectional=bi, dtype=torch.float64),
    "rnn_relu": lambda I, H, bi: torch.nn.RNN(I, H, nonlinearity="relu", bidirectional=bi, dtype=torch.float64),
    "lstm": lambda I, H, bi: torch.nn.LSTM(I, H, bidirectional=bi, dtype=torch.float64),
    "gru": lambda I, H, bi: torch.nn.GRU(I, H, bidirectional=bi, dtype=torch.float64),
}


def assert_close(got, expected, what):
    err = scaled_error(got, expected)
    assert err <= TOL, f"{what}: differs from torch by {err:.2e} (tolerance {TOL:.0e})"


@pytest.mark.parametrize("h0", [True, False], ids=["h0", "no_h0"])
@pytest.mark.parametrize("layout", ["uni-full", "uni-lengths", "bi-full", "bi-lengths"])
@pytest.mark.parametrize("H", [7, 16])
@pytest.mark.parametrize("cell", list(TORCH_CELLS))
def test_matches_torch(harness, cell, H, layout, h0):
    bidirectional = layout.startswith("bi")
    lengths = TORCH_LENGTHS if layout.endswith("lengths") else None
    directions = [("", False)] + ([("_reverse", True)] if bidirectional else [])
    is_lstm = cell == "lstm"

    # Our random O(1) parameters, one set per direction, copied into the torch module.
    params = [harness.make_inputs(cell, T, B, I, H, seed=50 + k) for k in range(len(directions))]
    x = params[0]["x"]
    for p in params:
        p["x"] = x
        if not h0:
            p["h0"] = None
            if is_lstm:
                p["c0"] = None
    module = TORCH_CELLS[cell](I, H, bidirectional)
    with torch.no_grad():
        for (suffix, _), p in zip(directions, params):
            getattr(module, "weight_ih_l0" + suffix).copy_(torch.from_numpy(p["Wx"].T))
            getattr(module, "weight_hh_l0" + suffix).copy_(torch.from_numpy(p["Wh"].T))
            getattr(module, "bias_ih_l0" + suffix).copy_(torch.from_numpy(p["b"]))
            getattr(module, "bias_hh_l0" + suffix).copy_(torch.from_numpy(p["bh"]))

    rng = np.random.default_rng(60)
    D = len(directions)
    Gy = rng.standard_normal((T, B, D * H))
    Gh = rng.standard_normal((D, B, H))
    Gc = rng.standard_normal((D, B, H))

    # ---- torch, autograd
    xt = torch.tensor(x, requires_grad=True)
    states = None
    if h0:
        h0t = torch.tensor(np.stack([p["h0"] for p in params]), requires_grad=True)
        if is_lstm:
            c0t = torch.tensor(np.stack([p["c0"] for p in params]), requires_grad=True)
            states = (h0t, c0t)
        else:
            states = h0t
    if lengths is not None:
        packed = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lengths), enforce_sorted=False)
        out, final = module(packed, states)
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=T)
    else:
        out, final = module(xt, states)
    hn, cn = final if is_lstm else (final, None)
    loss = (out * torch.from_numpy(Gy)).sum() + (hn * torch.from_numpy(Gh)).sum()
    if is_lstm:
        loss = loss + (cn * torch.from_numpy(Gc)).sum()
    loss.backward()

    # ---- rnnkit, one call per direction
    dx = np.zeros_like(x)
    for d, ((suffix, reverse), p) in enumerate(zip(directions, params)):
        outs, cache = harness.forward(F, cell, p, lengths=lengths, reverse=reverse)
        name = f"{cell} H={H} {layout} {'h0' if h0 else 'no h0'} direction{suffix or '_forward'}"
        assert_close(outs["y"], out.detach().numpy()[:, :, d * H:(d + 1) * H], f"{name}: y")
        assert_close(outs["hT"], hn.detach().numpy()[d], f"{name}: hT")
        douts = {"y": Gy[:, :, d * H:(d + 1) * H], "hT": Gh[d]}
        if is_lstm:
            assert_close(outs["cT"], cn.detach().numpy()[d], f"{name}: cT")
            douts["cT"] = Gc[d]
        grads = harness.backward(F, cell, cache, douts)
        dx += grads["x"]
        assert_close(grads["Wx"], getattr(module, "weight_ih_l0" + suffix).grad.numpy().T, f"{name}: dWx")
        assert_close(grads["Wh"], getattr(module, "weight_hh_l0" + suffix).grad.numpy().T, f"{name}: dWh")
        assert_close(grads["b"], getattr(module, "bias_ih_l0" + suffix).grad.numpy(), f"{name}: db")
        assert_close(grads["bh"], getattr(module, "bias_hh_l0" + suffix).grad.numpy(), f"{name}: dbh")
        if h0:
            assert_close(grads["h0"], h0t.grad.numpy()[d], f"{name}: dh0")
            if is_lstm:
                assert_close(grads["c0"], c0t.grad.numpy()[d], f"{name}: dc0")
    assert_close(dx, xt.grad.numpy(), f"{cell} H={H} {layout}: dx (sum over directions)")


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm"])
def test_matches_torch_without_bias(harness, cell):
    """torch's bias=False is our b = 0 and bh = None (dbh is then None)."""
    H = 7
    module = (torch.nn.LSTM if cell == "lstm" else torch.nn.RNN)(I, H, bias=False, dtype=torch.float64)
    p = harness.make_inputs(cell, T, B, I, H, seed=70, bh=False)
    p["b"] = np.zeros_like(p["b"])
    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.from_numpy(p["Wx"].T))
        module.weight_hh_l0.copy_(torch.from_numpy(p["Wh"].T))
    states = torch.from_numpy(p["h0"][None]) if cell != "lstm" else (
        torch.from_numpy(p["h0"][None]), torch.from_numpy(p["c0"][None]))
    out, _ = module(torch.from_numpy(p["x"]), states)
    Gy = np.random.default_rng(71).standard_normal((T, B, H))
    (out * torch.from_numpy(Gy)).sum().backward()
    outs, cache = harness.forward(F, cell, p)
    grads = harness.backward(F, cell, cache, {"y": Gy})
    assert grads["bh"] is None
    assert_close(outs["y"], out.detach().numpy(), f"{cell} bias=False: y")
    assert_close(grads["Wx"], module.weight_ih_l0.grad.numpy().T, f"{cell} bias=False: dWx")
    assert_close(grads["Wh"], module.weight_hh_l0.grad.numpy().T, f"{cell} bias=False: dWh")
