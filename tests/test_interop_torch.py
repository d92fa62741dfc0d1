"""rnnkit.interop's PyTorch conversions: layers made by from_torch compute what the torch
module computes (outputs, final states, input, initial-state and parameter gradients, with
variable lengths through packed sequences and with initial states), for every constructor
option; to_torch(from_torch(m)) reproduces m.state_dict() exactly; wrong inputs fail clearly.
"""
from __future__ import annotations


import numpy as np
import pytest

torch = pytest.importorskip("torch")

# torch warns that its projection LSTM runs without oneDNN; parity is what these tests check
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")

from rnnkit import nn  # noqa: E402
from compare import largest_error_report, scaled_error  # noqa: E402
from interop_helpers import import_error_without, run_docs_example  # noqa: E402
from torch_reference import _torch_single_thread  # noqa: E402,F401 (autouse fixture)
from rnnkit.interop import (from_torch, load_torch_state_dict, states_from_torch,  # noqa: E402
                            states_to_torch, to_torch)
from rnnkit.interop.pytorch import _layer_mapping  # noqa: E402

T, B, I, H = 5, 4, 6, 7
LENGTHS = [5, 3, 1, 4]  # packing needs every length >= 1; includes T; unsorted on purpose

# Both sides evaluate the same equations in the same dtype with different summation orders and
# exp/tanh implementations, so they differ by a few ulp per operation, compounded over T steps,
# two layers and the backward pass. Largest measured scaled errors (max|a - b| / max(1, max|b|),
# absolute for O(1) values, relative for large gradient sums) are below 1e-15 in float64 and
# 5e-7 in float32 (float32's eps is 1.2e-7); the bounds below (the issue's: float64 1e-10,
# float32 1e-5) keep a margin of 20x or more for other BLAS builds and summation orders.
TOLERANCE = {np.float32: 1e-5, np.float64: 1e-10}
LARGEST_ERRORS = {}  # (what was compared, dtype name) -> largest scaled error seen, for reports
_report_largest_errors = largest_error_report("torch parity", LARGEST_ERRORS)

TORCH_CELLS = {  # test id -> (torch.nn class name, constructor options)
    "rnn_tanh": ("RNN", {"nonlinearity": "tanh"}),
    "rnn_relu": ("RNN", {"nonlinearity": "relu"}),
    "lstm": ("LSTM", {}),
    "lstm_proj": ("LSTM", {"proj_size": 3}),  # h and the outputs 3 wide, weight_hr_l*
    "gru": ("GRU", {}),
}
TORCH_DTYPES = {np.float32: torch.float32, np.float64: torch.float64}


def assert_close(got, expected, what, dtype):
    err = scaled_error(got, expected)
    key = (what.split("[")[0], np.dtype(dtype).name)
    LARGEST_ERRORS[key] = max(err, LARGEST_ERRORS.get(key, 0.0))
    assert err <= TOLERANCE[dtype], f"{what}: differs from torch by {err:.2e}"


def make_recurrent(cell, num_layers=1, bidirectional=False, batch_first=False, bias=True,
                   dtype=np.float64, **extra):
    kind, options = TORCH_CELLS[cell]
    torch.manual_seed(0)
    return getattr(torch.nn, kind)(I, H, num_layers, bias=bias, batch_first=batch_first,
                                   bidirectional=bidirectional, dtype=TORCH_DTYPES[dtype],
                                   **options, **extra)


def random_like_state(module, rng, dtype):
    """A random state in torch's layout for ``module`` (an (h, c) pair for LSTM; h is
    proj_size wide when there is a projection)."""
    layers = module.num_layers * (2 if module.bidirectional else 1)
    widths = [getattr(module, "proj_size", 0) or H, H]
    parts = [torch.tensor(rng.standard_normal((layers, B, width)).astype(dtype),
                          requires_grad=True)
             for width in widths[:2 if isinstance(module, torch.nn.LSTM) else 1]]
    return tuple(parts) if len(parts) == 2 else parts[0]


def flat(state):
    return list(state) if isinstance(state, tuple) else [state]


