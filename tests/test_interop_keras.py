"""rnnkit.interop's Keras 3 conversions: layers made by from_keras compute what the Keras layer
computes (outputs and final states, with masks as rnnkit lengths and with initial states) for
every cell variant, merge mode and option that converts; to_keras(from_keras(k)) holds exactly
k's weights; to_keras of rnnkit's own layers computes what they compute; the options rnnkit
cannot compute fail clearly. Keras runs on its torch backend.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

# Keras 3 reads its backend once, at its first import, and defaults to TensorFlow; these tests
# run it on torch (the CPU wheel the torch parity tests use)
os.environ["KERAS_BACKEND"] = "torch"
pytest.importorskip("torch")
keras = pytest.importorskip("keras", minversion="3")

from rnnkit import nn  # noqa: E402
from rnnkit.cells import cell_names  # noqa: E402
from rnnkit.interop import from_keras, to_keras  # noqa: E402
from rnnkit.interop.keras import _KERAS_RECURRENT  # noqa: E402
from compare import largest_error_report, scaled_error  # noqa: E402
from interop_helpers import import_error_without, run_docs_example  # noqa: E402
from torch_reference import _torch_single_thread  # noqa: E402,F401 (autouse fixture)

# Keras's own NumPy conversions (get_weights, quantize) warn under NumPy 2; the converters don't
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

T, B, I, H = 6, 4, 5, 7
LENGTHS = [6, 3, 0, 4]  # right-padded sequences as Keras masks them; includes T and 0

# Keras and rnnkit evaluate the same equations in float32 with different summation orders and
# exp/tanh implementations: a few ulp (float32's eps is 1.2e-7) per operation, compounded over
# the T steps of the recurrence. The largest scaled errors measured here are a few 1e-7; the
# issue's bound of 1e-5 keeps a margin of 20x or more for other BLAS builds and longer sequences.
TOLERANCE = {np.float32: 1e-5, np.float64: 1e-10}
LARGEST_ERRORS = {}  # (what was compared, dtype name) -> largest scaled error seen


_report_largest_errors = largest_error_report("keras parity", LARGEST_ERRORS)


def assert_close(got, expected, what, dtype=np.float32):
    err = scaled_error(got, expected)
    key = (what, np.dtype(dtype).name)
    LARGEST_ERRORS[key] = max(err, LARGEST_ERRORS.get(key, 0.0))
    assert err <= TOLERANCE[dtype], f"{what}: differs from Keras by {err:.2e}"


# test id -> (keras.layers class and options, the rnnkit class and options said to match it)
VARIANTS = {
    "rnn_tanh": ("SimpleRNN", {"activation": "tanh"}, nn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": ("SimpleRNN", {"activation": "relu"}, nn.RNN, {"nonlinearity": "relu"}),
    "lstm": ("LSTM", {}, nn.LSTM, {}),
    "gru": ("GRU", {"reset_after": True}, nn.GRU, {"linear_before_reset": True}),
    "gru_cho": ("GRU", {"reset_after": False}, nn.GRU, {"linear_before_reset": False}),
}
DIRECTIONS = ["uni", "concat", "sum", "mul", "ave"]  # one direction, or Bidirectional's merge


def randomize(layer, seed=0):
    """Random weights, biases included (Keras starts them at zero, which would hide a wrong
    bias mapping), scaled so pre-activations stay O(1)."""
    rng = np.random.default_rng(seed)
    for weight in layer.weights:
        weight.assign((0.4 * rng.standard_normal(weight.shape)).astype(weight.dtype))
    return layer


def keras_recurrent(variant, direction="uni", *, dtype="float32", build=True, **options):
    kind, cell_options = VARIANTS[variant][:2]
    options = {"return_sequences": True, "return_state": True, **cell_options, **options}
    layer = getattr(keras.layers, kind)(H, dtype=dtype, **options)
    if direction != "uni":
        layer = keras.layers.Bidirectional(layer, merge_mode=direction, dtype=dtype)
    if build:
        layer.build((None, None, I))
        randomize(layer)
    return layer


def numpy_of(tensor):
    """A Keras tensor or variable as an array (keras.ops.convert_to_numpy warns under NumPy 2)."""
    return keras.ops.convert_to_tensor(tensor).detach().cpu().numpy()


def mask_of(lengths, steps=T):
    return np.arange(steps)[None, :] < np.asarray(lengths)[:, None]


def run_keras(layer, x, lengths=None, **kwargs):
    """The Keras layer's outputs as a list of arrays (output first, then any states)."""
    if lengths is not None:
        kwargs["mask"] = mask_of(lengths, x.shape[1])
    out = layer(x, **kwargs)
    return [numpy_of(part) for part in (out if isinstance(out, (list, tuple))
                                                          else [out])]


