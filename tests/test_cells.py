"""rnnkit.cells: the one description of each cell, and its agreement with the core's table."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import rnnkit
from rnnkit import functional as F
from rnnkit import reference as R
from rnnkit.cells import CELLS, Cell, cell_for_core_name, cell_names, get_cell


def _option_combinations(cell):
    """Every combination of option values; an int option (a range) contributes two samples."""
    names = list(cell.options)
    samples = [(a.start, a.start + 3) if isinstance(a, range) else a
               for a in (cell.options[n] for n in names)]
    for values in itertools.product(*samples):
        yield dict(zip(names, values))


def test_registry_agrees_with_the_core_table():
    core = {c["name"]: c for c in rnnkit._core.cells()}
    covered = set()
    for cell in CELLS:
        for options in _option_combinations(cell):
            name = cell.core_name(**options)
            assert name in core, name
            entry = core[name]
            assert entry["gates"] == cell.num_gates
            assert entry["gate_names"] == cell.gate_names
            assert entry["has_cell_state"] == cell.has_cell_state
            assert entry["takes_projection"] == ("proj_size" in cell.parameter_options)
            assert entry["takes_peepholes"] == ("peepholes" in cell.parameter_options)
            covered.add(name)
    assert covered == set(core)
    assert set(itertools.chain.from_iterable(c.core_names for c in CELLS)) == set(core)


def test_cells_are_described_once():
    assert cell_names() == ("rnn", "lstm", "gru")
    assert [c.num_gates for c in CELLS] == [1, 4, 3]
    for cell in CELLS:
        assert get_cell(cell.name) is cell and get_cell(cell) is cell
        assert cell.gate_names == "" or len(cell.gate_names) == cell.num_gates
        assert cell.state_names == (("h", "c") if cell.has_cell_state else ("h",))
    with pytest.raises(Exception):
        CELLS[0].name = "other"  # frozen
    with pytest.raises(TypeError):
        get_cell("gru").options["linear_before_reset"] = (True,)  # read-only mapping


def test_cells_pickle_and_copy_as_the_registry_entry():
    import copy
    import pickle

    for cell in CELLS:
        assert pickle.loads(pickle.dumps(cell)) is cell
        assert copy.deepcopy(cell) is cell


def test_run_forward_and_backward_give_every_cell_one_convention():
    rng = np.random.default_rng(0)
    T, B, I, H = 3, 2, 4, 5
    for cell in CELLS:
        G = cell.num_gates
        x = rng.standard_normal((T, B, I))
        Wx, Wh = rng.standard_normal((I, G * H)) * 0.3, rng.standard_normal((H, G * H)) * 0.3
        b = rng.standard_normal(G * H) * 0.1
        h0, c0 = rng.standard_normal((B, H)), rng.standard_normal((B, H))
        states = (h0, c0) if cell.has_cell_state else (h0,)
        direct = cell.forward(x, *states, Wx, Wh, b)
        y, hT, cT, cache = cell.run_forward(x, h0, c0, Wx, Wh, b)
        np.testing.assert_array_equal(y, direct[0])
        np.testing.assert_array_equal(hT, direct[1])
        assert (cT is None) == (not cell.has_cell_state)
        dy = rng.standard_normal((T, B, H))
        grads = cell.run_backward(dy, None, None, cache)
        ref = cell.run_backward(dy, None, None, cell.run_forward(x, h0, c0, Wx, Wh, b,
                                                                 reference=True)[3], reference=True)
        assert len(grads) == len(ref) == 4 and (grads[2] is None) == (not cell.has_cell_state)
        for g, r in zip(grads[:3], ref[:3]):
            if r is not None:
                np.testing.assert_allclose(g, r, rtol=1e-9, atol=1e-9)
        assert set(grads[3]) == set(ref[3]) == {"Wx", "Wh", "b"}  # no bh given: no dbh
        for name, g in grads[3].items():
            np.testing.assert_allclose(g, ref[3][name], rtol=1e-9, atol=1e-9)


def test_unknown_cell_lists_the_valid_names():
    with pytest.raises(ValueError, match="'rnn', 'lstm', 'gru'.*'transformer'"):
        get_cell("transformer")
    with pytest.raises(ValueError, match="'rnn_tanh', 'rnn_relu', 'lstm', 'gru'"):
        cell_for_core_name("rnn")


def test_options_defaults_and_core_names():
    rnn, lstm, gru = (get_cell(n) for n in ("rnn", "lstm", "gru"))
    assert rnn.defaults() == {"nonlinearity": "tanh"}
    assert gru.defaults() == {"linear_before_reset": True}
    assert lstm.defaults() == {"peepholes": False, "proj_size": 0}
    assert rnn.core_name() == "rnn_tanh" and rnn.core_name(nonlinearity="relu") == "rnn_relu"
    assert gru.core_name(linear_before_reset=False) == "gru" and lstm.core_name() == "lstm"
    assert rnn.core_names == ("rnn_tanh", "rnn_relu")
    assert cell_for_core_name("rnn_relu") is rnn
    assert rnn.options_for_core_name("rnn_relu") == {"nonlinearity": "relu"}
    assert gru.options_for_core_name("gru") == {}
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu', got 'sigmoid'"):
        rnn.resolve_options(nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="lstm has no option 'nonlinearity'"):
        lstm.core_name(nonlinearity="tanh")
    # options that add parameters do not change the kernel's name; proj_size is an int >= 0
    assert lstm.core_name(proj_size=3, peepholes=True) == "lstm"
    assert lstm.parameter_names(proj_size=3, peepholes=True) == (
        "Wx", "Wh", "b", "bh", "Wr", "peepholes")
    assert lstm.parameter_names() == ("Wx", "Wh", "b", "bh")
    assert lstm.state_size(8, proj_size=3) == 3 and lstm.state_size(8) == 8
    for bad in (-1, 2.5, True, "3"):
        with pytest.raises(ValueError, match=f"proj_size must be an int >= 0, got {bad!r}"):
            lstm.resolve_options(proj_size=bad)


def test_entry_points_resolve_to_the_modules():
    for cell in CELLS:
        assert cell.forward is getattr(F, cell.name + "_forward")
        assert cell.backward is getattr(F, cell.name + "_backward")
        assert cell.reference_forward is getattr(R, cell.name + "_forward")
        assert cell.reference_backward is getattr(R, cell.name + "_backward")


@pytest.mark.parametrize("cell", CELLS, ids=lambda c: c.name)
def test_init_params(cell: Cell):
    I, H, G = 5, 3, cell.num_gates
    p = cell.init_params(np.random.default_rng(0), I, H, np.float32)
    assert {k: (v.shape, v.dtype) for k, v in p.items()} == {
        "Wx": ((I, G * H), np.float32), "Wh": ((H, G * H), np.float32),
        "b": ((G * H,), np.float32), "bh": ((G * H,), np.float32)}
    for k in range(G):
        block = p["Wh"][:, k * H:(k + 1) * H].astype(np.float64)
        np.testing.assert_allclose(block.T @ block, np.eye(H), atol=1e-5)
    expected_b = np.zeros(G * H)
    if cell.name == "lstm":  # the forget gate, the second block
        expected_b[H:2 * H] = 1.0
    np.testing.assert_array_equal(p["b"], expected_b)
    np.testing.assert_array_equal(p["bh"], 0)