# ---------------------------------------------------------------------------- recurrent parity
@pytest.mark.parametrize("inputs", ["plain", "lengths", "lengths+initial_state"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["time_major", "batch_first"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", list(TORCH_CELLS))
def test_recurrent_parity(cell, num_layers, bidirectional, batch_first, bias, dtype, inputs):
    module = make_recurrent(cell, num_layers, bidirectional, batch_first, bias, dtype)
    layer = from_torch(module)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I)).astype(dtype)
    lengths = LENGTHS if "lengths" in inputs else None
    hx = random_like_state(module, rng, dtype) if "initial_state" in inputs else None

    # torch, with autograd
    x_torch = torch.tensor(x, requires_grad=True)
    packed = x_torch if lengths is None else torch.nn.utils.rnn.pack_padded_sequence(
        x_torch, torch.tensor(LENGTHS), batch_first=batch_first, enforce_sorted=False)
    out, final = module(packed, hx)
    if lengths is not None:
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=batch_first,
                                                        total_length=T)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dfinal = [rng.standard_normal(part.shape).astype(dtype) for part in flat(final)]
    loss = (out * torch.tensor(dout)).sum()
    loss = loss + sum((part * torch.tensor(d)).sum() for part, d in zip(flat(final), dfinal))
    loss.backward()

    # rnnkit, with its explicit backward
    y, states = layer.forward(x, lengths=lengths, initial_state=states_from_torch(hx))
    assert_close(y, out, f"{cell} output", dtype)
    for got, expected in zip(flat(states_to_torch(states)), flat(final)):
        assert_close(got, expected, f"{cell} final state", dtype)
    dstates = states_from_torch(tuple(dfinal) if len(dfinal) == 2 else dfinal[0])
    dx = layer.backward((dout, dstates))
    assert_close(dx, x_torch.grad, f"{cell} input gradient", dtype)
    if hx is not None:
        for got, part in zip(flat(states_to_torch(layer.dinitial_state)), flat(hx)):
            assert_close(got, part.grad, f"{cell} initial-state gradient", dtype)
    grads, torch_params = layer.grads(), dict(module.named_parameters())
    for ours, torch_name, transposed in _layer_mapping(layer, bias):
        got = grads[ours].T if transposed else grads[ours]
        assert_close(got, torch_params[torch_name].grad, f"{cell} parameter gradient[{torch_name}]",
                     dtype)


@pytest.mark.parametrize("cell", list(TORCH_CELLS))
def test_from_torch_carries_every_option(cell):
    module = make_recurrent(cell, num_layers=3, bidirectional=True, batch_first=True,
                            bias=False, dtype=np.float32, dropout=0.25)
    layer = from_torch(module)
    assert isinstance(layer, getattr(nn, TORCH_CELLS[cell][0]))
    assert (layer.input_size, layer.hidden_size, layer.num_layers) == (I, H, 3)
    assert layer.bidirectional and layer.batch_first and layer.dropout == 0.25
    assert layer.torch_bias is False and layer.dtype == np.float32 and layer.return_state
    assert all(not np.any(array) for name, array in layer.parameters().items()
               if name.endswith((".b", ".bh")))
    for option, value in TORCH_CELLS[cell][1].items():  # nonlinearity, proj_size
        assert layer.cell_options[option] == value


