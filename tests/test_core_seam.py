"""The core's backend seam as the bindings expose it: the cell table, forward handles that own
their inputs and the backend's reserve, checkpoint handles that recompute, and the gate-order
rules of the cell policies."""
import gc

import numpy as np
import pytest

import rnnkit.functional as F
from rnnkit import _core, reference

T, B, I, H = 5, 3, 4, 6
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}


def arrays(cell, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    G = GATES[cell]
    a = dict(x=rng.standard_normal((T, B, I)), h0=rng.standard_normal((B, H)),
             c0=rng.standard_normal((B, H)) if cell == "lstm" else None,
             Wx=rng.standard_normal((I, G * H)) * 0.3, Wh=rng.standard_normal((H, G * H)) * 0.3,
             b=rng.standard_normal(G * H) * 0.1, bh=rng.standard_normal(G * H) * 0.1)
    return {k: None if v is None else v.astype(dtype) for k, v in a.items()}


def core_forward(cell, a, keep_reserve=True, lengths=None):
    return _core.forward(cell, a["x"], a["h0"], a["c0"], a["Wx"], a["Wh"], a["b"], a["bh"], lengths,
                         False, None, True, [], True, keep_reserve)


def test_cell_table_lists_every_cell_once():
    table = _core.cells()
    assert [c["name"] for c in table] == list(GATES)
    for c in table:
        assert c["gates"] == GATES[c["name"]]
        assert c["has_cell_state"] == (c["name"] == "lstm")
        assert len(c["gate_names"]) == (c["gates"] if c["gates"] > 1 else 0)


@pytest.mark.parametrize("cell", list(GATES))
def test_handle_describes_its_forward(cell):
    a = arrays(cell)
    y, hT, cT, handle = core_forward(cell, a)
    assert (handle.cell, handle.dims, handle.dtype, handle.backend) == (cell, (T, B, I, H), np.float64, "cpu")
    assert handle.keeps_reserve and handle.nbytes >= T * B * H * 8  # at least the states
    assert (cT is not None) == (cell == "lstm")
    *_, none = _core.forward(cell, a["x"], a["h0"], a["c0"], a["Wx"], a["Wh"], a["b"], a["bh"],
                             None, False, None, True, [], False)
    assert none is None  # inference keeps nothing


@pytest.mark.parametrize("cell", list(GATES))
def test_handle_owns_its_inputs(cell):
    """Backward reads the arrays the forward checked, kept alive by the handle alone."""
    a = arrays(cell)
    want = _core.backward(core_forward(cell, a)[3], np.ones((T, B, H)), None, None)
    b = {k: None if v is None else v.copy() for k, v in a.items()}
    y, _, _, handle = core_forward(cell, b)
    del b
    gc.collect()
    got = _core.backward(handle, np.ones_like(y), None, None)
    for g, w in zip(got, want):
        if w is None:
            assert g is None
        else:
            np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("cell", list(GATES))
def test_checkpoint_handle_recomputes_to_the_same_gradients(cell):
    a = arrays(cell)
    lengths = np.array([T, 2, 0])
    y, hT, cT, full = core_forward(cell, a, lengths=lengths)
    y2, hT2, cT2, light = core_forward(cell, a, keep_reserve=False, lengths=lengths)
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(hT, hT2)
    assert not light.keeps_reserve and light.nbytes < full.nbytes
    dy, dhT = np.random.default_rng(1).standard_normal((T, B, H)), np.ones((B, H))
    dcT = np.ones((B, H)) if cell == "lstm" else None
    for g, w in zip(_core.backward(light, dy, dhT, dcT), _core.backward(full, dy, dhT, dcT)):
        if w is None:
            assert g is None
        else:
            np.testing.assert_array_equal(g, w)  # the same kernels on the same data


def test_backward_checks_gradients_against_the_handle():
    a = arrays("lstm")
    *_, handle = core_forward("lstm", a)
    with pytest.raises(ValueError, match=r"dy must have shape \(5, 3, 6\)"):
        _core.backward(handle, np.ones((T, B, H + 1)), None, None)
    with pytest.raises(TypeError, match=r"dcT must have dtype float64"):
        _core.backward(handle, None, None, np.ones((B, H), np.float32))


def test_gru_gate_orders():
    """Reset after: any block order (the n block's bias and input gradient are found by block).
    Reset before: the r and z blocks share one product, so they must be adjacent."""
    a = arrays("gru")
    perm = "rnz"  # n between r and z
    cols = lambda m: np.concatenate([m[..., "rzn".index(g) * H:("rzn".index(g) + 1) * H] for g in perm], -1)
    y, hT, cache = F.gru_forward(a["x"], a["h0"], cols(a["Wx"]), cols(a["Wh"]), cols(a["b"]),
                                 cols(a["bh"]), gate_order=perm)
    y_ref, hT_ref, ref_cache = reference.gru_forward(a["x"], a["h0"], a["Wx"], a["Wh"], a["b"], a["bh"])
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-12)
    dy = np.ones_like(y)
    got = F.gru_backward(dy, None, cache)
    want = reference.gru_backward(dy, None, ref_cache)
    for name, g, w in zip(("dx", "dh0", "dWx", "dWh", "db", "dbh"), got, want):
        w = cols(w) if name in ("dWx", "dWh", "db", "dbh") else w
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-11, err_msg=name)
    with pytest.raises(ValueError, match="r and z blocks adjacent"):
        F.gru_forward(a["x"], a["h0"], cols(a["Wx"]), cols(a["Wh"]), cols(a["b"]), cols(a["bh"]),
                      gate_order=perm, linear_before_reset=False)