def flat(states):
    """rnnkit's list of states ([h] or [(h, c)] per direction) in Keras's flat order."""
    return [part for state in states for part in (state if isinstance(state, tuple) else (state,))]


def inputs(seed=1, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal((B, T, I)).astype(dtype)


def weights_of(layer):
    return [numpy_of(weight) for weight in layer.weights]


def assert_same_weights(got, expected):
    assert [w.shape for w in got.weights] == [w.shape for w in expected.weights]
    for a, b in zip(weights_of(got), weights_of(expected)):
        assert a.dtype == b.dtype and np.array_equal(a, b)


def test_the_table_covers_every_cell():
    assert {spec.cell for spec in _KERAS_RECURRENT} == set(cell_names())


# ---------------------------------------------------------------------------- recurrent parity
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_from_keras_parity_and_round_trip(variant, direction):
    k = keras_recurrent(variant, direction)
    layer = from_keras(k)
    rnnkit_class, options = VARIANTS[variant][2:]
    assert type(layer) is rnnkit_class and layer.bidirectional == (direction != "uni")
    assert all(layer.cell_options[key] == value for key, value in options.items())
    assert layer.batch_first and layer.return_sequences and layer.return_state
    x = inputs()
    for lengths in (None, LENGTHS):
        y_keras, *states_keras = run_keras(k, x, lengths)
        y, states = layer.forward(x, lengths=lengths)
        if lengths is not None and direction == "uni":
            # a lone Keras layer repeats the last valid output over the padding, rnnkit writes
            # zeros there (as Bidirectional, which sets zero_output_for_mask, does)
            assert not np.any(y[~mask_of(lengths)])
            y_keras = y_keras * mask_of(lengths)[..., None]
        what = "output" if lengths is None else "output, masked"
        assert_close(y, y_keras, f"{variant} {what}")
        assert len(flat(states)) == len(states_keras)
        for got, expected in zip(flat(states), states_keras):
            assert_close(got, expected, f"{variant} final state" + (", masked" if lengths else ""))
    again = to_keras(layer)
    assert type(again) is type(k)
    assert_same_weights(again, k)
    for key, value in k.get_config().items():
        if key in ("merge_mode", "return_sequences", "return_state"):
            assert again.get_config()[key] == value, key
    inner = again.forward_layer if direction != "uni" else again
    for key, value in VARIANTS[variant][1].items():
        assert inner.get_config()[key] == value, key


@pytest.mark.parametrize("direction", ["uni", "mul"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_to_keras_of_a_native_rnnkit_layer(variant, direction):
    rnnkit_class, options = VARIANTS[variant][2:]
    bidirectional = direction != "uni"
    layer = rnnkit_class(I, H, bidirectional=bidirectional,
                         merge=direction if bidirectional else "concat", return_state=True, seed=0,
                         **options)
    rng = np.random.default_rng(5)
    for name, array in layer.parameters().items():
        if name.endswith((".b", ".bh")):  # b and bh both nonzero: to_keras must combine them
            array[...] = 0.4 * rng.standard_normal(array.shape)
    k = to_keras(layer)
    x = inputs(seed=6)
    y_keras, *states_keras = run_keras(k, x, LENGTHS)
    y, states = layer.forward(x, lengths=LENGTHS)
    valid = mask_of(LENGTHS)[..., None]
    assert_close(y, y_keras * valid, f"{variant} native layer output, masked")
    for got, expected in zip(flat(states), states_keras):
        assert_close(got, expected, f"{variant} native layer final state, masked")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_return_sequences_false_is_the_last_valid_step(variant):
    k = keras_recurrent(variant, return_sequences=False, return_state=False)
    layer = from_keras(k)
    assert not layer.return_sequences and not layer.return_state
    (expected,) = run_keras(k, inputs(), LENGTHS)
    assert_close(layer.forward(inputs(), lengths=LENGTHS), expected,
                 f"{variant} return_sequences=False, masked")
    assert not to_keras(layer).return_sequences


MERGES = {"concat": lambda f, b: np.concatenate([f, b], axis=-1), "sum": np.add,
          "mul": np.multiply, "ave": lambda f, b: (f + b) / 2}


@pytest.mark.parametrize("merge", list(MERGES))
@pytest.mark.parametrize("variant", ["lstm", "gru_cho"])
def test_bidirectional_without_sequences_merges_the_final_states(variant, merge):
    k = keras_recurrent(variant, merge, return_sequences=False, return_state=False)
    layer = from_keras(k)
    assert layer.return_sequences and layer.return_state  # see from_keras
    (expected,) = run_keras(k, inputs(), LENGTHS)
    _, states = layer.forward(inputs(), lengths=LENGTHS)
    h_fwd, h_bwd = (state[0] if isinstance(state, tuple) else state for state in states)
    assert_close(MERGES[merge](h_fwd, h_bwd), expected,
                 f"{variant} bidirectional last output, masked")


def test_initial_states_in_keras_order():
    k = keras_recurrent("lstm", "concat")
    layer = from_keras(k)
    rng = np.random.default_rng(7)
    h_f, c_f, h_b, c_b = (rng.standard_normal((B, H)).astype(np.float32) for _ in range(4))
    y_keras, *states_keras = run_keras(k, inputs(), LENGTHS, initial_state=[h_f, c_f, h_b, c_b])
    y, states = layer.forward(inputs(), lengths=LENGTHS, initial_state=[(h_f, c_f), (h_b, c_b)])
    assert_close(y, y_keras, "lstm output, masked, initial state")
    for got, expected in zip(flat(states), states_keras):
        assert_close(got, expected, "lstm final state, masked, initial state")


def test_float64_and_unroll():
    k = keras_recurrent("gru", "sum", dtype="float64", unroll=True)
    layer = from_keras(k)
    assert layer.dtype == np.float64
    x = inputs(dtype=np.float64)
    y_keras, *_ = run_keras(k, x)
    assert_close(layer.forward(x)[0], y_keras, "gru output", np.float64)
    assert_same_weights(to_keras(layer), k)


@pytest.mark.parametrize("variant", ["rnn_relu", "lstm", "gru", "gru_cho"])
def test_use_bias_false(variant):
    k = keras_recurrent(variant, "concat", use_bias=False)
    layer = from_keras(k)
    assert layer.keras_use_bias is False
    assert all(not np.any(array) for name, array in layer.parameters().items()
               if name.endswith((".b", ".bh")))
    x = inputs()
    y_keras, *_ = run_keras(k, x, LENGTHS)
    assert_close(layer.forward(x, lengths=LENGTHS)[0], y_keras, f"{variant} output, no bias")
    again = to_keras(layer)
    assert again.forward_layer.get_config()["use_bias"] is False
    assert_same_weights(again, k)


def test_to_keras_keeps_biases_trained_away_from_zero():
    layer = from_keras(keras_recurrent("gru", use_bias=False))
    layer.l0.fwd.bh[...] = 0.5  # as training in rnnkit would: rnnkit cannot freeze them
    with pytest.warns(UserWarning, match="use_bias=True"):
        k = to_keras(layer)
    assert k.get_config()["use_bias"] and np.all(weights_of(k)[2][1] == 0.5)


# ---------------------------------------------------------------------------- masking pipelines
def test_embedding_mask_zero_pipeline_is_rnnkit_with_lengths():
    rng = np.random.default_rng(8)
    ids = rng.integers(1, 20, size=(B, T))
    ids[~mask_of(LENGTHS)] = 0  # right padding with id 0
    embed = keras.layers.Embedding(20, I, mask_zero=True)
    k = keras.Sequential([keras.Input((T,), dtype="int32"), embed,
                          keras.layers.Bidirectional(keras.layers.LSTM(H, return_sequences=True)),
                          keras.layers.GRU(H)])
    for layer in k.layers:
        randomize(layer, seed=9)
    model = nn.Sequential(*(from_keras(layer) for layer in k.layers))
    assert model[0].keras_mask_zero and model[0].padding_idx is None  # row 0 kept as Keras has it
    lengths = np.count_nonzero(ids, axis=1)  # what Keras's mask says for right-padded ids
    expected = numpy_of(k(ids))
    assert_close(model.forward(ids, lengths=lengths), expected, "embedding mask_zero pipeline")
    assert to_keras(model[0]).mask_zero


def test_masking_layer_is_rnnkit_with_lengths():
    x = inputs(seed=10) * mask_of(LENGTHS)[..., None]  # right-padded with zero rows
    k = keras.Sequential([keras.Input((T, I)), keras.layers.Masking(0.0),
                          keras.layers.SimpleRNN(H, return_sequences=True)])
    randomize(k.layers[-1])
    y_keras = numpy_of(k(x)) * mask_of(LENGTHS)[..., None]
    y = from_keras(k.layers[-1]).forward(x, lengths=LENGTHS)
    assert_close(y, y_keras, "masking layer pipeline")


# ---------------------------------------------------------------------------- embedding, dense
@pytest.mark.parametrize("mask_zero", [False, True])
def test_embedding(mask_zero):
    k = keras.layers.Embedding(10, 4, mask_zero=mask_zero)
    k.build((None,))
    randomize(k)
    layer = from_keras(k)
    ids = np.random.default_rng(11).integers(0, 10, size=(B, T))
    assert np.array_equal(layer.forward(ids), numpy_of(k(ids)))
    again = to_keras(layer)
    assert again.mask_zero == mask_zero
    assert_same_weights(again, k)


def test_embedding_padding_row_goes_to_keras_as_zeros():
    layer = nn.Embedding(10, 4, padding_idx=2, seed=0)
    layer.W[2] = 1.0  # rnnkit outputs zeros for padding_idx whatever its row holds
    ids = np.array([[2, 3, 2, 0]])
    assert np.array_equal(numpy_of(to_keras(layer)(ids)), layer.forward(ids))


@pytest.mark.parametrize("shape", [(B, I), (B, T, I)], ids=["2d", "3d"])
@pytest.mark.parametrize("use_bias", [True, False], ids=["bias", "no_bias"])
def test_dense(use_bias, shape):
    k = keras.layers.Dense(3, use_bias=use_bias)
    k.build((None, I))
    randomize(k)
    layer = from_keras(k)
    assert ("b" in layer.parameters()) == use_bias
    x = np.random.default_rng(12).standard_normal(shape).astype(np.float32)
    assert_close(layer.forward(x), numpy_of(k(x)), "dense output")
    assert_same_weights(to_keras(layer), k)
    native = nn.Linear(I, 3, bias=use_bias, seed=0)
    assert_close(numpy_of(to_keras(native)(x)), native.forward(x),
                 "dense native layer output")


def test_dense_with_lora_converts_its_merged_kernel():
    k = keras.layers.Dense(3)
    k.build((None, I))
    k.enable_lora(2)
    randomize(k)  # lora_kernel_b starts at zero, which would hide an unmerged kernel
    x = np.random.default_rng(13).standard_normal((B, I)).astype(np.float32)
    assert_close(from_keras(k).forward(x), numpy_of(k(x)), "dense output, lora")


# ---------------------------------------------------------------------------- errors
def built(layer, shape=(None, None, I)):
    layer.build(shape)
    return layer


def quantized(layer, shape):
    built(layer, shape).quantize("int8")
    return layer


@pytest.mark.parametrize("make, error, named", [
    (lambda: built(keras.layers.SimpleRNN(H, activation="sigmoid")), NotImplementedError,
     "SimpleRNN with activation='sigmoid'"),
    (lambda: built(keras.layers.LSTM(H, activation="relu")), NotImplementedError,
     "activation='relu'"),
    (lambda: built(keras.layers.GRU(H, recurrent_activation="hard_sigmoid")),
     NotImplementedError, "recurrent_activation='hard_sigmoid'"),
    (lambda: built(keras.layers.GRU(H, stateful=True), (B, T, I)), NotImplementedError,
     "stateful=True"),
    (lambda: built(keras.layers.LSTM(H, go_backwards=True)), NotImplementedError,
     "go_backwards=True"),
    (lambda: built(keras.layers.Bidirectional(keras.layers.LSTM(H), merge_mode=None)),
     NotImplementedError, "merge_mode=None"),
    (lambda: built(keras.layers.Bidirectional(
        keras.layers.LSTM(H), backward_layer=keras.layers.LSTM(H + 1, go_backwards=True))),
     ValueError, "backward layer LSTM\\(8\\) differs"),
    (lambda: built(keras.layers.Bidirectional(
        keras.layers.LSTM(H), backward_layer=keras.layers.SimpleRNN(H, go_backwards=True))),
     ValueError, "backward layer SimpleRNN\\(7\\) differs"),
    (lambda: built(keras.layers.Dense(3, activation="relu"), (None, I)), NotImplementedError,
     "Dense with activation='relu'"),
    (lambda: quantized(keras.layers.Dense(3), (None, I)), NotImplementedError,
     "quantization_mode='int8'"),
    (lambda: quantized(keras.layers.Embedding(5, 3), (None,)), NotImplementedError,
     "Embedding with quantization_mode='int8'"),
    (lambda: built(keras.layers.Conv1D(2, 3)), TypeError, "Conv1D"),
    (lambda: keras.layers.LSTM(H), ValueError, "not built"),
    (lambda: built(keras.layers.GRU(H, dtype="mixed_float16")), TypeError, "mixed_float16"),
    (lambda: np.zeros(3), TypeError, "keras.layers.Layer, got ndarray"),
], ids=["simple_rnn_activation", "lstm_activation", "recurrent_activation", "stateful",
        "go_backwards", "merge_none", "bidirectional_mismatch", "bidirectional_mixed",
        "dense_activation",
        "quantized_dense", "quantized_embedding",
        "other_layer", "unbuilt", "float16", "not_a_layer"])
def test_what_from_keras_cannot_convert_is_named(make, error, named):
    with pytest.raises(error, match=named):
        from_keras(make())


@pytest.mark.parametrize("layer, error, named", [
    (nn.GRU(I, H, 2), ValueError, "num_layers=2"),
    (nn.LSTM(I, H, norm="layer"), ValueError, "norm='layer'"),
    (nn.LSTM(I, H, proj_size=2), ValueError, "proj_size=2"),
    (nn.LSTM(I, H, peepholes=True), ValueError, "peepholes=True"),
    (nn.RNN(I, H, skip="residual"), ValueError, "skip='residual'"),
    (nn.GRU(I, H, bidirectional=True, return_sequences=False), ValueError,
     "bidirectional with return_sequences=False"),
    (nn.Dropout(0.5), TypeError, "Dropout"),
], ids=["stacked", "norm", "proj_size", "peepholes", "skip", "bidirectional_last_step", "dropout"])
def test_what_to_keras_cannot_convert_is_named(layer, error, named):
    with pytest.raises(error, match=named):
        to_keras(layer)


# ---------------------------------------------------------------------------- imports, docs
def run_python(code, **env):
    environment = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    environment.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env=environment).stdout


def test_interop_imports_without_keras_and_says_what_is_missing():
    out = import_error_without("keras", "to_keras(nn.Linear(2, 3))")
    assert "need Keras 3" in out and 'pip install "keras>=3"' in out


def test_the_keras_backend_defaults_to_torch_and_keras_loads_lazily():
    out = run_python("import os, sys\n"
                     "import rnnkit.interop as interop, rnnkit.nn as nn\n"
                     "assert 'keras' not in sys.modules\n"
                     "interop.to_keras(nn.Linear(2, 3))\n"
                     "import keras\n"
                     "print(os.environ['KERAS_BACKEND'], keras.backend.backend())\n")
    assert out.split() == ["torch", "torch"]


def test_the_persistence_docs_example_runs(capsys):
    run_docs_example("from_keras")  # the Keras section's example
    differences = [float(value) for value in capsys.readouterr().out.split()]
    assert differences and max(differences) < 1e-5