# ---------------------------------------------------------------------------- embedding, linear
@pytest.mark.parametrize("padding_idx", [None, 2, -1], ids=["no_padding", "padding", "neg_padding"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_embedding_parity(dtype, padding_idx):
    torch.manual_seed(0)
    module = torch.nn.Embedding(10, 5, padding_idx=padding_idx, dtype=TORCH_DTYPES[dtype])
    layer = from_torch(module)
    assert layer.padding_idx == module.padding_idx
    rng = np.random.default_rng(2)
    ids = rng.integers(0, 10, size=(B, T))
    ids[0, :2] = module.padding_idx if padding_idx is not None else 0
    out = module(torch.tensor(ids))
    dout = rng.standard_normal(out.shape).astype(dtype)
    (out * torch.tensor(dout)).sum().backward()
    assert_close(layer.forward(ids), out, "embedding output", dtype)
    assert layer.backward(dout) is None  # integer ids have no gradient
    assert_close(layer.grads()["W"], module.weight.grad, "embedding weight gradient", dtype)


@pytest.mark.parametrize("shape", [(B, I), (B, T, I)], ids=["2d", "3d"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_linear_parity(dtype, bias, shape):
    torch.manual_seed(0)
    module = torch.nn.Linear(I, 3, bias=bias, dtype=TORCH_DTYPES[dtype])
    layer = from_torch(module)
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(dtype)
    x_torch = torch.tensor(x, requires_grad=True)
    out = module(x_torch)
    dout = rng.standard_normal(out.shape).astype(dtype)
    (out * torch.tensor(dout)).sum().backward()
    assert_close(layer.forward(x), out, "linear output", dtype)
    assert_close(layer.backward(dout), x_torch.grad, "linear input gradient", dtype)
    assert_close(layer.grads()["W"].T, module.weight.grad, "linear weight gradient", dtype)
    if bias:
        assert_close(layer.grads()["b"], module.bias.grad, "linear bias gradient", dtype)


# ---------------------------------------------------------------------------- round trips
ROUND_TRIP_MODULES = {
    "rnn_relu_2layer_bi_nobias": lambda: make_recurrent("rnn_relu", 2, True, bias=False),
    "rnn_tanh_f32_batch_first": lambda: make_recurrent("rnn_tanh", 1, False, True,
                                                       dtype=np.float32),
    "lstm_3layer_bi_dropout": lambda: make_recurrent("lstm", 3, True, dropout=0.5),
    "lstm_f32_nobias": lambda: make_recurrent("lstm", 2, False, True, False, np.float32),
    "lstm_proj_bi": lambda: make_recurrent("lstm_proj", 2, True),
    "gru_bi_f32": lambda: make_recurrent("gru", 2, True, dtype=np.float32),
    "gru_nobias": lambda: make_recurrent("gru", 1, False, bias=False),
    "embedding_padding": lambda: torch.nn.Embedding(9, 4, padding_idx=0),
    "embedding_f64": lambda: torch.nn.Embedding(9, 4, dtype=torch.float64),
    "linear": lambda: torch.nn.Linear(5, 3),
    "linear_nobias_f64": lambda: torch.nn.Linear(5, 3, bias=False, dtype=torch.float64),
}


def assert_same_state_dict(got, expected):
    assert list(got) == list(expected)  # same names, same order
    for name in expected:
        assert got[name].dtype == expected[name].dtype, name
        assert torch.equal(got[name], expected[name]), name


@pytest.mark.parametrize("make", list(ROUND_TRIP_MODULES.values()), ids=list(ROUND_TRIP_MODULES))
def test_round_trip_reproduces_the_state_dict_exactly(make):
    module = make()
    again = to_torch(from_torch(module))
    assert type(again) is type(module)
    assert_same_state_dict(again.state_dict(), module.state_dict())
    options = ["num_layers", "bidirectional", "batch_first", "dropout", "nonlinearity",
               "proj_size", "padding_idx", "in_features", "out_features"]
    if isinstance(module, torch.nn.RNNBase):  # Linear.bias is the tensor, not the flag
        options.append("bias")
    for option in options:
        assert getattr(again, option, None) == getattr(module, option, None), option


def test_load_torch_state_dict_takes_numpy_arrays():
    module = make_recurrent("lstm", 2, True, bias=False)
    layer = nn.LSTM(I, H, 2, bidirectional=True, batch_first=False, dtype=np.float64)
    load_torch_state_dict(layer, {k: v.numpy() for k, v in module.state_dict().items()})
    assert layer.torch_bias is False
    assert_same_state_dict(to_torch(layer).state_dict(), module.state_dict())


def test_to_torch_keeps_biases_trained_away_from_zero():
    layer = from_torch(make_recurrent("gru", bias=False))
    layer.l0.fwd.b[...] = 0.5  # as training in rnnkit would: rnnkit cannot freeze them
    with pytest.warns(UserWarning, match="bias=True"):
        module = to_torch(layer)
    assert module.bias and torch.all(module.bias_ih_l0 == 0.5)


def test_to_torch_of_a_native_rnnkit_layer():
    layer = nn.LSTM(I, H, 2, bidirectional=True, dtype=np.float64, seed=0)
    module = to_torch(layer)
    assert module.batch_first and module.bias
    x = np.random.default_rng(4).standard_normal((B, T, I))
    assert_close(layer.forward(x), module(torch.tensor(x))[0], "native layer output",
                 np.float64)


# ---------------------------------------------------------------------------- errors
def test_projection_state_dicts_need_a_layer_with_the_same_proj_size():
    module = torch.nn.LSTM(I, H, proj_size=3)
    with pytest.raises(ValueError, match=r"unexpected \['weight_hr_l0'\]"):
        load_torch_state_dict(nn.LSTM(I, H, batch_first=False), module.state_dict())
    with pytest.raises(ValueError, match="weight_hh_l0.*needs"):
        load_torch_state_dict(nn.LSTM(I, H, proj_size=2), module.state_dict())


def test_peepholes_have_no_torch_equivalent():
    with pytest.raises(ValueError, match="peepholes=True"):
        to_torch(nn.LSTM(I, H, peepholes=True))


def test_unsupported_modules_and_layers_are_named():
    with pytest.raises(TypeError, match="Conv1d"):
        from_torch(torch.nn.Conv1d(2, 3, 1))
    with pytest.raises(TypeError, match="torch.nn.Module.*ndarray"):
        from_torch(np.zeros(3))
    with pytest.raises(TypeError, match="Dropout"):
        to_torch(nn.Dropout(0.5))
    with pytest.raises(TypeError, match="float16"):
        from_torch(torch.nn.GRU(I, H, dtype=torch.float16))
    with pytest.raises(NotImplementedError, match="max_norm"):
        from_torch(torch.nn.Embedding(5, 3, max_norm=1.0))


@pytest.mark.parametrize("options, named", [
    ({"norm": "layer"}, "norm='layer'"), ({"skip": "residual"}, "skip='residual'"),
    ({"bidirectional": True, "merge": "sum"}, "merge='sum'"),
    ({"recurrent_dropout": 0.2}, "recurrent_dropout=0.2")])
def test_layers_torch_cannot_express_are_refused(options, named):
    with pytest.raises(ValueError, match=named.replace("(", r"\(")):
        to_torch(nn.GRU(I, H, **options))
    with pytest.raises(ValueError, match="linear_before_reset"):
        to_torch(nn.GRU(I, H, linear_before_reset=False))


def test_state_dict_mismatches_are_explained():
    state = make_recurrent("gru", 2).state_dict()
    with pytest.raises(ValueError, match=r"missing \['weight_ih_l1'"):
        load_torch_state_dict(nn.GRU(I, H, 2), {k: v for k, v in state.items()
                                                 if not k.endswith("l1")})
    with pytest.raises(ValueError, match="unexpected.*weight_ih_l1"):
        load_torch_state_dict(nn.GRU(I, H, 1), state)
    with pytest.raises(ValueError, match=r"'weight_ih_l0'.*\(21, 6\).*\(21, 5\)"):
        load_torch_state_dict(nn.GRU(5, H, 2), state)
    with pytest.raises(TypeError, match="mapping"):
        load_torch_state_dict(nn.GRU(I, H, 2), list(state.values()))
    embedding = torch.nn.Embedding(5, 3, padding_idx=1)
    with torch.no_grad():
        embedding.weight[1] = 1.0
    with pytest.raises(ValueError, match="padding_idx=1"):
        from_torch(embedding)


def test_state_conversions_check_their_input():
    h = np.zeros((4, B, H))
    assert [s.shape for s in states_from_torch(h)] == [(B, H)] * 4
    with pytest.raises(ValueError, match="3-D"):
        states_from_torch(np.zeros((B, H)))
    with pytest.raises(ValueError, match=r"\(h, c\) pair"):
        states_from_torch((h, h, h))
    with pytest.raises(ValueError, match="same shape"):
        states_from_torch((h, np.zeros((2, B, H))))
    with pytest.raises(ValueError, match="non-empty list"):
        states_to_torch([])

def test_interop_imports_without_torch_and_says_what_is_missing():
    out = import_error_without("torch", "to_torch(nn.Linear(2, 3))")
    assert "need torch" in out and "pip install torch" in out


def test_the_persistence_docs_example_runs(capsys):
    run_docs_example("from_torch")  # the PyTorch section's example
    output_difference, state_difference = map(float, capsys.readouterr().out.split())
    assert output_difference < 1e-12 and state_difference < 1e-12
